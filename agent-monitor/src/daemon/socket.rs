//! The daemon's socket: at a fixed path, with the mode and group the
//! config gives, so that agents of that group can declare and register.

use std::{
    fs, io,
    os::unix::{
        ffi::OsStrExt,
        fs::{DirBuilderExt, FileTypeExt, PermissionsExt},
    },
    path::{Path, PathBuf},
};

use tokio::net::UnixListener;

#[derive(Debug)]
pub struct HostSocket {
    path: PathBuf,
}

impl HostSocket {
    /// Binds `path`, replacing a socket a stopped daemon left, but never
    /// one a running daemon answers on, nor anything that is not a socket.
    pub fn bind(
        path: &Path,
        mode: u32,
        gid: Option<u32>,
    ) -> io::Result<(HostSocket, UnixListener)> {
        if let Some(dir) = path.parent()
            && !dir.exists()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)?;
        }
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("a daemon already answers on {}", path.display()),
                    ));
                }
                fs::remove_file(path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        let socket = HostSocket {
            path: path.to_path_buf(),
        };
        if let Some(gid) = gid {
            let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: a NUL-terminated path; -1 leaves the owner as is.
            if unsafe { libc::chown(c_path.as_ptr(), u32::MAX, gid) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
        Ok((socket, listener))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for HostSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[tokio::test]
    async fn binds_with_its_mode_and_refuses_to_replace_a_live_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/api.sock");
        let gid = unsafe { libc::getgid() };
        let (socket, _listener) = HostSocket::bind(&path, 0o660, Some(gid)).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid);
        let err = HostSocket::bind(&path, 0o660, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(socket);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        // A socket nobody listens on any more: its listener is gone.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (_socket, _listener) = HostSocket::bind(&path, 0o600, None).unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = HostSocket::bind(&file, 0o600, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&file).unwrap(), b"x");
    }
}
