//! Issue 3: the privilege layers (capabilities, no_new_privs, seccomp, Landlock, isolation
//! without namespaces). Each attack comes with a positive control in the same test: the probe
//! succeeds where the layer under test is absent or the target is allowed.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use libtest_mimic::Failed;

use super::support::{check, Ctx, Needs, Run, Test};

/// The two isolation modes; each test that makes sense in both runs once per mode.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Namespaces,
    Landlock,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::Namespaces => "namespaces",
            Mode::Landlock => "landlock",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Mode::Namespaces => "",
            Mode::Landlock => "_landlock_mode",
        }
    }
    /// What the mode needs from the host (plus `extra`).
    fn needs(self, extra: &[Needs]) -> Vec<Needs> {
        let mut v = vec![match self {
            Mode::Namespaces => Needs::Userns,
            Mode::Landlock => Needs::LandlockAbi(1),
        }];
        v.extend_from_slice(extra);
        v
    }
}

const MODES: [Mode; 2] = [Mode::Namespaces, Mode::Landlock];

pub fn register(_ctx: &Ctx, t: &mut Vec<Test>) {
    t.push(Test::new(
        "landlock::abi_as_expected",
        &[],
        landlock_abi_as_expected,
    ));
    use Needs::*;
    let per_mode = |t: &mut Vec<Test>,
                    name: &str,
                    extra: &[Needs],
                    f: fn(&Ctx, Mode) -> Result<(), Failed>| {
        for mode in MODES {
            t.push(Test::new(
                &format!("{name}{}", mode.name()),
                &mode.needs(extra),
                move |ctx| f(ctx, mode),
            ));
        }
    };
    per_mode(t, "caps::all_sets_empty_nnp_seccomp", &[], status_all_empty);
    per_mode(
        t,
        "signals::callers_ignored_and_blocked_reset",
        &[],
        signals_reset,
    );
    per_mode(
        t,
        "caps::setuid_root_binary_gains_nothing",
        &[Root],
        setuid_own_probe,
    );
    per_mode(t, "caps::setuid_su_gains_nothing", &[], setuid_su);
    t.push(Test::new(
        "caps::keep_net_bind_service",
        &[Userns],
        keep_net_bind_service,
    ));
    per_mode(t, "userns::nested_unshare_refused", &[], nested_userns);
    per_mode(
        t,
        "seccomp::dangerous_syscalls_denied",
        &[],
        dangerous_syscalls,
    );
    per_mode(t, "seccomp::clone3_enosys", &[], clone3_enosys);
    per_mode(t, "seccomp::tiocsti_under_pty", &[], tiocsti_under_pty);
    per_mode(t, "seccomp::ptrace_outside_refused", &[], ptrace_outside);
    t.push(Test::new(
        "landlock::ptrace_scoped_without_seccomp",
        &[LandlockAbi(1)],
        ptrace_landlock_only,
    ));
    t.push(Test::new(
        "seccomp::debugger_works_in_landlock_mode",
        &[LandlockAbi(1)],
        debugger_in_landlock_mode,
    ));
    t.push(Test::new(
        "seccomp::invalid_keys_exit_125",
        &[],
        invalid_seccomp_keys,
    ));
    t.push(Test::new(
        "landlock::invalid_keys_exit_125",
        &[],
        invalid_landlock_keys,
    ));
    per_mode(t, "landlock::exec_allowlist", &[], exec_allowlist);
    per_mode(t, "landlock::write_only_drop_box", &[], write_only);
    per_mode(
        t,
        "landlock::denied_missing_path_not_creatable",
        &[],
        denied_missing_not_creatable,
    );
    per_mode(
        t,
        "landlock::deny_holds_through_a_symlinked_grant",
        &[],
        deny_through_symlinked_grant,
    );
    per_mode(
        t,
        "landlock::deny_holds_through_a_bind_mounted_grant",
        &[Root],
        deny_through_bind_mounted_grant,
    );
    per_mode(
        t,
        "landlock::grant_inside_a_denied_directory_refused",
        &[],
        grant_inside_denied_refused,
    );
    t.push(Test::new(
        "landlock::isolation_filesystem_attacks",
        &[LandlockAbi(1)],
        isolation_filesystem,
    ));
    t.push(Test::new(
        "landlock::isolation_network_refused",
        &[LandlockAbi(1)],
        isolation_network,
    ));
    per_mode(
        t,
        "landlock::connect_tcp_ports",
        &[LandlockAbi(4)],
        connect_tcp_ports,
    );
    per_mode(
        t,
        "landlock::abstract_unix_scoped",
        &[LandlockAbi(6)],
        abstract_scoped,
    );
    t.push(Test::new(
        "landlock::signal_scoped",
        &[LandlockAbi(6)],
        signal_scoped,
    ));
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn write(path: &Path, data: &str) {
    let _ = std::fs::write(path, data);
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
}

/// `extends = "default"` plus `body`, written as `ws/<name>`; returns the path.
fn policy(ws: &Path, name: &str, body: &str) -> String {
    let path = ws.join(name);
    write(&path, &format!("extends = \"default\"\n{body}\n"));
    path.to_string_lossy().into_owned()
}

/// `sandbox run --isolation MODE <opts> -- <cmd>`.
fn run(ctx: &Ctx, ws: &Path, mode: Mode, opts: &[&str], cmd: &[&str]) -> Run {
    let mut args = vec!["--isolation", mode.flag()];
    args.extend_from_slice(opts);
    args.push("--");
    args.extend_from_slice(cmd);
    ctx.run(ws, &args)
}

/// The uid the command runs as: the caller's, or nobody for a root caller.
fn inside_uid(ctx: &Ctx) -> u32 {
    // SAFETY: geteuid cannot fail.
    if ctx.root {
        65534
    } else {
        unsafe { libc::geteuid() }
    }
}

/// A command run directly on the host (no sandbox) as the uid the sandboxed command gets.
fn host_command(ctx: &Ctx, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    if ctx.root {
        c.uid(65534).gid(65534);
    }
    c.current_dir(&ctx.base).stdin(Stdio::null());
    c
}

/// A process outside every sandbox, same uid as the sandboxed command, that any process of
/// that uid may trace and signal. Killed on drop.
struct Helper(Child);

impl Helper {
    fn start(ctx: &Ctx) -> Result<Helper, Failed> {
        let mut child = host_command(ctx, &ctx.probe)
            .args(["ptraceable", "60"])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let helper = Helper(child);
        check(
            line.trim() == "ready",
            format!("helper did not start: {line:?}"),
        )?;
        Ok(helper)
    }
    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `/proc/self/status` lines as printed by `probe status`: key → value.
fn status_field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

// ---------------------------------------------------------------------------------------------
// Capabilities and no_new_privs

/// A caller that ignores or blocks signals (`nohup`, a shell's background job) must not pass
/// that on: an ignored SIGINT would make the command deaf to the supervisor's forwarding, an
/// ignored SIGALRM break its `alarm`s. Ignored dispositions survive execve, so the launcher
/// resets them.
fn signals_reset(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let args = [
        "--isolation",
        mode.flag(),
        "--",
        p,
        "read",
        "/proc/self/status",
    ];
    let (ignored, blocked) = (libc::SIGINT, libc::SIGUSR1);
    let bit = |sig: libc::c_int| 1u64 << (sig - 1);
    // The probe ignores SIGPIPE itself (Rust's runtime): only the caller's signals count.
    // SIGINT is one pid 1 forwards (and so catches itself), SIGALRM one it does not.
    let caller_ignored = bit(ignored) | bit(libc::SIGALRM);
    let field = |out: &str, key: &str| {
        u64::from_str_radix(status_field(out, key).unwrap_or("missing"), 16).ok()
    };
    let tweaked = |cmd: &mut Command| {
        // SAFETY: sigaction/sigprocmask on stack data in the about-to-exec child.
        unsafe {
            cmd.pre_exec(move || {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = libc::SIG_IGN;
                libc::sigaction(ignored, &act, std::ptr::null_mut());
                libc::sigaction(libc::SIGALRM, &act, std::ptr::null_mut());
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, blocked);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
    };
    // Control: without the sandbox the probe inherits both.
    let mut host = Command::new(p);
    host.args(["read", "/proc/self/status"]);
    tweaked(&mut host);
    let host = String::from_utf8_lossy(&host.output()?.stdout).into_owned();
    check(
        field(&host, "SigIgn").is_some_and(|m| m & caller_ignored == caller_ignored)
            && field(&host, "SigBlk").is_some_and(|m| m & bit(blocked) != 0),
        format!("the control did not inherit the caller's signals: {host}"),
    )?;
    let r = ctx.run_with(&ws, &args, tweaked);
    r.ok()?;
    check(
        field(&r.stdout, "SigIgn").is_some_and(|m| m & caller_ignored == 0),
        format!("SIGINT or SIGALRM still ignored in {mode:?} mode: {r:?}"),
    )?;
    check(
        field(&r.stdout, "SigBlk") == Some(0),
        format!("signals still blocked in {mode:?} mode: {r:?}"),
    )?;
    Ok(())
}

fn status_all_empty(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let r = run(ctx, &ws, mode, &[], &[p, "status"]);
    r.ok()?;
    // Without a user namespace an unprivileged caller lacks CAP_SETPCAP, so the bounding set
    // cannot be dropped (PR_CAPBSET_DROP needs it); no_new_privs makes it unreachable instead.
    let bounding_stays = mode == Mode::Landlock && !ctx.root;
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        if set == "CapBnd" && bounding_stays {
            println!("note: {mode:?} mode, unprivileged: the bounding set cannot be dropped");
            continue;
        }
        let v = status_field(&r.stdout, set);
        check(
            v == Some("0000000000000000"),
            format!("{set} = {v:?} in {mode:?} mode: {r:?}"),
        )?;
    }
    check(
        status_field(&r.stdout, "NoNewPrivs") == Some("1"),
        format!("NoNewPrivs not 1: {r:?}"),
    )?;
    check(
        status_field(&r.stdout, "Seccomp") == Some("2"),
        format!("Seccomp not 2 (filter): {r:?}"),
    )?;
    // Control: the probe reads the real values; on the host the bounding set is not empty
    // and, with `profile = "none"`, no filter is installed.
    let host = Command::new(&ctx.probe).arg("status").output()?;
    let host = String::from_utf8_lossy(&host.stdout).into_owned();
    let bnd = status_field(&host, "CapBnd");
    check(
        bnd.is_some() && bnd != Some("0000000000000000"),
        format!("host bounding set reads {bnd:?}"),
    )?;
    let none = policy(&ws, "none.toml", "[seccomp]\nprofile = \"none\"");
    let r = run(ctx, &ws, mode, &["--policy", &none], &[p, "status"]);
    r.ok()?;
    check(
        status_field(&r.stdout, "Seccomp") == Some("0"),
        format!("profile none still filtered: {r:?}"),
    )?;
    Ok(())
}

/// As root: the probe copied into a root-owned directory as a setuid-root (4755) binary.
fn setuid_own_probe(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let dir = ctx.outside();
    let suid = dir.join("suid-probe");
    std::fs::copy(&ctx.probe, &suid)?;
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755))?;
    let s = suid.to_str().unwrap_or("");
    let d = dir.to_str().unwrap_or("");
    // Control: on the host, run as nobody, the binary does raise the effective uid to 0.
    let host = host_command(ctx, &suid).arg("euid").output()?;
    let host_euid = String::from_utf8_lossy(&host.stdout).trim().to_string();
    check(
        host_euid == "0",
        format!("control: the setuid binary gives euid {host_euid:?} on the host"),
    )?;
    // Control: the unprivileged copy runs inside.
    let r = run(ctx, &ws, mode, &[], &[ctx.probe(), "euid"]);
    r.ok()?.stdout_has(&inside_uid(ctx).to_string())?;
    // Attack.
    let r = run(ctx, &ws, mode, &["--ro", d], &[s, "euid"]);
    r.ok()?;
    check(
        r.stdout.trim() == inside_uid(ctx).to_string(),
        format!("setuid raised the euid in {mode:?} mode: {r:?}"),
    )
}

/// Any caller: `su` (setuid root on most distributions) blocked on its password prompt; its
/// effective uid is read from /proc while it waits.
fn setuid_su(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let su = Path::new("/usr/bin/su");
    let meta = std::fs::metadata(su);
    let usable = meta.as_ref().is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0 && m.mode() & 0o4000 != 0
    });
    if !usable {
        println!("skipped: setuid su: /usr/bin/su is not setuid root here");
        return Ok(());
    }
    let script =
        "sleep 3 | /usr/bin/su -c true root 2>/dev/null & sleep 0.7; grep '^Uid:' /proc/$!/status";
    let euid = |out: &str| out.split_whitespace().nth(2).map(str::to_string);
    // Control: on the host, as the sandbox's uid, su runs with euid 0.
    let host = host_command(ctx, "sh").args(["-c", script]).output()?;
    let host = String::from_utf8_lossy(&host.stdout).into_owned();
    check(
        euid(&host).as_deref() == Some("0"),
        format!("control: su on the host: {host:?}"),
    )?;
    let ws = ctx.workspace();
    let r = run(ctx, &ws, mode, &[], &["sh", "-c", script]);
    r.ok()?;
    let inside = euid(&r.stdout);
    check(
        inside.as_deref() == Some(&inside_uid(ctx).to_string()),
        format!("su inside ({mode:?} mode) has euid {inside:?}: {r:?}"),
    )
}

