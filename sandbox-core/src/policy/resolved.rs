//! The resolved policy: every `extends` merged, every `${VAR}` expanded, every CLI override
//! applied and every value parsed into its type. The layers compile this into a launch plan.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the sandbox isolates the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// New user, mount, pid, ipc, uts, cgroup (and network) namespaces, plus every other layer.
    #[default]
    Namespaces,
    /// No namespaces: Landlock, seccomp, rlimits, setsid, fd closing and env scrubbing only.
    Landlock,
}

/// The network the command sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A new network namespace with only loopback.
    #[default]
    None,
    /// The host's network.
    Host,
}

/// A host path named by the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// Absolute, lexically normalised path (no `..`, no `.`).
    pub path: PathBuf,
    /// A missing optional path is skipped; a missing required path is an error.
    pub optional: bool,
}

/// `[process]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedProcess {
    /// Working directory of the command (inside the sandbox, same path as on the host).
    pub cwd: PathBuf,
    /// Variables set explicitly, in order.
    pub env_set: Vec<(String, String)>,
    /// Names of variables passed through from the caller's environment when set there.
    pub env_pass: Vec<String>,
    /// uid inside the sandbox; `None` means the caller's uid (65534 for a root caller).
    pub uid: Option<u32>,
    /// gid inside the sandbox; `None` means the caller's gid (65534 for a root caller).
    pub gid: Option<u32>,
    /// Capabilities kept inside the user namespace, canonical upper-case names (`CAP_NET_BIND_SERVICE`).
    pub capabilities: Vec<String>,
    /// Hostname inside the uts namespace.
    pub hostname: String,
}

/// `[filesystem]`, resolved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResolvedFilesystem {
    /// Visible read-only (and executable).
    pub read_only: Vec<PathRule>,
    /// Visible read-write.
    pub read_write: Vec<PathRule>,
    /// Hidden even inside a visible tree; a missing one cannot be created (Landlock).
    pub deny: Vec<PathBuf>,
    /// Fresh empty tmpfs mounts.
    pub tmpfs: Vec<PathBuf>,
    /// When non-empty, only these files/directories may be executed.
    pub exec: Vec<PathBuf>,
    /// Drop boxes: files may be created and written, not read back.
    pub write_only: Vec<PathRule>,
}

/// `[network]`, resolved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResolvedNetwork {
    /// none or host.
    pub mode: NetworkMode,
    /// With a shared network: TCP ports `connect` may reach (empty = any). Landlock ABI 4.
    pub connect_tcp: Vec<u16>,
    /// With a shared network: TCP ports `bind` may use (empty = any). Landlock ABI 4.
    pub bind_tcp: Vec<u16>,
}

/// `[seccomp] profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompProfile {
    /// Allowlist of what ordinary programs need (the spirit of Docker's default profile).
    #[default]
    Default,
    /// A smaller allowlist: no ptrace, no process_vm_*, no personality changes, …
    Strict,
    /// No seccomp filter.
    None,
}

/// `[seccomp] action`: what a denied syscall does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompAction {
    /// Fail with EPERM.
    #[default]
    Errno,
    /// Kill the process.
    Kill,
    /// Allow but log (audit).
    Log,
}

/// `[seccomp]`, resolved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeccompSettings {
    /// Base profile.
    pub profile: SeccompProfile,
    /// Syscall names added to the allowlist (validated names).
    pub allow: Vec<String>,
    /// Syscall names denied on top of the profile (validated names).
    pub deny: Vec<String>,
    /// What a denied call does.
    pub action: SeccompAction,
}

/// `[landlock]`, resolved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LandlockSettings {
    /// Run with what the kernel supports and report the rest, instead of failing.
    pub best_effort: bool,
}

/// `[limits]`, resolved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Limits {
    /// Bytes (memory.max); swap is off (memory.swap.max = 0).
    pub memory: Option<u64>,
    /// CPUs (cpu.max quota / period).
    pub cpus: Option<f64>,
    /// Processes/threads (pids.max).
    pub pids: Option<u64>,
    /// Wall-clock timeout.
    pub timeout: Option<Duration>,
    /// RLIMIT_NOFILE.
    pub open_files: Option<u64>,
    /// RLIMIT_FSIZE in bytes.
    pub file_size: Option<u64>,
    /// RLIMIT_CORE in bytes; 0 by default.
    pub core: u64,
    /// Without usable cgroups fall back to rlimits and report it, instead of failing.
    pub best_effort: bool,
}

/// A policy ready to compile into a launch plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPolicy {
    /// What the policy is for.
    pub description: String,
    /// `[sandbox] isolation`.
    pub isolation: Isolation,
    /// `[process]`.
    pub process: ResolvedProcess,
    /// `[filesystem]`.
    pub filesystem: ResolvedFilesystem,
    /// `[network]`.
    pub network: ResolvedNetwork,
    /// `[seccomp]`.
    pub seccomp: SeccompSettings,
    /// `[landlock]`.
    pub landlock: LandlockSettings,
    /// `[limits]`.
    pub limits: Limits,
}
