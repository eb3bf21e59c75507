//! Ed25519 signatures over chain links.
//!
//! When a key file is named in the config, each chain link is signed. The
//! signed message is domain-separated and binds the link's index, so a
//! signature cannot be replayed at another place in the chain or read as a
//! signature over anything else:
//!
//! ```text
//! b"agent-monitor chain link v1\0" ‖ index as 8 bytes big-endian ‖ link (32 bytes)
//! ```
//!
//! It is signed with pure Ed25519 (RFC 8032, no pre-hash) and the signature
//! is written as 128 lowercase hex characters. Verification is strict
//! (`verify_strict`: no malleable signatures, no weak public keys).
//!
//! Key files are the PEM files OpenSSL reads and writes: a PKCS#8 private
//! key (`openssl genpkey -algorithm ed25519 -out key.pem`) and an SPKI
//! public key (`openssl pkey -in key.pem -pubout`). Encrypted private keys
//! are not supported. A key is named by its [`LinkSigner::key_id`]: the first
//! 16 hex characters of SHA-256 of the raw 32-byte public key.

use std::path::{Path, PathBuf};

use ed25519_dalek::{
    Signature, Signer, SigningKey, VerifyingKey,
    pkcs8::{
        DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
        spki::der::pem::LineEnding,
    },
};
use sha2::{Digest, Sha256};

use crate::{
    evidence::chain::{Hash, hex},
    keyfile::{self, KeyFileError},
};

/// Far more than any PEM Ed25519 key needs.
const MAX_KEY_FILE: u64 = 16 << 10;

/// Prefix of every signed message; changing the format means a new version.
pub const DOMAIN: &[u8] = b"agent-monitor chain link v1\0";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "private key {path} is accessible by group or others (mode {mode:04o}); \
         restrict it with `chmod 600 {path}`",
        path = path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{}: not a usable Ed25519 key: {detail}", path.display())]
    Key { path: PathBuf, detail: String },
    #[error("{}: already exists; refusing to overwrite a key file", path.display())]
    Exists { path: PathBuf },
    #[error("reading random bytes for a new key: {0}")]
    Random(#[source] std::io::Error),
}

/// Why a signature does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    #[error("signature is {0} bytes long, expected 128 hex digits")]
    Length(usize),
    #[error("signature is not hexadecimal")]
    NotHex,
    #[error("signature does not match the link, its index and the public key")]
    Invalid,
}

/// Signs chain links with an Ed25519 private key.
#[derive(Clone, Debug)]
pub struct LinkSigner {
    key: SigningKey,
}

/// Checks chain link signatures with an Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkVerifier {
    key: VerifyingKey,
}

