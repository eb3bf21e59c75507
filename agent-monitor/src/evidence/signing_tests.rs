use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use super::*;

const OPENSSL: &str = "/usr/bin/openssl";
const LINK: Hash = [0x5a; 32];

/// Runs openssl and panics (never skips) if it is missing or fails.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new(OPENSSL)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {OPENSSL} (required for interop tests): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn new_key(dir: &Path) -> (LinkSigner, PathBuf) {
    let path = dir.join("key.pem");
    (generate(&path).expect("generating a key"), path)
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn message_layout_is_domain_index_link() {
    let msg = message(0x0102_0304_0506_0708, &LINK);
    assert_eq!(&msg[..28], b"agent-monitor chain link v1\0");
    assert_eq!(&msg[28..36], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&msg[36..], &LINK);
}

#[test]
fn sign_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = new_key(dir.path());
    let sig = signer.sign(7, &LINK);
    assert_eq!(sig.len(), 128);
    assert!(sig.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(signer.public_key().verify(7, &LINK, &sig), Ok(()));
    // Uppercase hex is the same signature.
    let upper = sig.to_uppercase();
    assert_eq!(signer.public_key().verify(7, &LINK, &upper), Ok(()));
}

#[test]
fn wrong_index_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = new_key(dir.path());
    let sig = signer.sign(7, &LINK);
    let verifier = signer.public_key();
    assert_eq!(
        verifier.verify(8, &LINK, &sig),
        Err(SignatureProblem::Invalid)
    );
    assert_eq!(
        verifier.verify(0, &LINK, &sig),
        Err(SignatureProblem::Invalid)
    );
}

#[test]
fn flipped_link_bit_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = new_key(dir.path());
    let sig = signer.sign(3, &LINK);
    for bit in [0, 100, 255] {
        let mut link = LINK;
        link[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            signer.public_key().verify(3, &link, &sig),
            Err(SignatureProblem::Invalid),
            "bit {bit}"
        );
    }
}

#[test]
fn flipped_signature_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = new_key(dir.path());
    let sig = signer.sign(3, &LINK);
    for pos in [0, 63, 64, 127] {
        let mut bytes = sig.clone().into_bytes();
        bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(
            signer.public_key().verify(3, &LINK, &flipped),
            Err(SignatureProblem::Invalid),
            "hex digit {pos}"
        );
    }
}

#[test]
fn signature_from_another_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = new_key(dir.path());
    let other = generate(&dir.path().join("other.pem")).unwrap();
    assert_ne!(signer.key_id(), other.key_id());
    let sig = other.sign(1, &LINK);
    assert_eq!(
        signer.public_key().verify(1, &LINK, &sig),
        Err(SignatureProblem::Invalid)
    );
}

#[test]
fn malformed_signatures_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = new_key(dir.path());
    let verifier = signer.public_key();
    let sig = signer.sign(1, &LINK);
    assert_eq!(
        verifier.verify(1, &LINK, ""),
        Err(SignatureProblem::Length(0))
    );
    assert_eq!(
        verifier.verify(1, &LINK, &sig[..126]),
        Err(SignatureProblem::Length(126))
    );
    assert_eq!(
        verifier.verify(1, &LINK, &format!("{sig}00")),
        Err(SignatureProblem::Length(130))
    );
    for bad in [
        format!("zz{}", &sig[2..]),
        format!("+f{}", &sig[2..]),
        format!("{} f", &sig[..126]),
        // 128 bytes, but a multi-byte character.
        format!("é{}", &sig[2..]),
    ] {
        assert_eq!(bad.len(), 128);
        assert_eq!(
            verifier.verify(1, &LINK, &bad),
            Err(SignatureProblem::NotHex),
            "{bad}"
        );
    }
}

#[test]
fn key_id_is_16_hex_of_public_key_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, path) = new_key(dir.path());
    let id = signer.key_id();
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(id, signer.public_key().key_id());
    let loaded = LinkVerifier::load(&public_path(&path)).unwrap();
    assert_eq!(loaded.key_id(), id);
}