fn keep_net_bind_service(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let keep = policy(
        &ws,
        "keep.toml",
        "[process]\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]",
    );
    let r = ctx.run(&ws, &["--policy", &keep, "--", p, "status"]);
    r.ok()?;
    for set in ["CapEff", "CapAmb", "CapPrm"] {
        let v = status_field(&r.stdout, set);
        check(
            v == Some("0000000000000400"),
            format!("{set} = {v:?}, expected only bit 10: {r:?}"),
        )?;
    }
    for set in ["CapInh", "CapBnd"] {
        let v = status_field(&r.stdout, set);
        check(
            v == Some("0000000000000400") || v == Some("0000000000000000"),
            format!("{set} = {v:?} holds more than CAP_NET_BIND_SERVICE: {r:?}"),
        )?;
    }
    // The capability works (port 80 in the sandbox's own network namespace) ...
    ctx.run(
        &ws,
        &["--policy", &keep, "--", p, "bind-tcp", "127.0.0.1:80"],
    )
    .ok()?;
    // ... and is needed: without it the same bind is refused.
    ctx.run(&ws, &["--", p, "bind-tcp", "127.0.0.1:80"])
        .failed()?
        .stdout_has("errno 13")?;
    // A cap not kept is not usable: changing file ownership needs CAP_CHOWN.
    ctx.run(
        &ws,
        &["--policy", &keep, "--", "sh", "-c", "touch f && chown 0 f"],
    )
    .failed()?;
    // Unknown capabilities, and capabilities without a user namespace, are errors.
    let bad = policy(
        &ws,
        "bad.toml",
        "[process]\ncapabilities = [\"CAP_NO_SUCH_THING\"]",
    );
    ctx.run(&ws, &["--policy", &bad, "--", "true"])
        .code(125)?
        .stderr_has("process.capabilities")?;
    ctx.run(
        &ws,
        &["--policy", &keep, "--isolation", "landlock", "--", "true"],
    )
    .code(125)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// seccomp

fn nested_userns(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    run(ctx, &ws, mode, &[], &[p, "syscall", "fork"]).ok()?;
    run(ctx, &ws, mode, &[], &[p, "syscall", "unshare-user"])
        .failed()?
        .stdout_has("errno 1")?;
    run(ctx, &ws, mode, &[], &[p, "syscall", "unshare-net"]).failed()?;
    run(ctx, &ws, mode, &[], &["unshare", "-U", "true"]).failed()?;
    // Control: without the seccomp filter the same probe creates a user namespace (when the
    // host allows them at all).
    if ctx.userns.is_ok() {
        let none = policy(&ws, "none.toml", "[seccomp]\nprofile = \"none\"");
        run(
            ctx,
            &ws,
            mode,
            &["--policy", &none],
            &[p, "syscall", "unshare-user"],
        )
        .ok()?;
    }
    Ok(())
}

/// Each call fails with EPERM under the default profile; with `action = "kill"` the probe dies
/// of SIGSYS, so the refusal is the filter's; with `profile = "none"` the ones an unprivileged
/// process may make succeed.
fn dangerous_syscalls(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let calls = [
        "keyctl",
        "add_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "io_uring_setup",
        "kexec_load",
        "init_module",
        "personality-rie",
    ];
    let kill = policy(&ws, "kill.toml", "[seccomp]\naction = \"kill\"");
    let none = policy(&ws, "none.toml", "[seccomp]\nprofile = \"none\"");
    run(
        ctx,
        &ws,
        mode,
        &["--policy", &kill],
        &[p, "syscall", "getpid"],
    )
    .ok()?;
    for call in calls {
        let r = run(ctx, &ws, mode, &[], &[p, "syscall", call]);
        check(
            r.code == 1 && r.stdout.trim() == "errno 1",
            format!("{call}: expected EPERM, got {r:?}"),
        )?;
        let r = run(ctx, &ws, mode, &["--policy", &kill], &[p, "syscall", call]);
        check(
            r.code == 128 + libc::SIGSYS,
            format!("{call} with action kill: expected SIGSYS, got {r:?}"),
        )?;
    }
    let io_uring_on = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map_or(true, |v| v.trim() == "0");
    for call in ["keyctl", "add_key", "userfaultfd", "personality-rie"]
        .into_iter()
        .chain(io_uring_on.then_some("io_uring_setup"))
    {
        let r = run(ctx, &ws, mode, &["--policy", &none], &[p, "syscall", call]);
        check(
            r.code == 0,
            format!("control: {call} without seccomp should succeed, got {r:?}"),
        )?;
    }
    Ok(())
}

fn clone3_enosys(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    run(ctx, &ws, mode, &[], &[p, "syscall", "clone3"])
        .failed()?
        .stdout_has("errno 38")?;
    // glibc falls back to clone: threads and processes still work.
    run(ctx, &ws, mode, &[], &[p, "syscall", "fork"]).ok()?;
    run(ctx, &ws, mode, &[], &["sh", "-c", "(true) & wait"]).ok()?;
    // Control: the kernel itself answers clone3(NULL, 0) with EINVAL.
    let none = policy(&ws, "none.toml", "[seccomp]\nprofile = \"none\"");
    let r = run(
        ctx,
        &ws,
        mode,
        &["--policy", &none],
        &[p, "syscall", "clone3"],
    );
    check(
        !r.stdout.contains("errno 38"),
        format!("control: clone3 without seccomp gives ENOSYS: {r:?}"),
    )
}

/// What a command under a fresh pty did: its output, and what appeared on the pty master.
struct PtyRun {
    code: i32,
    stdout: String,
    stderr: String,
    master: String,
}

/// Run `cmd` as a session leader whose controlling terminal and stdin are a fresh pty slave.
fn run_under_pty(mut cmd: Command) -> Result<PtyRun, Failed> {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two fds; the name and termios/winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    check(
        rc == 0,
        format!("openpty: {}", std::io::Error::last_os_error()),
    )?;
    // SAFETY: both fds were just opened by openpty and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the pty slave.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output()?;
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut echoed = Vec::new();
    let _ = std::fs::File::from(master).read_to_end(&mut echoed);
    drop(slave);
    Ok(PtyRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        master: String::from_utf8_lossy(&echoed).into_owned(),
    })
}

