//! `net.*`, `dns.query` and `dns.answer`.

use std::net::{Ipv4Addr, Ipv6Addr};

use agent_monitor_common::syscall::{SockInfo, nr, tag};

use super::{Action, ActionKind, dns, record::SyscallRecord};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// An address as a `sockaddr` or the kernel's socket gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockAddr {
    Inet { addr: String, port: u16 },
    Unix { path: String },
    Other { family: u16 },
}

pub(super) fn interpret(r: &SyscallRecord) -> Option<Box<Action>> {
    use ActionKind::*;
    let sock = r.bytes(tag::SOCK).and_then(sock_info);
    let sockaddr = r.bytes(tag::SOCKADDR).and_then(parse_sockaddr);
    let payloads: Vec<&[u8]> = [tag::PAYLOAD, tag::PAYLOAD_1]
        .iter()
        .filter_map(|t| r.bytes(*t))
        .collect();
    let (kind, syscall) = match r.nr {
        nr::CONNECT => (NetConnect, "connect"),
        nr::BIND => (NetBind, "bind"),
        nr::LISTEN => (NetListen, "listen"),
        nr::ACCEPT => (NetAccept, "accept"),
        nr::ACCEPT4 => (NetAccept, "accept4"),
        nr::SENDTO | nr::SENDMSG | nr::SENDMMSG => {
            let syscall = match r.nr {
                nr::SENDTO => "sendto",
                nr::SENDMSG => "sendmsg",
                _ => "sendmmsg",
            };
            (
                if payloads.is_empty() {
                    NetSend
                } else {
                    DnsQuery
                },
                syscall,
            )
        }
        nr::RECVFROM => (DnsAnswer, "recvfrom"),
        nr::RECVMSG => (DnsAnswer, "recvmsg"),
        nr::RECVMMSG => (DnsAnswer, "recvmmsg"),
        _ => return None,
    };
    let mut action = Action::new(kind, syscall, r);
    let f = &mut action.fields;
    if let Some(sock) = &sock {
        f.family = family_name(sock.family);
        f.protocol = protocol_name(sock.family, sock.kind);
    }

    // The remote end: what the call named, else what the socket is
    // connected to. bind names the local end instead.
    let named = sockaddr.clone();
    let (remote, local) = match kind {
        NetBind => (None, named),
        NetListen => (None, sock.as_ref().and_then(local_end)),
        NetAccept => (
            sock.as_ref().and_then(peer_end).or(named),
            sock.as_ref().and_then(local_end),
        ),
        _ => (named.or_else(|| sock.as_ref().and_then(peer_end)), None),
    };
    if f.family.is_none() {
        f.family = remote.as_ref().or(local.as_ref()).and_then(|a| match a {
            SockAddr::Inet { addr, .. } if addr.contains(':') => Some("inet6"),
            SockAddr::Inet { .. } => Some("inet"),
            SockAddr::Unix { .. } => Some("unix"),
            SockAddr::Other { .. } => None,
        });
    }
    match remote {
        Some(SockAddr::Inet { addr, port }) => {
            f.addr = Some(addr);
            f.port = Some(port);
        }
        Some(SockAddr::Unix { path }) => f.unix_path = Some(path),
        _ => {}
    }
    match local {
        Some(SockAddr::Inet { addr, port }) if kind == NetBind => {
            f.addr = Some(addr);
            f.port = Some(port);
        }
        Some(SockAddr::Unix { path }) if kind == NetBind => f.unix_path = Some(path),
        Some(SockAddr::Inet { addr, port }) => {
            f.local_addr = Some(addr);
            f.local_port = Some(port);
        }
        Some(SockAddr::Unix { path }) => f.unix_path = Some(path),
        _ => {}
    }

    if matches!(kind, DnsQuery | DnsAnswer) {
        let messages: Vec<dns::Message> =
            payloads.iter().filter_map(|p| dns::parse(p).ok()).collect();
        let Some((name, _)) = messages.first().and_then(|m| m.questions.first()).cloned() else {
            // Not DNS after all (or a receive that failed): a send to port
            // 53 is still a send, and a receive keeps its kind and result.
            if kind == DnsQuery {
                action.kind = NetSend;
            }
            return Some(action);
        };
        let mut types: Vec<String> = Vec::new();
        for message in &messages {
            for (qname, qtype) in &message.questions {
                let qtype = dns::type_name(*qtype);
                if *qname == name && !types.contains(&qtype) {
                    types.push(qtype);
                }
            }
        }
        f.name = Some(name);
        f.qtype = Some(types.join(","));
        if kind == DnsAnswer {
            f.answers = Some(messages.iter().flat_map(|m| m.addresses()).collect());
        }
    }
    Some(action)
}

