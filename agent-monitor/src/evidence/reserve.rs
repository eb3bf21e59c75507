//! Space held back on the evidence filesystem for the moment it fills up.
//!
//! When the disk is full the monitor still has to record that it is losing
//! rows, and that record (a `gaps` row) needs a little space itself. The
//! store keeps a small file allocated in its journal directory and deletes
//! it at the first storage failure, so the gap can be journaled; it is
//! allocated again once publication succeeds.

use std::{
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
};

const RESERVE_FILE: &str = ".reserve";
const RESERVE_BYTES: usize = 256 << 10;

pub struct Reserve {
    path: PathBuf,
    held: bool,
}

impl Reserve {
    /// Allocates the reserve in `dir` (best effort: a store on a full disk
    /// still opens, without a reserve).
    pub fn create(dir: &Path) -> Reserve {
        let mut reserve = Reserve {
            path: dir.join(RESERVE_FILE),
            held: false,
        };
        reserve.restore();
        reserve
    }

    /// Gives the space back to the filesystem.
    pub fn release(&mut self) {
        if self.held {
            let _ = fs::remove_file(&self.path);
            self.held = false;
        }
    }

    /// Takes the space again, if the filesystem has it.
    pub fn restore(&mut self) {
        if self.held {
            return;
        }
        if let Some(parent) = self.path.parent() {
            let _ = fs::create_dir_all(parent);
        }
        // Written, not just sized: a sparse file would reserve nothing.
        let written = File::create(&self.path).and_then(|mut file| {
            file.write_all(&vec![0u8; RESERVE_BYTES])?;
            file.sync_all()
        });
        match written {
            Ok(()) => self.held = true,
            Err(_) => {
                let _ = fs::remove_file(&self.path);
            }
        }
    }

    pub fn is_held(&self) -> bool {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_and_restore_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut reserve = Reserve::create(dir.path());
        let path = dir.path().join(RESERVE_FILE);
        assert!(reserve.is_held());
        assert_eq!(fs::metadata(&path).unwrap().len(), RESERVE_BYTES as u64);
        reserve.release();
        assert!(!path.exists());
        reserve.restore();
        assert!(reserve.is_held() && path.exists());
    }
}
