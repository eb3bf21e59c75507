//! Which files the gate holds the execs of: the files the rules' paths
//! name now, marked in the fanotify group and held by an `O_PATH` fd so
//! that a mark can be removed after its path has come to name another
//! file.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use super::fanotify;

#[derive(Debug, thiserror::Error)]
#[error("cannot gate the execs of {path}: {source}")]
pub struct MarkError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// What a path names now.
#[derive(Debug)]
pub enum Look {
    /// Nothing an exec could run: no file, or not a regular file.
    Absent,
    /// A regular file, held by an `O_PATH` fd, with its device and inode.
    File(OwnedFd, (u64, u64)),
    /// It could not be told; whatever was marked for the path stays.
    Failed(io::Error),
}

/// Looks at what `path` names without opening it for reading (`O_PATH`: no
/// device's open runs, no FIFO blocks, no other fanotify group hears an
/// open): the path may be in a directory a user owns, and is trusted for
/// no more than naming a regular file to mark.
pub fn look(path: &Path) -> Look {
    let Ok(name) = CString::new(path.as_os_str().as_bytes()) else {
        return Look::Absent;
    };
    // SAFETY: a NUL-terminated path; the result is checked.
    let file =
        match fanotify::owned(unsafe { libc::open(name.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })
        {
            Ok(file) => file,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                return Look::Absent;
            }
            Err(e) => return Look::Failed(e),
        };
    match fanotify::regular(file.as_raw_fd()) {
        Ok(true) => {}
        Ok(false) => return Look::Absent,
        Err(e) => return Look::Failed(e),
    }
    match fanotify::identity(file.as_raw_fd()) {
        Ok(id) => Look::File(file, id),
        Err(e) => Look::Failed(e),
    }
}

/// Marks and unmarks files: the fanotify group, or a fake in tests.
pub trait Marker {
    fn mark(&self, file: &OwnedFd) -> io::Result<()>;
    fn unmark(&self, file: &OwnedFd);
}

struct Marked {
    path: PathBuf,
    file: OwnedFd,
    id: (u64, u64),
}

#[derive(Default)]
pub struct Marks {
    /// The rules' paths.
    pub paths: Vec<PathBuf>,
    marked: Vec<Marked>,
    /// Bumped by every change: looks taken before the last change are
    /// stale, and a refresh made of them is dropped.
    pub generation: u64,
    /// Paths that named no regular file at the last look.
    pub absent: Vec<PathBuf>,
}

impl Marks {
    /// Brings the marks up to date with fresh looks at some of the paths.
    /// A path without a look, or whose look or mark failed, keeps what was
    /// marked for it: a passing error must not unmark a file. A file no
    /// path names any more is unmarked. The error is the first failure.
    pub fn update(
        &mut self,
        mut looks: Vec<(PathBuf, Look)>,
        marker: &impl Marker,
    ) -> Result<(), MarkError> {
        let mut first_error = None;
        let mut kept = Vec::with_capacity(self.paths.len());
        self.generation += 1;
        self.absent.clear();
        for path in &self.paths {
            let look = looks
                .iter()
                .position(|(p, _)| p == path)
                .map(|i| looks.swap_remove(i).1);
            let keep_old = match look {
                None => true,
                Some(Look::Absent) => {
                    self.absent.push(path.clone());
                    false
                }
                Some(Look::Failed(source)) => {
                    first_error.get_or_insert(MarkError {
                        path: path.clone(),
                        source,
                    });
                    true
                }
                Some(Look::File(file, id)) => {
                    if let Some(i) = self
                        .marked
                        .iter()
                        .position(|m| m.path == *path && m.id == id)
                    {
                        kept.push(self.marked.swap_remove(i));
                        false
                    } else {
                        match marker.mark(&file) {
                            Ok(()) => {
                                kept.push(Marked {
                                    path: path.clone(),
                                    file,
                                    id,
                                });
                                false
                            }
                            Err(source) => {
                                first_error.get_or_insert(MarkError {
                                    path: path.clone(),
                                    source,
                                });
                                true
                            }
                        }
                    }
                }
            };
            if keep_old {
                while let Some(i) = self.marked.iter().position(|m| m.path == *path) {
                    kept.push(self.marked.swap_remove(i));
                }
            }
        }
        for stale in std::mem::replace(&mut self.marked, kept) {
            if !self.marked.iter().any(|m| m.id == stale.id) {
                marker.unmark(&stale.file);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// How many files are marked.
    pub fn count(&self) -> usize {
        let mut ids: Vec<(u64, u64)> = self.marked.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

#[cfg(test)]
#[path = "marks_tests.rs"]
mod tests;
