//! Issue 2: the core launcher. Each attack comes with a positive control.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use super::support::{check, processes_with_marker, Ctx, Needs, Test};

pub fn register(_ctx: &Ctx, t: &mut Vec<Test>) {
    use Needs::*;
    t.push(Test::new(
        "core::secret_outside_view",
        &[Userns],
        secret_outside_view,
    ));
    t.push(Test::new(
        "core::read_only_binds",
        &[Userns],
        read_only_binds,
    ));
    t.push(Test::new(
        "core::denied_paths_in_rw_tree",
        &[Userns],
        denied_paths_in_rw_tree,
    ));
    t.push(Test::new(
        "core::denied_path_parents_cannot_move",
        &[Userns],
        |ctx| denied_path_parents_cannot_move(ctx, false),
    ));
    t.push(Test::new(
        "core::denied_path_parents_cannot_move_landlock",
        &[LandlockAbi(1)],
        |ctx| denied_path_parents_cannot_move(ctx, true),
    ));
    t.push(Test::new(
        "core::missing_denied_path_leaves_nothing",
        &[Userns],
        missing_denied_path_leaves_nothing,
    ));
    t.push(Test::new(
        "core::masks_sealed_and_setup_gone",
        &[Userns],
        masks_sealed_and_setup_gone,
    ));
    t.push(Test::new(
        "core::tmpfs_paths_fresh_and_private",
        &[Userns],
        tmpfs_paths_fresh_and_private,
    ));
    t.push(Test::new(
        "core::symlink_to_secret",
        &[Userns],
        symlink_to_secret,
    ));
    t.push(Test::new(
        "core::remount_and_umount_fail",
        &[Userns],
        remount_and_umount_fail,
    ));
    t.push(Test::new(
        "core::proc_shows_only_sandbox",
        &[Userns],
        proc_shows_only_sandbox,
    ));
    t.push(Test::new("core::proc_hardening", &[Userns], proc_hardening));
    t.push(Test::new(
        "core::cpu_affinity_is_the_callers",
        &[Userns],
        cpu_affinity_is_the_callers,
    ));
    t.push(Test::new("core::dev_is_minimal", &[Userns], dev_is_minimal));
    t.push(Test::new("core::network_none", &[Userns], network_none));
    t.push(Test::new(
        "core::environment_scrubbed",
        &[Userns],
        environment_scrubbed,
    ));
    t.push(Test::new(
        "core::leaked_fd_closed",
        &[Userns],
        leaked_fd_closed,
    ));
    t.push(Test::new("core::hostname", &[Userns], hostname));
    t.push(Test::new("core::exit_codes", &[Userns], exit_codes));
    t.push(Test::new(
        "core::stdin_passes_through",
        &[Userns],
        stdin_passes_through,
    ));
    t.push(Test::new("core::orphans_reaped", &[Userns], orphans_reaped));
    t.push(Test::new(
        "core::sigkill_of_sandbox_kills_all",
        &[Userns],
        sigkill_of_sandbox_kills_all,
    ));
    t.push(Test::new(
        "core::pid1_not_reachable",
        &[Userns],
        pid1_not_reachable,
    ));
    t.push(Test::new("core::ids_inside", &[Userns], ids_inside));
    t.push(Test::new(
        "core::bad_input_runs_nothing",
        &[],
        bad_input_runs_nothing,
    ));
    t.push(Test::new(
        "core::dangerous_cwd_refused",
        &[],
        dangerous_cwd_refused,
    ));
    t.push(Test::new(
        "core::signals_forwarded",
        &[Userns],
        signals_forwarded,
    ));
    t.push(Test::new(
        "core::second_interrupt_kills_the_tree",
        &[Userns],
        second_interrupt_kills_the_tree,
    ));
    t.push(Test::new(
        "core::root_caller_shares_private_paths",
        &[Userns, Root],
        root_caller_shares_private_paths,
    ));
    t.push(Test::new(
        "core::launch_under_allocating_threads",
        &[Userns],
        launch_under_allocating_threads,
    ));
}

fn write(path: &Path, data: &str) {
    let _ = std::fs::write(path, data);
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
}