fn tiocsti_under_pty(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    // Control: the probe itself, unsandboxed, injects into its controlling terminal (the
    // injected `x` is echoed on the master) unless the kernel forbids TIOCSTI altogether.
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .map_or(true, |v| v.trim() != "0");
    let mut direct = Command::new(&ctx.probe);
    direct.args(["syscall", "tiocsti"]);
    let c = run_under_pty(direct)?;
    if legacy {
        check(
            c.code == 0 && c.master.contains('x'),
            format!(
                "control: direct TIOCSTI did not inject: {:?} {:?}",
                c.stdout, c.master
            ),
        )?;
    }
    for attack in ["tiocsti", "tiocsti-steal"] {
        let r = run_under_pty(ctx.command(
            &ws,
            &["--isolation", mode.flag(), "--", p, "syscall", attack],
        ))?;
        check(
            r.code == 1 && r.stdout.contains("errno"),
            format!(
                "{attack} in {mode:?} mode did not fail: {} {:?} {:?}",
                r.code, r.stdout, r.stderr
            ),
        )?;
        check(
            !r.master.contains('x'),
            format!(
                "{attack} in {mode:?} mode injected into the terminal: {:?}",
                r.master
            ),
        )?;
    }
    // Control: the sandbox under a pty runs commands normally.
    let r = run_under_pty(ctx.command(
        &ws,
        &["--isolation", mode.flag(), "--", p, "syscall", "getpid"],
    ))?;
    check(
        r.code == 0,
        format!(
            "control: sandbox under a pty: {} {:?} {:?}",
            r.code, r.stdout, r.stderr
        ),
    )
}

