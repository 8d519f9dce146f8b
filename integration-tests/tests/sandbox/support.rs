//! Shared helpers: locating binaries, workspaces, running the CLI, feature requirements.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use libtest_mimic::{Failed, Trial};

/// What the host offers, probed once.
pub struct Ctx {
    pub sandbox: PathBuf,
    pub probe: PathBuf,
    /// A directory holding only the probe (shared read-only into sandboxes).
    pub probe_dir: PathBuf,
    pub base: PathBuf,
    pub root: bool,
    pub userns: Result<(), String>,
    pub landlock_abi: Option<u32>,
    pub must_work: bool,
    counter: AtomicUsize,
}

/// A kernel or host feature a test needs.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)]
pub enum Needs {
    Nothing,
    Userns,
    Root,
    NotRoot,
    LandlockAbi(u32),
    CgroupLimits,
}

pub type TestFn = Arc<dyn Fn(&Ctx) -> Result<(), Failed> + Send + Sync>;

pub struct Test {
    pub name: String,
    pub needs: Vec<Needs>,
    pub run: TestFn,
}

impl Test {
    pub fn new(
        name: &str,
        needs: &[Needs],
        run: impl Fn(&Ctx) -> Result<(), Failed> + Send + Sync + 'static,
    ) -> Test {
        Test {
            name: name.to_string(),
            needs: needs.to_vec(),
            run: Arc::new(run),
        }
    }

    pub fn into_trial(self, ctx: &Ctx) -> Trial {
        let missing = self.needs.iter().find_map(|n| ctx.missing(*n));
        let ctx_ptr: &'static Ctx = ctx.leak();
        let run = self.run;
        match missing {
            Some((feature, why)) if !ctx.must_work => {
                println!("skipped: {feature}: {why} ({})", self.name);
                Trial::test(self.name, || Ok(())).with_ignored_flag(true)
            }
            Some((feature, why)) => Trial::test(self.name, move || {
                Err(format!("{feature} is required (SANDBOX_MUST_WORK=1) but {why}").into())
            }),
            None => Trial::test(self.name, move || run(ctx_ptr)),
        }
    }
}

/// The result of one `sandbox` invocation.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> Result<&Run, Failed> {
        if self.code == 0 {
            Ok(self)
        } else {
            Err(format!("expected success, got {self:?}").into())
        }
    }
    pub fn code(&self, code: i32) -> Result<&Run, Failed> {
        if self.code == code {
            Ok(self)
        } else {
            Err(format!("expected exit {code}, got {self:?}").into())
        }
    }
    pub fn failed(&self) -> Result<&Run, Failed> {
        if self.code != 0 {
            Ok(self)
        } else {
            Err(format!("expected failure, got {self:?}").into())
        }
    }
    pub fn stdout_has(&self, needle: &str) -> Result<&Run, Failed> {
        if self.stdout.contains(needle) {
            Ok(self)
        } else {
            Err(format!("stdout lacks {needle:?}: {self:?}").into())
        }
    }
    pub fn stdout_lacks(&self, needle: &str) -> Result<&Run, Failed> {
        if !self.stdout.contains(needle) {
            Ok(self)
        } else {
            Err(format!("stdout contains {needle:?}: {self:?}").into())
        }
    }
    pub fn stderr_has(&self, needle: &str) -> Result<&Run, Failed> {
        if self.stderr.contains(needle) {
            Ok(self)
        } else {
            Err(format!("stderr lacks {needle:?}: {self:?}").into())
        }
    }
}

pub fn check(cond: bool, what: impl std::fmt::Display) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string().into())
    }
}