fn secret_outside_view(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let out = ctx.outside();
    write(&out.join("secret"), "TOPSECRET");
    write(&ws.join("visible"), "hello");
    let p = ctx.probe();
    ctx.run(&ws, &["--", p, "read", "visible"])
        .ok()?
        .stdout_has("hello")?;
    let secret = out.join("secret");
    ctx.run(&ws, &["--", p, "read", secret.to_str().unwrap_or("")])
        .failed()?
        .stdout_lacks("TOPSECRET")?;
    // The home directory is not shared by default.
    if let Some(home) = std::env::var_os("HOME") {
        let r = ctx.run(&ws, &["--", p, "list", home.to_str().unwrap_or("/root")]);
        check(
            r.code != 0 || r.stdout.trim().is_empty(),
            format!("home is visible: {r:?}"),
        )?;
    }
    Ok(())
}

fn read_only_binds(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let data = ctx.outside();
    write(&data.join("f"), "data");
    let d = data.to_str().unwrap_or("");
    let f = format!("{d}/f");
    let p = ctx.probe();
    // Control: the read-only bind is readable and the workspace writable.
    ctx.run(&ws, &["--ro", d, "--", p, "read", &f])
        .ok()?
        .stdout_has("data")?;
    ctx.run(&ws, &["--", p, "write", "new-file", "x"]).ok()?;
    check(
        ws.join("new-file").exists(),
        "write into the workspace did not reach the host",
    )?;
    // Attacks: write into the read-only bind, into /usr, into the root.
    ctx.run(&ws, &["--ro", d, "--", p, "write", &f, "evil"])
        .failed()?;
    ctx.run(
        &ws,
        &["--ro", d, "--", p, "write", &format!("{d}/new"), "evil"],
    )
    .failed()?;
    ctx.run(&ws, &["--", p, "write", "/usr/evil", "evil"])
        .failed()?;
    ctx.run(&ws, &["--", p, "write", "/evil", "evil"])
        .failed()?;
    check(
        std::fs::read_to_string(data.join("f")).unwrap_or_default() == "data",
        "read-only file changed",
    )?;
    check(
        !data.join("new").exists(),
        "file created in a read-only bind",
    )?;
    Ok(())
}

fn denied_paths_in_rw_tree(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    write(&ws.join(".env"), "API_KEY=hunter2");
    let _ = std::fs::create_dir(ws.join("secrets"));
    write(&ws.join("secrets/key"), "PRIVATE");
    write(&ws.join("ok.txt"), "fine");
    let p = ctx.probe();
    let deny = ["--deny", ".env", "--deny", "secrets"];
    let args = |rest: &[&str]| -> Vec<String> {
        deny.iter()
            .chain(["--"].iter())
            .chain([p].iter())
            .chain(rest.iter())
            .map(|s| s.to_string())
            .collect()
    };
    ctx.run(&ws, &args(&["read", "ok.txt"]))
        .ok()?
        .stdout_has("fine")?;
    ctx.run(&ws, &args(&["read", ".env"]))
        .failed()?
        .stdout_lacks("hunter2")?;
    ctx.run(&ws, &args(&["read", "secrets/key"]))
        .failed()?
        .stdout_lacks("PRIVATE")?;
    ctx.run(&ws, &args(&["list", "secrets"]))
        .stdout_lacks("key")?;
    ctx.run(&ws, &args(&["write", ".env", "overwritten"]))
        .failed()?;
    check(
        std::fs::read_to_string(ws.join(".env")).unwrap_or_default() == "API_KEY=hunter2",
        ".env changed on the host",
    )?;
    Ok(())
}