fn ptrace_outside(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let helper = Helper::start(ctx)?;
    let hp = helper.pid();
    // Control: on the host, a process of the same uid may trace the helper.
    let c = host_command(ctx, &ctx.probe)
        .args(["ptrace", &hp])
        .output()?;
    check(
        c.status.success(),
        format!("control: host ptrace of the helper failed: {c:?}"),
    )?;
    let me = std::process::id().to_string();
    for target in [&hp, &me] {
        let r = run(ctx, &ws, mode, &[], &[p, "ptrace", target]);
        r.failed()?;
        check(
            r.stdout.contains("errno"),
            format!("ptrace of {target}: {r:?}"),
        )?;
    }
    // strace-style tracing of a child inside works (namespaces mode; landlock mode: see
    // `ptrace_landlock_only` and the report: the default profile denies ptrace there).
    if mode == Mode::Namespaces {
        run(ctx, &ws, mode, &[], &[p, "ptrace-child"]).ok()?;
    } else {
        let allow = policy(&ws, "allow.toml", "[seccomp]\nallow = [\"ptrace\"]");
        run(ctx, &ws, mode, &["--policy", &allow], &[p, "ptrace-child"]).ok()?;
        run(ctx, &ws, mode, &["--policy", &allow], &[p, "ptrace", &hp]).failed()?;
    }
    Ok(())
}

/// Landlock mode, no seccomp filter at all: Landlock alone keeps ptrace inside the sandbox.
fn ptrace_landlock_only(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let helper = Helper::start(ctx)?;
    let none = policy(&ws, "none.toml", "[seccomp]\nprofile = \"none\"");
    let m = Mode::Landlock;
    run(ctx, &ws, m, &["--policy", &none], &[p, "ptrace-child"]).ok()?;
    run(
        ctx,
        &ws,
        m,
        &["--policy", &none],
        &[p, "ptrace", &helper.pid()],
    )
    .failed()?
    .stdout_has("errno 1")?;
    Ok(())
}