impl Ctx {
    pub fn detect() -> Ctx {
        let exe = std::env::current_exe().unwrap_or_default();
        // target/<profile>/deps/sandbox-HASH → target/<profile>/
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let sandbox = std::env::var_os("SANDBOX_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| profile_dir.join("sandbox"));
        let probe = std::env::var_os("SANDBOX_PROBE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_probe")));
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        // Not under /tmp: the sandbox mounts a fresh tmpfs there, and Landlock-only features
        // (missing denied paths, write-only boxes) are refused beneath it.
        let tmp = std::env::var_os("SANDBOX_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                if Path::new("/var/tmp").is_dir() {
                    PathBuf::from("/var/tmp")
                } else {
                    std::env::temp_dir()
                }
            });
        let base = tmp.join(format!("sandbox-it-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&base);
        let _ = std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755));
        let probe_dir = base.join("bin");
        let _ = std::fs::create_dir_all(&probe_dir);
        let _ = std::fs::copy(&probe, probe_dir.join("probe"));
        let _ = std::fs::set_permissions(&probe_dir, std::fs::Permissions::from_mode(0o755));
        // SAFETY: the syscall only returns a number.
        let abi = unsafe { libc::syscall(444, std::ptr::null::<u8>(), 0usize, 1u32) };
        let ctx = Ctx {
            sandbox,
            probe: probe_dir.join("probe"),
            probe_dir,
            base,
            root,
            userns: Ok(()),
            landlock_abi: (abi > 0).then_some(abi as u32),
            must_work: std::env::var("SANDBOX_MUST_WORK").is_ok_and(|v| v == "1"),
            counter: AtomicUsize::new(0),
        };
        let userns = userns_works();
        Ctx { userns, ..ctx }
    }

    fn leak(&self) -> &'static Ctx {
        // The context lives for the whole test run; tests run on libtest-mimic's threads.
        static CELL: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let addr = *CELL.get_or_init(|| self as *const Ctx as usize);
        // SAFETY: main() keeps `ctx` alive until `libtest_mimic::run` returns and exits.
        unsafe { &*(addr as *const Ctx) }
    }

    fn missing(&self, need: Needs) -> Option<(&'static str, String)> {
        match need {
            Needs::Nothing => None,
            Needs::Userns => self
                .userns
                .as_ref()
                .err()
                .map(|why| ("user namespaces", why.clone())),
            Needs::Root => (!self.root).then(|| ("root", "the test runs unprivileged".into())),
            Needs::NotRoot => self
                .root
                .then(|| ("unprivileged caller", "the test runs as root".into())),
            Needs::LandlockAbi(n) => match self.landlock_abi {
                Some(abi) if abi >= n => None,
                Some(abi) => Some(("landlock", format!("ABI {abi} < {n}"))),
                None => Some(("landlock", "not supported by this kernel".into())),
            },
            Needs::CgroupLimits => cgroup_limits_usable(self.root)
                .err()
                .map(|w| ("cgroup limits", w)),
        }
    }

    /// A fresh workspace directory, writable by whoever the sandbox runs as.
    pub fn workspace(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let dir = self.base.join(format!("ws-{n}"));
        let _ = std::fs::create_dir_all(&dir);
        // A root caller runs the command as nobody: let it write here.
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
        dir
    }

    /// A directory outside every workspace (for planted secrets).
    pub fn outside(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let dir = self.base.join(format!("outside-{n}"));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        dir
    }

    /// `sandbox run <args>` with cwd = `ws` and the probe shared read-only.
    pub fn run<S: AsRef<OsStr>>(&self, ws: &Path, args: &[S]) -> Run {
        self.run_with(ws, args, |_| {})
    }

    pub fn run_with<S: AsRef<OsStr>>(
        &self,
        ws: &Path,
        args: &[S],
        tweak: impl FnOnce(&mut Command),
    ) -> Run {
        let mut cmd = self.command(ws, args);
        tweak(&mut cmd);
        match cmd.output() {
            Ok(o) => Run {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            },
            Err(e) => Run {
                code: -1,
                stdout: String::new(),
                stderr: format!("cannot run {}: {e}", self.sandbox.display()),
            },
        }
    }

    /// The `sandbox run` command line, not yet started.
    pub fn command<S: AsRef<OsStr>>(&self, ws: &Path, args: &[S]) -> Command {
        let mut cmd = Command::new(&self.sandbox);
        cmd.arg("run").arg("--ro").arg(&self.probe_dir);
        // Options come before `--`; the caller's args include their own `--`.
        cmd.args(args);
        cmd.current_dir(ws).stdin(Stdio::null());
        cmd
    }

    pub fn probe(&self) -> &str {
        self.probe.to_str().unwrap_or("probe")
    }
}

fn userns_works() -> Result<(), String> {
    // SAFETY: fork; the child only unshares and exits.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let r = libc::unshare(libc::CLONE_NEWUSER);
            libc::_exit(if r == 0 { 0 } else { 1 });
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else {
            Err("unshare(CLONE_NEWUSER) is refused on this host".into())
        }
    }
}

fn cgroup_limits_usable(root: bool) -> Result<(), String> {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let rel = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("/")
            .trim_start_matches('/')
            .to_string();
        let dir = Path::new("/sys/fs/cgroup").join(rel);
        let controllers =
            std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let writable = root || {
            let c = std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes())
                .unwrap_or_default();
            // SAFETY: access on a valid C string.
            unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
        };
        if writable && controllers.contains("memory") && controllers.contains("pids") {
            return Ok(());
        }
        return Err(format!(
            "cgroup v2 not delegated to this user (own cgroup {})",
            dir.display()
        ));
    }
    if Path::new("/sys/fs/cgroup/memory").is_dir() && root {
        return Ok(());
    }
    Err("cgroup v1 needs root".into())
}