fn denied_path_parents_cannot_move(ctx: &Ctx, landlock: bool) -> Result<(), Failed> {
    // Renaming a denied file's parent would move the file to a name a later launch does not
    // deny. With namespaces the directories between the shared tree and the denied path are
    // mount points; without, the directories above it lose RemoveDir.
    let ws = ctx.workspace();
    for dir in ["cfg/sub", "other"] {
        let _ = std::fs::create_dir_all(ws.join(dir));
    }
    write(&ws.join("cfg/sub/key"), "PRIVATE");
    write(&ws.join("ok.txt"), "fine");
    let mut opts = if landlock {
        vec!["--isolation", "landlock"]
    } else {
        vec![]
    };
    opts.extend(["--deny", "cfg/sub/key"]);
    // The control: a sibling directory can still be renamed with namespaces; without them
    // nothing directly in the workspace can, but what is there can be read.
    let control = if landlock {
        "cat ok.txt"
    } else {
        "mv other other2 && echo fine"
    };
    let script =
        format!("{control}; mv cfg moved; mv cfg/sub cfg/moved; cat moved/sub/key cfg/moved/key");
    let args: Vec<&str> = opts
        .iter()
        .copied()
        .chain(["--", "sh", "-c", &script])
        .collect();
    ctx.run(&ws, &args)
        .stdout_has("fine")?
        .stdout_lacks("PRIVATE")?;
    check(
        ws.join("cfg/sub/key").exists(),
        "the denied file moved on the host",
    )?;
    check(
        !ws.join("moved").exists() && !ws.join("cfg/moved").exists(),
        "a parent of the denied file was renamed",
    )?;
    // The next launch with the same policy still hides it.
    let read: Vec<&str> = opts
        .iter()
        .copied()
        .chain(["--", "cat", "cfg/sub/key"])
        .collect();
    ctx.run(&ws, &read).failed()?.stdout_lacks("PRIVATE")?;
    Ok(())
}

fn missing_denied_path_leaves_nothing(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let r = ctx.run(&ws, &["--deny", ".env", "--", p, "exists", ".env"]);
    r.code(1)?;
    check(
        !ws.join(".env").exists(),
        "a denied missing path left a file on the host",
    )?;
    let entries: Vec<_> = std::fs::read_dir(&ws)
        .map(|d| d.flatten().count())
        .into_iter()
        .collect();
    check(
        entries == [0],
        format!("workspace not empty after the run: {entries:?}"),
    )?;
    // Control: other files can still be written in subdirectories of the workspace.
    let _ = std::fs::create_dir(ws.join("sub"));
    let _ = std::fs::set_permissions(ws.join("sub"), std::fs::Permissions::from_mode(0o777));
    ctx.run(&ws, &["--deny", ".env", "--", p, "write", "sub/file", "x"])
        .ok()?;
    Ok(())
}

/// The masks over denied paths are read-only, noexec mounts of one empty file the command may
/// neither chmod nor fill, and nothing of how the view was built (the setup directory the
/// masks came from, the old root pivoted into it) is left in it.
fn masks_sealed_and_setup_gone(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    write(&ws.join(".env"), "API_KEY=hunter2");
    let run = |script: &str| ctx.run(&ws, &["--deny", ".env", "--", "sh", "-c", script]);
    // Control: a file the command made can be chmodded and written.
    run("echo a > mine && chmod 0600 mine && echo b > mine && cat mine")
        .ok()?
        .stdout_has("b")?;
    // Attacks: open the mask up, fill it.
    run("chmod 0666 .env").failed()?;
    run("echo evil > .env").failed()?;
    check(
        std::fs::read_to_string(ws.join(".env")).unwrap_or_default() == "API_KEY=hunter2",
        ".env changed on the host",
    )?;
    let mountinfo = run("cat /proc/self/mountinfo");
    mountinfo.ok()?;
    let env_path = ws.join(".env");
    let mask = mountinfo
        .stdout
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && Path::new(f[4]) == env_path)
        .map(|f| f[5].to_string());
    check(
        mask.as_deref().is_some_and(|o| {
            let opts: Vec<&str> = o.split(',').collect();
            opts.contains(&"ro") && opts.contains(&"noexec")
        }),
        format!("the mask over .env is not a read-only noexec mount: {mask:?}"),
    )?;
    let leftover: Vec<&str> = mountinfo
        .stdout
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|m| m.starts_with("/.sandbox"))
        })
        .collect();
    check(
        leftover.is_empty(),
        format!("setup mounts left in the view: {leftover:?}"),
    )?;
    let root = ctx.run(&ws, &["--", ctx.probe(), "list", "/"]);
    root.ok()?.stdout_has("usr")?.stdout_lacks(".sandbox")?;
    Ok(())
}

