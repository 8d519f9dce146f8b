//! Issue 3: `sandbox doctor`, checked against this host's facts read independently here
//! (the Landlock syscall, a direct `unshare`, /sys/fs/cgroup, /proc/sys/kernel/seccomp).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;

use super::support::{check, Ctx, Needs, Run, Test};

pub fn register(_ctx: &Ctx, t: &mut Vec<Test>) {
    use Needs::*;
    t.push(Test::new(
        "doctor::json_matches_host",
        &[],
        json_matches_host,
    ));
    t.push(Test::new(
        "doctor::human_output_names_each_layer",
        &[],
        human_output_names_each_layer,
    ));
    t.push(Test::new(
        "doctor::dangerous_cwd_checked_elsewhere",
        &[],
        dangerous_cwd_checked_elsewhere,
    ));
    t.push(Test::new(
        "doctor::without_userns_suggests_landlock",
        &[Userns],
        without_userns_suggests_landlock,
    ));
}

fn doctor(ctx: &Ctx, cwd: &Path, args: &[&str]) -> Result<(Run, Duration), Failed> {
    let start = Instant::now();
    let o = Command::new(&ctx.sandbox)
        .arg("doctor")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ctx.sandbox.display()))?;
    let took = start.elapsed();
    Ok((
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        took,
    ))
}

fn parse(run: &Run) -> Result<Value, Failed> {
    serde_json::from_str(&run.stdout)
        .map_err(|e| format!("doctor --json is not JSON ({e}): {run:?}").into())
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
fn landlock_abi() -> Option<u64> {
    // SAFETY: with NULL attr, size 0 and the VERSION flag the kernel only returns a number.
    let abi = unsafe { libc::syscall(444, std::ptr::null::<u8>(), 0usize, 1u32) };
    (abi > 0).then_some(abi as u64)
}

/// fork, `unshare(CLONE_NEWUSER)` in the child.
fn unshare_works() -> bool {
    // SAFETY: fork; the child only unshares and exits.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                0
            } else {
                1
            });
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
    }
}

fn fs_magic(path: &str) -> Option<i64> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: statfs into a zeroed struct through a valid C string.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        (libc::statfs(c.as_ptr(), &mut s) == 0).then_some(s.f_type as i64)
    }
}

/// The cgroup layout as /sys/fs/cgroup shows it.
fn cgroup_version() -> &'static str {
    const CGROUP2: i64 = 0x6367_7270;
    if fs_magic("/sys/fs/cgroup") == Some(CGROUP2) {
        return "v2";
    }
    let v1 = ["memory", "cpu", "pids"]
        .iter()
        .any(|c| Path::new("/sys/fs/cgroup").join(c).is_dir());
    match (v1, fs_magic("/sys/fs/cgroup/unified") == Some(CGROUP2)) {
        (true, true) => "v1 hybrid",
        (true, false) => "v1",
        (false, _) => "none",
    }
}

