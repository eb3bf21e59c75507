//! Loading what a replay needs before the events stream past: the
//! sessions with their working directories and baselines, the tool calls
//! decided again, and the loss windows.

use std::collections::{HashMap, HashSet};

use super::{
    calls::{Call, Calls},
    error::ReplayError,
    events::{self, EventRow},
    judge::Judged,
    store::Store,
    tables,
};
use crate::policy::{Context, Effect, Envelope, Policy, Severity};

/// A session as the replay sees it.
#[derive(Debug)]
pub(crate) struct Session {
    /// The root process's working directory: `{cwd}` in the baseline and
    /// in tool-call templates.
    pub cwd: Option<String>,
    /// The root process's key: its exec is the session's own command.
    pub root: Option<String>,
    pub baseline: Envelope,
    /// What the policy says of an effect whatever the calls, cached:
    /// agents repeat the same effects thousands of times.
    fixed: HashMap<Effect, Fixed>,
}

/// Whether the session's baseline covers an effect (by which rule), and
/// the most severe sensitive rule it touches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fixed {
    pub baseline: Option<String>,
    pub sensitive: Option<(String, Severity)>,
}

/// Effects cached per session; past it the cache starts over.
const FIXED_CAPACITY: usize = 16_384;

impl Session {
    fn new(policy: &Policy, cwd: Option<String>, root: Option<String>) -> Session {
        let baseline = policy.baseline_in(&Context {
            cwd: cwd.as_deref(),
        });
        Session {
            cwd,
            root,
            baseline,
            fixed: HashMap::new(),
        }
    }
}

/// The judging state of one replay.
pub(crate) struct Judge<'p> {
    pub policy: &'p Policy,
    pub calls: Calls,
    pub sessions: HashMap<String, Session>,
    /// For events of no session: the fixed baseline only.
    pub no_session: Session,
    /// Wall-clock windows of kernel losses.
    pub losses: Vec<(i64, i64)>,
    /// Denied calls already alerted as run anyway.
    pub denied_alerted: HashSet<usize>,
}

pub(crate) struct Engine<'p> {
    pub store: Store,
    pub judge: Judge<'p>,
}

impl<'p> Engine<'p> {
    pub fn load(store: Store, policy: &'p Policy) -> Result<Engine<'p>, ReplayError> {
        let roots = tables::session_roots(&store)?;
        let keys: HashSet<String> = roots.values().flatten().cloned().collect();
        let cwds = tables::cwds(&store, &keys)?;
        let sessions: HashMap<String, Session> = roots
            .into_iter()
            .map(|(id, root)| {
                let cwd = root.as_ref().and_then(|r| cwds.get(r)).cloned();
                (id, Session::new(policy, cwd, root))
            })
            .collect();
        let calls = tables::calls(&store)?
            .into_iter()
            .map(|row| {
                let cwd = sessions.get(&row.session_id).and_then(|s| s.cwd.as_deref());
                Call::decide(policy, cwd, row)
            })
            .collect();
        let judge = Judge {
            policy,
            calls: Calls::new(calls),
            sessions,
            no_session: Session::new(policy, None, None),
            losses: tables::loss_windows(&store)?,
            denied_alerted: HashSet::new(),
        };
        Ok(Engine { store, judge })
    }

    /// Judges every event, in file order, and shows each to `visit`.
    pub fn run(
        &mut self,
        mut visit: impl FnMut(&Judge, &EventRow, &Judged),
    ) -> Result<(), ReplayError> {
        let Engine { store, judge } = self;
        events::for_each(store, |row| {
            let judged = judge.judge(&row);
            visit(judge, &row, &judged);
            Ok(())
        })
    }
}

impl Judge<'_> {
    /// Makes the session of an event on first sight when the `sessions`
    /// table does not have it (a session killed with the monitor): no
    /// working directory, no root.
    pub fn ensure_session(&mut self, id: Option<&str>) {
        if let Some(id) = id
            && !self.sessions.contains_key(id)
        {
            let session = Session::new(self.policy, None, None);
            self.sessions.insert(id.to_string(), session);
        }
    }

    /// An event's session; the fixed baseline's for none (or one not yet
    /// made by [`Judge::ensure_session`]).
    pub fn session(&self, id: Option<&str>) -> &Session {
        id.and_then(|id| self.sessions.get(id))
            .unwrap_or(&self.no_session)
    }

    /// What the policy says of `effect` in the session, whatever the calls.
    pub fn fixed(&mut self, id: Option<&str>, effect: &Effect) -> Fixed {
        let policy = self.policy;
        let session = match id.and_then(|id| self.sessions.get_mut(id)) {
            Some(session) => session,
            None => &mut self.no_session,
        };
        if let Some(fixed) = session.fixed.get(effect) {
            return fixed.clone();
        }
        let fixed = Fixed {
            baseline: session.baseline.covers(effect).map(|r| r.name.clone()),
            sensitive: policy
                .sensitive(effect)
                .map(|(r, severity)| (r.name.clone(), severity)),
        };
        if session.fixed.len() >= FIXED_CAPACITY {
            session.fixed.clear();
        }
        session.fixed.insert(effect.clone(), fixed.clone());
        fixed
    }

    pub fn lost_at(&self, ts: i64) -> bool {
        self.losses
            .iter()
            .any(|(since, until)| *since <= ts && ts <= *until)
    }
}