impl LinkSigner {
    /// Loads a PKCS#8 PEM private key, refusing a file that group or others
    /// may access.
    pub fn load(path: &Path) -> Result<LinkSigner, SigningError> {
        let (pem, mode) = read_key_file(path)?;
        if keyfile::shared(mode) {
            return Err(SigningError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| key_error(path, e))?;
        Ok(LinkSigner { key })
    }

    /// The signature of link number `index`, as 128 lowercase hex characters.
    pub fn sign(&self, index: u64, link: &Hash) -> String {
        let signature = self.key.sign(&message(index, link)).to_bytes();
        signature.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn public_key(&self) -> LinkVerifier {
        LinkVerifier {
            key: self.key.verifying_key(),
        }
    }

    /// Names the key in the evidence, so a verifier knows which key signed.
    pub fn key_id(&self) -> String {
        self.public_key().key_id()
    }
}

impl LinkVerifier {
    /// Loads an SPKI PEM public key (`BEGIN PUBLIC KEY`). For convenience
    /// a PKCS#8 PEM private key (`BEGIN PRIVATE KEY`) is accepted too, and
    /// its public key used; its permissions are not checked here.
    pub fn load(path: &Path) -> Result<LinkVerifier, SigningError> {
        let (pem, _) = read_key_file(path)?;
        let key = if pem.contains("-----BEGIN PRIVATE KEY-----") {
            SigningKey::from_pkcs8_pem(&pem)
                .map_err(|e| key_error(path, e))?
                .verifying_key()
        } else {
            VerifyingKey::from_public_key_pem(&pem).map_err(|e| key_error(path, e))?
        };
        Ok(LinkVerifier { key })
    }

    /// Checks `sig_hex` (hex, either case) against link number `index`.
    pub fn verify(&self, index: u64, link: &Hash, sig_hex: &str) -> Result<(), SignatureProblem> {
        if sig_hex.len() != 128 {
            return Err(SignatureProblem::Length(sig_hex.len()));
        }
        let mut bytes = [0u8; 64];
        for (byte, pair) in bytes.iter_mut().zip(sig_hex.as_bytes().chunks_exact(2)) {
            let nibble = |c: u8| (c as char).to_digit(16).ok_or(SignatureProblem::NotHex);
            *byte = (nibble(pair[0])? << 4 | nibble(pair[1])?) as u8;
        }
        self.key
            .verify_strict(&message(index, link), &Signature::from_bytes(&bytes))
            .map_err(|_| SignatureProblem::Invalid)
    }

    /// First 16 hex characters of SHA-256 of the raw 32-byte public key.
    pub fn key_id(&self) -> String {
        let digest: Hash = Sha256::digest(self.key.as_bytes()).into();
        hex(&digest)[..16].to_string()
    }
}

/// Creates a new key pair: the PKCS#8 PEM private key at `private` (mode
/// 0600) and the SPKI PEM public key at `<private>.pub` (mode 0644). Never
/// overwrites: fails if either file exists, leaving nothing behind.
pub fn generate(private: &Path) -> Result<LinkSigner, SigningError> {
    let public = public_path(private);
    if public.exists() {
        return Err(SigningError::Exists { path: public });
    }
    let mut secret = [0u8; 32];
    fill_random(&mut secret)?;
    let key = SigningKey::from_bytes(&secret);
    secret.fill(0);
    // Version 1 PKCS#8 (no public key inside), as `openssl genpkey` writes.
    let private_pem = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .map_err(|e| key_error(private, e))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| key_error(&public, e))?;
    write_new(private, 0o600, private_pem.as_bytes())?;
    if let Err(e) = write_new(&public, 0o644, public_pem.as_bytes()) {
        let _ = std::fs::remove_file(private);
        return Err(e);
    }
    Ok(LinkSigner { key })
}

/// `<private>.pub`: the suffix is appended, not swapped for the extension.
pub fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn message(index: u64, link: &Hash) -> Vec<u8> {
    [DOMAIN, &index.to_be_bytes(), link].concat()
}

fn fill_random(buf: &mut [u8]) -> Result<(), SigningError> {
    crate::random::fill(buf).map_err(SigningError::Random)
}

/// The file's text and mode, both from the same open file.
fn read_key_file(path: &Path) -> Result<(String, u32), SigningError> {
    let file = keyfile::read(path, MAX_KEY_FILE).map_err(|e| io_error(path, e))?;
    if file.contents.len() as u64 > MAX_KEY_FILE {
        return Err(key_error(path, "the file is too long for an Ed25519 key"));
    }
    let text = String::from_utf8(file.contents).map_err(|e| key_error(path, e))?;
    Ok((text, file.mode))
}

/// Creates a key file; an existing one is an error of its own.
fn write_new(path: &Path, mode: u32, contents: &[u8]) -> Result<(), SigningError> {
    keyfile::write_new(path, mode, contents).map_err(|e| match e.source.kind() {
        std::io::ErrorKind::AlreadyExists => SigningError::Exists {
            path: path.to_path_buf(),
        },
        _ => io_error(path, e),
    })
}

fn io_error(path: &Path, e: KeyFileError) -> SigningError {
    SigningError::Io {
        action: e.action,
        path: path.to_path_buf(),
        source: e.source,
    }
}

fn key_error(path: &Path, e: impl std::fmt::Display) -> SigningError {
    SigningError::Key {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
#[path = "signing_tests.rs"]
mod tests;