#[test]
fn verifier_from_private_pem_equals_from_public_pem() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, path) = new_key(dir.path());
    let from_private = LinkVerifier::load(&path).unwrap();
    let from_public = LinkVerifier::load(&public_path(&path)).unwrap();
    assert_eq!(from_private, from_public);
    assert_eq!(from_private, signer.public_key());
    assert_eq!(
        from_private.verify(9, &LINK, &signer.sign(9, &LINK)),
        Ok(())
    );
    // And a loaded signer is the same key.
    assert_eq!(LinkSigner::load(&path).unwrap().key_id(), signer.key_id());
}

#[test]
fn openssl_key_signs_in_rust() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("openssl.pem");
    let key_s = key.to_str().unwrap();
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", key_s]);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let public = dir.path().join("openssl.pub");
    let public_s = public.to_str().unwrap();
    openssl(&["pkey", "-in", key_s, "-pubout", "-out", public_s]);

    let signer = LinkSigner::load(&key).expect("loading an openssl key");
    let sig = signer.sign(42, &LINK);
    let verifier = LinkVerifier::load(&public).expect("loading an openssl public key");
    assert_eq!(verifier, signer.public_key());
    assert_eq!(verifier.verify(42, &LINK, &sig), Ok(()));

    // openssl itself accepts the signature over the documented message.
    let msg = dir.path().join("msg");
    let sig_file = dir.path().join("sig");
    fs::write(&msg, message(42, &LINK)).unwrap();
    fs::write(&sig_file, unhex(&sig)).unwrap();
    openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        public_s,
        "-rawin",
        "-in",
        msg.to_str().unwrap(),
        "-sigfile",
        sig_file.to_str().unwrap(),
    ]);
}

#[test]
fn generated_keys_are_read_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = new_key(dir.path());
    let public = public_path(&path);
    assert_eq!(public, dir.path().join("key.pem.pub"));
    openssl(&["pkey", "-in", path.to_str().unwrap(), "-noout"]);
    openssl(&["pkey", "-pubin", "-in", public.to_str().unwrap(), "-noout"]);
    // openssl derives the same public key file we wrote.
    let derived = openssl(&["pkey", "-in", path.to_str().unwrap(), "-pubout"]);
    assert_eq!(derived, fs::read(&public).unwrap());
}

#[test]
fn generate_sets_modes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = new_key(dir.path());
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    // The umask may only take bits away from 0644.
    assert_eq!(mode(&public_path(&path)) & !0o644, 0);
}

#[test]
fn refuses_key_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = new_key(dir.path());
    for mode in [0o640, 0o604, 0o620] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = LinkSigner::load(&path).unwrap_err();
        assert!(
            matches!(err, SigningError::Permissions { .. }),
            "{mode:o}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains(path.to_str().unwrap()), "{text}");
        assert!(text.contains("chmod 600"), "{text}");
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    LinkSigner::load(&path).expect("a 0400 key is private enough");
}

#[test]
fn generate_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, path) = new_key(dir.path());
    let before = fs::read(&path).unwrap();
    let err = generate(&path).unwrap_err();
    assert!(matches!(err, SigningError::Exists { .. }), "{err}");
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(LinkSigner::load(&path).unwrap().key_id(), signer.key_id());

    // A stale public key file blocks generation too, leaving nothing behind.
    let fresh = dir.path().join("fresh.pem");
    fs::write(public_path(&fresh), "stale").unwrap();
    let err = generate(&fresh).unwrap_err();
    assert!(matches!(err, SigningError::Exists { .. }), "{err}");
    assert!(!fresh.exists());
    assert_eq!(fs::read_to_string(public_path(&fresh)).unwrap(), "stale");
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = LinkVerifier::load(&missing).unwrap_err();
    assert!(matches!(err, SigningError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let garbage = dir.path().join("garbage.pem");
    fs::write(&garbage, "not a key").unwrap();
    fs::set_permissions(&garbage, fs::Permissions::from_mode(0o600)).unwrap();
    for err in [
        LinkSigner::load(&garbage).unwrap_err(),
        LinkVerifier::load(&garbage).unwrap_err(),
    ] {
        assert!(matches!(err, SigningError::Key { .. }), "{err}");
        assert!(err.to_string().contains("garbage.pem"), "{err}");
    }

    // An RSA key is refused, not misread.
    let rsa = dir.path().join("rsa.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "rsa",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        rsa.to_str().unwrap(),
    ]);
    fs::set_permissions(&rsa, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        LinkSigner::load(&rsa),
        Err(SigningError::Key { .. })
    ));
}
