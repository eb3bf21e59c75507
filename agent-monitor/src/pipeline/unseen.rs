//! Agents whose first actions the kernel could not see: an exec the exec
//! gate did not hold, and a child dropped with its parent before its own
//! exec was read. Each is watched from now on, and an `event_loss` alert
//! says what was missed.

use super::Processor;
use crate::{correlate::Unseen, discovery::Adoption, event::Event, sink::Sink, time::WallClock};

impl<S: Sink> Processor<S> {
    /// A child forked by a pending process before that process was read
    /// and dismissed, which exec'd a rule's program meanwhile: dismissing
    /// its parent's tree made the kernel forget it. It is tracked again
    /// now; what it did in between (from its exec, read only now) was not
    /// seen, nor were the children it forked, and an alert says so.
    pub(super) fn track_again(&mut self, exec: &Event) {
        let Some(discovery) = self.discovery.as_mut() else {
            return;
        };
        if !discovery.is_process(exec.pid, exec.start_ns) {
            // Gone, and its pid maybe another process's: nothing to track.
            return;
        }
        match discovery.adopt(exec.pid, exec.agent_slot) {
            Adoption::Adopted => {}
            // The kernel tracks it again already (its exec was a later
            // one, and the kernel made it pending): it needs its agent.
            Adoption::AlreadyTracked => return self.set_kernel_agent(exec.pid, exec.agent_slot),
            Adoption::Exited | Adoption::Failed => return,
        }
        self.raise_unseen(exec, Unseen::TrackedAgainAt(WallClock::boot_now_ns()));
    }

    /// Makes sure the syscall probes watch a process a rule tracked at
    /// exec. The exec gate attached them before the exec when it could;
    /// when it could not (the file appeared or was replaced within the
    /// gate's last second, or the path is another mount namespace's), they
    /// are attached now, and an alert says that what the process did
    /// until now was not seen.
    pub(super) fn cover_start(&mut self, exec: &Event) {
        let Some(hook) = &self.syscall_hook else {
            return;
        };
        let unseen = match hook.cover(exec.ts_ns) {
            Ok(None) => return,
            Ok(Some(attached_ns)) => Unseen::AttachedAt(attached_ns),
            Err(err) => {
                tracing::error!(
                    pid = exec.pid,
                    "cannot attach the syscall probes for a new agent: {err}"
                );
                Unseen::NotAttached(WallClock::boot_now_ns())
            }
        };
        self.raise_unseen(exec, unseen);
    }

    fn raise_unseen(&mut self, exec: &Event, unseen: Unseen) {
        let wall = self.clock.wall_ns(unseen.until()) as i64;
        let alert = self.correlator.unseen_start(exec, unseen, wall);
        self.raise(alert);
    }
}
