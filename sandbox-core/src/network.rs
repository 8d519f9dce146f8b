//! Network: in a new network namespace only loopback exists, and it starts down.
//!
//! pid 1 creates the namespace (owned by the sandbox's user namespace, fresh per sandbox)
//! while the command, which shares pid 1's memory, builds the mounts; pid 1 then hands the
//! namespace to the command as an fd and brings loopback up while the command confines
//! itself. Everything pid 1 calls here is errno-free (`sys::direct`): the command shares its
//! thread-local errno.

use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::sys::direct;

/// `SIOCGSKNS` (linux/sockios.h): an fd for the network namespace of a socket.
const SIOCGSKNS: usize = 0x894C;

/// pid 1: enter a new network namespace and return a socket inside it. This is most of a
/// launch's kernel time (≈ 0.5 ms: loopback device, per-namespace sysctls, netfilter state).
pub(crate) fn enter_new_namespace() -> Result<RawFd, Errno> {
    direct::unshare(libc::CLONE_NEWNET)?;
    // SAFETY: socket(2) on integers.
    unsafe {
        direct::syscall4(
            libc::SYS_socket,
            [
                libc::AF_INET as usize,
                (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as usize,
                0,
                0,
            ],
        )
    }
    .map(|fd| fd as RawFd)
}

/// pid 1: an fd for the network namespace `socket` lives in (needs CAP_NET_ADMIN there).
pub(crate) fn namespace_of(socket: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: ioctl(2) on integers; SIOCGSKNS takes no argument.
    unsafe { direct::syscall4(libc::SYS_ioctl, [socket as usize, SIOCGSKNS, 0, 0]) }
        .map(|fd| fd as RawFd)
}

/// pid 1: bring `lo` up through `socket` (needs CAP_NET_ADMIN in the namespace's owner).
pub(crate) fn bring_up_loopback(socket: RawFd) -> Result<(), Errno> {
    // SAFETY: ioctl(2) on a stack-allocated ifreq.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        direct::syscall4(
            libc::SYS_ioctl,
            [
                socket as usize,
                libc::SIOCGIFFLAGS as usize,
                &mut req as *mut _ as usize,
                0,
            ],
        )?;
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        direct::syscall4(
            libc::SYS_ioctl,
            [
                socket as usize,
                libc::SIOCSIFFLAGS as usize,
                &req as *const _ as usize,
                0,
            ],
        )
        .map(drop)
    }
}
