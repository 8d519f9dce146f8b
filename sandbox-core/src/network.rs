//! Network: in a new network namespace only loopback exists, and it starts down.

use nix::errno::Errno;

use crate::sys::direct;

/// Child (pid 1): enter a new network namespace, owned by the sandbox's user namespace.
///
/// This is most of a launch's kernel time (≈ 0.5 ms: loopback device, per-namespace sysctls
/// and netfilter state), so pid 1 does it while its mount helper builds the new root.
/// errno-free: that helper shares pid 1's thread-local storage.
pub(crate) fn enter_new_namespace() -> Result<(), Errno> {
    direct::unshare(libc::CLONE_NEWNET)
}

/// Child (pid 1): bring `lo` up (needs CAP_NET_ADMIN in the namespace's owning user
/// namespace). errno-free, like [`enter_new_namespace`].
pub(crate) fn bring_up_loopback() -> Result<(), Errno> {
    // SAFETY: socket/ioctl/close on integers and a stack-allocated ifreq.
    unsafe {
        let fd = direct::syscall4(
            libc::SYS_socket,
            [
                libc::AF_INET as usize,
                (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as usize,
                0,
                0,
            ],
        )?;
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = direct::syscall4(
            libc::SYS_ioctl,
            [
                fd,
                libc::SIOCGIFFLAGS as usize,
                &mut req as *mut _ as usize,
                0,
            ],
        );
        if result.is_ok() {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            result = direct::syscall4(
                libc::SYS_ioctl,
                [
                    fd,
                    libc::SIOCSIFFLAGS as usize,
                    &req as *const _ as usize,
                    0,
                ],
            );
        }
        let _ = direct::syscall4(libc::SYS_close, [fd, 0, 0, 0]);
        result.map(drop)
    }
}
