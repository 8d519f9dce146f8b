//! Network: in a new network namespace only loopback exists, and it starts down.

use nix::errno::Errno;

use crate::sys;

/// Child: bring `lo` up (needs CAP_NET_ADMIN in the namespace's owning user namespace).
///
/// # Safety
/// Runs between clone and execve (see `CommandExt::pre_exec`): raw syscalls only.
pub(crate) unsafe fn bring_up_loopback() -> Result<(), Errno> {
    // SAFETY: plain socket/ioctl/close on a stack-allocated ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(Errno::last());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = sys::check_int(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req));
        if result.is_ok() {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            result = sys::check_int(libc::ioctl(fd, libc::SIOCSIFFLAGS, &req));
        }
        libc::close(fd);
        result
    }
}
