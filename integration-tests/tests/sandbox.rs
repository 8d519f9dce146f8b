//! Integration tests: launch real sandboxes through the `sandbox` CLI and attack them from
//! inside with the `probe` binary. Every attack test has a positive control in the same test.
//!
//! Environment:
//! - `SANDBOX_BIN`: the `sandbox` binary (default: this workspace's `sandbox-cli`, built by
//!   the harness into this test's target directory and profile);
//! - `SANDBOX_PROBE`: the `probe` binary (default: this package's);
//! - `SANDBOX_MUST_WORK=1`: a test whose kernel feature is missing fails instead of being skipped.
//!
//! Test names start with their area (`core::`, `seccomp::`, `landlock::`, `cgroup::`, …) so the
//! VM suite can select the kernel-dependent ones.

mod sandbox {
    pub mod core;
    pub mod doctor;
    pub mod limits;
    pub mod privilege;
    pub mod support;
}

use libtest_mimic::Arguments;

fn main() {
    let args = Arguments::from_args();
    let ctx = sandbox::support::Ctx::detect();
    let mut tests = Vec::new();
    sandbox::core::register(&ctx, &mut tests);
    sandbox::doctor::register(&ctx, &mut tests);
    sandbox::privilege::register(&ctx, &mut tests);
    sandbox::limits::register(&ctx, &mut tests);
    let conclusion = libtest_mimic::run(
        &args,
        tests.into_iter().map(|t| t.into_trial(&ctx)).collect(),
    );
    let _ = std::fs::remove_dir_all(&ctx.base);
    conclusion.exit();
}