/// `/tmp`, `/dev/shm` and a tmpfs path outside every shared tree are directories of the
/// root's own tmpfs bound onto themselves; a tmpfs path inside a shared tree is a tmpfs of its
/// own. Each must be empty, writable by the command (sticky, world-writable) and private to
/// the sandbox, while the root around them stays read-only.
fn tmpfs_paths_fresh_and_private(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let shared = ws.join("cache");
    let _ = std::fs::create_dir_all(&shared);
    write(&shared.join("host-file"), "host");
    let marker = format!("sandbox-tmpfs-test-{}", std::process::id());
    let cache = shared.display().to_string();
    let scratch = "/opt/sandbox-scratch-test";
    let script = format!(
        "for d in /tmp /dev/shm {scratch} {cache}; do \
           ls -A $d | grep -q . && echo \"not empty: $d\"; \
           echo x > $d/{marker} || echo \"not writable: $d\"; \
           stat -c '%a %n' $d; \
         done; \
         touch /rootfile 2>/dev/null && echo 'root writable'; \
         mkdir /newdir 2>/dev/null && echo 'root dir creatable'; \
         echo done"
    );
    let run = ctx.run(
        &ws,
        &[
            "--tmpfs", scratch, "--tmpfs", &cache, "--", "sh", "-c", &script,
        ],
    );
    // Control: the script ran to its end and saw the four directories.
    run.ok()?.stdout_has("done")?;
    for d in ["/tmp", "/dev/shm", scratch, cache.as_str()] {
        run.stdout_has(&format!("1777 {d}"))?;
    }
    run.stdout_lacks("not empty")?
        .stdout_lacks("not writable")?
        .stdout_lacks("root writable")?
        .stdout_lacks("root dir creatable")?;
    // Nothing reached the host: not its /tmp, not the shared directory under the tmpfs.
    check(
        !Path::new("/tmp").join(&marker).exists() && !shared.join(&marker).exists(),
        "a file written to a sandbox tmpfs appeared on the host",
    )?;
    check(
        shared.join("host-file").exists() && !Path::new(scratch).exists(),
        "the host's side changed",
    )?;
    Ok(())
}

fn symlink_to_secret(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let out = ctx.outside();
    write(&out.join("secret"), "TOPSECRET");
    let _ = std::os::unix::fs::symlink(out.join("secret"), ws.join("link"));
    let _ = std::os::unix::fs::symlink("/etc/shadow", ws.join("shadow"));
    write(&ws.join("plain"), "plain");
    let p = ctx.probe();
    ctx.run(&ws, &["--", p, "read", "plain"]).ok()?;
    ctx.run(&ws, &["--", p, "read", "link"])
        .failed()?
        .stdout_lacks("TOPSECRET")?;
    ctx.run(&ws, &["--", p, "read", "shadow"])
        .failed()?
        .stdout_lacks("root:")?;
    Ok(())
}

fn remount_and_umount_fail(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    ctx.run(&ws, &["--", "sh", "-c", "test -r /usr/bin/env"])
        .ok()?;
    ctx.run(&ws, &["--", "mount", "-o", "remount,rw", "/usr"])
        .failed()?;
    ctx.run(&ws, &["--", "umount", "/usr"]).failed()?;
    ctx.run(&ws, &["--", "umount", "-l", "/etc/shadow"])
        .failed()?;
    ctx.run(&ws, &["--", ctx.probe(), "syscall", "mount-tmpfs"])
        .failed()?;
    ctx.run(
        &ws,
        &[
            "--",
            "sh",
            "-c",
            "grep -q ' /usr .*ro,' /proc/self/mountinfo",
        ],
    )
    .ok()?;
    Ok(())
}

fn proc_shows_only_sandbox(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let r = ctx.run(&ws, &["--", ctx.probe(), "list", "/proc"]);
    r.ok()?;
    let pids: Vec<u32> = r.stdout.lines().filter_map(|l| l.parse().ok()).collect();
    check(pids.contains(&1), format!("no pid 1 in /proc: {pids:?}"))?;
    check(
        pids.len() <= 3,
        format!("/proc shows other processes: {pids:?}"),
    )?;
    let me = std::process::id();
    check(!pids.contains(&me), "/proc shows the test process")?;
    Ok(())
}