fn sock_info(bytes: &[u8]) -> Option<SockInfo> {
    if bytes.len() != size_of::<SockInfo>() {
        return None;
    }
    // SAFETY: the length is checked; SockInfo is plain integers and arrays.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<SockInfo>()) })
}

fn family_name(family: u16) -> Option<&'static str> {
    match family {
        AF_UNIX => Some("unix"),
        AF_INET => Some("inet"),
        AF_INET6 => Some("inet6"),
        _ => None,
    }
}

fn protocol_name(family: u16, kind: u16) -> Option<&'static str> {
    // The low bits are the type; SOCK_NONBLOCK and SOCK_CLOEXEC sit above.
    match (family, kind & 0xf) {
        (AF_INET | AF_INET6, 1) => Some("tcp"),
        (AF_INET | AF_INET6, 2) => Some("udp"),
        (AF_INET | AF_INET6, 3) => Some("raw"),
        (_, 1) => Some("stream"),
        (_, 2) => Some("dgram"),
        (_, 5) => Some("seqpacket"),
        _ => None,
    }
}

fn inet_addr(family: u16, bytes: &[u8; 16]) -> String {
    if family == AF_INET {
        Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string()
    } else {
        Ipv6Addr::from(*bytes).to_string()
    }
}

fn local_end(sock: &SockInfo) -> Option<SockAddr> {
    matches!(sock.family, AF_INET | AF_INET6).then(|| SockAddr::Inet {
        addr: inet_addr(sock.family, &sock.local_addr),
        port: sock.local_port,
    })
}

fn peer_end(sock: &SockInfo) -> Option<SockAddr> {
    (matches!(sock.family, AF_INET | AF_INET6) && sock.peer_port != 0).then(|| SockAddr::Inet {
        addr: inet_addr(sock.family, &sock.peer_addr),
        port: sock.peer_port,
    })
}

/// Decodes a `struct sockaddr` of the inet, inet6 and unix families.
pub fn parse_sockaddr(bytes: &[u8]) -> Option<SockAddr> {
    let family = u16::from_ne_bytes(bytes.get(..2)?.try_into().ok()?);
    let port = || Some(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?));
    Some(match family {
        AF_INET => {
            let octets: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
            SockAddr::Inet {
                addr: Ipv4Addr::from(octets).to_string(),
                port: port()?,
            }
        }
        AF_INET6 => {
            let octets: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            SockAddr::Inet {
                addr: Ipv6Addr::from(octets).to_string(),
                port: port()?,
            }
        }
        // A peer that never bound gives the family alone: no path.
        AF_UNIX if bytes.len() <= 2 => return None,
        AF_UNIX => {
            let path = bytes.get(2..).unwrap_or_default();
            // An abstract name starts with NUL and is shown with `@`.
            let path = match path.split_first() {
                Some((0, name)) => {
                    let name = name.strip_suffix(&[0]).unwrap_or(name);
                    format!("@{}", String::from_utf8_lossy(name))
                }
                _ => {
                    let end = path.iter().position(|b| *b == 0).unwrap_or(path.len());
                    String::from_utf8_lossy(&path[..end]).into_owned()
                }
            };
            SockAddr::Unix { path }
        }
        family => SockAddr::Other { family },
    })
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
