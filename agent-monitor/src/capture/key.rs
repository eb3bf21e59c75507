//! The capture key: 32 bytes for HMAC-SHA256, kept in a file of its own as
//! 64 hex characters.

use std::{fmt, io::ErrorKind, os::unix::fs::DirBuilderExt, path::Path};

use super::{CaptureError, hex, unhex};
use crate::keyfile::{self, KeyFileError};

/// The key of the redaction tags and hash commitments. Its `Debug` output
/// never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct CaptureKey([u8; 32]);

impl fmt::Debug for CaptureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaptureKey(..)")
    }
}

/// The longest key file accepted: 64 hex digits and a newline (`\r\n` too).
const MAX_FILE_LEN: u64 = 66;

impl CaptureKey {
    pub fn from_bytes(bytes: [u8; 32]) -> CaptureKey {
        CaptureKey(bytes)
    }

    /// The key in `path`, made there first if the file does not exist.
    ///
    /// An existing file must hold 64 hex digits and at most a newline, and be
    /// readable by its owner only. A new key is 32 bytes from `getrandom`,
    /// written with mode 0600 to a file that did not exist before (an
    /// existing file is never overwritten) and synced to disk.
    pub fn load_or_create(path: &Path) -> Result<CaptureKey, CaptureError> {
        match CaptureKey::load(path) {
            Err(CaptureError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            loaded => return loaded,
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            // The state directory is the monitor's own: nobody else reads it.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| CaptureError::Io {
                    action: "creating the directory of",
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        match keyfile::write_new(path, 0o600, format!("{}\n", hex(&bytes)).as_bytes()) {
            Ok(()) => Ok(CaptureKey(bytes)),
            // Another process made the key between our read and our write.
            Err(e) if e.source.kind() == ErrorKind::AlreadyExists => CaptureKey::load(path),
            Err(e) => Err(io_error(path)(e)),
        }
    }

    /// The key in `path`, which must exist; see [`CaptureKey::load_or_create`].
    pub fn load(path: &Path) -> Result<CaptureKey, CaptureError> {
        let file = keyfile::read(path, MAX_FILE_LEN).map_err(io_error(path))?;
        if !file.regular {
            return Err(bad_key(path, "not a regular file"));
        }
        if keyfile::shared(file.mode) {
            return Err(CaptureError::Permissions {
                path: path.to_path_buf(),
                mode: file.mode,
            });
        }
        parse(&file.contents)
            .map(CaptureKey)
            .map_err(|d| bad_key(path, d))
    }

    /// The raw key bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A public name for the key: 16 hex digits of SHA-256 over a fixed
    /// label and the key. It tells which key made a tag without helping to
    /// find the key.
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"agent-monitor capture key id\0")
            .chain_update(self.0)
            .finalize();
        hex(&digest[..8])
    }
}

fn parse(text: &[u8]) -> Result<[u8; 32], String> {
    if text.len() as u64 > MAX_FILE_LEN {
        return Err(format!("the file is longer than {MAX_FILE_LEN} bytes"));
    }
    let digits = text
        .strip_suffix(b"\n")
        .map(|t| t.strip_suffix(b"\r").unwrap_or(t))
        .unwrap_or(text);
    if digits.len() != 64 {
        return Err(format!("found {} bytes before the newline", digits.len()));
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(unhex::<32>)
        .ok_or_else(|| "found a character that is not a hex digit".to_string())
}

fn fill_random(buf: &mut [u8]) -> Result<(), CaptureError> {
    crate::random::fill(buf).map_err(CaptureError::Random)
}

fn io_error(path: &Path) -> impl FnOnce(KeyFileError) -> CaptureError + '_ {
    move |e| CaptureError::Io {
        action: e.action,
        path: path.to_path_buf(),
        source: e.source,
    }
}

fn bad_key(path: &Path, detail: impl Into<String>) -> CaptureError {
    CaptureError::BadKey {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}
