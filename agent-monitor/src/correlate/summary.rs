//! Writing out what correlation kept: each tool call's row with its
//! summary, once its late events are in, and the sessions at the end.

use super::{Correlator, Now, sessions};
use crate::{evidence::declared::Declared, process_table::ProcessTable};

impl Correlator {
    /// The rows of calls that settled more than the summary delay ago
    /// ([`super::SUMMARY_DELAY_NS`], more with a grace period).
    /// Called on the processing stage's tick.
    pub fn tick(&mut self, now_boot_ns: u64) -> Vec<Declared> {
        let cutoff = now_boot_ns.saturating_sub(self.summary_delay_ns);
        self.calls
            .due(cutoff)
            .into_iter()
            .filter_map(|slot| self.summarise(slot))
            .collect()
    }

    /// Ends everything: open calls as `unfinished`, then every call's row,
    /// then every session's row, its identity filled in from `table`.
    pub fn close(&mut self, now: Now, table: &ProcessTable) -> Vec<Declared> {
        let ids: Vec<String> = self.sessions.by_id.keys().cloned().collect();
        for id in &ids {
            let open: Vec<u64> = self.sessions.by_id[id]
                .open_calls
                .values()
                .copied()
                .collect();
            for slot in open {
                self.end_call(slot, "unfinished", now);
            }
        }
        let mut out: Vec<Declared> = self
            .calls
            .unsummarised()
            .into_iter()
            .filter_map(|slot| self.summarise(slot))
            .collect();
        let mut sessions: Vec<_> = self.sessions.by_id.values_mut().collect();
        sessions.sort_by_key(|s| s.row.started);
        for session in sessions {
            if session.written {
                continue;
            }
            session.written = true;
            let mut row = session.row.clone();
            row.ended.get_or_insert(now.wall_ns);
            sessions::fill_identity(&mut row, table);
            out.push(Declared::Session(row));
        }
        out
    }

    /// The rows of sessions ended by `session.end` and not yet written,
    /// their identity filled in from `table`: written at once, so that a
    /// crash later loses none of them.
    ///
    /// In the order they ended (then by id), not the map's, so that the
    /// same declarations always give the same evidence.
    pub fn ended_sessions(&mut self, table: &ProcessTable) -> Vec<Declared> {
        let mut rows = Vec::new();
        for session in self.sessions.by_id.values_mut() {
            if session.written || session.row.ended.is_none() {
                continue;
            }
            session.written = true;
            let mut row = session.row.clone();
            sessions::fill_identity(&mut row, table);
            rows.push(row);
        }
        rows.sort_by(|a, b| (a.ended, &a.session_id).cmp(&(b.ended, &b.session_id)));
        rows.into_iter().map(Declared::Session).collect()
    }

    /// Completes a call's row from its summary, and retires the call.
    fn summarise(&mut self, slot: u64) -> Option<Declared> {
        let (started, ended) = {
            let call = self.calls.get(slot)?;
            (call.started_ns, call.ended_ns.unwrap_or(u64::MAX))
        };
        let lost = self.lost_between(started, ended);
        let call = self.calls.get_mut(slot)?;
        let summary = &call.summary;
        let mut row = call.row.clone();
        row.events = summary.events;
        row.undeclared_events = summary.undeclared_events;
        row.effects_seen = summary.seen.iter().cloned().collect();
        row.undeclared_effects = summary.undeclared.iter().cloned().collect();
        // A denied call was not meant to run: it promised nothing.
        row.declared_unseen = call
            .envelope
            .rules()
            .filter(|r| r.named && call.allowed)
            .map(|r| format!("{} {}", r.kind, r.pattern))
            .filter(|p| is_concrete(p) && !summary.matched.contains(p))
            .collect();
        row.declared_unseen.sort();
        row.declared_unseen.dedup();
        row.summary_cut = summary.cut;
        row.events_lost = lost;
        // The row is written; a retired call keeps only what binding its
        // processes needs, not its arguments and result (up to a megabyte
        // each, for 65,536 retired calls).
        let call = self.calls.get_mut(slot)?;
        call.row.args = None;
        call.row.result = None;
        call.row.effects = None;
        call.summary = Default::default();
        self.calls.retire(slot);
        Some(Declared::ToolCall(row))
    }
}

/// Whether a `kind pattern` names one resource rather than granting many
/// (a glob, a CIDR block, a port range): only a concrete resource is a
/// promise a call can fail to keep.
fn is_concrete(pattern: &str) -> bool {
    let (kind, text) = pattern.split_once(' ').unwrap_or(("", pattern));
    let net = kind.starts_with("net.") && !text.starts_with('/') && !text.starts_with('@');
    if net {
        // `[::1]:80` brackets an IPv6 address; they are not a glob here.
        let (host, port) = text.rsplit_once(':').unwrap_or((text, ""));
        !text.contains(['*', '?', '{']) && !host.contains('/') && !port.contains('-')
    } else {
        !text.contains(['*', '?', '[', '{'])
    }
}
