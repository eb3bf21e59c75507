//! Every workload plainly and under every peer, small counts, on this
//! machine: `cargo test -p xtask --bin xtask -- --ignored --nocapture
//! peers_on_this_machine` as root. Installs the peers. `WORKLOADS=open,stat`
//! and `PEERS=auditd` narrow it down.

use super::*;
use crate::bench::workloads::{ALL, binary};

#[test]
#[ignore = "needs root; installs packages; takes minutes"]
fn peers_on_this_machine() {
    let statuses = install();
    for status in &statuses {
        eprintln!(
            "peer {}: {} — {}",
            status.peer.name(),
            status.version.as_deref().unwrap_or("?"),
            status.problem.as_deref().unwrap_or("works")
        );
    }
    let bin = binary().expect("the workload binary builds");
    // BENCH_WORK_DIR: a directory to keep (the C project, for one).
    let keep = std::env::var_os("BENCH_WORK_DIR").map(PathBuf::from);
    let work = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("agent-monitor-bench-test-{}", std::process::id()))
    });
    let only = std::env::var("WORKLOADS").unwrap_or_default();
    for workload in ALL {
        if !only.is_empty() && !only.split(',').any(|w| w == workload.name) {
            continue;
        }
        workload.prepare(&work).expect("prepare");
        let count = workload.quick;
        let start = Instant::now();
        let plain = workload.run(&bin, &work, count).expect("plain run");
        eprintln!(
            "{:>8} plain    {:>10.0} ns/unit  {count} units  wall {:?}",
            workload.name,
            plain.per_unit_ns(),
            start.elapsed()
        );
        let peers = std::env::var("PEERS").unwrap_or_default();
        let wanted = |peer: Peer| peers.is_empty() || peers.split(',').any(|p| p == peer.name());
        for status in statuses.iter().filter(|s| s.works() && wanted(s.peer)) {
            let argv = workload.argv(&bin, &work, count);
            match run_under(status.peer, workload, &argv, &work.join("peers")) {
                Ok(s) => eprintln!(
                    "{:>8} {:<8} {:>10.0} ns/unit  {:.2}x  events {} ({:.2}/unit) lost {:?} output {} B  wall {:?} {}",
                    workload.name,
                    status.peer.name(),
                    s.measured.per_unit_ns(),
                    s.measured.per_unit_ns() / plain.per_unit_ns(),
                    s.events,
                    s.events as f64 / count as f64,
                    s.lost,
                    s.output_bytes,
                    s.wall,
                    s.note.as_deref().unwrap_or("")
                ),
                Err(e) => eprintln!(
                    "{:>8} {:<8} FAILED: {e:#}",
                    workload.name,
                    status.peer.name()
                ),
            }
        }
    }
    if keep.is_none() {
        let _ = fs::remove_dir_all(&work);
    }
}
