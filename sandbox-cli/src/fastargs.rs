//! `sandbox run`'s usual argument lists, parsed without building clap's command tree.
//!
//! clap's derive builds every subcommand, argument and help string before it looks at argv:
//! ~80 µs of a ~3 ms launch (bench/README.md), paid on every command an agent runs. This
//! parser accepts only plain forms (`--flag value`, `--flag=value`, `-p value`, `--`, the
//! command) and returns `None` for anything else — help, unknown or repeated flags, values
//! that look like flags — so clap, which stays the definition of the CLI, parses those and
//! produces its usual messages. A test checks that both agree on every list this one accepts.

use std::ffi::OsString;

use crate::RunArgs;

/// Parse `args` (without the program name) if it is a plain `run` invocation.
pub(crate) fn parse_run(args: &[OsString]) -> Option<RunArgs> {
    let (first, rest) = args.split_first()?;
    if first != "run" {
        return None;
    }
    let mut run = RunArgs {
        policy: "default".into(),
        ro: Vec::new(),
        rw: Vec::new(),
        deny: Vec::new(),
        tmpfs: Vec::new(),
        net: None,
        cwd: None,
        env: Vec::new(),
        pass_env: Vec::new(),
        memory: None,
        cpus: None,
        pids: None,
        timeout: None,
        isolation: None,
        report: None,
        command: Vec::new(),
    };
    let mut policy_seen = false;
    let mut i = 0;
    while i < rest.len() {
        let raw = &rest[i];
        if raw == "--" {
            run.command = rest[i + 1..].to_vec();
            break;
        }
        if !raw.as_encoded_bytes().starts_with(b"-") {
            // The first positional starts the command; everything after it belongs to it.
            run.command = rest[i..].to_vec();
            break;
        }
        let arg = raw.to_str()?;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (arg, None),
        };
        let hyphen_values = matches!(name, "--memory" | "--cpus" | "--pids" | "--timeout");
        let value: String = match inline {
            Some(v) => v.to_owned(),
            None => {
                i += 1;
                rest.get(i)?.to_str()?.to_owned()
            }
        };
        if value.is_empty() || (value.starts_with('-') && !hyphen_values) {
            return None;
        }
        let single = |slot: &mut Option<String>| -> Option<()> {
            if slot.is_some() {
                return None;
            }
            *slot = Some(value.clone());
            Some(())
        };
        match name {
            "-p" | "--policy" => {
                if policy_seen {
                    return None;
                }
                policy_seen = true;
                run.policy = value.clone();
            }
            "--ro" => run.ro.push(value.clone()),
            "--rw" => run.rw.push(value.clone()),
            "--deny" => run.deny.push(value.clone()),
            "--tmpfs" => run.tmpfs.push(value.clone()),
            "--env" => run.env.push(value.clone()),
            "--pass-env" => run.pass_env.push(value.clone()),
            "--net" => single(&mut run.net)?,
            "--cwd" => single(&mut run.cwd)?,
            "--memory" => single(&mut run.memory)?,
            "--cpus" => single(&mut run.cpus)?,
            "--pids" => single(&mut run.pids)?,
            "--timeout" => single(&mut run.timeout)?,
            "--isolation" => single(&mut run.isolation)?,
            "--report" => single(&mut run.report)?,
            _ => return None,
        }
        i += 1;
    }
    // clap requires a command, and reports its absence itself.
    if run.command.is_empty() {
        return None;
    }
    Some(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Commands};
    use clap::Parser;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn clap_run(args: &[OsString]) -> Option<RunArgs> {
        let argv = std::iter::once(OsString::from("sandbox")).chain(args.iter().cloned());
        match Cli::try_parse_from(argv).ok()?.command {
            Commands::Run(run) => Some(*run),
            _ => None,
        }
    }

    /// Every argument list the fast path accepts, clap parses to the same thing.
    fn agree(args: &[OsString]) -> bool {
        match parse_run(args) {
            Some(fast) => {
                let slow = clap_run(args)
                    .unwrap_or_else(|| panic!("fast path accepted what clap rejects: {args:?}"));
                assert_eq!(fast, slow, "{args:?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn agrees_with_clap_on_generated_lists() {
        let flags: &[&[&str]] = &[
            &[],
            &["--ro", "/opt"],
            &["--ro=/opt", "--ro", "/srv"],
            &["--rw", "./out"],
            &["--deny", "/etc/x"],
            &["--tmpfs", "/cache"],
            &["--net", "host"],
            &["--net=none"],
            &["--cwd", "/tmp"],
            &["--env", "A=B", "--env=C=D"],
            &["--pass-env", "TERM"],
            &["--memory", "512M", "--pids", "64"],
            &["--memory", "-1"],
            &["--cpus=1.5", "--timeout", "10s"],
            &["--isolation", "landlock"],
            &["--report", "-"],
            &["-p", "agent"],
            &["--policy", "/x/y.toml", "--ro", "/a"],
            &["--policy=build"],
        ];
        let commands: &[&[&str]] = &[
            &["true"],
            &["--", "true"],
            &["--", "-x", "--ro", "y"],
            &["sh", "-c", "echo hi"],
            &["ls", "--ro", "/x", "--", "z"],
            &["make", "-j4"],
        ];
        let mut accepted = 0;
        for a in flags {
            for b in flags {
                for c in commands {
                    let mut args = vec!["run"];
                    args.extend_from_slice(a);
                    args.extend_from_slice(b);
                    args.extend_from_slice(c);
                    if agree(&os(&args)) {
                        accepted += 1;
                    }
                }
            }
        }
        // Most combinations are plain; the rest (a single-valued flag twice) go to clap.
        assert!(accepted > 1500, "{accepted}");
    }

    #[test]
    fn leaves_the_unusual_to_clap() {
        for args in [
            &["run"][..],
            &["run", "--"],
            &["run", "--help"],
            &["run", "-h"],
            &["run", "--ro"],
            &["run", "--ro", "--", "true"],
            &["run", "--ro", "-x", "true"],
            &["run", "--net", "host", "--net", "none", "true"],
            &["run", "-p", "a", "--policy", "b", "true"],
            &["run", "--bogus", "true"],
            &["run", "-pagent", "true"],
            &["run", "--ro=", "true"],
            &["doctor"],
            &["policy", "list"],
            &["--version"],
        ] {
            assert!(parse_run(&os(args)).is_none(), "{args:?}");
        }
    }

    #[test]
    fn keeps_non_utf8_command_words() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'a', 0xff, b'b']);
        let args = vec![OsString::from("run"), OsString::from("--"), odd.clone()];
        let fast = parse_run(&args).unwrap();
        assert_eq!(fast.command, vec![odd]);
        assert_eq!(Some(fast), clap_run(&args));
    }
}
