//! From an observed event to the effects the policy judges.
//!
//! One event may have several effects: an open for reading and writing
//! that creates its file is a read, a write and a create; a rename deletes
//! one name and creates another. Policy docs (docs/policy.md, "Effects")
//! hold the table this module implements.

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
    match &event.detail {
        Detail::Fork { .. } | Detail::Exit(_) => Effects::Lifecycle,
        Detail::Exec(exec) => {
            let path = process.exe.clone().unwrap_or_else(|| exec.filename.clone());
            Effects::Some(vec![Effect::new(EffectKind::Exec, path)])
        }
        Detail::Action(action) => of_action(action),
    }
}

/// The effects of a file, network, DNS or privilege action.
pub fn of_action(action: &Action) -> Effects {
    use ActionKind::*;
    let f = &action.fields;
    let path = || f.path.clone().or_else(|| f.raw_path.clone());
    let file = |kinds: &[EffectKind]| -> Effects {
        match path() {
            Some(p) => Effects::Some(kinds.iter().map(|k| Effect::new(*k, p.clone())).collect()),
            None => Effects::Uncoverable,
        }
    };
    match action.kind {
        FileOpen => {
            let mut kinds = match f.access {
                Some(Access::Write) => vec![EffectKind::FileWrite],
                Some(Access::ReadWrite) => vec![EffectKind::FileRead, EffectKind::FileWrite],
                Some(Access::Read) | None => vec![EffectKind::FileRead],
            };
            if f.truncated == Some(true) && !kinds.contains(&EffectKind::FileWrite) {
                kinds.push(EffectKind::FileWrite);
            }
            if f.created == Some(true) {
                kinds.push(EffectKind::FileCreate);
            }
            file(&kinds)
        }
        FileUnlink => file(&[EffectKind::FileDelete]),
        FileMkdir => file(&[EffectKind::FileCreate]),
        FileChmod | FileChown | FileTruncate => file(&[EffectKind::FileWrite]),
        // The link's own name is what is created; `path` is its target.
        FileLink => match f.new_path.clone().or_else(|| f.new_raw_path.clone()) {
            Some(p) => Effects::Some(vec![Effect::new(EffectKind::FileCreate, p)]),
            None => Effects::Uncoverable,
        },
        FileRename => {
            let mut effects = Vec::new();
            if let Some(old) = path() {
                effects.push(Effect::new(EffectKind::FileDelete, old));
            }
            if let Some(new) = f.new_path.clone().or_else(|| f.new_raw_path.clone()) {
                effects.push(Effect::new(EffectKind::FileCreate, new));
            }
            if effects.is_empty() {
                Effects::Uncoverable
            } else {
                Effects::Some(effects)
            }
        }
        NetConnect | NetSend => net(EffectKind::NetConnect, remote(action)),
        NetBind | NetListen | NetAccept => net(EffectKind::NetBind, local(action)),
        DnsQuery | DnsAnswer => match &f.name {
            Some(name) => Effects::Some(vec![Effect::new(EffectKind::Dns, name.clone())]),
            None => Effects::Uncoverable,
        },
        PrivSetuid | PrivSetgid | PrivCapset | ProcPtrace | ProcSignal | KernelModuleLoad
        | KernelBpf | FsMount | FsUmount | MemMemfdCreate => Effects::Uncoverable,
    }
}

fn net(kind: EffectKind, resource: Option<(String, Option<String>)>) -> Effects {
    match resource {
        Some((resource, name)) => {
            let effect = Effect::new(kind, resource);
            Effects::Some(vec![match name {
                Some(name) => effect.named(name),
                None => effect,
            }])
        }
        None => Effects::Uncoverable,
    }
}

/// The remote end as the policy writes it, with the name the agent looked
/// up for it.
fn remote(action: &Action) -> Option<(String, Option<String>)> {
    let f = &action.fields;
    if let Some(path) = &f.unix_path {
        return Some((path.clone(), None));
    }
    let addr = f.addr.as_deref()?;
    Some((host_port(addr, f.port.unwrap_or(0)), f.dns_name.clone()))
}

/// The local end: what bind and listen name, and where accept received.
fn local(action: &Action) -> Option<(String, Option<String>)> {
    let f = &action.fields;
    if let Some(path) = &f.unix_path {
        return Some((path.clone(), None));
    }
    let (addr, port) = match action.kind {
        ActionKind::NetAccept => (f.local_addr.as_deref()?, f.local_port.unwrap_or(0)),
        _ => (
            f.addr.as_deref().or(f.local_addr.as_deref())?,
            f.port.or(f.local_port).unwrap_or(0),
        ),
    };
    Some((host_port(addr, port), None))
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
