//! Files that hold secrets (the capture key, the chain's signing key):
//! created once and never replaced, readable by their owner only, and
//! durable before they are used.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::Path,
};

/// What went wrong, and at which step.
#[derive(Debug)]
pub struct KeyFileError {
    pub action: &'static str,
    pub source: io::Error,
}

fn step(action: &'static str) -> impl FnOnce(io::Error) -> KeyFileError {
    move |source| KeyFileError { action, source }
}

/// A key file's contents (at most `max_len + 1` bytes, so a caller can
/// tell an overlong file) and its mode, both from the same open file: the
/// mode checked is the mode of the bytes read.
pub struct KeyFile {
    pub contents: Vec<u8>,
    pub mode: u32,
    pub regular: bool,
}

pub fn read(path: &Path, max_len: u64) -> Result<KeyFile, KeyFileError> {
    let file = File::open(path).map_err(step("opening"))?;
    let meta = file.metadata().map_err(step("reading metadata of"))?;
    let mut contents = Vec::new();
    if meta.is_file() {
        file.take(max_len + 1)
            .read_to_end(&mut contents)
            .map_err(step("reading"))?;
    }
    Ok(KeyFile {
        contents,
        mode: meta.mode() & 0o7777,
        regular: meta.is_file(),
    })
}

/// Group or others may access the file.
pub fn shared(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Writes a new file with `mode`, failing with `AlreadyExists` rather than
/// replacing one, and syncs it and its directory: a key must survive a
/// crash before anything is signed or tagged with it.
pub fn write_new(path: &Path, mode: u32, contents: &[u8]) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(step("creating"))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(step("writing"))?;
    sync_parent(path)
}

/// Syncs the directory holding `path`, so a new name in it is durable.
pub fn sync_parent(path: &Path) -> Result<(), KeyFileError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(step("syncing the directory of"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_never_replaced_and_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_new(&path, 0o600, b"one").unwrap();
        let err = write_new(&path, 0o600, b"two").unwrap_err();
        assert_eq!(err.source.kind(), io::ErrorKind::AlreadyExists);
        let read = read(&path, 10).unwrap();
        assert_eq!(read.contents, b"one");
        assert_eq!(read.mode, 0o600);
        assert!(read.regular && !shared(read.mode));
        assert!(shared(0o640) && shared(0o604) && !shared(0o400));
    }

    #[test]
    fn reads_stop_one_byte_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_new(&path, 0o600, &[b'a'; 100]).unwrap();
        assert_eq!(read(&path, 10).unwrap().contents.len(), 11);
        let dir_read = read(dir.path(), 10).unwrap();
        assert!(!dir_read.regular && dir_read.contents.is_empty());
    }
}
