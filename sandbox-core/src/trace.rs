//! Launch-stage timestamps for `bench/stages.py`, compiled in only with the `trace-stages`
//! feature (every call is an empty inline function otherwise).
//!
//! With the feature, `SANDBOX_TRACE=FILE` makes each process of a launch (caller, pid 1, the
//! command before exec) append `name CLOCK_MONOTONIC-ns` lines to FILE. Recording is
//! async-signal-safe (vDSO clock read, one `write`), so it runs between clone and exec.

#[cfg(feature = "trace-stages")]
mod imp {
    use std::sync::atomic::{AtomicI32, Ordering};

    static FD: AtomicI32 = AtomicI32::new(-2);

    fn fd() -> i32 {
        let fd = FD.load(Ordering::Relaxed);
        if fd != -2 {
            return fd;
        }
        let opened = std::env::var_os("SANDBOX_TRACE")
            .and_then(|p| {
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(p)
                    .ok()
            })
            .map_or(-1, std::os::fd::IntoRawFd::into_raw_fd);
        FD.store(opened, Ordering::Relaxed);
        opened
    }

    /// Open the trace file (parent only: the children inherit the fd).
    pub fn init() {
        fd();
    }

    /// The trace fd, for pid 1 to keep open (-1 when not tracing).
    pub fn raw_fd() -> i32 {
        FD.load(Ordering::Relaxed).max(-1)
    }

    /// Append `name ns\n`. Child-safe once `init` ran in the parent.
    pub fn stamp(name: &str) {
        let fd = FD.load(Ordering::Relaxed);
        if fd < 0 {
            return;
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime fills the timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        let mut buf = [0u8; 96];
        let name = &name.as_bytes()[..name.len().min(64)];
        buf[..name.len()].copy_from_slice(name);
        let mut len = name.len();
        buf[len] = b' ';
        len += 1;
        let mut digits = [0u8; 20];
        let mut n = ns;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let d = &digits[i..];
        buf[len..len + d.len()].copy_from_slice(d);
        len += d.len();
        buf[len] = b'\n';
        len += 1;
        // SAFETY: write of an initialised buffer; O_APPEND keeps lines whole.
        unsafe { libc::write(fd, buf.as_ptr().cast(), len) };
    }
}

#[cfg(not(feature = "trace-stages"))]
mod imp {
    /// No-op without the `trace-stages` feature.
    #[inline(always)]
    pub fn init() {}
    /// No-op without the `trace-stages` feature.
    #[inline(always)]
    pub fn stamp(_name: &str) {}
    /// No trace fd without the `trace-stages` feature.
    #[inline(always)]
    pub fn raw_fd() -> i32 {
        -1
    }
}

pub use imp::{init, raw_fd, stamp};
