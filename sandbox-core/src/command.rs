//! The public launcher, shaped like `std::process::Command`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::launch::{self, CommandSpec, StdioFds};
use crate::policy::ResolvedPolicy;
use crate::supervisor::{Child, Outcome};

/// A sandbox configuration: a resolved policy from which commands are launched.
///
/// ```no_run
/// use sandbox_core::{Environment, Overrides, Policy, Sandbox};
/// let policy = Policy::load("default")?.resolve(&Overrides::default(), &Environment::from_process())?;
/// let outcome = Sandbox::new(policy).command("echo").arg("hi").status()?;
/// assert_eq!(outcome.exit_code(), 0);
/// # Ok::<(), sandbox_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sandbox {
    policy: Arc<ResolvedPolicy>,
}

impl Sandbox {
    /// A sandbox that runs commands under `policy`.
    pub fn new(policy: ResolvedPolicy) -> Sandbox {
        Sandbox {
            policy: Arc::new(policy),
        }
    }

    /// The policy commands run under.
    pub fn policy(&self) -> &ResolvedPolicy {
        &self.policy
    }

    /// A command to run in this sandbox; `program` is looked up in `$PATH` inside.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        Command {
            policy: Arc::clone(&self.policy),
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdio: [Stdio::Inherit, Stdio::Inherit, Stdio::Inherit],
            forward_signals: false,
            terminal: false,
        }
    }
}

/// Where a standard stream of the command goes.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stdio {
    /// The caller's own stream.
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe to the caller ([`Child::stdin`], [`Child::stdout`], [`Child::stderr`]).
    Piped,
    /// This file descriptor.
    Fd(OwnedFd),
}

/// A command to run in a sandbox. Setters never fail; everything is validated by [`Command::spawn`].
#[derive(Debug)]
pub struct Command {
    policy: Arc<ResolvedPolicy>,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    stdio: [Stdio; 3],
    forward_signals: bool,
    terminal: bool,
}

