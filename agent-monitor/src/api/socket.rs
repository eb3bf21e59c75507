//! A socket private to one run: in a fresh directory only the monitor's
//! user can enter, removed when the run ends.

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use tokio::net::UnixListener;

/// The socket's file name inside its directory.
const SOCKET_NAME: &str = "api.sock";

/// The name of a run's socket directory: replay recognises the socket of
/// a stored run by it.
pub fn dir_name(session_id: &str) -> String {
    format!("agent-monitor-{session_id}")
}

/// A pattern for the socket of the run whose session is `session_id`,
/// wherever its directory was made.
pub fn pattern(session_id: &str) -> String {
    format!(
        "/**/{}/{SOCKET_NAME}",
        globset::escape(&dir_name(session_id))
    )
}

#[derive(Debug)]
pub struct PrivateSocket {
    dir: PathBuf,
    path: PathBuf,
}

impl PrivateSocket {
    /// Binds `<parent>/agent-monitor-<name>/api.sock`. The directory is
    /// created 0700 and must not exist: a directory planted there by
    /// someone else is never reused.
    pub fn bind(parent: &Path, name: &str) -> io::Result<(PrivateSocket, UnixListener)> {
        let dir = parent.join(dir_name(name));
        fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let path = dir.join(SOCKET_NAME);
        let socket = PrivateSocket { dir, path };
        let listener = UnixListener::bind(&socket.path)?;
        // Access is decided by SO_PEERCRED and the tree check, not by the
        // file mode; the directory keeps other users from finding it.
        fs::set_permissions(&socket.path, fs::Permissions::from_mode(0o600))?;
        Ok((socket, listener))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_dir(&self.dir);
    }
}
