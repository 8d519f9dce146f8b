//! The supervising side of a running sandbox: wait, timeout, signal forwarding, usage, cleanup.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cgroup::{Cgroup, LimitsReport};
use crate::error::{Error, Result};
use crate::plan::LayerStatus;
use crate::policy::Isolation;
use crate::sys;

/// Resource usage of the whole sandbox.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    /// Wall-clock time from spawn to exit.
    pub wall_time: Duration,
    /// User CPU time of every process of the sandbox that was waited for.
    pub user_cpu: Duration,
    /// System CPU time of every process of the sandbox that was waited for.
    pub system_cpu: Duration,
    /// Peak memory in bytes (cgroup peak; else the largest single process's max RSS).
    pub peak_memory: Option<u64>,
    /// Peak (or, where the kernel keeps no peak, final) number of processes (cgroup only).
    pub peak_pids: Option<u64>,
}

/// How a sandboxed command ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The command's exit status (for a timeout: the SIGKILL that ended it).
    pub status: ExitStatus,
    /// The wall-clock timeout expired and the whole sandbox was killed.
    pub timed_out: bool,
    /// The memory limit's OOM killer killed a process of the sandbox (read from the cgroup's
    /// counters, never guessed from SIGKILL).
    pub oom_killed: bool,
    /// Resource usage.
    pub usage: Usage,
    /// Each layer and how it was enforced.
    pub layers: Vec<(&'static str, LayerStatus)>,
    /// Each resource limit and how it was enforced (cgroup v2, v1, rlimit, not at all).
    pub limits: LimitsReport,
}

impl Outcome {
    /// The exit code the CLI uses: 124 on timeout, the command's code, or 128 + signal.
    ///
    /// ```
    /// # use sandbox_core::Outcome;
    /// fn report(outcome: &Outcome) -> i32 { outcome.exit_code() }
    /// ```
    pub fn exit_code(&self) -> i32 {
        if self.timed_out {
            return 124;
        }
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 125,
        }
    }
}

/// A running sandbox, shaped like [`std::process::Child`].
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    status_pipe: Option<OwnedFd>,
    cgroup: Option<Cgroup>,
    isolation: Isolation,
    started: Instant,
    deadline: Option<Instant>,
    layers: Vec<(&'static str, LayerStatus)>,
    limits: LimitsReport,
    outcome: Option<Outcome>,
    killed_for_timeout: bool,
    /// Landlock mode's private temporary directory, removed when the sandbox ends.
    private_tmp: Option<std::path::PathBuf>,
    /// The command's own terminal, relayed to the caller's.
    relay: Option<crate::pty::Relay>,
    /// A signalfd for the signals [`crate::Command::forward_signals`] passes on.
    signals: Option<OwnedFd>,
    /// The launch's compiled plan (see [`crate::launch::RetainedPlan`]).
    plan: Option<crate::launch::RetainedPlan>,
    /// The command's stdin, when [`crate::Stdio::Piped`].
    pub stdin: Option<File>,
    /// The command's stdout, when [`crate::Stdio::Piped`].
    pub stdout: Option<File>,
    /// The command's stderr, when [`crate::Stdio::Piped`].
    pub stderr: Option<File>,
}

