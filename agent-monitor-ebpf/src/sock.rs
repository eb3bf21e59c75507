//! What the kernel's socket behind an fd says about itself.

use agent_monitor_common::syscall::SockInfo;

use crate::{
    task::{offset, read},
    vfs::{S_IFSOCK, fd_file, file_type},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Family, type and both ends of the socket behind `fd`; an error when the
/// fd is not a socket.
#[inline(always)]
pub fn sock_info(fd: u64) -> Result<SockInfo, i64> {
    let file = fd_file(fd)?;
    if file_type(file)? != S_IFSOCK {
        return Err(-88);
    }
    let socket = read::<*const u8>(file, offset!(file_private_data))?;
    let kind = read::<u16>(socket, offset!(socket_type))?;
    let sk = read::<*const u8>(socket, offset!(socket_sk))?;
    let family = read::<u16>(sk, offset!(sock_family))?;
    let mut info = SockInfo {
        family,
        kind,
        local_port: read::<u16>(sk, offset!(sock_num))?,
        peer_port: u16::from_be(read::<u16>(sk, offset!(sock_dport))?),
        local_addr: [0; 16],
        peer_addr: [0; 16],
    };
    match family {
        AF_INET => {
            info.local_addr[..4].copy_from_slice(&read::<[u8; 4]>(sk, offset!(sock_rcv_saddr))?);
            info.peer_addr[..4].copy_from_slice(&read::<[u8; 4]>(sk, offset!(sock_daddr))?);
        }
        AF_INET6 => {
            info.local_addr = read(sk, offset!(sock_v6_rcv_saddr))?;
            info.peer_addr = read(sk, offset!(sock_v6_daddr))?;
        }
        _ => {}
    }
    Ok(info)
}
