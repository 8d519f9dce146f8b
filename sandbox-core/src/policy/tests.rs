//! Unit tests of the policy model: parsing, merging, expansion, validation, presets, docs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::units::{format_duration, format_size, parse_duration, parse_size};
use super::*;

/// A fake caller: a project directory inside a fake home.
struct Fake {
    _dir: TempDir,
    home: PathBuf,
    project: PathBuf,
    env: Environment,
}

fn fake() -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home/ada");
    let project = home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let env = Environment {
        vars: [("FOO".to_string(), "foo".to_string())].into(),
        cwd: Some(project.clone()),
        home: Some(home.clone()),
        uid: 1000,
        gid: 1000,
        user: Some("ada".into()),
    };
    Fake {
        _dir: dir,
        home,
        project,
        env,
    }
}

fn resolve_text(
    text: &str,
    overrides: &Overrides,
    env: &Environment,
) -> Result<ResolvedPolicy, PolicyError> {
    Policy::from_toml(text, "/cfg/test.toml")?.resolve(overrides, env)
}

fn no_overrides() -> Overrides {
    Overrides::default()
}

fn paths(rules: &[PathRule]) -> Vec<&Path> {
    rules.iter().map(|r| r.path.as_path()).collect()
}

fn invalid_key(err: &PolicyError) -> &str {
    match err {
        PolicyError::Invalid { key, .. } => key,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn parses_the_documented_example() {
    let text = r#"
description = "what this policy is for"
extends = "default"
[process]
cwd = "${CWD}"
env = { set = { FOO = "bar" }, pass = ["RUST_LOG"] }
uid = 1000
[filesystem]
read_only = ["/usr", "/etc", { path = "/lib64", optional = true }]
read_write = ["${CWD}"]
deny = ["${HOME}/.ssh", "${CWD}/.env"]
tmpfs = ["/tmp"]
[network]
mode = "none"
"#;
    let policy = Policy::from_toml(text, "example.toml").unwrap();
    assert_eq!(policy.origins(), ["preset \"default\"", "example.toml"]);
    let top = policy.files().last().unwrap();
    assert_eq!(top.process.uid, Some(1000));
    assert_eq!(top.filesystem.read_only[2], PathEntry::optional("/lib64"));
    assert_eq!(
        top.process.env.set.get("FOO").map(String::as_str),
        Some("bar")
    );
    assert_eq!(policy.description(), "what this policy is for");
}

#[test]
fn unknown_keys_are_rejected_naming_the_key_and_line() {
    for (text, key, line) in [
        ("readonly = []\n", "readonly", 1),
        ("[filesystem]\nreadonly = []\n", "readonly", 2),
        ("[process]\nenv = { sett = {} }\n", "sett", 2),
        (
            "[filesystem]\nread_only = [{ path = \"/usr\", optinal = true }]\n",
            "optinal",
            2,
        ),
        ("[limits]\n\nmemroy = \"1G\"\n", "memroy", 3),
        ("[nework]\nmode = \"none\"\n", "nework", 1),
    ] {
        let err = Policy::from_toml(text, "x.toml").unwrap_err();
        let PolicyError::Parse {
            line: l,
            ref message,
            ..
        } = err
        else {
            panic!("{err:?}")
        };
        assert!(message.contains(key), "{text:?}: {message}");
        assert_eq!(l, line, "{text:?}: {err}");
        assert!(
            err.to_string().starts_with(&format!("x.toml:{line}:")),
            "{err}"
        );
    }
}

#[test]
fn wrong_types_and_values_are_parse_errors() {
    for text in [
        "[limits]\npids = \"many\"\n",
        "[limits]\npids = -1\n",
        "[network]\nmode = \"hots\"\n",
        "[network]\nconnect_tcp = [70000]\n",
        "[seccomp]\nprofile = \"paranoid\"\n",
        "[sandbox]\nisolation = \"docker\"\n",
        "[process]\nuid = -1\n",
        "[filesystem]\nread_only = [1]\n",
        "description = ",
    ] {
        assert!(
            matches!(Policy::from_toml(text, "x"), Err(PolicyError::Parse { .. })),
            "{text:?}"
        );
    }
    // Integers are accepted where a float or a size is expected.
    let f = Policy::from_toml("[limits]\ncpus = 2\nmemory = 536870912\n", "x").unwrap();
    let top = f.files().last().unwrap();
    assert_eq!(top.limits.cpus, Some(2.0));
    assert_eq!(top.limits.memory.as_deref(), Some("536870912"));
}

#[test]
fn extends_merges_later_wins_lists_append() {
    let f = fake();
    let text = r#"
extends = "default"
[filesystem]
read_only = ["/proc/self"]
[network]
mode = "host"
[seccomp]
action = "kill"
"#;
    let r = resolve_text(text, &no_overrides(), &f.env).unwrap();
    let ro = paths(&r.filesystem.read_only);
    assert_eq!(ro[0], Path::new("/usr"), "base entries come first");
    assert_eq!(*ro.last().unwrap(), Path::new("/proc/self"));
    assert!(ro.contains(&Path::new("/etc")));
    assert_eq!(r.network.mode, NetworkMode::Host);
    assert_eq!(r.seccomp.action, SeccompAction::Kill);
    assert_eq!(r.seccomp.profile, SeccompProfile::Default);
    assert_eq!(
        r.description,
        Policy::load("default").unwrap().description(),
        "description inherited"
    );
}

#[test]
fn extends_files_relative_cycles_and_depth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(
        d.join("base.toml"),
        "extends = \"offline\"\n[limits]\npids = 7\n",
    )
    .unwrap();
    std::fs::write(d.join("sub/child.toml"), "extends = \"../base.toml\"\n").unwrap();
    let p = Policy::load(d.join("sub/child.toml").to_str().unwrap()).unwrap();
    assert_eq!(p.origins().len(), 4, "{:?}", p.origins());
    assert_eq!(p.files().nth(2).unwrap().limits.pids, Some(7));

    std::fs::write(d.join("a.toml"), "extends = \"b.toml\"\n").unwrap();
    std::fs::write(d.join("b.toml"), "extends = \"./a.toml\"\n").unwrap();
    let err = Policy::load(d.join("a.toml").to_str().unwrap()).unwrap_err();
    assert!(
        matches!(err, PolicyError::ExtendsCycle { ref chain } if chain.len() == 3),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("extends cycle: "), "{err}");

    std::fs::write(d.join("self.toml"), "extends = \"self.toml\"\n").unwrap();
    assert!(matches!(
        Policy::load(d.join("self.toml").to_str().unwrap()),
        Err(PolicyError::ExtendsCycle { .. })
    ));

    for i in 0..20 {
        std::fs::write(
            d.join(format!("c{i}.toml")),
            format!("extends = \"c{}.toml\"\n", i + 1),
        )
        .unwrap();
    }
    std::fs::write(d.join("c20.toml"), "").unwrap();
    let err = Policy::load(d.join("c0.toml").to_str().unwrap()).unwrap_err();
    assert!(
        matches!(err, PolicyError::ExtendsTooDeep { limit: 16, .. }),
        "{err:?}"
    );

    let err = Policy::load(d.join("missing.toml").to_str().unwrap()).unwrap_err();
    assert!(matches!(err, PolicyError::Read { .. }), "{err:?}");
    let err = Policy::load("nope").unwrap_err();
    assert!(matches!(err, PolicyError::UnknownPreset { ref name } if name == "nope"));
    assert!(
        err.to_string().contains("default, agent, build, offline"),
        "{err}"
    );
    let err = Policy::from_toml("extends = \"nope\"", "x").unwrap_err();
    assert!(matches!(err, PolicyError::UnknownPreset { .. }));
}

#[test]
fn variables_expand_and_undefined_ones_are_named() {
    let f = fake();
    let text = "[filesystem]\nread_only = [\"/usr\", \"${HOME}\", \"~/project/${FOO}\", \"/run/user/${UID}/${USER}\"]\ntmpfs = [\"${CWD}/x/../y\"]\n";
    let mut env = f.env.clone();
    std::fs::create_dir(f.project.join("foo")).unwrap();
    let run = f.home.join("run");
    env.vars
        .insert("RUNDIR".into(), run.to_str().unwrap().into());
    let r = resolve_text(
        text.replace("/run/user", "${RUNDIR}").as_str(),
        &no_overrides(),
        &env,
    );
    // ${RUNDIR}/1000/ada does not exist: the message names the key, the file and the path.
    let err = r.unwrap_err();
    let PolicyError::MissingPath {
        ref key,
        ref origin,
        ref path,
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(key, "filesystem.read_only[3]");
    assert_eq!(origin.as_deref(), Some("/cfg/test.toml"));
    assert_eq!(*path, run.join("1000/ada"));
    std::fs::create_dir_all(run.join("1000/ada")).unwrap();
    let r = resolve_text(
        text.replace("/run/user", "${RUNDIR}").as_str(),
        &no_overrides(),
        &env,
    )
    .unwrap();
    assert_eq!(
        paths(&r.filesystem.read_only),
        [
            Path::new("/usr"),
            &f.home,
            &f.project.join("foo"),
            &run.join("1000/ada")
        ]
    );
    assert_eq!(r.filesystem.tmpfs, [f.project.join("y")]);

    let err = resolve_text(
        "[filesystem]\ndeny = [\"/a\", \"${NOPE}/x\"]\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap_err();
    assert!(
        matches!(err, PolicyError::UndefinedVariable { ref key, ref variable, .. } if key == "filesystem.deny[1]" && variable == "NOPE"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "filesystem.deny[1] in /cfg/test.toml: \"${NOPE}/x\": undefined variable ${NOPE}"
    );
    let mut env = f.env.clone();
    env.home = None;
    let err = Policy::load("agent")
        .unwrap()
        .resolve(&no_overrides(), &env)
        .unwrap_err();
    assert!(
        matches!(err, PolicyError::UndefinedVariable { ref variable, .. } if variable == "HOME"),
        "{err:?}"
    );
    let err = resolve_text(
        "",
        &Overrides {
            rw: vec!["${NOPE}".into()],
            ..no_overrides()
        },
        &f.env,
    )
    .unwrap_err();
    assert!(
        matches!(err, PolicyError::UndefinedVariable { ref key, origin: None, .. } if key == "--rw"),
        "{err:?}"
    );
    let err = resolve_text(
        "[filesystem]\ndeny = [\"$HOME/x\"]\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap_err();
    assert_eq!(invalid_key(&err), "filesystem.deny[0]");
}

#[test]
fn relative_and_missing_paths() {
    let f = fake();
    let err = resolve_text(
        "[filesystem]\nread_only = [\"usr\"]\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap_err();
    assert_eq!(invalid_key(&err), "filesystem.read_only[0]");
    assert!(err.to_string().contains("absolute"), "{err}");
    let err = resolve_text("[process]\ncwd = \"src\"\n", &no_overrides(), &f.env).unwrap_err();
    assert_eq!(invalid_key(&err), "process.cwd");

    let text = "[filesystem]\nread_only = [{ path = \"/nonexistent/x\", optional = true }]\nread_write = [\"/nonexistent/y\"]\n";
    let err = resolve_text(text, &no_overrides(), &f.env).unwrap_err();
    assert!(
        matches!(err, PolicyError::MissingPath { ref key, .. } if key == "filesystem.read_write[0]"),
        "{err:?}"
    );
    let text = "[filesystem]\nread_only = [{ path = \"/nonexistent/x\", optional = true }]\ndeny = [\"/nonexistent/z\"]\n";
    let r = resolve_text(text, &no_overrides(), &f.env).unwrap();
    assert_eq!(
        r.filesystem.read_only,
        [PathRule {
            path: "/nonexistent/x".into(),
            optional: true
        }]
    );
    assert_eq!(r.filesystem.deny, [PathBuf::from("/nonexistent/z")]);

    // Flags may be relative to the current directory.
    std::fs::create_dir(f.project.join("out")).unwrap();
    let ov = Overrides {
        rw: vec!["./out/".into()],
        ro: vec!["../project".into()],
        ..no_overrides()
    };
    let r = resolve_text("", &ov, &f.env).unwrap();
    assert_eq!(paths(&r.filesystem.read_write), [f.project.join("out")]);
    assert_eq!(paths(&r.filesystem.read_only), [f.project.as_path()]);
}

#[test]
fn globs_expand_against_the_host() {
    let f = fake();
    for name in [
        "ssh_host_rsa_key",
        "ssh_host_rsa_key.pub",
        "ssh_host_ed25519_key",
    ] {
        std::fs::write(f.project.join(name), "").unwrap();
    }
    let text = "[filesystem]\ndeny = [\"${CWD}/*_key\", \"${CWD}/nothing*\"]\n";
    let r = resolve_text(text, &no_overrides(), &f.env).unwrap();
    assert_eq!(
        r.filesystem.deny,
        [
            f.project.join("ssh_host_ed25519_key"),
            f.project.join("ssh_host_rsa_key")
        ]
    );
    let err = resolve_text(
        "[filesystem]\nread_only = [\"${CWD}/none*\"]\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap_err();
    assert!(matches!(err, PolicyError::MissingPath { .. }), "{err:?}");
}

#[test]
fn sizes_and_durations() {
    for (text, bytes) in [
        ("512M", 512 << 20),
        ("2G", 2 << 30),
        ("1.5G", 3 << 29),
        ("4096", 4096),
        ("64k", 64 << 10),
        ("2GiB", 2 << 30),
        ("1mb", 1 << 20),
        ("0", 0),
        (" 1T ", 1 << 40),
    ] {
        assert_eq!(parse_size(text), Ok(bytes), "{text}");
    }
    for text in [
        "-5",
        "12Q",
        "",
        "M",
        "1..5G",
        "1.5.G",
        "G1",
        "99999999999999999999T",
        "1e3",
        "NaN",
        "1 G x",
    ] {
        assert!(parse_size(text).is_err(), "{text:?} accepted");
    }
    for (text, d) in [
        ("30s", Duration::from_secs(30)),
        ("10m", Duration::from_secs(600)),
        ("1h", Duration::from_secs(3600)),
        ("500ms", Duration::from_millis(500)),
        ("1h30m", Duration::from_secs(5400)),
        ("1.5h", Duration::from_secs(5400)),
        ("2d", Duration::from_secs(172_800)),
        ("45", Duration::from_secs(45)),
    ] {
        assert_eq!(parse_duration(text), Ok(d), "{text}");
    }
    for text in [
        "banana", "", "-1s", "10x", "s", "1h30", "10 m", "99999d", "1.s5",
    ] {
        assert!(parse_duration(text).is_err(), "{text:?} accepted");
    }
    for bytes in [0, 1, 1023, 1024, 512 << 20, 3 << 29, (1 << 40) + 1] {
        assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
    }
    for ms in [1, 999, 1000, 59_000, 60_000, 90_000, 3_600_000, 5_400_000] {
        let d = Duration::from_millis(ms);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{ms}ms");
    }
    assert_eq!(format_size(512 << 20), "512M");
    assert_eq!(format_duration(Duration::from_secs(600)), "10m");
}

#[test]
fn limits_validate_naming_the_key_or_flag() {
    let f = fake();
    type SetFlag = fn(&mut Overrides, String);
    let bad_flags: [(&str, SetFlag, &str); 11] = [
        ("--memory", |o, v| o.memory = Some(v), "-5"),
        ("--memory", |o, v| o.memory = Some(v), "12Q"),
        ("--memory", |o, v| o.memory = Some(v), "0"),
        ("--memory", |o, v| o.memory = Some(v), "8M"),
        ("--cpus", |o, v| o.cpus = Some(v), "0"),
        ("--cpus", |o, v| o.cpus = Some(v), "NaN"),
        ("--cpus", |o, v| o.cpus = Some(v), "-1"),
        ("--pids", |o, v| o.pids = Some(v), "0"),
        ("--pids", |o, v| o.pids = Some(v), "ten"),
        ("--timeout", |o, v| o.timeout = Some(v), "banana"),
        ("--timeout", |o, v| o.timeout = Some(v), "0s"),
    ];
    for (flag, set, value) in bad_flags {
        let mut ov = no_overrides();
        set(&mut ov, value.to_owned());
        let err = resolve_text("", &ov, &f.env).unwrap_err();
        assert_eq!(invalid_key(&err), flag, "{value}");
        assert!(
            err.to_string()
                .starts_with(&format!("{flag}: \"{value}\": ")),
            "{err}"
        );
    }
    let err = resolve_text(
        "",
        &Overrides {
            memory: Some("8M".into()),
            ..no_overrides()
        },
        &f.env,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("below what the sandbox itself needs"),
        "{err}"
    );

    for (text, key) in [
        ("[limits]\nmemory = \"1K\"\n", "limits.memory"),
        ("[limits]\nmemory = -5\n", "limits.memory"),
        ("[limits]\ncpus = 0.0\n", "limits.cpus"),
        ("[limits]\ncpus = inf\n", "limits.cpus"),
        ("[limits]\npids = 0\n", "limits.pids"),
        ("[limits]\ntimeout = \"soon\"\n", "limits.timeout"),
        ("[limits]\nopen_files = 0\n", "limits.open_files"),
        ("[limits]\nfile_size = \"1Q\"\n", "limits.file_size"),
        ("[limits]\ncore = \"x\"\n", "limits.core"),
    ] {
        let err = resolve_text(text, &no_overrides(), &f.env).unwrap_err();
        assert_eq!(invalid_key(&err), key, "{text}");
        assert!(
            err.to_string()
                .starts_with(&format!("{key} in /cfg/test.toml: ")),
            "{err}"
        );
    }

    let text = "[limits]\nmemory = \"1G\"\ncpus = 1.5\npids = 100\ntimeout = \"10m\"\nopen_files = 1024\nfile_size = \"1G\"\nbest_effort = true\n";
    let ov = Overrides {
        memory: Some("512M".into()),
        timeout: Some("30s".into()),
        ..no_overrides()
    };
    let l = resolve_text(text, &ov, &f.env).unwrap().limits;
    assert_eq!(
        l,
        Limits {
            memory: Some(512 << 20),
            cpus: Some(1.5),
            pids: Some(100),
            timeout: Some(Duration::from_secs(30)),
            open_files: Some(1024),
            file_size: Some(1 << 30),
            core: 0,
            best_effort: true,
        }
    );
}

#[test]
fn the_working_directory_rule() {
    let f = fake();
    let default = Policy::load("default").unwrap();
    let at = |cwd: &Path| {
        let env = Environment {
            cwd: Some(cwd.to_path_buf()),
            ..f.env.clone()
        };
        default.resolve(&no_overrides(), &env)
    };
    assert!(at(&f.project).is_ok());
    for cwd in [
        Path::new("/"),
        &f.home,
        f.home.parent().unwrap(),
        Path::new("/usr"),
        Path::new("/etc"),
        Path::new("/lib"),
        Path::new("/proc"),
        Path::new("/home"),
    ] {
        let err = at(cwd).unwrap_err();
        let PolicyError::WorkingDirectory {
            ref key, ref path, ..
        } = err
        else {
            panic!("{cwd:?}: {err:?}")
        };
        assert_eq!(key, "filesystem.read_write[0]");
        assert_eq!(path, cwd);
        assert!(err.to_string().contains("refusing to share"), "{err}");
    }
    // A subdirectory of a system directory is not the system directory.
    assert!(at(Path::new("/usr/share")).is_ok());
    // --cwd moves ${CWD}, so the rule follows it.
    let ov = Overrides {
        cwd: Some(f.home.to_str().unwrap().into()),
        ..no_overrides()
    };
    assert!(matches!(
        default.resolve(&ov, &f.env),
        Err(PolicyError::WorkingDirectory { .. })
    ));
    // Named explicitly, the directory may be shared.
    let env = Environment {
        cwd: Some("/".into()),
        ..f.env.clone()
    };
    let ov = Overrides {
        rw: vec![f.home.to_str().unwrap().into()],
        ..no_overrides()
    };
    let r = resolve_text("[filesystem]\nread_write = [\"/tmp\"]\n", &ov, &env).unwrap();
    assert_eq!(
        paths(&r.filesystem.read_write),
        [Path::new("/tmp"), &f.home]
    );
}

#[test]
fn overrides_win() {
    let f = fake();
    let agent = Policy::load("agent").unwrap();
    let r = agent.resolve(&no_overrides(), &f.env).unwrap();
    assert_eq!(r.network.mode, NetworkMode::Host);
    assert_eq!(r.network.connect_tcp, [443, 53]);
    assert!(r.filesystem.deny.contains(&f.home.join(".ssh")));
    assert!(r.filesystem.deny.contains(&f.project.join(".env")));
    assert!(r.filesystem.tmpfs.contains(&f.home));

    std::fs::create_dir(f.project.join("sub")).unwrap();
    let ov = Overrides {
        ro: vec![f.project.to_str().unwrap().into()],
        rw: vec!["/etc".into()],
        deny: vec!["secret".into()],
        tmpfs: vec!["/var/tmp".into()],
        net: Some("none".into()),
        cwd: Some("sub".into()),
        env: vec!["A=1".into(), "EMPTY=".into()],
        pass_env: vec!["RUST_LOG".into()],
        memory: Some("1G".into()),
        cpus: Some("2".into()),
        pids: Some("64".into()),
        timeout: Some("2s".into()),
        isolation: Some("landlock".into()),
    };
    let r = agent.resolve(&ov, &f.env).unwrap();
    assert_eq!(r.isolation, Isolation::Landlock);
    assert_eq!(
        r.network,
        ResolvedNetwork::default(),
        "--net none drops the port lists"
    );
    assert_eq!(r.process.cwd, f.project.join("sub"));
    // --cwd moved ${CWD}: the default's read-write entry now is sub; --ro moved project to read_only.
    assert!(paths(&r.filesystem.read_write).contains(&f.project.join("sub").as_path()));
    assert!(paths(&r.filesystem.read_only).contains(&f.project.as_path()));
    assert!(paths(&r.filesystem.read_write).contains(&Path::new("/etc")));
    assert!(
        !paths(&r.filesystem.read_only).contains(&Path::new("/etc")),
        "--rw /etc leaves read_only"
    );
    assert!(
        r.filesystem.deny.contains(&f.project.join("secret")),
        "relative to the caller's directory"
    );
    assert!(r.filesystem.deny.contains(&f.project.join("sub/.env")));
    assert!(r.filesystem.tmpfs.contains(&PathBuf::from("/var/tmp")));
    assert!(r.process.env_set.contains(&("A".into(), "1".into())));
    assert!(r.process.env_set.contains(&("EMPTY".into(), String::new())));
    assert!(r.process.env_pass.contains(&"RUST_LOG".into()));
    assert!(r.process.env_pass.contains(&"ANTHROPIC_API_KEY".into()));
    assert_eq!(
        (r.limits.memory, r.limits.cpus, r.limits.pids),
        (Some(1 << 30), Some(2.0), Some(64))
    );
    assert_eq!(r.limits.timeout, Some(Duration::from_secs(2)));

    for (ov, flag) in [
        (
            Overrides {
                net: Some("hots".into()),
                ..no_overrides()
            },
            "--net",
        ),
        (
            Overrides {
                isolation: Some("docker".into()),
                ..no_overrides()
            },
            "--isolation",
        ),
        (
            Overrides {
                env: vec!["NOEQUALS".into()],
                ..no_overrides()
            },
            "--env",
        ),
        (
            Overrides {
                env: vec!["1A=x".into()],
                ..no_overrides()
            },
            "--env",
        ),
        (
            Overrides {
                pass_env: vec!["A-B".into()],
                ..no_overrides()
            },
            "--pass-env",
        ),
        (
            Overrides {
                ro: vec!["".into()],
                ..no_overrides()
            },
            "--ro",
        ),
    ] {
        let err = agent.resolve(&ov, &f.env).unwrap_err();
        assert_eq!(invalid_key(&err), flag, "{err}");
    }
}

#[test]
fn read_only_and_read_write_settle_by_layer() {
    let f = fake();
    // A later file moves /etc to read_write; the same file listing both is an error.
    let r = resolve_text(
        "extends = \"default\"\n[filesystem]\nread_write = [\"/etc\"]\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap();
    assert!(!paths(&r.filesystem.read_only).contains(&Path::new("/etc")));
    assert!(paths(&r.filesystem.read_write).contains(&Path::new("/etc")));
    let err = resolve_text(
        "[filesystem]\nread_write = [\"/etc\"]\nread_only = [\"/etc/\"]\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap_err();
    assert_eq!(invalid_key(&err), "filesystem.read_write[0]");
    // Duplicates collapse.
    let r = resolve_text(
        "extends = \"default\"\n[filesystem]\nread_only = [\"/usr\"]\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap();
    assert_eq!(
        paths(&r.filesystem.read_only)
            .iter()
            .filter(|p| **p == Path::new("/usr"))
            .count(),
        1
    );
    // The same for seccomp allow/deny.
    let r = resolve_text(
        "extends = \"offline\"\n[seccomp]\nallow = [\"ptrace\"]\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap();
    assert_eq!(r.seccomp.allow, ["ptrace"]);
    let err = resolve_text(
        "[seccomp]\nallow = [\"ptrace\"]\ndeny = [\"ptrace\"]\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap_err();
    assert_eq!(invalid_key(&err), "seccomp.allow[0]");
    let err = resolve_text(
        "[seccomp]\nallow = [\"Ptrace!\"]\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap_err();
    assert_eq!(invalid_key(&err), "seccomp.allow[0]");
}

#[test]
fn process_keys_validate() {
    let f = fake();
    let r = resolve_text(
        "[process]\ncapabilities = [\"net_bind_service\", \"CAP_NET_BIND_SERVICE\", \"cap_chown\"]\nuid = 0\nhostname = \"box-1\"\nenv = { set = { A = \"x\" } }\n",
        &Overrides { env: vec!["A=y".into()], ..no_overrides() },
        &f.env,
    )
    .unwrap();
    assert_eq!(
        r.process.capabilities,
        ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]
    );
    assert_eq!(r.process.uid, Some(0));
    assert_eq!(r.process.gid, None);
    assert_eq!(r.process.hostname, "box-1");
    assert_eq!(
        r.process.env_set,
        [("A".to_string(), "y".to_string())],
        "--env wins"
    );
    assert_eq!(capability_number("CAP_CHECKPOINT_RESTORE"), Some(40));

    for (text, key) in [
        (
            "[process]\ncapabilities = [\"CAP_NET_BIND_SERVICE\", \"CAP_FLY\"]\n",
            "process.capabilities[1]",
        ),
        (
            "[sandbox]\nisolation = \"landlock\"\n[process]\ncapabilities = [\"CAP_CHOWN\"]\n",
            "process.capabilities[0]",
        ),
        ("[process]\nhostname = \"a b\"\n", "process.hostname"),
        ("[process]\nuid = 4294967295\n", "process.uid"),
        (
            "[process]\nenv = { set = { \"1X\" = \"v\" } }\n",
            "process.env.set.1X",
        ),
        (
            "[process]\nenv = { pass = [\"OK\", \"NOT OK\"] }\n",
            "process.env.pass[1]",
        ),
        ("[network]\nconnect_tcp = [443]\n", "network.connect_tcp[0]"),
        (
            "[network]\nmode = \"host\"\nbind_tcp = [0]\n",
            "network.bind_tcp[0]",
        ),
        ("[filesystem]\ntmpfs = [\"/\"]\n", "filesystem.tmpfs[0]"),
    ] {
        let err = resolve_text(text, &no_overrides(), &f.env).unwrap_err();
        assert_eq!(invalid_key(&err), key, "{text}");
    }
    // A later `mode = "none"` drops earlier port lists.
    let r = resolve_text(
        "extends = \"agent\"\n[network]\nmode = \"none\"\n",
        &no_overrides(),
        &f.env,
    )
    .unwrap();
    assert!(r.network.connect_tcp.is_empty());
}

#[test]
fn every_preset_parses_resolves_and_round_trips() {
    let f = fake();
    assert_eq!(
        Policy::builtin_names(),
        ["default", "agent", "build", "offline"]
    );
    for name in Policy::builtin_names() {
        let policy = Policy::load(name).unwrap();
        assert!(
            !policy.description().is_empty(),
            "{name} has no description"
        );
        assert!(Policy::builtin_text(name).unwrap().contains("description"));
        let r = policy
            .resolve(&no_overrides(), &f.env)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.process.cwd, f.project);
        assert!(
            paths(&r.filesystem.read_write).contains(&f.project.as_path()),
            "{name}"
        );
        assert!(
            r.filesystem.deny.contains(&PathBuf::from("/etc/shadow")),
            "{name}"
        );
        assert_eq!(r.filesystem.tmpfs[0], Path::new("/tmp"));
        // Written back as TOML, it loads to the same policy.
        let text = r.to_toml().unwrap();
        let again = Policy::from_toml(&text, "shown")
            .unwrap()
            .resolve(&no_overrides(), &f.env)
            .unwrap();
        assert_eq!(again, r, "{name}:\n{text}");
    }
    let default = Policy::load("default")
        .unwrap()
        .resolve(&no_overrides(), &f.env)
        .unwrap();
    assert_eq!(default.network.mode, NetworkMode::None);
    assert_eq!(default.process.hostname, "sandbox");
    assert!(default.process.capabilities.is_empty());
    assert!(!paths(&default.filesystem.read_only)
        .iter()
        .any(|p| p.starts_with(&f.home) && *p != f.project));
    let offline = Policy::load("offline")
        .unwrap()
        .resolve(&no_overrides(), &f.env)
        .unwrap();
    assert_eq!(offline.seccomp.profile, SeccompProfile::Strict);
    let build = Policy::load("build")
        .unwrap()
        .resolve(&no_overrides(), &f.env)
        .unwrap();
    assert!(
        build.limits.best_effort && build.limits.memory.is_some() && build.limits.timeout.is_some()
    );
}

#[test]
fn default_expands_host_keys() {
    let f = fake();
    let r = Policy::load("default")
        .unwrap()
        .resolve(&no_overrides(), &f.env)
        .unwrap();
    let keys: Vec<_> = std::fs::read_dir("/etc/ssh")
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("_key"))
                .collect()
        })
        .unwrap_or_default();
    if keys.is_empty() {
        println!("skipped: /etc/ssh host keys: none on this host");
        return;
    }
    for key in keys {
        assert!(r.filesystem.deny.contains(&key), "{key:?} not denied");
    }
}

#[test]
fn from_process_reads_the_caller() {
    let env = Environment::from_process();
    assert_eq!(env.uid, nix::unistd::getuid().as_raw());
    assert_eq!(env.cwd, std::env::current_dir().ok());
    assert!(env.home.is_some());
}

#[test]
fn passwd_fallback_agrees_with_the_user_database() {
    // /etc/passwd is what glibc's "files" source reads: for root and the caller both agree.
    for uid in [0, nix::unistd::getuid().as_raw()] {
        let nss = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .unwrap()
            .unwrap();
        assert_eq!(
            super::passwd_entry(uid),
            Some((nss.name, nss.dir)),
            "uid {uid}"
        );
    }
    assert_eq!(super::passwd_entry(u32::MAX - 7), None);
}

/// The README's policy reference section.
fn readme_section() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("<!-- policy-reference:start -->")
        .expect("start marker");
    let end = text
        .find("<!-- policy-reference:end -->")
        .expect("end marker");
    text[start..end].to_owned()
}

/// Every dotted key of the model, read off a `PolicyFile` with every field set (a field added
/// to the model without being added here does not compile).
fn model_keys() -> Vec<String> {
    let full = PolicyFile {
        description: Some("d".into()),
        extends: Some("default".into()),
        sandbox: SandboxSection {
            isolation: Some(Isolation::Landlock),
        },
        process: ProcessSection {
            cwd: Some("/".into()),
            uid: Some(1),
            gid: Some(1),
            capabilities: vec!["CAP_CHOWN".into()],
            hostname: Some("h".into()),
            env: EnvSection {
                set: [("K".into(), "V".into())].into(),
                pass: vec!["P".into()],
            },
        },
        filesystem: FilesystemSection {
            read_only: vec![PathEntry::required("/")],
            read_write: vec![PathEntry::required("/")],
            write_only: vec![PathEntry::required("/")],
            deny: vec!["/".into()],
            tmpfs: vec!["/".into()],
            exec: vec!["/".into()],
        },
        network: NetworkSection {
            mode: Some(NetworkMode::Host),
            connect_tcp: vec![1],
            bind_tcp: vec![1],
        },
        seccomp: SeccompSection {
            profile: Some(SeccompProfile::Strict),
            allow: vec!["a".into()],
            deny: vec!["b".into()],
            action: Some(SeccompAction::Kill),
        },
        landlock: LandlockSection {
            best_effort: Some(true),
        },
        limits: LimitsSection {
            memory: Some("1G".into()),
            cpus: Some(1.0),
            pids: Some(1),
            timeout: Some("1s".into()),
            open_files: Some(1),
            file_size: Some("1".into()),
            core: Some("0".into()),
            best_effort: Some(true),
        },
    };
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            let dotted = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(t) if dotted != "process.env.set" => walk(&dotted, t, out),
                _ => out.push(dotted),
            }
        }
    }
    let table: toml::Table = toml::from_str(&toml::to_string(&full).unwrap()).unwrap();
    let mut keys = Vec::new();
    walk("", &table, &mut keys);
    keys
}

#[test]
fn readme_documents_every_key() {
    let section = readme_section();
    let keys = model_keys();
    assert_eq!(keys.len(), 32, "{keys:?}");
    for key in &keys {
        assert!(
            section.contains(&format!("| `{key}` |")),
            "README policy reference lacks a row for `{key}`"
        );
    }
    for name in Policy::builtin_names() {
        assert!(
            section.contains(&format!("- `{name}`: ")),
            "README lacks preset {name}"
        );
    }
}

#[test]
fn readme_examples_parse() {
    let section = readme_section();
    let mut blocks = 0;
    for (i, chunk) in section.split("```toml\n").skip(1).enumerate() {
        let block = chunk.split("```").next().unwrap();
        Policy::from_toml(block, &format!("README.md toml block {i}"))
            .unwrap_or_else(|e| panic!("{e}"));
        blocks += 1;
    }
    assert!(blocks >= 3, "{blocks} toml blocks");
}
