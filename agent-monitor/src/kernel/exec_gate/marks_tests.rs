use std::{cell::RefCell, os::fd::AsRawFd};

use super::*;

/// Records what it was asked to mark and unmark, by inode; refuses files
/// whose inode is in `refuse`.
#[derive(Default)]
struct FakeMarker {
    marked: RefCell<Vec<u64>>,
    unmarked: RefCell<Vec<u64>>,
    refuse: RefCell<Vec<u64>>,
}

fn inode(file: &OwnedFd) -> u64 {
    fanotify::identity(file.as_raw_fd()).unwrap().1
}

impl Marker for FakeMarker {
    fn mark(&self, file: &OwnedFd) -> io::Result<()> {
        if self.refuse.borrow().contains(&inode(file)) {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        self.marked.borrow_mut().push(inode(file));
        Ok(())
    }

    fn unmark(&self, file: &OwnedFd) {
        self.unmarked.borrow_mut().push(inode(file));
    }
}

fn ino(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

fn refresh(marks: &mut Marks, marker: &FakeMarker) -> Result<(), MarkError> {
    let looks = marks.paths.iter().map(|p| (p.clone(), look(p))).collect();
    marks.update(looks, marker)
}

#[test]
fn a_replaced_file_is_marked_and_the_old_one_unmarked() {
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("agent");
    std::fs::write(&agent, "v1").unwrap();
    let marker = FakeMarker::default();
    let mut marks = Marks {
        paths: vec![agent.clone(), dir.path().join("not-yet")],
        ..Marks::default()
    };
    refresh(&mut marks, &marker).unwrap();
    let v1 = ino(&agent);
    assert_eq!(*marker.marked.borrow(), vec![v1]);
    // Nothing changed: nothing is marked again.
    refresh(&mut marks, &marker).unwrap();
    assert_eq!(marker.marked.borrow().len(), 1);

    let fresh = dir.path().join("agent.new");
    std::fs::write(&fresh, "v2").unwrap();
    std::fs::rename(&fresh, &agent).unwrap();
    std::fs::write(dir.path().join("not-yet"), "late").unwrap();
    refresh(&mut marks, &marker).unwrap();
    let v2 = ino(&agent);
    let late = ino(&dir.path().join("not-yet"));
    assert_eq!(*marker.marked.borrow(), vec![v1, v2, late]);
    assert_eq!(*marker.unmarked.borrow(), vec![v1]);
    assert_eq!(marks.count(), 2);

    // A path the rules no longer name is unmarked.
    marks.paths = vec![agent.clone()];
    refresh(&mut marks, &marker).unwrap();
    assert_eq!(*marker.unmarked.borrow(), vec![v1, late]);
    assert_eq!(marks.count(), 1);
}

#[test]
fn a_failed_look_or_mark_keeps_what_was_marked() {
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("agent");
    std::fs::write(&agent, "v1").unwrap();
    let marker = FakeMarker::default();
    let mut marks = Marks {
        paths: vec![agent.clone()],
        ..Marks::default()
    };
    refresh(&mut marks, &marker).unwrap();
    let failed = vec![(
        agent.clone(),
        Look::Failed(io::Error::from_raw_os_error(libc::EMFILE)),
    )];
    let err = marks.update(failed, &marker).unwrap_err();
    assert!(err.to_string().contains("agent"), "{err}");
    assert_eq!(marks.count(), 1);
    assert!(marker.unmarked.borrow().is_empty());

    // The new file cannot be marked: the old mark stays, and it is said.
    let fresh = dir.path().join("agent.new");
    std::fs::write(&fresh, "v2").unwrap();
    marker.refuse.borrow_mut().push(ino(&fresh));
    std::fs::rename(&fresh, &agent).unwrap();
    assert!(refresh(&mut marks, &marker).is_err());
    assert_eq!(marks.count(), 1);
    assert!(marker.unmarked.borrow().is_empty());
}

#[test]
fn only_a_regular_file_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let name = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    // Opening a FIFO for reading would block; a look must not.
    assert!(matches!(look(&fifo), Look::Absent));
    assert!(matches!(look(dir.path()), Look::Absent));
    assert!(matches!(look(&dir.path().join("none")), Look::Absent));
    assert!(matches!(look(Path::new("/dev/null")), Look::Absent));
}