fn json_matches_host(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let (run, took) = doctor(ctx, &ws, &["--json"])?;
    let v = parse(&run)?;
    let host_abi = landlock_abi();
    check(
        v["landlock"]["abi"].as_u64() == host_abi,
        format!(
            "landlock abi {} != syscall {host_abi:?}",
            v["landlock"]["abi"]
        ),
    )?;
    let levels = v["landlock"]["levels"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    check(levels.len() == 7, format!("landlock levels: {levels:?}"))?;
    for l in &levels {
        let expect = host_abi.is_some_and(|a| l["abi"].as_u64().is_some_and(|n| n <= a));
        check(
            l["available"] == expect,
            format!("landlock level {l} with ABI {host_abi:?}"),
        )?;
    }

    let userns = unshare_works();
    check(
        v["user_namespaces"]["available"] == userns,
        format!(
            "user_namespaces {} but unshare works: {userns}",
            v["user_namespaces"]
        ),
    )?;
    check(
        userns == ctx.userns.is_ok(),
        "the support probe disagrees with unshare",
    )?;

    let version = cgroup_version();
    check(
        v["cgroups"]["version"] == version,
        format!("cgroups {} but /sys/fs/cgroup says {version}", v["cgroups"]),
    )?;
    if version == "v1 hybrid" || version == "v1" {
        // v1 limits are usable exactly by root.
        check(
            v["cgroups"]["usable"] == ctx.root,
            format!("cgroups {} as root={}", v["cgroups"], ctx.root),
        )?;
    }

    // Each action the kernel lists in actions_avail, and only those, is available.
    let avail =
        std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let listed: Vec<&str> = avail.split_whitespace().collect();
    check(
        v["seccomp"]["available"] == true,
        format!("seccomp {}", v["seccomp"]),
    )?;
    let actions = v["seccomp"]["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    check(actions.len() == 8, format!("seccomp actions {actions:?}"))?;
    if !listed.is_empty() {
        for a in &actions {
            let name = a["name"].as_str().unwrap_or("");
            check(
                a["available"] == listed.contains(&name),
                format!("seccomp action {a} vs actions_avail {listed:?}"),
            )?;
        }
    }
    check(
        v["seccomp"]["this_process"] == "disabled",
        format!("seccomp mode of an unfiltered caller: {}", v["seccomp"]),
    )?;
    // SAFETY: geteuid cannot fail.
    check(
        v["euid"] == unsafe { libc::geteuid() },
        format!("euid {}", v["euid"]),
    )?;

    let names: Vec<&str> = v["policies"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    check(
        names == sandbox_core::Policy::builtin_names(),
        format!("policies {names:?}"),
    )?;
    let default = v["policies"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "default"))
        .cloned()
        .unwrap_or(Value::Null);
    // The default policy needs user namespaces, and nothing this host lacks otherwise.
    check(default["runnable"] == userns, format!("default {default}"))?;
    check(
        default["cwd"] == ws.to_str().unwrap_or(""),
        format!("default cwd {}", default["cwd"]),
    )?;
    let layer = |name: &str| -> Value {
        default["layers"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["layer"] == name))
            .map_or(Value::Null, |l| l["status"].clone())
    };
    for name in ["namespaces", "landlock", "seccomp"] {
        let expect = if name == "namespaces" && !userns {
            "unavailable"
        } else {
            "enforced"
        };
        check(
            layer(name) == expect,
            format!("default layer {name}: {default}"),
        )?;
    }
    check(
        layer("limits") == "disabled",
        format!("default sets no cgroup limit: {default}"),
    )?;
    let code = if userns { 0 } else { 1 };
    run.code(code)?;
    check(
        v["exit_code"] == code && v["default_runnable"] == userns,
        format!("exit fields: {}", v["exit_code"]),
    )?;
    println!("doctor --json took {took:?}");
    check(
        took < Duration::from_secs(1),
        format!("doctor took {took:?}"),
    )
}

fn human_output_names_each_layer(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let (run, took) = doctor(ctx, &ws, &[])?;
    let mut needles = vec![
        "user namespaces ".to_string(),
        "landlock ".into(),
        "seccomp ".into(),
        "cgroups ".into(),
        format!("policies (dry run, working directory {})", ws.display()),
    ];
    if let Some(abi) = landlock_abi() {
        needles.push(format!("ABI {abi} (the sandbox uses up to"));
        needles.push("ABI 4  linux 6.7    tcp bind and connect ports".into());
    }
    needles.extend(
        sandbox_core::Policy::builtin_names()
            .iter()
            .map(|n| format!("  {n} ")),
    );
    for n in &needles {
        run.stdout_has(n)?;
    }
    if unshare_works() {
        run.code(0)?
            .stdout_has("yes: user, mount, pid, ipc, uts, cgroup, net")?
            .stdout_has("the default policy can run here (exit 0)")?;
        let default = run
            .stdout
            .lines()
            .find(|l| l.starts_with("  default "))
            .unwrap_or("");
        check(
            default.contains(" ok  namespaces enforced, landlock enforced, seccomp enforced"),
            format!("default line: {default:?}"),
        )?;
    } else {
        run.code(1)?
            .stdout_has("--isolation landlock still gives Landlock + seccomp + rlimits")?;
    }
    // Not ok for something not probed: with v1 cgroups an unprivileged caller is told why.
    if cgroup_version().starts_with("v1") && !ctx.root {
        run.stdout_has("limits not usable: cgroup v1 limits need root")?
            .stdout_lacks("limits enforced")?;
    }
    check(
        run.stdout.lines().count() <= 40,
        format!("more than one screen:\n{}", run.stdout),
    )?;
    check(
        took < Duration::from_secs(1),
        format!("doctor took {took:?}"),
    )
}

/// From `/`, which the default policy refuses to share, the policies are checked with a
/// temporary working directory, which the report names (and removes).
fn dangerous_cwd_checked_elsewhere(ctx: &Ctx) -> Result<(), Failed> {
    let (run, _) = doctor(ctx, Path::new("/"), &["--json"])?;
    let v = parse(&run)?;
    let default = v["policies"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "default"))
        .cloned()
        .unwrap_or(Value::Null);
    let note = default["cwd_note"].as_str().unwrap_or("");
    check(
        note.starts_with("/: it is the root directory"),
        format!("cwd_note: {default}"),
    )?;
    let cwd = default["cwd"].as_str().unwrap_or("/").to_string();
    check(
        cwd != "/" && cwd.contains("sandbox-doctor-"),
        format!("cwd {cwd}"),
    )?;
    check(!Path::new(&cwd).exists(), format!("{cwd} left behind"))?;
    check(
        default["runnable"] == unshare_works(),
        format!("default {default}"),
    )
}

/// Inside a sandbox the seccomp profile forbids new namespaces: doctor says so, exits 1 and
/// shows that every built-in policy still runs with `--isolation landlock`.
fn without_userns_suggests_landlock(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let bin = ctx.sandbox.to_str().unwrap_or("sandbox");
    let json = ctx.run(&ws, &["--ro", bin, "--", bin, "doctor", "--json"]);
    let v = parse(&json)?;
    json.code(1)?;
    check(
        v["user_namespaces"]["available"] == false,
        format!("user_namespaces {}", v["user_namespaces"]),
    )?;
    check(
        v["seccomp"]["this_process"] == "filter",
        format!("seccomp {}", v["seccomp"]),
    )?;
    for p in v["policies"].as_array().cloned().unwrap_or_default() {
        check(
            p["runnable"] == false,
            format!("{} runnable without user namespaces", p["name"]),
        )?;
        check(
            p["landlock_isolation"]["runnable"] == true,
            format!(
                "{} with --isolation landlock: {}",
                p["name"], p["landlock_isolation"]
            ),
        )?;
    }
    // Positive control: outside the sandbox the same binary finds user namespaces.
    let (outside, _) = doctor(ctx, &ws, &["--json"])?;
    check(
        parse(&outside)?["user_namespaces"]["available"] == true,
        "user namespaces outside the sandbox",
    )?;

    let human = ctx.run(&ws, &["--ro", bin, "--", bin, "doctor"]);
    human
        .code(1)?
        .stdout_has("user namespaces  no: clone refused (EPERM)")?
        .stdout_has("--isolation landlock still gives Landlock + seccomp + rlimits")?
        .stdout_has(
            "with --isolation landlock: ok  namespaces off, landlock enforced, seccomp enforced",
        )?
        .stdout_has("the default policy cannot run here (exit 1)")?;
    Ok(())
}
