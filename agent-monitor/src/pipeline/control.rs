//! What the daemon tells a running processing stage: a reloaded policy,
//! rules and alert sinks, or a reload that failed. And where the stage
//! publishes its status for the metrics.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::{Processor, StatusSnapshot};
use crate::{
    alerts::Alerter, config::Rules, correlate::Now, policy::Policy, sink::Sink, time::WallClock,
};

pub enum Command {
    /// A config and policy that loaded: in force from the next record.
    Reload(Box<Reloaded>),
    /// A reload that did not load: the old config stays; an alert says why.
    ReloadFailed(String),
}

pub struct Reloaded {
    pub policy: Arc<Policy>,
    pub rules: Arc<Rules>,
    pub alerter: Alerter,
}

/// The stage's control channel and its status publisher.
pub struct Controls {
    pub commands: mpsc::Receiver<Command>,
    pub status: watch::Sender<StatusSnapshot>,
}

pub(super) async fn recv(control: &mut Option<Controls>) -> Option<Command> {
    match control {
        Some(c) => c.commands.recv().await,
        None => std::future::pending().await,
    }
}

impl<S: Sink> Processor<S> {
    pub(super) fn control(&mut self, command: Command) {
        match command {
            Command::Reload(reloaded) => {
                let Reloaded {
                    policy,
                    rules,
                    alerter,
                } = *reloaded;
                self.correlator.set_policy(policy);
                if let Some(discovery) = &mut self.discovery {
                    discovery.set_rules(rules);
                }
                // The old sinks deliver what they hold before they go.
                if let Some(mut old) = self.alerter.replace(alerter) {
                    let (report, _) = old.finish(std::time::Instant::now());
                    if let Some(report) = report {
                        self.record(&crate::evidence::declared::Declared::Alert(report));
                    }
                }
            }
            Command::ReloadFailed(why) => {
                let boot_ns = WallClock::boot_now_ns();
                let now = Now {
                    boot_ns,
                    wall_ns: self.clock.wall_ns(boot_ns) as i64,
                };
                let alert = self.correlator.monitor_alert(
                    now,
                    "config_invalid",
                    "high",
                    format!("reload refused, the previous config and policy stay in force: {why}"),
                );
                self.raise(alert);
            }
        }
    }
}
