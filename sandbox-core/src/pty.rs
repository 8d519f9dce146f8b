//! The command's own pseudo-terminal, relayed by the supervisor (as `docker run -it` and
//! `ssh -t` do): when the caller's stdin is a terminal, the command must not share it, or it
//! could inject input into the caller's shell (TIOCSTI, TIOCLINUX) or change its settings.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use crate::error::{Error, Result};

/// A new pty pair; the slave starts with the caller's terminal settings and window size.
pub(crate) struct Pty {
    pub(crate) master: OwnedFd,
    pub(crate) slave: OwnedFd,
    /// The slave's path on the host (`/dev/pts/N`).
    pub(crate) path: std::path::PathBuf,
}

fn last(stage: &'static str) -> Error {
    Error::launch(stage)(std::io::Error::last_os_error())
}

/// Whether `fd` is a terminal.
pub(crate) fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty on an integer.
    unsafe { libc::isatty(fd) == 1 }
}

/// Open a pty pair modelled on the caller's terminal `caller`.
pub(crate) fn open(caller: RawFd) -> Result<Pty> {
    // SAFETY: posix_openpt/grantpt/unlockpt/ptsname_r/open on valid arguments; each fd is
    // wrapped in an OwnedFd as soon as it exists.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if m < 0 {
            return Err(last("opening a pseudo-terminal"));
        }
        let master = OwnedFd::from_raw_fd(m);
        if libc::grantpt(m) < 0 || libc::unlockpt(m) < 0 {
            return Err(last("unlocking the pseudo-terminal"));
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
            return Err(last("naming the pseudo-terminal"));
        }
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if s < 0 {
            return Err(last("opening the pseudo-terminal"));
        }
        let slave = OwnedFd::from_raw_fd(s);
        let mut tio: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(caller, &mut tio) == 0 {
            libc::tcsetattr(s, libc::TCSANOW, &tio);
        }
        copy_window_size(caller, m);
        let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(
            std::ffi::CStr::from_ptr(name.as_ptr()).to_bytes(),
        ));
        Ok(Pty {
            master,
            slave,
            path,
        })
    }
}

fn copy_window_size(from: RawFd, to: RawFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ on a stack winsize.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// The caller's terminal in raw mode for as long as this lives (restored on drop, also on
/// error paths): keys go to the command's terminal, whose own line discipline interprets them.
pub(crate) struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    pub(crate) fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: tcgetattr/cfmakeraw/tcsetattr on stack termios.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            (libc::tcsetattr(fd, libc::TCSANOW, &raw) == 0).then_some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the settings read in `enter`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved) };
    }
}

/// Copies the caller's input to the command's terminal and its output back.
pub(crate) struct Relay {
    master: OwnedFd,
    input: RawFd,
    output: RawFd,
    input_open: bool,
    _raw: Option<RawMode>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("master", &self.master)
            .finish()
    }
}

impl Relay {
    pub(crate) fn new(master: OwnedFd, input: RawFd, output: RawFd) -> Relay {
        Relay {
            master,
            input,
            output,
            input_open: true,
            _raw: RawMode::enter(input),
        }
    }

    /// The fds to poll: the caller's input (while open) and the master.
    pub(crate) fn pollfds(&self) -> [libc::pollfd; 2] {
        [
            libc::pollfd {
                fd: if self.input_open { self.input } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ]
    }

    /// Move whatever poll reported ready.
    // Not inlined: its 16 KiB buffer would otherwise sit in the supervisor's wait loop's frame,
    // and the stack probe touches every page of a frame, relay or not (4 page faults).
    #[inline(never)]
    pub(crate) fn ready(&mut self, fds: &[libc::pollfd; 2]) {
        let mut buf = [0u8; 16384];
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            // SAFETY: reading into a stack buffer.
            let n = unsafe { libc::read(self.input, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                self.input_open = false;
            } else {
                let _ = crate::sys::write_all(self.master.as_raw_fd(), &buf[..n as usize]);
            }
        }
        if fds[1].revents & libc::POLLIN != 0 {
            // SAFETY: reading into a stack buffer.
            let n =
                unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                let _ = crate::sys::write_all(self.output, &buf[..n as usize]);
            }
        }
    }

    /// The caller's window changed: pass the new size on (the kernel signals the command).
    pub(crate) fn resize(&self) {
        copy_window_size(self.input, self.master.as_raw_fd());
    }

    /// After the command ended: copy what it wrote last.
    #[inline(never)]
    pub(crate) fn drain(&mut self) {
        let mut buf = [0u8; 16384];
        loop {
            let mut pfd = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one pollfd; read into a stack buffer.
            unsafe {
                if libc::poll(&mut pfd, 1, 0) <= 0 || pfd.revents & libc::POLLIN == 0 {
                    return;
                }
                let n = libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
                if n <= 0 {
                    return;
                }
                let _ = crate::sys::write_all(self.output, &buf[..n as usize]);
            }
        }
    }
}