/// Issue 3: "ptrace inside the sandbox stays allowed so debuggers work" — also in landlock
/// mode, where Landlock already confines ptrace to the sandbox (`ptrace_scoped_without_seccomp`).
fn debugger_in_landlock_mode(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    // Control: with ptrace allowed by the policy, the probe traces its child.
    let allow = policy(&ws, "allow.toml", "[seccomp]\nallow = [\"ptrace\"]");
    run(
        ctx,
        &ws,
        Mode::Landlock,
        &["--policy", &allow],
        &[p, "ptrace-child"],
    )
    .ok()?;
    // The default profile.
    run(ctx, &ws, Mode::Landlock, &[], &[p, "ptrace-child"]).ok()?;
    Ok(())
}

/// Each invalid seccomp key exits 125 and runs nothing.
fn invalid_seccomp_keys(ctx: &Ctx) -> Result<(), Failed> {
    bad_policies(
        ctx,
        &[
            ("[seccomp]\nallow = [\"no_such_syscall\"]", "seccomp.allow"),
            ("[seccomp]\ndeny = [\"no_such_syscall\"]", "seccomp.deny"),
            ("[seccomp]\naction = \"explode\"", "explode"),
            ("[seccomp]\nprofile = \"paranoid\"", "paranoid"),
            ("[seccomp]\nallwo = [\"read\"]", "allwo"),
        ],
        "[seccomp]\nallow = [\"ptrace\"]\ndeny = [\"uname\"]\naction = \"errno\"\nprofile = \"strict\"",
    )
}

/// Each invalid Landlock-related key exits 125 and runs nothing.
fn invalid_landlock_keys(ctx: &Ctx) -> Result<(), Failed> {
    bad_policies(
        ctx,
        &[
            ("[landlock]\nbest_efort = true", "best_efort"),
            ("[landlock]\nbest_effort = \"yes\"", "yes"),
            (
                "[network]\nmode = \"none\"\nconnect_tcp = [443]",
                "network.connect_tcp",
            ),
            ("[network]\nbind_tcp = [8080]", "network.bind_tcp"),
            (
                "[filesystem]\nwrite_only = [\"/no/such/drop/box\"]",
                "/no/such/drop/box",
            ),
            (
                "[filesystem]\nexec = [\"relative/path\"]",
                "filesystem.exec",
            ),
        ],
        "[landlock]\nbest_effort = false\n[network]\nmode = \"host\"\nconnect_tcp = [443]",
    )
}

