//! `sandbox`: run a command under a TOML policy. Argument parsing, policy loading and
//! reports only; every isolation decision lives in `sandbox-core`.

// The C `main` below skips std's runtime start-up: it reads /proc/self/maps to place a stack
// guard and sets up an alternate signal stack, ~0.1 ms of every launch (bench/README.md).
// What we keep of it: SIGPIPE ignored (errors instead of death) and stdout flushed at exit
// (after every command but `run`, which writes nothing there).
#![cfg_attr(not(test), no_main)]
// Under `cargo test` the harness's main runs instead, and the CLI's functions look unused.
#![cfg_attr(test, allow(dead_code))]

#[cfg(any(test, target_env = "musl"))]
mod arena;
mod doctor;
mod fastargs;
mod report;

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};
use sandbox_core::{Environment, Error, Overrides, Policy, Sandbox};

/// Run a command in a sandbox built from namespaces, seccomp, Landlock and cgroups.
#[derive(Parser)]
#[command(name = "sandbox", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run COMMAND in a sandbox.
    Run(Box<RunArgs>),
    /// Say what this host supports and which layers each built-in policy gets.
    Doctor {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Inspect policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// List the built-in policies.
    List,
    /// Check a policy (name or file): parse, merge, expand and validate it.
    Check {
        /// A built-in name or a path to a TOML file.
        policy: String,
        /// Also time load + resolve + compile (median of many runs).
        #[arg(long)]
        time: bool,
    },
    /// Print a policy's TOML source (built-in name or file).
    Show {
        /// A built-in name or a path to a TOML file.
        policy: String,
        /// Print the policy after `extends`, `${VARS}` and defaults are resolved, for this caller.
        #[arg(long)]
        resolved: bool,
    },
}

#[derive(Args, Debug, PartialEq)]
#[command(
    after_help = "Exit codes: the command's own; 128+N when killed by signal N (137: also \
the memory limit, the report says which); 124 timeout; 125 the sandbox failed (bad policy or \
flag, unusable path, missing kernel feature); 126 not executable; 127 not found.\n\
Examples:\n  sandbox run -- make test\n  sandbox run --policy agent -- claude\n  \
sandbox run --net host --memory 2G --pids 512 --timeout 10m -- npm ci"
)]
struct RunArgs {
    /// A built-in policy name or a TOML file.
    #[arg(long, short = 'p', default_value = "default", value_name = "NAME|FILE")]
    policy: String,
    /// Share PATH read-only (repeatable).
    #[arg(long, value_name = "PATH")]
    ro: Vec<String>,
    /// Share PATH read-write (repeatable).
    #[arg(long, value_name = "PATH")]
    rw: Vec<String>,
    /// Hide PATH, even inside a shared tree (repeatable).
    #[arg(long, value_name = "PATH")]
    deny: Vec<String>,
    /// Mount an empty tmpfs at PATH (repeatable).
    #[arg(long, value_name = "PATH")]
    tmpfs: Vec<String>,
    /// Network: `none` (only loopback) or `host`.
    #[arg(long, value_name = "none|host")]
    net: Option<String>,
    /// Working directory inside the sandbox.
    #[arg(long, value_name = "PATH")]
    cwd: Option<String>,
    /// Set an environment variable (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Pass an environment variable of the caller through (repeatable).
    #[arg(long, value_name = "KEY")]
    pass_env: Vec<String>,
    /// Memory limit, e.g. 512M, 2G.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory: Option<String>,
    /// CPU limit in CPUs, e.g. 1.5.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    cpus: Option<String>,
    /// Maximum number of processes and threads.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pids: Option<String>,
    /// Wall-clock timeout, e.g. 30s, 10m: the whole sandbox is killed and the exit code is 124.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    timeout: Option<String>,
    /// `namespaces` (default) or `landlock` (no namespaces: Landlock + seccomp + rlimits).
    #[arg(long, value_name = "MODE")]
    isolation: Option<String>,
    /// Write the JSON report to FILE (`-` for stderr).
    #[arg(long, value_name = "FILE")]
    report: Option<String>,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

// glibc's allocator stays: it reuses freed memory, and a bump bought no time there.
#[cfg(all(not(test), target_env = "musl"))]
#[global_allocator]
static ALLOCATOR: arena::LaunchArena = arena::LaunchArena::new();

#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: setting a signal disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // SAFETY: the C runtime passes argc valid NUL-terminated strings in argv.
    let args = unsafe { args_from_argv(argc, argv) };
    cli_main(args)
}

/// The program's arguments, program name first, read from `main`'s own parameters:
/// `std::env::args_os` is filled by std's runtime start-up on musl, which the C `main` skips.
///
/// # Safety
/// `argv` must hold `argc` valid NUL-terminated strings.
#[cfg(not(test))]
unsafe fn args_from_argv(argc: libc::c_int, argv: *const *const libc::c_char) -> Vec<OsString> {
    use std::os::unix::ffi::OsStrExt;
    let count = usize::try_from(argc).unwrap_or(0);
    (0..count)
        .map(|i| {
            // SAFETY: i < argc, and the caller vouches for each string.
            let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
            std::ffi::OsStr::from_bytes(arg.to_bytes()).to_os_string()
        })
        .collect()
}

