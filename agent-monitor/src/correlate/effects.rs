//! From an observed event to the effects the policy judges.
//!
//! One event may have several effects: an open for reading and writing
//! that creates its file is a read, a write and a create; a rename deletes
//! one name and creates another. Policy docs (docs/policy.md, "Effects")
//! hold the table this module implements.

use std::borrow::Cow;

use crate::{
    actions::{Access, Action, ActionKind},
    event::{Detail, Event},
    policy::{Effect, EffectKind},
    process_table::ProcessInfo,
};

/// What an event means to the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effects {
    /// Effects the policy can cover (at most four per event).
    Some(Vec<Effect>),
    /// Process lifecycle (fork, exit): never judged on its own; what the
    /// process does is.
    Lifecycle,
    /// An action no effect kind names (privilege changes, ptrace, module
    /// loads, bpf, mounts, memfd, signals outside the tree): no tool call
    /// or baseline can cover it, so it is always undeclared.
    Uncoverable,
}

pub fn of(event: &Event, process: &ProcessInfo) -> Effects {
    found(event, process).map(List::to_effects)
}

/// The effects of a file, network, DNS or privilege action.
pub fn of_action(action: &Action) -> Effects {
    found_in(action).map(List::to_effects)
}

/// An [`Effect`] as the event states it, its resource borrowed from the
/// event where it can be. Judging looks most effects up and keeps none
/// of them (a covered open), so the copy is made only for those kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EffectRef<'a> {
    pub kind: EffectKind,
    pub resource: Cow<'a, str>,
    pub name: Option<&'a str>,
}

impl EffectRef<'_> {
    pub fn to_effect(&self) -> Effect {
        Effect {
            kind: self.kind,
            resource: self.resource.clone().into_owned(),
            name: self.name.map(String::from),
        }
    }

    /// Whether `effect` is this one.
    pub fn is(&self, effect: &Effect) -> bool {
        self.kind == effect.kind
            && *self.resource == *effect.resource
            && self.name == effect.name.as_deref()
    }
}

/// An event's effects, on the stack: no event has more than four.
#[derive(Debug, Default)]
pub(crate) struct List<'a>([Option<EffectRef<'a>>; 4]);

