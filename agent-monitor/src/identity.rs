//! Workload identity of a process: its cgroup, the container it runs in,
//! and the SHA-256 of its executable.
//!
//! The monitor learns of a process from an exec event read shortly after
//! the fact, so the process may already be gone: every lookup here is best
//! effort and answers `None` rather than failing.

use std::{
    collections::{HashMap, VecDeque},
    fs::{self, File, OpenOptions},
    io::Read,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::Path,
};

use sha2::{Digest, Sha256};

/// Executables whose hash is remembered; the oldest are forgotten first.
pub const CACHE_CAPACITY: usize = 4096;

/// Largest executable hashed by default (512 MiB).
pub const MAX_EXE_SIZE: u64 = 512 << 20;

/// Read buffer for hashing.
const BUF_SIZE: usize = 64 << 10;

/// Length of a container id in hex.
const ID_LEN: usize = 64;

/// Runtime prefixes of container cgroup names. `crio-conmon-` and
/// `libpod-conmon-` (the monitor process, not the container) are left out
/// because what follows the prefix is then not a bare id.
const RUNTIME_PREFIXES: [&str; 4] = ["docker-", "cri-containerd-", "crio-", "libpod-"];

/// The cgroup path from the text of `/proc/PID/cgroup`: the v2 path
/// (`0::/path`) when there is one; on a v1-only host the `name=systemd`
/// hierarchy's path, else the first hierarchy's.
pub fn parse_cgroup(contents: &str) -> Option<String> {
    let mut systemd = None;
    let mut first = None;
    for line in contents.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !path.starts_with('/') || id.parse::<u32>().is_err() {
            continue;
        }
        if id == "0" && controllers.is_empty() {
            return Some(path.to_string());
        }
        if systemd.is_none() && controllers.split(',').any(|c| c == "name=systemd") {
            systemd = Some(path);
        }
        first = first.or(Some(path));
    }
    systemd.or(first).map(str::to_string)
}

/// The cgroup path of a live process; `None` once it is gone.
pub fn read_cgroup(pid: u32) -> Option<String> {
    parse_cgroup(&fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)
}

/// The 64-hex container id named in a cgroup path by docker, containerd
/// (CRI), CRI-O or podman, or a bare id component. With nested containers
/// the innermost (last) one wins.
pub fn container_id(cgroup_path: &str) -> Option<String> {
    cgroup_path
        .rsplit('/')
        .find_map(component_id)
        .map(str::to_string)
}

/// The container id one cgroup path component names, if any.
fn component_id(component: &str) -> Option<&str> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    if is_id(name) {
        return Some(name);
    }
    // containerd with the systemd driver and no scope:
    // `kubepods-…-pod<uid>.slice:cri-containerd:<id>`.
    if let Some((_, id)) = name.rsplit_once(":cri-containerd:")
        && is_id(id)
    {
        return Some(id);
    }
    RUNTIME_PREFIXES
        .iter()
        .filter_map(|prefix| name.strip_prefix(prefix))
        .find(|id| is_id(id))
}

/// Exactly 64 lowercase hex digits.
fn is_id(text: &str) -> bool {
    text.len() == ID_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What identifies one version of a file, taken by `fstat` on the open
/// descriptor: device, inode, size, mtime and ctime (seconds and
/// nanoseconds). The ctime is not in the brief's key, but unlike the mtime
/// it cannot be set back by `touch`, so a rewrite in place that restores
/// the mtime still misses the cache.
type FileKey = (u64, u64, u64, i64, i64, i64, i64);

fn file_key(meta: &fs::Metadata) -> FileKey {
    let (dev, ino, size) = (meta.dev(), meta.ino(), meta.size());
    (
        dev,
        ino,
        size,
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    )
}

/// SHA-256 of executables, remembered per file version so that a binary
/// run 5,000 times is read once.
///
/// The cache is bounded: past its capacity the entry inserted first is
/// forgotten (FIFO, as the DNS cache does). A forgotten binary is simply
/// hashed again.
#[derive(Debug)]
pub struct ExeHasher {
    hashes: HashMap<FileKey, String>,
    order: VecDeque<FileKey>,
    capacity: usize,
    max_size: u64,
    hits: u64,
    misses: u64,
}

impl Default for ExeHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl ExeHasher {
    /// A hasher remembering [`CACHE_CAPACITY`] files of up to
    /// [`MAX_EXE_SIZE`] bytes.
    pub fn new() -> Self {
        Self::with_limits(CACHE_CAPACITY, MAX_EXE_SIZE)
    }

    /// A hasher remembering `capacity` files (at least one) and skipping
    /// files larger than `max_size` bytes.
    pub fn with_limits(capacity: usize, max_size: u64) -> Self {
        Self {
            hashes: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            max_size,
            hits: 0,
            misses: 0,
        }
    }

    /// Cache lookups answered from memory and lookups that read the file.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Files currently remembered.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The executable hash of `pid`. `/proc/PID/exe` comes first: it still
    /// reaches the file after it was replaced or deleted, for as long as the
    /// process lives. Once the process is gone (or `/proc/PID/exe` cannot be
    /// opened) the hash is of `exe_path` as it is now.
    ///
    /// The pid is trusted as given: if the process exited and its pid was
    /// reused before this call, the newcomer's executable is hashed.
    pub fn hash_process(&mut self, pid: u32, exe_path: Option<&str>) -> Option<String> {
        self.hash_path(Path::new(&format!("/proc/{pid}/exe")))
            .or_else(|| self.hash_path(Path::new(exe_path?)))
    }

    /// Lowercase hex SHA-256 of the regular file at `path`; `None` for
    /// anything else, for files over the size limit, on any I/O error, and
    /// when the file changed while it was read.
    pub fn hash_path(&mut self, path: &Path) -> Option<String> {
        // Non-blocking so that opening a FIFO cannot hang the pipeline;
        // it has no effect on reading regular files.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.size() > self.max_size {
            return None;
        }
        let key = file_key(&meta);
        if let Some(hash) = self.hashes.get(&key) {
            self.hits += 1;
            return Some(hash.clone());
        }
        self.misses += 1;
        let hash = sha256_stream(&file, meta.size())?;
        if file.metadata().ok().map(|m| file_key(&m)) != Some(key) {
            return None;
        }
        self.remember(key, hash.clone());
        Some(hash)
    }

    fn remember(&mut self, key: FileKey, hash: String) {
        if self.hashes.insert(key, hash).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.hashes.remove(&old);
            }
        }
    }
}

/// SHA-256 of exactly `size` bytes of `file`, read in [`BUF_SIZE`] chunks;
/// `None` if the file turns out shorter or longer (it changed meanwhile).
fn sha256_stream(file: &File, size: u64) -> Option<String> {
    let mut reader = file.take(size.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    (total == size).then(|| hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the processes table records about who a process is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub cgroup: Option<String>,
    pub container_id: Option<String>,
    pub exe_sha256: Option<String>,
}

/// The identity of `pid`, whose executable path (from its exec event) is
/// `exe`. The cgroup is `None` once the process is gone; the hash then
/// falls back to `exe`.
pub fn observe(hasher: &mut ExeHasher, pid: u32, exe: Option<&str>) -> WorkloadIdentity {
    let cgroup = read_cgroup(pid);
    WorkloadIdentity {
        container_id: cgroup.as_deref().and_then(container_id),
        exe_sha256: hasher.hash_process(pid, exe),
        cgroup,
    }
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