fn bad_policies(ctx: &Ctx, cases: &[(&str, &str)], good: &str) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let marker = ws.join("ran");
    let m = marker.to_str().unwrap_or("");
    for (i, (body, needle)) in cases.iter().enumerate() {
        let pol = policy(&ws, &format!("bad{i}.toml"), body);
        for mode in MODES {
            let r = run(ctx, &ws, mode, &["--policy", &pol], &["touch", m]);
            check(
                r.code == 125,
                format!("{body:?} ({mode:?}): expected 125, got {r:?}"),
            )?;
            check(
                r.stderr.contains(needle),
                format!("{body:?}: the error does not name {needle:?}: {r:?}"),
            )?;
            check(!marker.exists(), format!("{body:?}: the command ran"))?;
        }
    }
    // Control: a valid policy using the same keys runs the command.
    let pol = policy(&ws, "good.toml", good);
    let mode = if ctx.userns.is_ok() {
        Mode::Namespaces
    } else {
        Mode::Landlock
    };
    let r = run(ctx, &ws, mode, &["--policy", &pol], &["touch", m]);
    let landlock_ok = ctx.landlock_abi.is_some_and(|a| a >= 4) || !good.contains("connect_tcp");
    if landlock_ok {
        r.ok()?;
        check(
            marker.exists(),
            format!("control: the valid policy did not run the command: {r:?}"),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Landlock

fn exec_allowlist(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let pol = policy(&ws, "exec.toml", &format!("[filesystem]\nexec = [\"{p}\"]"));
    // A copy of the probe (not of id: on busybox systems id dispatches on its own name).
    let _ = std::fs::copy(&ctx.probe, ws.join("my-id"));
    // Control: without the key, id runs; with it, the listed probe runs.
    run(ctx, &ws, mode, &[], &["/usr/bin/id"]).ok()?;
    run(ctx, &ws, mode, &[], &["./my-id", "exit", "0"]).ok()?;
    run(
        ctx,
        &ws,
        mode,
        &["--policy", &pol],
        &[p, "syscall", "getpid"],
    )
    .ok()?;
    // Attacks: another system binary, a copy in the writable workspace, exec from inside.
    run(ctx, &ws, mode, &["--policy", &pol], &["/usr/bin/id"]).code(126)?;
    run(
        ctx,
        &ws,
        mode,
        &["--policy", &pol],
        &["./my-id", "exit", "0"],
    )
    .code(126)?;
    run(
        ctx,
        &ws,
        mode,
        &["--policy", &pol],
        &["/bin/sh", "-c", "true"],
    )
    .code(126)?;
    Ok(())
}

fn write_only(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    // The drop box lives outside the workspace (in the harness's temporary directory).
    let drop_box = ctx.outside().join("drop");
    std::fs::create_dir(&drop_box)?;
    std::fs::set_permissions(&drop_box, std::fs::Permissions::from_mode(0o777))?;
    let d = drop_box.to_str().unwrap_or("");
    let pol = policy(
        &ws,
        "wo.toml",
        &format!("[filesystem]\nwrite_only = [\"{d}\"]"),
    );
    let f = format!("{d}/report");
    run(
        ctx,
        &ws,
        mode,
        &["--policy", &pol],
        &[p, "write", &f, "DROPPED"],
    )
    .ok()?;
    check(
        std::fs::read_to_string(&f).unwrap_or_default() == "DROPPED",
        "the file written into the drop box did not reach the host",
    )?;
    // Control: the same file is readable when the directory is shared read-write.
    run(ctx, &ws, mode, &["--rw", d], &[p, "read", &f])
        .ok()?
        .stdout_has("DROPPED")?;
    // Without a tmpfs above it the drop box holds. (In namespaces mode, the child-side rule on
    // the fresh /tmp also covers the host paths bound beneath it: see the next check.)
    let bare = bare_policy(ctx, &ws, &format!("write_only = [\"{d}\"]"));
    let r = run(ctx, &ws, mode, &["--policy", &bare], &[p, "read", &f]);
    check(
        r.code != 0 && !r.stdout.contains("DROPPED"),
        format!("drop box readable without tmpfs: {r:?}"),
    )?;
    // The default policy (tmpfs on /tmp; the drop box lies beneath /tmp on this host).
    let r = run(ctx, &ws, mode, &["--policy", &pol], &[p, "read", &f]);
    check(
        r.code != 0 && !r.stdout.contains("DROPPED"),
        format!("drop box readable in {mode:?} mode: {r:?}"),
    )?;
    let r = run(ctx, &ws, mode, &["--policy", &pol], &[p, "list", d]);
    check(
        r.code != 0 && !r.stdout.contains("report"),
        format!("drop box listable in {mode:?} mode: {r:?}"),
    )?;
    Ok(())
}

/// A policy extending nothing: system directories, the probe and the workspace, no tmpfs.
fn bare_policy(ctx: &Ctx, ws: &Path, filesystem: &str) -> String {
    let path = ws.join("bare.toml");
    let probe_dir = ctx.probe_dir.to_string_lossy();
    write(
        &path,
        &format!(
            "[filesystem]\nread_only = [\"/usr\", \"/etc\", \"{probe_dir}\", {{ path = \"/bin\", optional = true }}, \
             {{ path = \"/lib\", optional = true }}, {{ path = \"/lib64\", optional = true }}]\n\
             read_write = [\"${{CWD}}\"]\n{filesystem}\n"
        ),
    );
    path.to_string_lossy().into_owned()
}

/// A tree shared through a symbolic link (as merged-/usr hosts share `/bin` = `/usr/bin`)
/// does not give back what the policy denies inside it, by either name. Landlock attaches a
/// rule to the directory the link resolves to, so carve-outs must be found there.
fn deny_through_symlinked_grant(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let out = ctx.outside();
    let real = out.join("real");
    std::fs::create_dir(&real)?;
    std::fs::write(real.join("secret"), "TOPSECRET")?;
    std::fs::write(real.join("plain"), "fine")?;
    let alias = out.join("alias");
    std::os::unix::fs::symlink(&real, &alias)?;
    let (a, r) = (alias.to_str().unwrap_or(""), real.to_str().unwrap_or(""));
    for denied in [format!("{r}/secret"), format!("{a}/secret")] {
        let opts = ["--ro", a, "--deny", &denied];
        // Control: the shared tree is readable (by its real name: in namespaces mode the view
        // binds a linked tree where the link points).
        run(ctx, &ws, mode, &opts, &[p, "read", &format!("{r}/plain")])
            .ok()?
            .stdout_has("fine")?;
        // Attack: the denied file, by the link's name and by its own.
        for name in [format!("{a}/secret"), format!("{r}/secret")] {
            let got = run(ctx, &ws, mode, &opts, &[p, "read", &name]);
            check(
                got.code != 0 && !got.stdout.contains("TOPSECRET"),
                format!("--deny {denied}: {name} readable: {got:?}"),
            )?;
        }
    }
    // The default policy's own case on merged-/usr hosts: /bin is a link into /usr. (Where
    // env and true are one busybox, denying env denies true: not this check's case.)
    let merged_usr = std::fs::read_link("/bin").is_ok_and(|t| t == Path::new("usr/bin"));
    let inode = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(p)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| (m.dev(), m.ino()))
    };
    let (env, tru) = (inode("/usr/bin/env"), inode("/usr/bin/true"));
    if merged_usr && env.is_some() && tru.is_some() && env != tru {
        let opts = ["--deny", "/usr/bin/env"];
        run(ctx, &ws, mode, &opts, &["/usr/bin/true"]).ok()?;
        for name in ["/usr/bin/env", "/bin/env"] {
            run(ctx, &ws, mode, &opts, &[p, "read", name]).failed()?;
        }
    }
    Ok(())
}