impl<'a> List<'a> {
    fn push(&mut self, effect: EffectRef<'a>) {
        if let Some(free) = self.0.iter_mut().find(|e| e.is_none()) {
            *free = Some(effect);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &EffectRef<'a>> {
        self.0.iter().map_while(Option::as_ref)
    }

    pub fn to_effects(&self) -> Vec<Effect> {
        self.iter().map(EffectRef::to_effect).collect()
    }
}

/// [`Effects`], borrowed from the event.
pub(crate) enum Found<'a> {
    Some(List<'a>),
    Lifecycle,
    Uncoverable,
}

impl<'a> Found<'a> {
    fn map(self, owned: impl FnOnce(&List<'a>) -> Vec<Effect>) -> Effects {
        match self {
            Found::Some(list) => Effects::Some(owned(&list)),
            Found::Lifecycle => Effects::Lifecycle,
            Found::Uncoverable => Effects::Uncoverable,
        }
    }
}

/// [`of`], borrowed.
pub(crate) fn found<'a>(event: &'a Event, process: &'a ProcessInfo) -> Found<'a> {
    match &event.detail {
        Detail::Fork { .. } | Detail::Exit(_) => Found::Lifecycle,
        Detail::Exec(exec) => {
            let path = process.exe.as_deref().unwrap_or(&exec.filename);
            one(EffectKind::Exec, Cow::Borrowed(path), None)
        }
        Detail::Action(action) => found_in(action),
    }
}

/// [`of_action`], borrowed.
fn found_in(action: &Action) -> Found<'_> {
    use ActionKind::*;
    let f = &action.fields;
    let (Some(path), Some(new_path)) = (
        through(f.path.as_deref().or(f.raw_path.as_deref())),
        through(f.new_path.as_deref().or(f.new_raw_path.as_deref())),
    ) else {
        // A file named through a magic link whose text does not say which.
        return Found::Uncoverable;
    };
    let file = |kinds: &[EffectKind]| match &path {
        Some(p) => {
            let mut list = List::default();
            for kind in kinds {
                list.push(file_effect(*kind, p.clone()));
            }
            Found::Some(list)
        }
        None => Found::Uncoverable,
    };
    match action.kind {
        FileOpen => {
            // Read, write, create, in that order, as the flags say.
            let (read, write) = match f.access {
                Some(Access::Write) => (false, true),
                Some(Access::ReadWrite) => (true, true),
                Some(Access::Read) | None => (true, false),
            };
            let flags = [
                (read, EffectKind::FileRead),
                (write || f.truncated == Some(true), EffectKind::FileWrite),
                (f.created == Some(true), EffectKind::FileCreate),
            ];
            let mut kinds = [EffectKind::FileRead; 3];
            let mut n = 0;
            for (on, kind) in flags {
                if on {
                    kinds[n] = kind;
                    n += 1;
                }
            }
            file(&kinds[..n])
        }
        FileUnlink => file(&[EffectKind::FileDelete]),
        FileMkdir => file(&[EffectKind::FileCreate]),
        FileChmod | FileChown | FileTruncate => file(&[EffectKind::FileWrite]),
        // The link's own name is created, and it gives access to its
        // target (`path`), which is judged as a read: a link to a secret
        // under a harmless name is still a touch of the secret.
        FileLink => match new_path {
            Some(p) => {
                let mut list = List::default();
                list.push(file_effect(EffectKind::FileCreate, p));
                // A symlink's target is text as written (`/etc//shadow`):
                // judged in the normal form every pattern expects.
                if let Some(target) = path.filter(|t| t.starts_with('/')) {
                    let normal = crate::actions::paths::normalize(&target);
                    let target = if normal == *target {
                        target
                    } else {
                        Cow::Owned(normal)
                    };
                    list.push(file_effect(EffectKind::FileRead, target));
                }
                Found::Some(list)
            }
            None => Found::Uncoverable,
        },
        FileRename => {
            let mut list = List::default();
            if let Some(old) = path {
                list.push(file_effect(EffectKind::FileDelete, old));
            }
            if let Some(new) = new_path.clone() {
                list.push(file_effect(EffectKind::FileCreate, new));
            }
            if list.iter().next().is_none() {
                Found::Uncoverable
            } else {
                Found::Some(list)
            }
        }
        NetConnect | NetSend => net(EffectKind::NetConnect, remote(action)),
        NetBind | NetListen | NetAccept => net(EffectKind::NetBind, local(action)),
        DnsQuery | DnsAnswer => match &f.name {
            Some(name) => one(EffectKind::Dns, Cow::Borrowed(name), None),
            None => Found::Uncoverable,
        },
        PrivSetuid | PrivSetgid | PrivCapset | ProcPtrace | ProcSignal | KernelModuleLoad
        | KernelBpf | FsMount | FsUmount | MemMemfdCreate => Found::Uncoverable,
    }
}

fn file_effect(kind: EffectKind, path: Cow<'_, str>) -> EffectRef<'_> {
    EffectRef {
        kind,
        resource: path,
        name: None,
    }
}

/// A path as the policy must judge it. Under `/proc/PID/` (or `self`,
/// `thread-self`, `PID/task/TID`) some entries are magic links the kernel
/// follows to another file: `root/...` is that file of the process's root
/// (the host's, for an agent), so it is judged by the path below it;
/// `cwd`, `exe`, `fd/N` and `map_files/...` name a file their text does
/// not, so no pattern can judge them (`None`: the action is uncoverable).
/// Otherwise the path itself. `Some(None)` for no path at all.
fn through(path: Option<&str>) -> Option<Option<Cow<'_, str>>> {
    let Some(path) = path else {
        return Some(None);
    };
    let Some(rest) = path.strip_prefix("/proc/") else {
        return Some(Some(Cow::Borrowed(path)));
    };
    let mut parts = rest.splitn(2, '/');
    let process = parts.next().unwrap_or_default();
    let is_id = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(process == "self" || process == "thread-self" || is_id(process)) {
        return Some(Some(Cow::Borrowed(path)));
    }
    let mut below = parts.next().unwrap_or_default();
    if let Some(task) = below.strip_prefix("task/") {
        let mut t = task.splitn(2, '/');
        if t.next().is_some_and(is_id) {
            below = t.next().unwrap_or_default();
        }
    }
    let (link, after) = below.split_once('/').unwrap_or((below, ""));
    match link {
        "root" if after.is_empty() => Some(Some(Cow::Borrowed("/"))),
        "root" => Some(Some(Cow::Owned(format!("/{after}")))),
        "cwd" | "exe" => None,
        "fd" | "map_files" if !after.is_empty() => None,
        _ => Some(Some(Cow::Borrowed(path))),
    }
}

fn one<'a>(kind: EffectKind, resource: Cow<'a, str>, name: Option<&'a str>) -> Found<'a> {
    let mut list = List::default();
    list.push(EffectRef {
        kind,
        resource,
        name,
    });
    Found::Some(list)
}

/// A resource as the policy writes it, and the name the agent looked up
/// for it.
type Endpoint<'a> = (Cow<'a, str>, Option<&'a str>);

fn net(kind: EffectKind, resource: Option<Endpoint<'_>>) -> Found<'_> {
    match resource {
        Some((resource, name)) => one(kind, resource, name),
        None => Found::Uncoverable,
    }
}

/// The remote end as the policy writes it, with the name the agent looked
/// up for it.
fn remote(action: &Action) -> Option<Endpoint<'_>> {
    let f = &action.fields;
    if let Some(path) = &f.unix_path {
        return Some((Cow::Borrowed(path), None));
    }
    let addr = f.addr.as_deref()?;
    Some((
        Cow::Owned(host_port(addr, f.port.unwrap_or(0))),
        f.dns_name.as_deref(),
    ))
}

/// The local end: what bind and listen name, and where accept received.
fn local(action: &Action) -> Option<Endpoint<'_>> {
    let f = &action.fields;
    if let Some(path) = &f.unix_path {
        return Some((Cow::Borrowed(path), None));
    }
    let (addr, port) = match action.kind {
        ActionKind::NetAccept => (f.local_addr.as_deref()?, f.local_port.unwrap_or(0)),
        _ => (
            f.addr.as_deref().or(f.local_addr.as_deref())?,
            f.port.or(f.local_port).unwrap_or(0),
        ),
    };
    Some((Cow::Owned(host_port(addr, port)), None))
}

/// `ip:port`, or `[ipv6]:port`.
pub fn host_port(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

#[cfg(test)]
#[path = "effects_tests.rs"]
mod tests;