fn proc_hardening(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    ctx.run(&ws, &["--", p, "read", "/proc/self/status"]).ok()?;
    ctx.run(
        &ws,
        &["--", p, "write", "/proc/sys/kernel/hostname", "evil"],
    )
    .failed()?;
    ctx.run(
        &ws,
        &[
            "--",
            "sh",
            "-c",
            "grep -q ' /proc/sys .*ro,' /proc/self/mountinfo",
        ],
    )
    .ok()?;
    for masked in ["/proc/kcore", "/proc/keys", "/proc/timer_list"] {
        if Path::new(masked).exists() {
            let r = ctx.run(&ws, &["--", p, "read", masked]);
            check(
                r.code != 0 || r.stdout.is_empty(),
                format!("{masked} readable: {r:?}"),
            )?;
        }
    }
    Ok(())
}

fn dev_is_minimal(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let r = ctx.run(&ws, &["--", ctx.probe(), "list", "/dev"]);
    r.ok()?
        .stdout_has("null")?
        .stdout_has("urandom")?
        .stdout_has("pts")?;
    for bad in ["mem", "kmsg", "vda", "sda", "port", "kvm"] {
        check(
            !r.stdout.lines().any(|l| l == bad),
            format!("/dev/{bad} present"),
        )?;
    }
    ctx.run(
        &ws,
        &[
            "--",
            "sh",
            "-c",
            "echo x > /dev/null && head -c 4 /dev/urandom | wc -c | grep -q 4",
        ],
    )
    .ok()?;
    ctx.run(
        &ws,
        &[
            "--",
            "sh",
            "-c",
            "[ -z \"$(find /dev -type b 2>/dev/null)\" ]",
        ],
    )
    .ok()?;
    Ok(())
}

fn network_none(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let name = format!("sandbox-test-{}", std::process::id());
    use std::os::linux::net::SocketAddrExt;
    let abs = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let _unix = std::os::unix::net::UnixListener::bind_addr(&abs)?;
    // Controls: the host side works, and loopback inside works.
    std::net::TcpStream::connect(&addr)?;
    ctx.run(&ws, &["--", p, "loopback"]).ok()?;
    // Attacks.
    ctx.run(&ws, &["--", p, "connect-tcp", &addr]).failed()?;
    ctx.run(&ws, &["--", p, "connect-abstract", &name])
        .failed()?;
    Ok(())
}

fn environment_scrubbed(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let r = ctx.run_with(&ws, &["--env", "FOO=bar", "--", ctx.probe(), "env"], |c| {
        c.env("SECRET_TOKEN", "s3cr3t")
            .env("AWS_SECRET_ACCESS_KEY", "k");
    });
    r.ok()?.stdout_has("FOO=bar")?.stdout_has("PATH=")?;
    r.stdout_lacks("s3cr3t")?.stdout_lacks("AWS_SECRET")?;
    let r = ctx.run_with(
        &ws,
        &["--pass-env", "SECRET_TOKEN", "--", ctx.probe(), "env"],
        |c| {
            c.env("SECRET_TOKEN", "passed");
        },
    );
    r.ok()?.stdout_has("SECRET_TOKEN=passed")?;
    Ok(())
}

fn leaked_fd_closed(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let out = ctx.outside();
    write(&out.join("secret"), "TOPSECRET");
    let file = std::fs::File::open(out.join("secret"))?;
    let fd = file.as_raw_fd();
    let r = ctx.run_with(&ws, &["--", ctx.probe(), "fds"], |c| {
        // SAFETY: fcntl on an fd we own, in the forked child before exec.
        unsafe {
            c.pre_exec(move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                Ok(())
            });
        }
    });
    r.ok()?;
    // Only stdio (0, 1, 2) and the directory fd read_dir itself holds.
    let fds: Vec<u32> = r
        .stdout
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    check(
        fds.iter().filter(|&&f| f > 2).count() <= 1,
        format!("leaked fds: {fds:?}"),
    )?;
    check(
        !fds.contains(&(fd as u32)) || fd <= 3,
        format!("fd {fd} leaked: {fds:?}"),
    )?;
    let r = ctx.run(
        &ws,
        &["--", ctx.probe(), "read", &format!("/proc/self/fd/{fd}")],
    );
    r.stdout_lacks("TOPSECRET")?;
    Ok(())
}