#[allow(clippy::too_many_arguments)]
impl Child {
    pub(crate) fn new(
        pid: libc::pid_t,
        pidfd: Option<OwnedFd>,
        status_pipe: Option<OwnedFd>,
        cgroup: Option<Cgroup>,
        isolation: Isolation,
        started: Instant,
        timeout: Option<Duration>,
        layers: Vec<(&'static str, LayerStatus)>,
        limits: LimitsReport,
    ) -> Child {
        Child {
            pid,
            pidfd,
            status_pipe,
            cgroup,
            isolation,
            started,
            deadline: timeout.map(|t| started + t),
            layers,
            limits,
            outcome: None,
            killed_for_timeout: false,
            signals: None,
            relay: None,
            private_tmp: None,
            plan: None,
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }

    pub(crate) fn retain_plan(&mut self, plan: crate::launch::RetainedPlan) {
        self.plan = Some(plan);
    }

    pub(crate) fn set_private_tmp(&mut self, dir: Option<std::path::PathBuf>) {
        self.private_tmp = dir;
    }

    pub(crate) fn set_relay(&mut self, relay: crate::pty::Relay) {
        self.relay = Some(relay);
    }

    pub(crate) fn set_signal_fd(&mut self, fd: OwnedFd) {
        self.signals = Some(fd);
    }

    /// The host pid of the sandbox's first process (pid 1 inside).
    ///
    /// ```no_run
    /// # fn f(child: &sandbox_core::Child) { println!("{}", child.id()); }
    /// ```
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Kill every process of the sandbox.
    ///
    /// ```no_run
    /// # fn f(mut child: sandbox_core::Child) -> sandbox_core::Result<()> {
    /// child.kill()?;
    /// let outcome = child.wait()?;
    /// # Ok(()) }
    /// ```
    pub fn kill(&mut self) -> Result<()> {
        if self.outcome.is_some() {
            return Ok(());
        }
        if let Some(cg) = &self.cgroup {
            cg.kill()?;
        }
        match self.isolation {
            // pid 1 dying takes the whole pid namespace with it.
            Isolation::Namespaces => self.signal(libc::SIGKILL),
            // No pid namespace: the process group setsid created, plus pid 1 itself.
            Isolation::Landlock => {
                // SAFETY: kill on integers.
                unsafe { libc::kill(-self.pid, libc::SIGKILL) };
                self.signal(libc::SIGKILL)
            }
        }
    }

    fn signal(&self, sig: libc::c_int) -> Result<()> {
        let r = match &self.pidfd {
            Some(fd) => sys::pidfd_send_signal(fd.as_raw_fd(), sig),
            // SAFETY: kill on integers; the pid is our unreaped child, so it cannot be reused.
            None => sys::check_int(unsafe { libc::kill(self.pid, sig) }),
        };
        match r {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::launch("signalling the sandbox")(e.into())),
        }
    }

    /// Wait for the sandbox to end (enforcing the policy's timeout), then clean up.
    ///
    /// ```no_run
    /// # fn f(mut child: sandbox_core::Child) -> sandbox_core::Result<()> {
    /// let outcome = child.wait()?;
    /// std::process::exit(outcome.exit_code());
    /// # }
    /// ```
    pub fn wait(&mut self) -> Result<Outcome> {
        let signals = self.signals.take();
        let r = self.wait_inner(signals.as_ref());
        self.signals = signals;
        r
    }

    /// Check whether the sandbox has ended, without blocking.
    ///
    /// ```no_run
    /// # fn f(mut child: sandbox_core::Child) -> sandbox_core::Result<()> {
    /// if let Some(outcome) = child.try_wait()? { println!("{}", outcome.exit_code()); }
    /// # Ok(()) }
    /// ```
    pub fn try_wait(&mut self) -> Result<Option<Outcome>> {
        if let Some(o) = &self.outcome {
            return Ok(Some(o.clone()));
        }
        if let Some(deadline) = self.deadline {
            if Instant::now() >= deadline && !self.killed_for_timeout {
                self.killed_for_timeout = true;
                self.kill()?;
            }
        }
        self.reap(libc::WNOHANG)
    }

    fn wait_inner(&mut self, signals: Option<&OwnedFd>) -> Result<Outcome> {
        if let Some(o) = &self.outcome {
            return Ok(o.clone());
        }
        let mut interrupts = 0;
        loop {
            if let Some(o) = self.reap(libc::WNOHANG)? {
                return Ok(o);
            }
            let Some(pidfd) = &self.pidfd else {
                // Kernels without pidfd (< 5.3): a blocking wait, no timeout enforcement.
                return self.reap(0)?.ok_or_else(|| {
                    Error::launch("waiting for the sandbox")(std::io::Error::other("no status"))
                });
            };
            let timeout_ms = match self.deadline {
                Some(d) if !self.killed_for_timeout => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.killed_for_timeout = true;
                        self.kill()?;
                        continue;
                    }
                    left.as_millis().min(i32::MAX as u128) as i32 + 1
                }
                _ => -1,
            };
            let none = libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            };
            let relay_fds = self.relay.as_ref().map_or([none; 2], |r| r.pollfds());
            let mut pfds = [
                libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: signals.map_or(-1, |s| s.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
                relay_fds[0],
                relay_fds[1],
            ];
            // SAFETY: pfds is a valid array of four pollfd.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), 4, timeout_ms) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::launch("waiting for the sandbox")(e));
            }
            if let Some(relay) = self.relay.as_mut() {
                relay.ready(&[pfds[2], pfds[3]]);
            }
            if let Some(sfd) = signals {
                if pfds[1].revents & libc::POLLIN != 0 {
                    // SAFETY: reading one signalfd_siginfo into a zeroed buffer.
                    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
                    let size = std::mem::size_of::<libc::signalfd_siginfo>();
                    // SAFETY: info is valid writable memory of `size` bytes.
                    let r = unsafe {
                        libc::read(
                            sfd.as_raw_fd(),
                            (&mut info as *mut libc::signalfd_siginfo).cast(),
                            size,
                        )
                    };
                    if r == size as isize {
                        let sig = info.ssi_signo as libc::c_int;
                        if sig == libc::SIGWINCH {
                            if let Some(relay) = &self.relay {
                                relay.resize();
                            }
                            continue;
                        }
                        if sig == libc::SIGINT || sig == libc::SIGTERM {
                            interrupts += 1;
                        }
                        if interrupts >= 2 {
                            self.kill()?;
                        } else {
                            self.forward(sig)?;
                        }
                    }
                }
            }
        }
    }

    fn forward(&self, sig: libc::c_int) -> Result<()> {
        match self.isolation {
            // pid 1 passes it on to the command.
            Isolation::Namespaces => self.signal(sig),
            Isolation::Landlock => self.signal(sig),
        }
    }

    fn reap(&mut self, flags: libc::c_int) -> Result<Option<Outcome>> {
        let mut status = 0;
        // SAFETY: rusage is plain data filled by wait4.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(self.pid, &mut status, flags | libc::__WALL, &mut rusage) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(Error::launch("waiting for the sandbox")(e));
        }
        crate::trace::stamp("reaped");
        if let Some(mut relay) = self.relay.take() {
            relay.drain();
        }
        // pid 1 reports the command's own wait status; without it (timeout, kill, landlock
        // mode) the first process's status is the command's.
        let mut command_status = status;
        if let Some(pipe) = self.status_pipe.take() {
            let mut buf = [0u8; 4];
            if sys::read_full(pipe.as_raw_fd(), &mut buf) == Ok(4) {
                command_status = i32::from_ne_bytes(buf);
            }
        }
        // Whatever pid 1 left behind goes with the cgroup.
        let mut usage = Usage {
            wall_time: self.started.elapsed(),
            user_cpu: tv(rusage.ru_utime),
            system_cpu: tv(rusage.ru_stime),
            peak_memory: Some(rusage.ru_maxrss as u64 * 1024),
            peak_pids: None,
        };
        let mut oom_killed = false;
        if let Some(cg) = self.cgroup.take() {
            crate::trace::stamp("cgroup-teardown");
            // pid 1's exit already killed and reaped every process of its pid namespace;
            // without one (landlock mode) the cgroup is what finds the stragglers.
            if self.isolation == Isolation::Landlock {
                let _ = cg.kill();
            }
            crate::trace::stamp("cgroup-killed");
            let u = cg.usage();
            crate::trace::stamp("cgroup-usage");
            oom_killed = u.oom_killed;
            if u.memory_peak_bytes.is_some() {
                usage.peak_memory = u.memory_peak_bytes;
            }
            usage.peak_pids = u.pids_peak.or(u.pids_current);
            // The cgroup counts every process, also those pid 1 never waited for.
            if let Some(us) = u.cpu_user_usec {
                usage.user_cpu = usage.user_cpu.max(Duration::from_micros(us));
            }
            if let Some(us) = u.cpu_system_usec {
                usage.system_cpu = usage.system_cpu.max(Duration::from_micros(us));
            }
            cg.remove()?;
            crate::trace::stamp("cgroup-removed");
        }
        if let Some(dir) = self.private_tmp.take() {
            // We created it for this sandbox; its contents are the command's scratch files.
            let _ = std::fs::remove_dir_all(dir);
        }
        let outcome = Outcome {
            status: ExitStatus::from_raw(command_status),
            timed_out: self.killed_for_timeout,
            oom_killed,
            usage,
            layers: self.layers.clone(),
            limits: self.limits.clone(),
        };
        self.outcome = Some(outcome.clone());
        Ok(Some(outcome))
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

impl Drop for Child {
    fn drop(&mut self) {
        // A sandbox never outlives its handle: kill and reap it, and remove its cgroup.
        if self.outcome.is_none() {
            let _ = self.kill();
            let _ = self.reap(0);
        }
    }
}

/// Block the forwarded signals in the calling thread and open a signalfd for them. Called
/// before the clone, so a signal that arrives while the sandbox starts is queued, not lost.
pub(crate) fn forwarded_signal_fd(winch: bool) -> Result<OwnedFd> {
    // SAFETY: sigset manipulation and signalfd on stack data.
    let sfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in crate::init::FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        if winch {
            libc::sigaddset(&mut set, libc::SIGWINCH);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
    };
    if sfd < 0 {
        return Err(Error::launch("creating a signalfd")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: sfd is a fresh fd we own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sfd) })
}

#[cfg(test)]
mod tests {
    /// Embedders move handles between threads (a wait on one, a kill from another): the
    /// compiled plan a handle keeps must not take that away.
    #[test]
    fn child_is_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<super::Child>();
    }
}
