use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};

use super::*;

/// Counts live links; tracks as many processes as it is told.
#[derive(Default)]
struct FakeSwitch {
    links: Arc<AtomicI64>,
    tracked: AtomicI64,
    refuse_attach: AtomicBool,
    map_error: AtomicBool,
}

struct FakeLink(Arc<AtomicI64>);

impl Drop for FakeLink {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

impl Switch for Arc<FakeSwitch> {
    type Link = FakeLink;

    fn attach(&self) -> io::Result<FakeLink> {
        if self.refuse_attach.load(SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        self.links.fetch_add(1, SeqCst);
        Ok(FakeLink(self.links.clone()))
    }

    fn anything_tracked(&self) -> io::Result<bool> {
        if self.map_error.load(SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        Ok(self.tracked.load(SeqCst) > 0)
    }
}

fn hook() -> (Arc<FakeSwitch>, Arc<SyscallHook<Arc<FakeSwitch>>>) {
    let switch = Arc::new(FakeSwitch::default());
    let hook = SyscallHook::attached(switch.clone()).unwrap();
    (switch, hook)
}

/// Two idle looks: what it takes to detach.
fn release(hook: &SyscallHook<Arc<FakeSwitch>>) -> bool {
    hook.release_if_idle().unwrap() | hook.release_if_idle().unwrap()
}

fn state(hook: &SyscallHook<Arc<FakeSwitch>>) -> HookState {
    hook.status().state
}

#[test]
fn it_starts_attached_and_detaches_once_nothing_is_tracked() {
    let (switch, hook) = hook();
    assert_eq!(state(&hook), HookState::Attached);
    assert_eq!(switch.links.load(SeqCst), 1);
    assert!(
        !hook.release_if_idle().unwrap(),
        "one idle look is not enough"
    );
    assert!(hook.release_if_idle().unwrap());
    assert_eq!(switch.links.load(SeqCst), 0);
    assert!(!hook.release_if_idle().unwrap(), "already detached");
    assert_eq!(
        hook.status(),
        HookStatus {
            state: HookState::Detached,
            attaches: 1,
            detaches: 1,
            gated: 0
        }
    );
}

#[test]
fn a_tracked_process_keeps_it_attached() {
    let (switch, hook) = hook();
    assert!(!hook.release_if_idle().unwrap());
    // A process tracked between the two looks, by the kernel.
    switch.tracked.store(1, SeqCst);
    assert!(!hook.release_if_idle().unwrap());
    assert_eq!(state(&hook), HookState::Attached);
    switch.tracked.store(0, SeqCst);
    assert!(!hook.release_if_idle().unwrap(), "the wait starts again");
    assert!(hook.release_if_idle().unwrap());
}

#[test]
fn a_hold_between_two_idle_looks_starts_the_wait_again() {
    let (_, hook) = hook();
    assert!(!hook.release_if_idle().unwrap());
    drop(hook.hold().unwrap());
    assert!(!hook.release_if_idle().unwrap());
    assert_eq!(state(&hook), HookState::Attached);
    assert!(hook.release_if_idle().unwrap());
}

#[test]
fn a_hold_attaches_it_again_and_keeps_it_attached_until_dropped() {
    let (switch, hook) = hook();
    assert!(release(&hook));
    let first = hook.hold().unwrap();
    let second = hook.hold().unwrap();
    assert_eq!(switch.links.load(SeqCst), 1, "attached once, not twice");
    drop(first);
    assert!(!release(&hook), "one hold is left");
    drop(second);
    assert!(release(&hook));
    assert_eq!(hook.status().attaches, 2);
    assert_eq!(switch.links.load(SeqCst), 0);
}

#[test]
fn a_refused_attach_is_an_error_and_takes_no_hold() {
    let (switch, hook) = hook();
    assert!(release(&hook));
    switch.refuse_attach.store(true, SeqCst);
    assert_eq!(hook.hold().unwrap_err().raw_os_error(), Some(libc::EPERM));
    assert_eq!(state(&hook), HookState::Detached);
    switch.refuse_attach.store(false, SeqCst);
    let held = hook.hold().unwrap();
    assert_eq!(state(&hook), HookState::Attached);
    drop(held);
    assert!(release(&hook), "no hold was leaked");
}

#[test]
fn it_is_quiet_exactly_while_detached() {
    let (_, hook) = hook();
    let mut quiet = hook.quiet();
    assert!(!*quiet.borrow_and_update());
    assert!(release(&hook));
    assert!(quiet.has_changed().unwrap());
    assert!(*quiet.borrow_and_update());
    let held = hook.hold().unwrap();
    assert!(!*quiet.borrow_and_update());
    let again = hook.hold().unwrap();
    assert!(!quiet.has_changed().unwrap(), "already attached");
    drop((held, again));
    assert!(!*quiet.borrow(), "attached until released");
}

#[test]
fn closing_detaches_it_whatever_holds_it_and_refuses_new_holds() {
    let (switch, hook) = hook();
    let held = hook.hold().unwrap();
    switch.tracked.store(1, SeqCst);
    hook.close();
    assert_eq!(switch.links.load(SeqCst), 0);
    assert_eq!(state(&hook), HookState::Detached);
    assert!(*hook.quiet().borrow());
    assert!(hook.hold().is_err());
    drop(held);
    assert!(!release(&hook), "nothing left to detach");
    hook.close();
    assert_eq!(hook.status().detaches, 1, "closed once");
}

#[test]
fn an_unavailable_hook_is_never_quiet() {
    let hook = SyscallHook::<Arc<FakeSwitch>>::unavailable();
    assert!(!release(&hook));
    assert!(!*hook.quiet().borrow());
}

#[test]
fn a_map_it_cannot_read_leaves_it_attached() {
    let (switch, hook) = hook();
    switch.map_error.store(true, SeqCst);
    assert!(hook.release_if_idle().is_err());
    assert_eq!(state(&hook), HookState::Attached);
}

#[test]
fn a_kernel_that_refuses_it_at_start_is_an_error() {
    let switch = Arc::new(FakeSwitch::default());
    switch.refuse_attach.store(true, SeqCst);
    assert!(SyscallHook::attached(switch).is_err());
}

#[test]
fn an_unavailable_hook_holds_nothing() {
    let hook = SyscallHook::<Arc<FakeSwitch>>::unavailable();
    let held = hook.hold().unwrap();
    assert_eq!(state(&hook), HookState::Unavailable);
    drop(held);
    assert!(!release(&hook));
    assert_eq!(state(&hook), HookState::Unavailable);
}

/// Threads that track a process under a hold, the way adoption does, while
/// another releases as often as it can: whenever a process is tracked, the
/// program is attached.
///
/// The workers leave the releaser an idle moment only at a barrier every
/// round, and wait there until it has detached, so every round starts from
/// a detached program whatever the scheduler does. Left to chance, two idle
/// looks in a row between three busy workers may never come. Workers count
/// what goes wrong rather than panic, so that none is left at the barrier.
#[test]
fn a_process_is_never_tracked_while_it_is_detached() {
    const WORKERS: usize = 3;
    const ROUNDS: usize = 20;
    let (switch, hook) = hook();
    let stop = Arc::new(AtomicBool::new(false));
    let releaser = {
        let (hook, stop) = (hook.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                hook.release_if_idle().unwrap();
            }
        })
    };
    let barrier = Arc::new(std::sync::Barrier::new(WORKERS));
    let tracked_while_detached = Arc::new(AtomicI64::new(0));
    let rounds_never_detached = Arc::new(AtomicI64::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (hook, switch, barrier) = (hook.clone(), switch.clone(), barrier.clone());
            let (wrong, undetached) = (
                tracked_while_detached.clone(),
                rounds_never_detached.clone(),
            );
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    if barrier.wait().is_leader() && !detaches_soon(&hook) {
                        undetached.fetch_add(1, SeqCst);
                    }
                    barrier.wait();
                    for _ in 0..100 {
                        let hold = hook.hold().unwrap();
                        // The window adoption has between attaching and
                        // writing its entry, widened.
                        std::thread::yield_now();
                        switch.tracked.fetch_add(1, SeqCst);
                        drop(hold);
                        std::thread::yield_now();
                        if switch.links.load(SeqCst) != 1 {
                            wrong.fetch_add(1, SeqCst);
                        }
                        switch.tracked.fetch_sub(1, SeqCst);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    stop.store(true, SeqCst);
    releaser.join().unwrap();
    assert_eq!(
        tracked_while_detached.load(SeqCst),
        0,
        "tracked while detached"
    );
    assert_eq!(
        rounds_never_detached.load(SeqCst),
        0,
        "nothing was held or tracked, yet the releaser did not detach"
    );
    assert!(hook.status().detaches >= ROUNDS as u64);
}

/// Whether the releaser detaches within 10 s; with nothing held or
/// tracked, it takes two looks.
fn detaches_soon(hook: &SyscallHook<Arc<FakeSwitch>>) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state(hook) != HookState::Detached {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

#[test]
fn cover_attaches_for_a_process_tracked_without_a_hold_and_says_what_was_missed() {
    let (switch, hook) = hook();
    let before = WallClock::boot_now_ns();
    assert_eq!(
        hook.cover(before).unwrap(),
        None,
        "attached since before the exec: nothing missed"
    );
    assert!(release(&hook));
    // A rule's exec the gate did not hold: tracked while detached.
    let exec_ns = WallClock::boot_now_ns();
    switch.tracked.store(1, SeqCst);
    let attached = hook.cover(exec_ns).unwrap().expect("the start was missed");
    assert!(attached > exec_ns);
    assert_eq!(state(&hook), HookState::Attached);
    assert_eq!(switch.links.load(SeqCst), 1);
    // The tracked process keeps it attached, with no hold.
    assert!(!release(&hook));
    // Later events of that process were seen from the attach on.
    assert_eq!(hook.cover(attached).unwrap(), None);
    assert_eq!(hook.cover(exec_ns).unwrap(), Some(attached));
}

#[test]
fn cover_changes_nothing_once_closed_or_when_unavailable() {
    let (switch, hook) = hook();
    hook.close();
    assert_eq!(hook.cover(0).unwrap(), None);
    assert_eq!(switch.links.load(SeqCst), 0);
    let unavailable = SyscallHook::<Arc<FakeSwitch>>::unavailable();
    assert_eq!(unavailable.cover(0).unwrap(), None);
}

#[test]
fn cover_finds_an_exec_read_late_watched_by_an_attachment_since_ended() {
    let (switch, hook) = hook();
    // Gated: attached before the exec, detached after the process exited,
    // and only then the daemon reads the exec.
    let exec_ns = WallClock::boot_now_ns();
    assert!(release(&hook));
    assert_eq!(hook.cover(exec_ns).unwrap(), None, "it was watched");
    // An agent now: attached whatever happened before.
    assert_eq!(state(&hook), HookState::Attached);
    assert_eq!(switch.links.load(SeqCst), 1);
    // An exec right after a detach was not watched.
    assert!(release(&hook));
    let after_detach = WallClock::boot_now_ns();
    assert!(hook.cover(after_detach).unwrap().is_some());
}