/// The launcher moves the command to another CPU while both set up (when one is idle, as it
/// usually is for this test's first launch); the command must still see exactly the affinity
/// of the caller, a restricted one included.
fn cpu_affinity_is_the_callers(ctx: &Ctx) -> Result<(), Failed> {
    fn allowed(status: &str) -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
    let ws = ctx.workspace();
    let ours = allowed(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
    let script = "grep Cpus_allowed_list /proc/self/status";
    let r = ctx.run(&ws, &["--", "sh", "-c", script]);
    r.ok()?;
    check(
        allowed(&r.stdout) == ours,
        format!("caller {ours:?}, command {:?}", allowed(&r.stdout)),
    )?;
    // A caller pinned to one CPU: nowhere to spread to, and the pin holds.
    let r = ctx.run_with(&ws, &["--", "sh", "-c", script], |cmd| {
        // SAFETY: sched_setaffinity on the about-to-exec child, plain data only.
        unsafe {
            cmd.pre_exec(|| {
                let mut one: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut one);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one);
                Ok(())
            });
        }
    });
    r.ok()?;
    check(
        allowed(&r.stdout) == "0",
        format!("pinned caller: {:?}", r.stdout),
    )?;
    Ok(())
}

fn hostname(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let r = ctx.run(&ws, &["--", ctx.probe(), "hostname"]);
    r.ok()?.stdout_has("sandbox")?;
    check(host.trim() != "sandbox", "the host is called sandbox too")?;
    Ok(())
}

fn exit_codes(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    ctx.run(&ws, &["--", "true"]).code(0)?;
    ctx.run(&ws, &["--", "sh", "-c", "exit 42"]).code(42)?;
    ctx.run(&ws, &["--", "sh", "-c", "kill -TERM $$"])
        .code(143)?;
    ctx.run(&ws, &["--", "no-such-command-xyz"])
        .code(127)?
        .stderr_has("not found")?;
    write(&ws.join("not-exec"), "#!/bin/sh\necho hi\n");
    ctx.run(&ws, &["--", "./not-exec"]).code(126)?;
    Ok(())
}

