//! Benchmark workload: opens and closes /dev/null N times and prints the
//! loop's duration in nanoseconds. One hooked syscall (openat) and one
//! unhooked one (close) per iteration.

use std::{fs::File, time::Instant};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: openloop ITERATIONS");
    let start = Instant::now();
    for _ in 0..n {
        drop(File::open("/dev/null").expect("/dev/null opens"));
    }
    println!("{}", start.elapsed().as_nanos());
}
