//! Benchmark workloads: each subcommand does exactly N units of real
//! syscalls and prints one line on stdout, `ns=<elapsed> units=<N>`, timed
//! around the loop only (setup and teardown are outside the clock).
//!
//! - `open N`: open, read (64 bytes) and close a small file: openat, read,
//!   close;
//! - `stat N`: stat four existing paths in turn, one per unit: statx;
//! - `forkexec N`: fork, exec `/bin/true`, wait: clone, execve, exit_group,
//!   wait4 (and the dynamic loader's syscalls in the child);
//! - `connect N`: a loopback TCP connection to a listener in this process,
//!   accepted by a thread, closed by both ends: socket, connect, accept4,
//!   recvfrom (the client waits for the server's close, so the listener's
//!   backlog never fills), close. Both threads run on the CPU the workload
//!   started on: each connection hands off between them twice, and across
//!   CPUs of a VM every hand-off is an interrupt between virtual CPUs,
//!   whose latency varies by 20% from run to run and would swamp the cost
//!   being measured;
//! - `build DIR N`: `make -C DIR -B -j2 -s` N times, so every run rebuilds
//!   everything; only the makes are timed.
//!
//! Dependency-free: std, and the C library's fork/execv/waitpid and
//! sched_getcpu/sched_setaffinity that std links anyway.

use std::{
    ffi::{CString, c_char, c_int},
    fs,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{self, Command},
    thread,
    time::Instant,
};

unsafe extern "C" {
    fn fork() -> c_int;
    fn execv(path: *const c_char, argv: *const *const c_char) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn _exit(status: c_int) -> !;
    fn sched_getcpu() -> c_int;
    fn sched_setaffinity(pid: c_int, size: usize, mask: *const u64) -> c_int;
}

const USAGE: &str = "usage: workload open N | stat N | forkexec N | connect N | build DIR N";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |i: usize| -> u64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| fail(USAGE))
    };
    let (ns, units) = match args.first().map(String::as_str) {
        Some("open") => (open(count(1)), count(1)),
        Some("stat") => (stat(count(1)), count(1)),
        Some("forkexec") => (forkexec(count(1)), count(1)),
        Some("connect") => (connect(count(1)), count(1)),
        Some("build") => {
            let dir = args.get(1).unwrap_or_else(|| fail(USAGE));
            (build(dir, count(2)), count(2))
        }
        _ => fail(USAGE),
    };
    println!("ns={ns} units={units}");
}

fn fail(message: &str) -> ! {
    eprintln!("workload: {message}");
    process::exit(2)
}

/// A directory of our own under the temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("agent-monitor-workload-{}", process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn open(n: u64) -> u128 {
    let scratch = Scratch::new();
    let path = scratch.0.join("file");
    fs::write(&path, [b'x'; 64]).unwrap_or_else(|e| fail(&e.to_string()));
    let mut buf = [0u8; 64];
    let start = Instant::now();
    for _ in 0..n {
        let mut file = fs::File::open(&path).unwrap_or_else(|e| fail(&e.to_string()));
        if file.read(&mut buf).unwrap_or_else(|e| fail(&e.to_string())) != 64 {
            fail("short read");
        }
    }
    start.elapsed().as_nanos()
}

fn stat(n: u64) -> u128 {
    let scratch = Scratch::new();
    let paths: Vec<PathBuf> = ["a", "b", "c", "d"]
        .iter()
        .map(|name| {
            let path = scratch.0.join(name);
            fs::write(&path, name).unwrap_or_else(|e| fail(&e.to_string()));
            path
        })
        .collect();
    let start = Instant::now();
    for i in 0..n {
        fs::metadata(&paths[(i % 4) as usize]).unwrap_or_else(|e| fail(&e.to_string()));
    }
    start.elapsed().as_nanos()
}

fn forkexec(n: u64) -> u128 {
    let path = CString::new("/bin/true").expect("no NUL");
    let argv = [path.as_ptr(), std::ptr::null()];
    // Nothing buffered may be flushed twice by the children.
    let _ = std::io::stdout().flush();
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: this process has one thread; the child only calls execv
        // and _exit, both async-signal-safe, on memory prepared before.
        let pid = unsafe { fork() };
        if pid == 0 {
            unsafe {
                execv(path.as_ptr(), argv.as_ptr());
                _exit(127);
            }
        }
        if pid < 0 {
            fail(&format!("fork: {}", std::io::Error::last_os_error()));
        }
        let mut status: c_int = 0;
        // SAFETY: a valid pointer to our own status word.
        if unsafe { waitpid(pid, &mut status, 0) } != pid || status != 0 {
            fail(&format!("/bin/true: wait status {status:#x}"));
        }
    }
    start.elapsed().as_nanos()
}

fn connect(n: u64) -> u128 {
    // Before the accepting thread is spawned, so that it inherits the CPU.
    stay_on_this_cpu();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&format!("bind: {e}")));
    let address = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let server = thread::spawn(move || {
        for _ in 0..n {
            // Accepted, then closed at once: the server closes first, so
            // TIME_WAIT stays on the listener's side and no ephemeral port
            // is held.
            drop(
                listener
                    .accept()
                    .unwrap_or_else(|e| fail(&format!("accept: {e}"))),
            );
        }
    });
    let mut byte = [0u8; 1];
    let start = Instant::now();
    for _ in 0..n {
        let mut stream =
            TcpStream::connect(address).unwrap_or_else(|e| fail(&format!("connect: {e}")));
        // End of stream once the server has accepted and closed.
        if stream
            .read(&mut byte)
            .unwrap_or_else(|e| fail(&e.to_string()))
            != 0
        {
            fail("the server sent data");
        }
    }
    let elapsed = start.elapsed().as_nanos();
    server
        .join()
        .unwrap_or_else(|_| fail("the accepting thread panicked"));
    elapsed
}

/// Binds the calling thread, and the threads it spawns later, to the CPU
/// it runs on now.
fn stay_on_this_cpu() {
    // SAFETY: no arguments.
    let cpu = unsafe { sched_getcpu() };
    let Ok(cpu) = usize::try_from(cpu) else {
        fail("sched_getcpu failed");
    };
    // glibc's cpu_set_t, 1024 CPUs; the kernel ignores the bits past its
    // own CPUs.
    let mut mask = [0u64; 16];
    let Some(word) = mask.get_mut(cpu / 64) else {
        fail(&format!("CPU {cpu} is past the affinity mask"));
    };
    *word = 1 << (cpu % 64);
    // SAFETY: the mask is as long as the size given.
    if unsafe { sched_setaffinity(0, size_of_val(&mask), mask.as_ptr()) } != 0 {
        fail(&format!(
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
}

fn build(dir: &str, n: u64) -> u128 {
    let mut total = 0;
    for _ in 0..n {
        let start = Instant::now();
        let status = Command::new("make")
            .args(["-C", dir, "-B", "-j2", "-s"])
            .status()
            .unwrap_or_else(|e| fail(&format!("make: {e}")));
        total += start.elapsed().as_nanos();
        if !status.success() {
            fail(&format!("make -C {dir} failed with {status}"));
        }
    }
    total
}