/// The output of [`Command::output`].
#[derive(Debug, Clone)]
pub struct Output {
    /// How the sandbox ended.
    pub outcome: Outcome,
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Command {
    /// Add an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Add arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Set an environment variable (on top of the policy's scrubbed environment).
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// The working directory inside the sandbox (default: the policy's `process.cwd`).
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The command's stdin.
    pub fn stdin(&mut self, s: Stdio) -> &mut Command {
        self.stdio[0] = s;
        self
    }

    /// The command's stdout.
    pub fn stdout(&mut self, s: Stdio) -> &mut Command {
        self.stdio[1] = s;
        self
    }

    /// The command's stderr.
    pub fn stderr(&mut self, s: Stdio) -> &mut Command {
        self.stdio[2] = s;
        self
    }

    /// Pass SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 that this process receives
    /// on to the command while [`Child::wait`] runs; a second SIGINT or SIGTERM kills the whole
    /// sandbox. The signals are blocked in the thread that calls `spawn` (meant for a CLI's main
    /// thread; a library caller usually leaves this off and calls [`Child::kill`] itself).
    pub fn forward_signals(&mut self, on: bool) -> &mut Command {
        self.forward_signals = on;
        self
    }

    /// When the caller's stdin and stdout are terminals, give the command a pseudo-terminal of
    /// its own (stdin, stdout and stderr), relayed by [`Child::wait`], with the caller's
    /// terminal in raw mode meanwhile. The command then cannot inject input into, or change
    /// the settings of, the caller's terminal. Otherwise stdio passes through untouched.
    pub fn terminal(&mut self, on: bool) -> &mut Command {
        self.terminal = on;
        self
    }

    /// Start the sandbox. Returns once the command has been exec'd (or failed to start).
    pub fn spawn(&mut self) -> Result<Child> {
        let started = Instant::now();
        let inherits = |s: &Stdio| matches!(s, Stdio::Inherit);
        let pty = if self.terminal
            && self.stdio.iter().all(inherits)
            && crate::pty::is_terminal(0)
            && crate::pty::is_terminal(1)
        {
            Some(crate::pty::open(0)?)
        } else {
            None
        };
        let spec = CommandSpec {
            program: &self.program,
            args: &self.args,
            env: &self.env,
            cwd: self.cwd.as_deref(),
            console: pty.as_ref().map(|p| p.path.as_path()),
        };
        let mut plan = launch::compile(&self.policy, &spec, true)?;
        let mut child_ends: [Option<OwnedFd>; 3] = [None, None, None];
        let pty = match pty {
            Some(pty) => {
                for end in child_ends.iter_mut() {
                    *end = Some(
                        pty.slave
                            .try_clone()
                            .map_err(Error::launch("duplicating the pseudo-terminal"))?,
                    );
                }
                plan.controlling_terminal = true;
                Some(pty.master)
            }
            None => None,
        };

        let mut parent_ends: [Option<File>; 3] = [None, None, None];
        for (i, s) in self.stdio.iter_mut().enumerate() {
            match std::mem::replace(s, Stdio::Inherit) {
                Stdio::Inherit => {}
                Stdio::Null => {
                    let f = File::options()
                        .read(i == 0)
                        .write(i != 0)
                        .open("/dev/null")
                        .map_err(Error::launch("opening /dev/null"))?;
                    child_ends[i] = Some(f.into());
                }
                Stdio::Piped => {
                    let (r, w) = crate::sys::pipe().map_err(Error::launch("creating a pipe"))?;
                    let (mine, theirs) = if i == 0 { (w, r) } else { (r, w) };
                    child_ends[i] = Some(theirs);
                    parent_ends[i] = Some(File::from(mine));
                }
                Stdio::Fd(fd) => child_ends[i] = Some(fd),
            }
        }
        let signals = if self.forward_signals {
            Some(crate::supervisor::forwarded_signal_fd(pty.is_some())?)
        } else {
            None
        };
        crate::trace::stamp("spawn");
        let spawned = match launch::spawn(&plan, StdioFds { fds: child_ends }) {
            Ok(s) => s,
            Err(e) => {
                if let Some(dir) = &plan.private_tmp {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(e);
            }
        };
        let cgroup = plan.cgroup.cgroup.take();
        if cgroup.is_some() {
            // What SIGKILLed supervisors left: swept now that the command runs, while a
            // short command leaves a CPU idle, rather than on the way to its start (~0.15 ms:
            // a directory read per hierarchy).
            crate::cgroup::sweep_stale();
        }
        let [stdin, stdout, stderr] = parent_ends;
        let mut child = Child::new(
            spawned.pid,
            spawned.pidfd,
            spawned.status,
            cgroup,
            self.policy.isolation,
            started,
            self.policy.limits.timeout,
            std::mem::take(&mut plan.layers),
            plan.cgroup.enforcement.clone(),
        );
        child.set_private_tmp(plan.private_tmp.take());
        if let Some(master) = pty {
            child.set_relay(crate::pty::Relay::new(master, 0, 1));
        }
        if let Some(fd) = signals {
            child.set_signal_fd(fd);
        }
        child.stdin = stdin;
        child.stdout = stdout;
        child.stderr = stderr;
        child.retain_plan(launch::RetainedPlan::new(plan));
        Ok(child)
    }

    /// Validate and compile everything a launch needs, without creating any process or cgroup.
    ///
    /// ```no_run
    /// # fn f(sandbox: &sandbox_core::Sandbox) -> sandbox_core::Result<()> {
    /// sandbox.command("true").check()?;
    /// # Ok(()) }
    /// ```
    pub fn check(&mut self) -> Result<()> {
        let spec = CommandSpec {
            program: &self.program,
            args: &self.args,
            env: &self.env,
            cwd: self.cwd.as_deref(),
            console: None,
        };
        launch::compile(&self.policy, &spec, false).map(drop)
    }

    /// Run to completion with the caller's stdio; return how it ended.
    pub fn status(&mut self) -> Result<Outcome> {
        self.spawn()?.wait()
    }

    /// Run to completion capturing stdout and stderr (stdin is `/dev/null` unless set).
    pub fn output(&mut self) -> Result<Output> {
        if matches!(self.stdio[0], Stdio::Inherit) {
            self.stdio[0] = Stdio::Null;
        }
        self.stdio[1] = Stdio::Piped;
        self.stdio[2] = Stdio::Piped;
        let mut child = self.spawn()?;
        drop(child.stdin.take());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let stderr = child.stderr.take();
        // Read stderr on a thread so neither pipe can fill up and block the command.
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut e) = stderr {
                let _ = e.read_to_end(&mut buf);
            }
            buf
        });
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_end(&mut out);
        }
        if let Ok(buf) = reader.join() {
            err = buf;
        }
        let outcome = child.wait()?;
        Ok(Output {
            outcome,
            stdout: out,
            stderr: err,
        })
    }
}

#[allow(dead_code)]
fn fd_from_raw(fd: i32) -> OwnedFd {
    // SAFETY: only called with fds we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
