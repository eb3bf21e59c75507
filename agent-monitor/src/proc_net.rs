//! Which process holds a TCP socket: for loopback peers that have no
//! `SO_PEERCRED` (an OTLP exporter's HTTP connection, an MCP server's
//! listening port). The kernel lists sockets by inode in /proc/net/tcp and
//! tcp6; each process's /proc/PID/fd links name the inodes it holds.
//!
//! A socket can be shared by several processes (inherited across fork);
//! the first found is returned, the lowest pid, which is the one that made
//! it in the usual case of a parent that forked after listening.

use std::{
    fs, io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

/// TCP states in /proc/net/tcp (include/net/tcp_states.h).
const TCP_ESTABLISHED: u8 = 0x01;
const TCP_LISTEN: u8 = 0x0a;

/// The pid of a process holding the TCP socket bound to `local` and
/// connected to `remote`, or, with `remote` `None`, listening on `local`.
/// `Ok(None)` when no such socket exists or no process we can see holds it.
pub fn tcp_socket_owner(local: SocketAddr, remote: Option<SocketAddr>) -> io::Result<Option<u32>> {
    let table = match local {
        SocketAddr::V4(_) => "/proc/net/tcp",
        SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = fs::read_to_string(table)?;
    let Some(inode) = find_inode(&text, local, remote) else {
        return Ok(None);
    };
    inode_owner(Path::new("/proc"), inode)
}

/// The inode of the socket matching `local` and `remote` in the text of
/// /proc/net/tcp or tcp6. A listening socket bound to the wildcard address
/// matches any local address of its port.
pub fn find_inode(table: &str, local: SocketAddr, remote: Option<SocketAddr>) -> Option<u64> {
    let mut wildcard = None;
    for line in table.lines().skip(1) {
        let Some(entry) = Entry::parse(line) else {
            continue;
        };
        if entry.inode == 0 || entry.local.port() != local.port() {
            continue;
        }
        match remote {
            Some(remote)
                if entry.state == TCP_ESTABLISHED
                    && same_ip(entry.local.ip(), local.ip())
                    && entry.remote.port() == remote.port()
                    && same_ip(entry.remote.ip(), remote.ip()) =>
            {
                return Some(entry.inode);
            }
            Some(_) => {}
            None if entry.state == TCP_LISTEN => {
                if same_ip(entry.local.ip(), local.ip()) {
                    return Some(entry.inode);
                }
                if entry.local.ip().is_unspecified() {
                    wildcard.get_or_insert(entry.inode);
                }
            }
            None => {}
        }
    }
    wildcard
}

/// The lowest pid under `proc` with a descriptor on socket `inode`.
/// Processes that exit or that we may not read while we look are skipped.
pub fn inode_owner(proc: &Path, inode: u64) -> io::Result<Option<u32>> {
    let wanted = format!("socket:[{inode}]");
    let mut pids: Vec<u32> = fs::read_dir(proc)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(fds) = fs::read_dir(proc.join(pid.to_string()).join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str()) {
                return Ok(Some(pid));
            }
        }
    }
    Ok(None)
}

/// An IPv4 address and its IPv4-mapped IPv6 form are the same peer: a
/// dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    canonical(a) == canonical(b)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One line of /proc/net/tcp: `sl local rem st … uid timeout inode …`.
struct Entry {
    local: SocketAddr,
    remote: SocketAddr,
    state: u8,
    inode: u64,
}

impl Entry {
    fn parse(line: &str) -> Option<Entry> {
        let mut fields = line.split_whitespace();
        let _slot = fields.next()?;
        let local = parse_addr(fields.next()?)?;
        let remote = parse_addr(fields.next()?)?;
        let state = u8::from_str_radix(fields.next()?, 16).ok()?;
        // tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, then inode.
        let inode = fields.nth(5)?.parse().ok()?;
        Some(Entry {
            local,
            remote,
            state,
            inode,
        })
    }
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6). The address
/// is printed as native-endian 32-bit words, little-endian here.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.to_le_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:10E2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 100 0 0 10 0
   2: 0100007F:10E2 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000  1000        0 7777 1 0000000000000000 20 4 30 10 -1
";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn finds_the_listener_of_a_port() {
        assert_eq!(find_inode(TCP, addr("127.0.0.1:4322"), None), Some(4242));
    }

    #[test]
    fn a_wildcard_listener_serves_every_local_address() {
        assert_eq!(find_inode(TCP, addr("127.0.0.1:8080"), None), Some(5151));
        assert_eq!(find_inode(TCP, addr("10.0.0.1:8080"), None), Some(5151));
    }

    #[test]
    fn finds_a_connection_by_both_ends() {
        let local = addr("127.0.0.1:4322");
        assert_eq!(
            find_inode(TCP, local, Some(addr("127.0.0.1:41394"))),
            Some(7777)
        );
        assert_eq!(find_inode(TCP, local, Some(addr("127.0.0.1:41395"))), None);
    }

    #[test]
    fn ipv6_lines_and_mapped_addresses() {
        // [::1]:8080 listening; ::ffff:127.0.0.1:5000 connected to :8080.
        let tcp6 = "header
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9001 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:1388 01 00000000:00000000 00:00000000 00000000     0        0 9002 1 0 20 4 30 10 -1
";
        assert_eq!(find_inode(tcp6, addr("[::1]:8080"), None), Some(9001));
        assert_eq!(
            find_inode(
                tcp6,
                addr("[::ffff:127.0.0.1]:8080"),
                Some(addr("[::ffff:127.0.0.1]:5000"))
            ),
            Some(9002)
        );
    }

    #[test]
    fn finds_our_own_sockets() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(local).unwrap();
        let (_served, _) = listener.accept().unwrap();
        let me = std::process::id();
        assert_eq!(tcp_socket_owner(local, None).unwrap(), Some(me));
        let from = client.local_addr().unwrap();
        assert_eq!(tcp_socket_owner(from, Some(local)).unwrap(), Some(me));
        assert_eq!(tcp_socket_owner(local, Some(from)).unwrap(), Some(me));
    }
}