/// The same through a bind mount on the host: a tree shared under a name that is another
/// directory's bind mount does not give back what is denied by the directory's own name.
fn deny_through_bind_mounted_grant(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    /// Unmounts the host bind mount however the test ends.
    struct Unmount(std::ffi::CString);
    impl Drop for Unmount {
        fn drop(&mut self) {
            // SAFETY: umount2 on a valid C string.
            unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let ws = ctx.workspace();
    let p = ctx.probe();
    let out = ctx.outside();
    let data = out.join("data");
    std::fs::create_dir(&data)?;
    std::fs::write(data.join("secret"), "TOPSECRET")?;
    std::fs::write(data.join("plain"), "fine")?;
    let alias = out.join("alias");
    std::fs::create_dir(&alias)?;
    let status = Command::new("mount")
        .arg("--bind")
        .arg(&data)
        .arg(&alias)
        .status()?;
    check(status.success(), format!("mount --bind failed: {status}"))?;
    let _unmount = Unmount(std::ffi::CString::new(
        std::os::unix::ffi::OsStrExt::as_bytes(alias.as_os_str()),
    )?);
    let (a, d) = (alias.to_str().unwrap_or(""), data.to_str().unwrap_or(""));
    let secret = format!("{d}/secret");
    let opts = ["--ro", a, "--deny", &secret];
    // Control: the shared tree is readable.
    run(ctx, &ws, mode, &opts, &[p, "read", &format!("{a}/plain")])
        .ok()?
        .stdout_has("fine")?;
    // Attack: the denied file through the shared name.
    let got = run(ctx, &ws, mode, &opts, &[p, "read", &format!("{a}/secret")]);
    check(
        got.code != 0 && !got.stdout.contains("TOPSECRET"),
        format!("--deny {secret}: readable through the bind mount {a}: {got:?}"),
    )?;
    // Denying the directory itself hides the whole tree shared under the other name.
    let got = run(
        ctx,
        &ws,
        mode,
        &["--ro", a, "--deny", d],
        &[p, "read", &format!("{a}/plain")],
    );
    check(
        got.code != 0 && !got.stdout.contains("fine"),
        format!("--deny {d}: {a} readable: {got:?}"),
    )?;
    // A write-only drop box is not readable through the other name either.
    let drop_box = data.join("drop");
    std::fs::create_dir(&drop_box)?;
    std::fs::set_permissions(&drop_box, std::fs::Permissions::from_mode(0o777))?;
    std::fs::write(drop_box.join("report"), "DROPPED")?;
    let pol = policy(
        &ws,
        "wo-alias.toml",
        &format!("[filesystem]\nwrite_only = [\"{d}/drop\"]\nread_only = [\"{a}\"]"),
    );
    // Control: the drop box takes files.
    run(
        ctx,
        &ws,
        mode,
        &["--policy", &pol],
        &[p, "write", &format!("{d}/drop/new"), "x"],
    )
    .ok()?;
    let got = run(
        ctx,
        &ws,
        mode,
        &["--policy", &pol],
        &[p, "read", &format!("{a}/drop/report")],
    );
    check(
        got.code != 0 && !got.stdout.contains("DROPPED"),
        format!("write_only {d}/drop: readable through {a}: {got:?}"),
    )?;
    Ok(())
}

/// A grant inside a denied directory is refused in both modes (the mount plan would hide it,
/// Landlock alone would grant it): exit 125, the key and the path named, nothing run.
fn grant_inside_denied_refused(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let out = ctx.outside();
    std::fs::create_dir_all(out.join("x/y"))?;
    std::fs::write(out.join("x/y/f"), "INNER")?;
    let (o, x, y) = (
        out.to_str().unwrap_or(""),
        format!("{}/x", out.display()),
        format!("{}/x/y", out.display()),
    );
    let marker = ws.join("ran");
    let m = marker.to_str().unwrap_or("");
    // Control: without the inner grant the same policy runs.
    run(
        ctx,
        &ws,
        mode,
        &["--ro", o, "--deny", &x],
        &[p, "write", m, "x"],
    )
    .ok()?;
    std::fs::remove_file(&marker)?;
    let got = run(
        ctx,
        &ws,
        mode,
        &["--ro", o, "--deny", &x, "--ro", &y],
        &[p, "write", m, "x"],
    );
    got.code(125)?;
    check(
        got.stderr.contains("filesystem.read_only") && got.stderr.contains(&y),
        format!("the error names neither the key nor the path: {got:?}"),
    )?;
    check(!marker.exists(), "the command ran")?;
    Ok(())
}

/// A denied path that does not exist cannot be created, even inside the read-write workspace.
fn denied_missing_not_creatable(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    // Control: the same write without the deny works.
    run(ctx, &ws, mode, &[], &[p, "write", ".env", "x"]).ok()?;
    check(
        ws.join(".env").exists(),
        "control: write into the workspace did not reach the host",
    )?;
    let _ = std::fs::remove_file(ws.join(".env"));
    // Without a tmpfs above the workspace.
    let bare = bare_policy(ctx, &ws, "deny = [\"${CWD}/.env\"]");
    run(
        ctx,
        &ws,
        mode,
        &["--policy", &bare],
        &[p, "write", ".env", "x"],
    )
    .failed()?;
    check(
        !ws.join(".env").exists(),
        format!("denied .env created on the host (no tmpfs, {mode:?} mode)"),
    )?;
    // With the default policy (the workspace lies beneath /tmp, a tmpfs inside the sandbox).
    let r = run(
        ctx,
        &ws,
        mode,
        &["--deny", ".env"],
        &[p, "write", ".env", "x"],
    );
    check(
        !ws.join(".env").exists(),
        format!("denied .env created on the host ({mode:?} mode): {r:?}"),
    )?;
    r.failed()?;
    Ok(())
}

fn isolation_filesystem(ctx: &Ctx) -> Result<(), Failed> {
    let m = Mode::Landlock;
    let ws = ctx.workspace();
    let out = ctx.outside();
    let p = ctx.probe();
    write(&out.join("secret"), "TOPSECRET");
    write(&ws.join("visible"), "hello");
    write(&ws.join(".env"), "API_KEY=hunter2");
    let secret = out.join("secret");
    let s = secret.to_str().unwrap_or("");
    // Secret outside the shared paths.
    run(ctx, &ws, m, &[], &[p, "read", "visible"])
        .ok()?
        .stdout_has("hello")?;
    run(ctx, &ws, m, &[], &[p, "read", s])
        .failed()?
        .stdout_lacks("TOPSECRET")?;
    run(ctx, &ws, m, &[], &[p, "list", out.to_str().unwrap_or("")])
        .failed()?
        .stdout_lacks("secret")?;
    let _ = std::os::unix::fs::symlink(&secret, ws.join("link"));
    run(ctx, &ws, m, &[], &[p, "read", "link"])
        .failed()?
        .stdout_lacks("TOPSECRET")?;
    // Control: the same file is readable when shared.
    run(
        ctx,
        &ws,
        m,
        &["--ro", out.to_str().unwrap_or("")],
        &[p, "read", s],
    )
    .ok()?
    .stdout_has("TOPSECRET")?;
    // System directories are read-only.
    run(ctx, &ws, m, &[], &[p, "read", "/etc/hostname"]).ok()?;
    run(ctx, &ws, m, &[], &[p, "write", "/usr/evil", "evil"]).failed()?;
    run(ctx, &ws, m, &[], &[p, "write", "/etc/evil", "evil"]).failed()?;
    check(
        !Path::new("/usr/evil").exists() && !Path::new("/etc/evil").exists(),
        "a file appeared in /usr or /etc",
    )?;
    run(ctx, &ws, m, &[], &[p, "write", "new-file", "x"]).ok()?;
    check(
        ws.join("new-file").exists(),
        "control: write into the workspace did not reach the host",
    )?;
    // A denied file inside the read-write tree, and a denied missing one.
    let deny = ["--deny", ".env", "--deny", ".netrc"];
    let opts: Vec<&str> = deny.to_vec();
    run(ctx, &ws, m, &opts, &[p, "read", "visible"]).ok()?;
    run(ctx, &ws, m, &opts, &[p, "read", ".env"])
        .failed()?
        .stdout_lacks("hunter2")?;
    run(ctx, &ws, m, &opts, &[p, "write", ".env", "overwritten"]).failed()?;
    run(ctx, &ws, m, &opts, &[p, "write", ".netrc", "machine"]).failed()?;
    check(
        std::fs::read_to_string(ws.join(".env")).unwrap_or_default() == "API_KEY=hunter2",
        ".env changed on the host",
    )?;
    check(
        !ws.join(".netrc").exists(),
        "a denied missing path was created on the host",
    )?;
    Ok(())
}

fn isolation_network(ctx: &Ctx) -> Result<(), Failed> {
    let m = Mode::Landlock;
    let ws = ctx.workspace();
    let p = ctx.probe();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    for s in ["socket-inet", "socket-inet6"] {
        run(ctx, &ws, m, &[], &[p, "syscall", s]).failed()?;
    }
    run(ctx, &ws, m, &[], &[p, "connect-tcp", &addr]).failed()?;
    run(ctx, &ws, m, &[], &[p, "bind-tcp", "127.0.0.1:0"]).failed()?;
    // Controls: unix sockets work; with --net host, so do TCP sockets.
    run(ctx, &ws, m, &[], &[p, "syscall", "socket-unix"]).ok()?;
    run(
        ctx,
        &ws,
        m,
        &["--net", "host"],
        &[p, "syscall", "socket-inet"],
    )
    .ok()?;
    run(ctx, &ws, m, &["--net", "host"], &[p, "connect-tcp", &addr]).ok()?;
    Ok(())
}

fn connect_tcp_ports(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let allowed = std::net::TcpListener::bind("127.0.0.1:0")?;
    let other = std::net::TcpListener::bind("127.0.0.1:0")?;
    let (a, o) = (allowed.local_addr()?, other.local_addr()?);
    let pol = policy(
        &ws,
        "ports.toml",
        &format!("[network]\nmode = \"host\"\nconnect_tcp = [{}]", a.port()),
    );
    let (a, o) = (a.to_string(), o.to_string());
    // Control: with the host network and no port list, both ports are reachable.
    run(ctx, &ws, mode, &["--net", "host"], &[p, "connect-tcp", &o]).ok()?;
    run(ctx, &ws, mode, &["--policy", &pol], &[p, "connect-tcp", &a]).ok()?;
    run(ctx, &ws, mode, &["--policy", &pol], &[p, "connect-tcp", &o]).failed()?;
    Ok(())
}

fn abstract_scoped(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    use std::os::linux::net::SocketAddrExt;
    let ws = ctx.workspace();
    let p = ctx.probe();
    let name = format!("sandbox-test-{}-{}", std::process::id(), mode.flag());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr)?;
    // Controls: the host's socket is reachable from the host; inside, a socket of the
    // sandbox's own is reachable.
    std::os::unix::net::UnixStream::connect_addr(&addr)?;
    let own = format!("{name}-inside");
    run(
        ctx,
        &ws,
        mode,
        &["--net", "host"],
        &[p, "abstract-self", &own],
    )
    .ok()?;
    // Attack: the host's abstract socket, with the host network shared.
    let r = run(
        ctx,
        &ws,
        mode,
        &["--net", "host"],
        &[p, "connect-abstract", &name],
    );
    r.failed()?.stdout_has("errno 1")?;
    Ok(())
}

fn signal_scoped(ctx: &Ctx) -> Result<(), Failed> {
    let m = Mode::Landlock;
    let ws = ctx.workspace();
    let p = ctx.probe();
    let helper = Helper::start(ctx)?;
    let hp = helper.pid();
    // Control: on the host the same uid may signal the helper; inside, the probe may signal
    // its own process group.
    let c = host_command(ctx, &ctx.probe)
        .args(["kill", &hp, "0"])
        .output()?;
    check(
        c.status.success(),
        format!("control: host kill of the helper failed: {c:?}"),
    )?;
    run(ctx, &ws, m, &[], &[p, "kill", "0", "0"]).ok()?;
    // Attack, with and without the seccomp filter (scoping is Landlock's).
    let none = policy(&ws, "none.toml", "[seccomp]\nprofile = \"none\"");
    for opts in [vec![], vec!["--policy", none.as_str()]] {
        let r = run(ctx, &ws, m, &opts, &[p, "kill", &hp, "0"]);
        r.failed()?.stdout_has("errno 1")?;
        let r = run(ctx, &ws, m, &opts, &[p, "kill", &hp, "15"]);
        r.failed()?;
    }
    let alive = std::fs::metadata(format!("/proc/{hp}")).is_ok();
    check(alive, "the helper was killed from inside the sandbox")?;
    Ok(())
}

/// The VM suite states each kernel's Landlock ABI (EXPECT_LANDLOCK_ABI): the one the
/// sandbox sees must be that, so tests skipped for a lower ABI are skipped for the right reason.
fn landlock_abi_as_expected(ctx: &Ctx) -> Result<(), Failed> {
    let Some(expected) = std::env::var("EXPECT_LANDLOCK_ABI")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    else {
        println!(
            "note: EXPECT_LANDLOCK_ABI unset; landlock ABI here: {:?}",
            ctx.landlock_abi
        );
        return Ok(());
    };
    check(
        ctx.landlock_abi == Some(expected),
        format!("landlock ABI {:?}, expected {expected}", ctx.landlock_abi),
    )
}
