//! Shared helpers: locating binaries, workspaces, running the CLI, feature requirements.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
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
    /// This process cannot use cgroup limits (the fallback and error paths).
    NoCgroupLimits,
    /// Pure cgroup v2 (with usable limits).
    CgroupV2,
}

impl Needs {
    /// A kernel feature `SANDBOX_MUST_WORK=1` insists on (the others describe who runs the
    /// tests or which cgroup version the host has, and are skipped either way).
    fn is_kernel_feature(self) -> bool {
        match self {
            Needs::Userns | Needs::CgroupLimits => true,
            // A kernel with an older Landlock ABI is expected to lack the newer features; the
            // VM suite says which ABI each kernel must have (EXPECT_LANDLOCK_ABI).
            Needs::LandlockAbi(n) => std::env::var("EXPECT_LANDLOCK_ABI")
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
                .is_some_and(|expected| expected >= n),
            _ => false,
        }
    }
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
        let missing = self.needs.iter().find_map(|n| {
            ctx.missing(*n)
                .map(|(f, why)| (f, why, n.is_kernel_feature()))
        });
        let ctx_ptr: &'static Ctx = ctx.leak();
        let run = self.run;
        match missing {
            Some((feature, why, kernel)) if !ctx.must_work || !kernel => {
                println!("skipped: {feature}: {why} ({})", self.name);
                Trial::test(self.name, || Ok(())).with_ignored_flag(true)
            }
            Some((feature, why, _)) => Trial::test(self.name, move || {
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

/// The `sandbox` CLI of this workspace, built into `profile_dir` (`target[/TRIPLE]/PROFILE`,
/// where this test binary was built). Cargo builds a package's binaries for its own
/// integration tests only, and the CLI lives in `sandbox-cli`: without this, `cargo test
/// --workspace` on a fresh clone would look for a binary nobody built (or test a stale one).
/// A no-op build when it is up to date.
fn build_cli(profile_dir: &Path) -> PathBuf {
    let mut target_dir = profile_dir.parent().unwrap_or(profile_dir).to_path_buf();
    let mut triple = None;
    if !target_dir.join("CACHEDIR.TAG").exists() {
        if let Some(parent) = target_dir
            .parent()
            .filter(|p| p.join("CACHEDIR.TAG").exists())
        {
            triple = target_dir.file_name().map(|t| t.to_os_string());
            target_dir = parent.to_path_buf();
        }
    }
    let profile = match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--quiet",
            "-p",
            "sandbox-cli",
            "--profile",
            &profile,
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    if let Some(triple) = &triple {
        build.arg("--target").arg(triple);
    }
    match build.status() {
        Ok(status) if status.success() => profile_dir.join("sandbox"),
        other => panic!(
            "building the sandbox CLI for the integration tests ({build:?}) failed: {other:?}; \
             set SANDBOX_BIN to test a binary of your own"
        ),
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
            .unwrap_or_else(|| build_cli(&profile_dir));
        let probe = std::env::var_os("SANDBOX_PROBE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_probe")));
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        // Not under /tmp: the sandbox mounts a fresh tmpfs there, and Landlock-only features
        // (missing denied paths, write-only boxes) are refused beneath it.
        let candidates = std::env::var_os("SANDBOX_TEST_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from("/var/tmp"), std::env::temp_dir()]);
        let name = format!("sandbox-it-{}", std::process::id());
        let base = candidates
            .map(|dir| dir.join(&name))
            .find(|base| std::fs::create_dir_all(base).is_ok())
            .unwrap_or_else(|| std::env::temp_dir().join(&name));
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
        if !root {
            enter_own_v2_scope();
        }
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
            Needs::CgroupV2 => v2_base()
                .is_none()
                .then(|| ("cgroup v2", "this host mounts cgroup v1 (hybrid)".into())),
            Needs::NoCgroupLimits => cgroup_limits_usable(self.root).is_ok().then(|| {
                (
                    "a host without cgroup limits",
                    "cgroup limits work for this process".into(),
                )
            }),
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

/// The cgroup v2 directory under which a sandbox started by this process creates its
/// cgroups: our own cgroup, or its parent when we already sit in a `supervisor` leaf (as the
/// library arranges it, and as [`enter_own_v2_scope`] does).
pub fn v2_base() -> Option<PathBuf> {
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim()
        .trim_start_matches('/')
        .to_string();
    let dir = Path::new("/sys/fs/cgroup").join(rel);
    if dir.file_name().is_some_and(|n| n == "supervisor") {
        return dir.parent().map(Path::to_path_buf);
    }
    Some(dir)
}

fn writable(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: access on a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// An ordinary user in a delegated cgroup v2 subtree shares its cgroup with its shell (the
/// VM's `vmuser/shell`, a terminal's session scope): cgroup v2 then forbids enabling
/// controllers there (no internal processes), and `sandbox` answers with the EBUSY hint. Do
/// what `systemd-run --user --scope -p Delegate=yes` does for a real user: when the parent
/// cgroup is delegated to us, move this test process into a fresh sibling scope
/// `<parent>/it-<pid>`, in its `supervisor` leaf (where the library would move it), so
/// every sandbox started from here finds a delegated base without processes of its own.
/// Runs before any thread exists; does nothing when we are alone or the parent is not ours.
fn enter_own_v2_scope() {
    let Some(own) = v2_base() else { return };
    if own
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("it-"))
    {
        return;
    }
    let me = std::process::id().to_string();
    let procs = std::fs::read_to_string(own.join("cgroup.procs")).unwrap_or_default();
    if procs.lines().all(|p| p.trim() == me) {
        return;
    }
    let Some(parent) = own.parent() else { return };
    if parent == Path::new("/sys/fs/cgroup")
        || !writable(&parent.join("cgroup.procs"))
        || !writable(&parent.join("cgroup.subtree_control"))
    {
        return;
    }
    let scope = parent.join(format!("it-{me}"));
    let leaf = scope.join("supervisor");
    let moved = std::fs::create_dir_all(&leaf)
        .and_then(|()| std::fs::write(leaf.join("cgroup.procs"), &me));
    match moved {
        Ok(()) => println!(
            "note: tests run in their own delegated scope {}",
            scope.display()
        ),
        Err(e) => println!(
            "note: cannot move into a scope of our own ({}): {e}",
            scope.display()
        ),
    }
}

fn cgroup_limits_usable(root: bool) -> Result<(), String> {
    if let Some(dir) = v2_base() {
        let controllers =
            std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let delegated = root
            || (writable(&dir.join("cgroup.procs"))
                && writable(&dir.join("cgroup.subtree_control")));
        if delegated
            && ["memory", "pids", "cpu"]
                .iter()
                .all(|c| controllers.split_whitespace().any(|x| x == *c))
        {
            return Ok(());
        }
        return Err(format!(
            "cgroup v2 {} is not delegated to this user or lacks memory/pids/cpu (offers: {})",
            dir.display(),
            controllers.trim()
        ));
    }
    if Path::new("/sys/fs/cgroup/memory").is_dir() && root {
        return Ok(());
    }
    Err("cgroup v1 needs root".into())
}

/// Host pids of sandboxed processes whose command line contains `marker` (other than
/// zombies: they have none).
pub fn processes_with_marker(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        // The CLI (and pid 1 and the launch's helper, which show its command line) name the
        // marker in their arguments too: only the sandboxed processes count.
        let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if Path::new(OsStr::from_bytes(program)).file_name() == Some(OsStr::new("sandbox")) {
            continue;
        }
        // Arguments are NUL-separated: `sleep 77` is `sleep\077`.
        let spaced: Vec<u8> = cmdline
            .iter()
            .map(|b| if *b == 0 { b' ' } else { *b })
            .collect();
        if String::from_utf8_lossy(&spaced).contains(marker) {
            found.push(pid);
        }
    }
    found
}