fn cli_main(args: Vec<OsString>) -> libc::c_int {
    sandbox_core::trace::init();
    sandbox_core::trace::stamp("main");
    if let Some(run) = fastargs::parse_run(args.get(1..).unwrap_or_default()) {
        // `run` writes nothing to stdout: no flush, which would set up std's stdout (a few
        // page faults) only to find it empty.
        return finish(run_command(Box::new(run)));
    }
    let code = slow_path(args);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}

/// Every command line the fast parser does not take: clap, then the subcommand.
fn slow_path(args: Vec<OsString>) -> libc::c_int {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    finish(run(cli))
}

/// The process exit code for what a subcommand returned, printing its error.
fn finish(result: Result<i32, Error>) -> libc::c_int {
    match result {
        Ok(code) => code.clamp(0, 255),
        Err(e) => {
            eprintln!("sandbox: error: {e}");
            e.exit_code().clamp(0, 255)
        }
    }
}

fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Commands::Run(args) => run_command(args),
        Commands::Doctor { json } => Ok(doctor::doctor(json)),
        Commands::Policy(PolicyCommand::List) => {
            for name in Policy::builtin_names() {
                let description = Policy::load(name)
                    .map(|p| p.description().to_string())
                    .unwrap_or_default();
                println!("{name:10} {description}");
            }
            Ok(0)
        }
        Commands::Policy(PolicyCommand::Show { policy, resolved }) => {
            if resolved {
                let env = Environment::from_process();
                let policy = Policy::load(&policy)?.resolve(&Overrides::default(), &env)?;
                print!("{}", policy.to_toml()?);
            } else {
                match Policy::builtin_text(&policy) {
                    Some(text) => print!("{text}"),
                    None => print!(
                        "{}",
                        std::fs::read_to_string(&policy).map_err(|e| Error::Path {
                            key: "policy",
                            path: policy.clone().into(),
                            reason: e.to_string(),
                        })?
                    ),
                }
            }
            Ok(0)
        }
        Commands::Policy(PolicyCommand::Check { policy, time }) => {
            let env = Environment::from_process();
            let resolved = Policy::load(&policy)?.resolve(&Overrides::default(), &env)?;
            Sandbox::new(resolved.clone()).command("true").check()?;
            println!("{policy}: ok");
            if time {
                let mut samples = Vec::new();
                for _ in 0..200 {
                    let start = std::time::Instant::now();
                    let resolved = Policy::load(&policy)?.resolve(&Overrides::default(), &env)?;
                    Sandbox::new(resolved).command("true").check()?;
                    samples.push(start.elapsed());
                }
                samples.sort();
                println!(
                    "load+resolve+compile: median {:.3} ms, p90 {:.3} ms",
                    samples[samples.len() / 2].as_secs_f64() * 1e3,
                    samples[samples.len() * 9 / 10].as_secs_f64() * 1e3
                );
            }
            Ok(0)
        }
    }
}

fn run_command(args: Box<RunArgs>) -> Result<i32, Error> {
    let overrides = Overrides {
        ro: args.ro,
        rw: args.rw,
        deny: args.deny,
        tmpfs: args.tmpfs,
        net: args.net,
        cwd: args.cwd,
        env: args.env,
        pass_env: args.pass_env,
        memory: args.memory,
        cpus: args.cpus,
        pids: args.pids,
        timeout: args.timeout,
        isolation: args.isolation,
    };
    sandbox_core::trace::stamp("cli-parsed");
    let loaded = Policy::load(&args.policy)?;
    sandbox_core::trace::stamp("policy-loaded");
    let env = Environment::from_process();
    sandbox_core::trace::stamp("environment");
    let policy = loaded.resolve(&overrides, &env)?;
    sandbox_core::trace::stamp("policy-resolved");
    let limits = policy.limits.clone();
    let (program, rest) = args.command.split_first().ok_or_else(|| Error::NotFound {
        program: String::new(),
    })?;
    let sandbox = Sandbox::new(policy);
    let mut command = sandbox.command(program);
    let mut child = command
        .args(rest)
        .forward_signals(true)
        .terminal(true)
        .spawn()?;
    let outcome = child.wait()?;
    sandbox_core::trace::stamp("waited");
    report::summary(&outcome, &limits);
    if let Some(dest) = &args.report {
        report::write(dest, &args.policy, &args.command, &outcome)?;
    }
    // The process exits next: freeing the handle (the compiled plan in it), the builders, the
    // policy and the environment would only write to pages that were copied for pid 1, or
    // fault them in.
    let code = outcome.exit_code();
    std::mem::forget((child, command, sandbox, loaded, env));
    Ok(code)
}
