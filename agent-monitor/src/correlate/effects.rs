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
    found(event, process).map(|list| list.iter().map(EffectRef::to_effect).collect())
}

/// The effects of a file, network, DNS or privilege action.
pub fn of_action(action: &Action) -> Effects {
    found_in(action).map(|list| list.iter().map(EffectRef::to_effect).collect())
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
    let path = f.path.as_deref().or(f.raw_path.as_deref());
    let new_path = f.new_path.as_deref().or(f.new_raw_path.as_deref());
    let file = |kinds: &[EffectKind]| match path {
        Some(p) => {
            let mut list = List::default();
            for kind in kinds {
                list.push(file_effect(*kind, p));
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
        // The link's own name is what is created; `path` is its target.
        FileLink => match new_path {
            Some(p) => one(EffectKind::FileCreate, Cow::Borrowed(p), None),
            None => Found::Uncoverable,
        },
        FileRename => {
            let mut list = List::default();
            if let Some(old) = path {
                list.push(file_effect(EffectKind::FileDelete, old));
            }
            if let Some(new) = new_path {
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

fn file_effect(kind: EffectKind, path: &str) -> EffectRef<'_> {
    EffectRef {
        kind,
        resource: Cow::Borrowed(path),
        name: None,
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
