//! Network: connect, bind, listen, accept, datagram sends, and the DNS
//! traffic of datagram sockets, captured at exit with their result.
//!
//! Addresses come from two places: the `sockaddr` the process passed or
//! received, and the kernel's socket itself (family, type, both ends), which
//! also covers calls made with no address, such as a send on a connected
//! UDP socket.

use agent_monitor_common::syscall::{DNS_PORT, PAYLOAD_CAP, SockInfo, nr, tag};
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{capture::Record, probes::syscall::Syscall, sock::sock_info, task::read_user};

const SOCK_DGRAM: u16 = 2;
/// Enough for every address family we decode (`sockaddr_un` is 110).
const SOCKADDR_CAP: usize = 128;

/// Tail-called by `sys_exit` for [`agent_monitor_common::syscall::Family::Net`].
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn net_exit(_ctx: RawTracePointContext) -> i32 {
    let Some(mut record) = Record::handed_over() else {
        return 0;
    };
    let call = *record.call();
    record.begin();
    if capture(&mut record, &call) {
        record.send();
    }
    0
}

/// `struct msghdr`, as far as we read it.
#[derive(Clone, Copy)]
#[repr(C)]
struct MsgHdr {
    name: u64,
    namelen: u32,
    _pad: u32,
    iov: u64,
    iovlen: u64,
}

/// `struct iovec`.
#[derive(Clone, Copy)]
#[repr(C)]
struct IoVec {
    base: u64,
    len: u64,
}

/// `struct mmsghdr`: a msghdr (56 bytes in full) and the bytes it moved.
const MMSGHDR_SIZE: u64 = 64;

/// Fills the record; false when the syscall is not one to report (a send on
/// a stream socket, a receive that is not DNS).
#[inline(always)]
fn capture(record: &mut Record, call: &Syscall) -> bool {
    let a = call.args;
    let ret = call.ret;
    match call.nr {
        nr::CONNECT | nr::BIND => {
            record.user_bytes(tag::SOCKADDR, a[1], a[2], SOCKADDR_CAP);
            sock(record, a[0]);
            true
        }
        nr::LISTEN => {
            sock(record, a[0]);
            true
        }
        nr::ACCEPT | nr::ACCEPT4 => {
            if ret >= 0 {
                sock(record, ret as u64);
                if a[1] != 0
                    && let Ok(len) = read_user::<u32>(a[2])
                {
                    record.user_bytes(tag::SOCKADDR, a[1], u64::from(len), SOCKADDR_CAP);
                }
            } else {
                sock(record, a[0]);
            }
            true
        }
        nr::SENDTO | nr::RECVFROM => {
            let Some(info) = datagram(a[0]) else {
                return false;
            };
            let receive = call.nr == nr::RECVFROM;
            let (addr, addr_len) = if receive {
                (
                    a[4],
                    if a[5] != 0 {
                        read_user::<u32>(a[5]).unwrap_or(0)
                    } else {
                        0
                    },
                )
            } else {
                (a[4], a[5] as u32)
            };
            let port = addr_port(addr, addr_len).unwrap_or(info.peer_port);
            if receive && port != DNS_PORT {
                return false;
            }
            record.value(tag::SOCK, &info);
            if addr != 0 {
                record.user_bytes(tag::SOCKADDR, addr, u64::from(addr_len), SOCKADDR_CAP);
            }
            if port == DNS_PORT {
                let moved = if receive { ret } else { a[2] as i64 };
                payload(record, tag::PAYLOAD, a[1], moved);
            }
            true
        }
        nr::SENDMSG | nr::RECVMSG => {
            let Some(info) = datagram(a[0]) else {
                return false;
            };
            let Ok(msg) = read_user::<MsgHdr>(a[1]) else {
                return false;
            };
            message(record, info, &msg, ret, call.nr == nr::RECVMSG)
        }
        nr::SENDMMSG | nr::RECVMMSG => {
            let Some(info) = datagram(a[0]) else {
                return false;
            };
            let Ok(msg) = read_user::<MsgHdr>(a[1]) else {
                return false;
            };
            let receive = call.nr == nr::RECVMMSG;
            let moved = if ret > 0 {
                read_user::<u32>(a[1] + 56).map_or(0, i64::from)
            } else {
                ret
            };
            if !message(record, info, &msg, moved, receive) {
                return false;
            }
            // glibc sends the A and AAAA queries of one lookup together.
            if ret > 1
                && let Ok(second) = read_user::<MsgHdr>(a[1] + MMSGHDR_SIZE)
                && let Ok(iov) = read_user::<IoVec>(second.iov)
            {
                let len = read_user::<u32>(a[1] + MMSGHDR_SIZE + 56).map_or(0, i64::from);
                payload(record, tag::PAYLOAD_1, iov.base, len);
            }
            true
        }
        _ => false,
    }
}

/// One `msghdr`: its address and, for DNS, its first buffer.
#[inline(always)]
fn message(record: &mut Record, info: SockInfo, msg: &MsgHdr, moved: i64, receive: bool) -> bool {
    let port = addr_port(msg.name, msg.namelen).unwrap_or(info.peer_port);
    if receive && port != DNS_PORT {
        return false;
    }
    record.value(tag::SOCK, &info);
    if msg.name != 0 {
        record.user_bytes(
            tag::SOCKADDR,
            msg.name,
            u64::from(msg.namelen),
            SOCKADDR_CAP,
        );
    }
    if port == DNS_PORT
        && msg.iovlen > 0
        && let Ok(iov) = read_user::<IoVec>(msg.iov)
    {
        let len = if receive { moved } else { iov.len as i64 };
        payload(record, tag::PAYLOAD, iov.base, len);
    }
    true
}

#[inline(always)]
fn sock(record: &mut Record, fd: u64) {
    if let Ok(info) = sock_info(fd) {
        record.value(tag::SOCK, &info);
    }
}

/// The socket behind `fd` when it is a datagram socket.
#[inline(always)]
fn datagram(fd: u64) -> Option<SockInfo> {
    sock_info(fd).ok().filter(|info| info.kind == SOCK_DGRAM)
}

/// The port of an inet or inet6 `sockaddr` in user memory: both keep it,
/// big-endian, at byte 2.
#[inline(always)]
fn addr_port(addr: u64, len: u32) -> Option<u16> {
    if addr == 0 || len < 4 {
        return None;
    }
    let family = read_user::<u16>(addr).ok()?;
    if family != 2 && family != 10 {
        return None;
    }
    read_user::<u16>(addr + 2).ok().map(u16::from_be)
}

#[inline(always)]
fn payload(record: &mut Record, tag: u8, buf: u64, len: i64) {
    if len > 0 {
        record.user_bytes(tag, buf, len as u64, PAYLOAD_CAP);
    }
}
