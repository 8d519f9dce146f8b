//! pid 1 of the sandbox: reaps orphans, forwards signals to the command, reports its status.
//!
//! When pid 1 of a pid namespace exits the kernel kills every other process in it, so the
//! whole sandbox ends with the command.

use std::os::fd::RawFd;

use crate::sys;

/// Signals pid 1 passes on to the command.
pub(crate) const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

extern "C" fn ignore(_: libc::c_int) {}

/// The signal set pid 1 waits on: the forwarded ones plus SIGCHLD.
///
/// # Safety
/// Async-signal-safe (sigemptyset/sigaddset only).
unsafe fn wait_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Before forking the command: block the signals pid 1 will wait for, so none is lost
/// between the fork and the wait loop. A handler is installed too, because the kernel drops
/// default-action signals sent to a namespace's init from outside.
///
/// # Safety
/// Runs between clone and execve: raw syscalls only.
pub(crate) unsafe fn block_signals() {
    // SAFETY: sigaction/sigprocmask on stack data.
    unsafe {
        let set = wait_set();
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        for s in FORWARDED.iter().copied().chain([libc::SIGCHLD]) {
            libc::sigaction(s, &act, std::ptr::null_mut());
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// In the command, right after the fork: default dispositions and an empty mask, whatever
/// the caller had (an ignored signal survives execve, a handler does not).
///
/// # Safety
/// Runs between clone and execve: raw syscalls only.
pub(crate) unsafe fn reset_signals() {
    // SAFETY: sigaction/sigprocmask on stack data.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        for s in 1..=libc::SIGRTMAX() {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::sigaction(s, &act, std::ptr::null_mut());
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// The wait loop of pid 1. Writes the command's raw wait status to `status_fd`, then exits,
/// which ends the pid namespace.
///
/// # Safety
/// Runs between clone and execve: raw syscalls only.
pub(crate) unsafe fn run(command: libc::pid_t, status_fd: RawFd) -> ! {
    // SAFETY: sigwaitinfo/waitpid/kill on plain data.
    unsafe {
        let set = wait_set();
        loop {
            let sig = libc::sigwaitinfo(&set, std::ptr::null_mut());
            if sig == libc::SIGCHLD {
                loop {
                    let mut status = 0;
                    let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                    if pid <= 0 {
                        break;
                    }
                    if pid == command {
                        crate::trace::stamp("pid1-cmd-exited");
                        let _ = sys::write_all(status_fd, &status.to_ne_bytes());
                        let code = if libc::WIFEXITED(status) {
                            libc::WEXITSTATUS(status)
                        } else {
                            128 + libc::WTERMSIG(status)
                        };
                        crate::trace::stamp("pid1-exit");
                        sys::exit(code);
                    }
                }
            } else if sig > 0 {
                libc::kill(command, sig);
            }
        }
    }
}