fn stdin_passes_through(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let mut child = ctx
        .command(&ws, &["--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(b"through the sandbox\n")?;
    }
    let out = child.wait_with_output()?;
    check(out.status.success(), format!("cat failed: {out:?}"))?;
    check(
        String::from_utf8_lossy(&out.stdout) == "through the sandbox\n",
        format!("stdin lost: {out:?}"),
    )?;
    Ok(())
}

fn orphans_reaped(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    // Orphans re-parented to pid 1 must be reaped: no zombie remains.
    let script = "for i in 1 2 3; do (sh -c 'exit 0' &) ; done; sleep 0.3; \
                  z=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l); echo zombies=$z";
    ctx.run(&ws, &["--", "sh", "-c", script])
        .ok()?
        .stdout_has("zombies=0")?;
    Ok(())
}

fn sigkill_of_sandbox_kills_all(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let marker = format!("77.{}", std::process::id());
    let mut child = ctx
        .command(
            &ws,
            &[
                "--",
                "sh",
                "-c",
                &format!("sleep {marker} & sleep {marker}"),
            ],
        )
        .spawn()?;
    // Generous: a loaded VM under emulation has taken over 5 s to get here.
    let start = Instant::now();
    while processes_with_marker(&format!("sleep {marker}")).len() < 2
        && start.elapsed() < Duration::from_secs(60)
    {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the sandbox ended before its sleeps started: {status}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check(
        processes_with_marker(&format!("sleep {marker}")).len() >= 2,
        format!(
            "the sandboxed sleeps never started ({:.1} s)",
            start.elapsed().as_secs_f64()
        ),
    )?;
    child.kill()?;
    let _ = child.wait();
    let start = Instant::now();
    while !processes_with_marker(&format!("sleep {marker}")).is_empty()
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = processes_with_marker(&format!("sleep {marker}"));
    check(
        left.is_empty(),
        format!("processes survived the sandbox's SIGKILL: {left:?}"),
    )
}

fn pid1_not_reachable(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let p = ctx.probe();
    ctx.run(&ws, &["--", p, "read", "/proc/self/cmdline"])
        .ok()?;
    ctx.run(&ws, &["--", p, "read", "/proc/1/mem"]).failed()?;
    ctx.run(&ws, &["--", p, "read", "/proc/1/environ"])
        .failed()?;
    ctx.run(&ws, &["--", "readlink", "/proc/1/exe"]).failed()?;
    ctx.run(&ws, &["--", p, "ptrace", "1"]).failed()?;
    ctx.run(&ws, &["--", p, "write", "/proc/1/exe", "x"])
        .failed()?;
    // pid 1 gives up its privileges before the command may run anything: the command's very
    // first read already finds it without capabilities, with no_new_privs, not uid 0.
    for _ in 0..5 {
        let r = ctx.run(&ws, &["--", p, "read", "/proc/1/status"]);
        r.ok()?
            .stdout_has("CapEff:\t0000000000000000")?
            .stdout_has("CapPrm:\t0000000000000000")?
            .stdout_has("NoNewPrivs:\t1")?;
        let uid = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .unwrap_or("");
        check(
            !uid.split_whitespace().any(|u| u == "0"),
            format!("pid 1 still holds uid 0: Uid:{uid}"),
        )?;
    }
    Ok(())
}

fn ids_inside(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let r = ctx.run(&ws, &["--", ctx.probe(), "euid"]);
    r.ok()?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let expected = if me == 0 { 65534 } else { me };
    check(
        r.stdout.trim() == expected.to_string(),
        format!("euid inside {} (expected {expected})", r.stdout.trim()),
    )
}

fn bad_input_runs_nothing(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let marker = ws.join("ran");
    let m = marker.to_str().unwrap_or("");
    let bad_policy = ws.join("bad.toml");
    write(&bad_policy, "[filesystem]\nread_olny = [\"/usr\"]\n");
    let bp = bad_policy.to_str().unwrap_or("");
    let cases: Vec<Vec<&str>> = vec![
        vec!["--policy", bp],
        vec!["--policy", "no-such-policy"],
        vec!["--memory", "-5"],
        vec!["--memory", "12Q"],
        vec!["--cpus", "0"],
        vec!["--pids", "0"],
        vec!["--timeout", "banana"],
        vec!["--net", "sideways"],
        vec!["--ro", "/no/such/path/xyz"],
        vec!["--isolation", "chroot"],
        vec!["--bogus-flag"],
        vec!["--env", "NOEQUALS"],
    ];
    for case in cases {
        let mut args = case.clone();
        args.extend(["--", "touch", m]);
        let r = ctx.run(&ws, &args);
        check(r.code == 125, format!("{case:?}: expected 125, got {r:?}"))?;
        check(
            r.stderr.contains("sandbox: error") || r.stderr.contains("error"),
            format!("{case:?}: no error message: {r:?}"),
        )?;
        check(!marker.exists(), format!("{case:?}: the command ran"))?;
    }
    // Control: the same command with good input runs.
    let _ = ctx.run(&ws, &["--", "touch", m]);
    check(
        marker.exists() || ctx.userns.is_err(),
        "the control command did not run",
    )?;
    Ok(())
}

fn dangerous_cwd_refused(ctx: &Ctx) -> Result<(), Failed> {
    for dir in ["/", "/usr", "/etc"] {
        let r = ctx.run(Path::new(dir), &["--", "true"]);
        check(r.code == 125, format!("cwd {dir}: expected 125, got {r:?}"))?;
    }
    if let Some(home) = std::env::var_os("HOME") {
        let home = Path::new(&home);
        if home.is_dir() && home != Path::new("/") {
            let r = ctx.run(home, &["--", "true"]);
            check(r.code == 125, format!("cwd $HOME: expected 125, got {r:?}"))?;
            check(
                r.stderr.contains("home"),
                format!("reason does not say home: {r:?}"),
            )?;
        }
    }
    Ok(())
}

fn signals_forwarded(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done";
    let mut child = ctx
        .command(&ws, &["--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut buf)?;
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait()?;
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest)?;
    check(
        rest.contains("got-term"),
        format!("TERM not forwarded: {rest:?}"),
    )?;
    check(status.code() == Some(7), format!("exit status {status:?}"))
}

/// A policy built by hand (the library path, without the CLI).
fn library_policy(ctx: &Ctx, ws: &Path) -> sandbox_core::ResolvedPolicy {
    use sandbox_core::*;
    let ro = |p: &Path, optional| PathRule {
        path: p.to_path_buf(),
        optional,
    };
    ResolvedPolicy {
        description: "test".into(),
        isolation: Isolation::Namespaces,
        process: ResolvedProcess {
            cwd: ws.to_path_buf(),
            env_set: vec![],
            env_pass: vec![],
            uid: None,
            gid: None,
            capabilities: vec![],
            hostname: "sandbox".into(),
        },
        filesystem: ResolvedFilesystem {
            read_only: ["/usr", "/etc", "/bin", "/lib", "/lib64", "/sbin"]
                .iter()
                .map(|p| ro(Path::new(p), true))
                .chain([ro(&ctx.probe_dir, false)])
                .collect(),
            read_write: vec![ro(ws, false)],
            deny: vec![],
            tmpfs: vec!["/tmp".into()],
            exec: vec![],
            write_only: vec![],
        },
        network: ResolvedNetwork::default(),
        seccomp: SeccompSettings::default(),
        landlock: LandlockSettings::default(),
        limits: Limits::default(),
    }
}

/// 200 launches from a process whose other 8 threads allocate and free memory without pause:
/// the child between clone and execve must never touch a lock another thread held.
fn launch_under_allocating_threads(ctx: &Ctx) -> Result<(), Failed> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ws = ctx.workspace();
    let sandbox = sandbox_core::Sandbox::new(library_policy(ctx, &ws));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut keep: Vec<Vec<u8>> = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    keep.push(vec![i as u8; 64 + (n % 4096)]);
                    if keep.len() > 64 {
                        keep.clear();
                    }
                    let _s = format!("{n}{i}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let start = Instant::now();
    let mut result = Ok(());
    for i in 0..200 {
        let out = sandbox
            .command(ctx.probe())
            .args(["exit", &(i % 7).to_string()])
            .output();
        match out {
            Ok(o) if o.outcome.exit_code() == i % 7 => {}
            other => {
                result = Err(format!("launch {i}: {other:?}"));
                break;
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            result = Err(format!("only {i} launches in 120 s"));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let allocations: usize = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    result?;
    check(
        allocations > 1000,
        format!("the allocating threads barely ran ({allocations})"),
    )
}

/// A root caller may share a file behind a mode-0700 root-owned directory (as the `agent`
/// preset does with `~/.gitconfig`), while the command itself still runs as nobody.
fn root_caller_shares_private_paths(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let private = ctx.outside().join("private");
    std::fs::create_dir(&private)?;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))?;
    write(&private.join("config"), "shared-config");
    let f = private.join("config");
    let f = f.to_str().unwrap_or("");
    let r = ctx.run(&ws, &["--ro", f, "--", ctx.probe(), "read", f]);
    r.ok()?.stdout_has("shared-config")?;
    ctx.run(&ws, &["--ro", f, "--", ctx.probe(), "euid"])
        .ok()?
        .stdout_has("65534")?;
    // The directory itself stays closed to the command (it is nobody, not the owner).
    let d = private.to_str().unwrap_or("");
    ctx.run(&ws, &["--ro", d, "--", ctx.probe(), "list", d])
        .failed()?;
    Ok(())
}

/// A command that ignores SIGINT survives the first one `sandbox` passes on; the second
/// kills the whole sandbox.
fn second_interrupt_kills_the_tree(ctx: &Ctx) -> Result<(), Failed> {
    let ws = ctx.workspace();
    let marker = format!("88.{}", std::process::id());
    let script = format!("trap '' INT TERM; echo ready; sleep {marker}; echo survived");
    let mut child = ctx
        .command(&ws, &["--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut buf)?;
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(300));
    check(
        child.try_wait()?.is_none(),
        "the first SIGINT ended the sandbox",
    )?;
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait()?;
    check(!status.success(), format!("exit status {status:?}"))?;
    let start = Instant::now();
    while !processes_with_marker(&format!("sleep {marker}")).is_empty()
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    check(
        processes_with_marker(&format!("sleep {marker}")).is_empty(),
        "the sandboxed sleep survived the second SIGINT",
    )
}
