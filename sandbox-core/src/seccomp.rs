//! seccomp-BPF: compile the profile in the parent, install it last in the child.
//!
//! The profile is an allowlist over the syscall table of the native architecture
//! (`seccomp/profile.rs`, after Docker's default profile):
//! - allowed syscalls pass; syscalls the table knows but the profile does not allow fail with
//!   `EPERM` (or kill / log, per `[seccomp] action`);
//! - numbers the table does not know (gaps, anything above the highest known syscall, so every
//!   syscall added to a future kernel) fail with `ENOSYS`, so libc falls back to an older call;
//! - `clone3` fails with `ENOSYS` (its flags are behind a pointer): glibc retries with `clone`,
//!   whose flags the filter checks;
//! - `clone`/`unshare` with a namespace flag, `ioctl(TIOCSTI | TIOCLINUX)`, `personality` to
//!   anything but the default persona, and `socket` of `AF_PACKET`, `AF_VSOCK` or netlink audit
//!   are denied by argument checks (with `isolation = "landlock"` and no network, every socket
//!   family but `AF_UNIX` and netlink);
//! - any other architecture (i386 via `int 0x80`, arm32 compat) is killed, and on x86_64 x32
//!   numbers (`>= 0x40000000`) are killed.
//!
//! The filter is one program shaped as a binary search over syscall-number ranges
//! (`seccomp/bpf.rs`): ~250 instructions, ~10 executed per uncached syscall, and allowed
//! syscalls are answered from the kernel's action cache.

// Until launch.rs calls prepare/apply/status (remove then).

mod bpf;
mod packed;
mod profile;
mod tables;

use std::sync::{Arc, OnceLock};

use libc::sock_filter;
use nix::errno::Errno;

use crate::plan::LayerStatus;
use crate::policy::{
    Isolation, NetworkMode, ResolvedNetwork, SeccompAction, SeccompProfile, SeccompSettings,
};
use bpf::{Leaf, Rule, Rules, SocketRule};

/// A seccomp problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// `[seccomp] allow` or `deny` names a syscall no supported architecture has.
    #[error("{key}: unknown syscall `{name}`")]
    UnknownSyscall {
        /// `seccomp.allow` or `seccomp.deny`.
        key: &'static str,
        /// The name as written.
        name: String,
    },
    /// No syscall table for this architecture.
    #[error(
        "seccomp profiles exist for x86_64 and aarch64 only, not {arch}; \
         hint: set [seccomp] profile = \"none\""
    )]
    UnsupportedArch {
        /// The architecture this crate was built for.
        arch: &'static str,
    },
    /// The compiled program is longer than the kernel accepts (cannot happen with the
    /// built-in tables; kept so a future table fails loudly instead of at launch).
    #[error(
        "compiled seccomp filter has {len} instructions, more than the kernel's limit of {max}"
    )]
    FilterTooLarge {
        /// Instructions in the program.
        len: usize,
        /// `BPF_MAXINSNS`.
        max: usize,
    },
}

/// The compiled filter, ready to install; `None` for `profile = "none"`.
pub(crate) struct SeccompPlan {
    program: Option<Arc<[sock_filter]>>,
}

impl SeccompPlan {
    /// Instructions in the filter (0 without a filter).
    #[allow(dead_code)] // for reports and benchmarks
    pub(crate) fn instructions(&self) -> usize {
        self.program.as_ref().map_or(0, |p| p.len())
    }
}

impl std::fmt::Debug for SeccompPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompPlan")
            .field("instructions", &self.instructions())
            .finish()
    }
}

/// A syscall table and the audit architecture the kernel reports for it.
#[cfg_attr(not(test), allow(dead_code))] // both tables stay compiled and under test
struct Arch {
    name: &'static str,
    audit: u32,
    /// The names, numbers and built-in verdicts, resolved at build time.
    packed: packed::Table,
    /// The source list, for the tests (at run time, only `packed` exists).
    #[cfg(test)]
    table: &'static [(&'static str, u32)],
    /// First x32 syscall number (x86_64 only): this and everything above is killed.
    x32_base: Option<u32>,
}

const X86_64: Arch = Arch {
    name: "x86_64",
    audit: 0xC000_003E, // AUDIT_ARCH_X86_64
    packed: packed::X86_64.table(),
    #[cfg(test)]
    table: tables::X86_64,
    x32_base: Some(0x4000_0000), // __X32_SYSCALL_BIT
};

#[cfg_attr(not(any(test, target_arch = "aarch64")), allow(dead_code))]
const AARCH64: Arch = Arch {
    name: "aarch64",
    audit: 0xC000_00B7, // AUDIT_ARCH_AARCH64
    packed: packed::AARCH64.table(),
    #[cfg(test)]
    table: tables::AARCH64,
    x32_base: None,
};

#[cfg(target_arch = "x86_64")]
const NATIVE: Option<&Arch> = Some(&X86_64);
#[cfg(target_arch = "aarch64")]
const NATIVE: Option<&Arch> = Some(&AARCH64);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NATIVE: Option<&Arch> = None;

/// `SECCOMP_RET_ERRNO | ENOSYS`: what unknown syscall numbers get.
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// Filters compiled for settings without `allow`/`deny` lists, per (profile, action, variant):
/// every launch with the same settings reuses the same program.
static CACHE: [OnceLock<Arc<[sock_filter]>>; 36] = [const { OnceLock::new() }; 36];

/// Parent: validate the `allow`/`deny` names and compile the policy's profile.
///
/// `ptrace_confined`: another layer already keeps ptrace and its relatives
/// (`process_vm_*`, `kcmp`, `pidfd_getfd`, `process_madvise`) inside the sandbox — the pid
/// namespace, or in landlock isolation an enforced Landlock domain (Landlock refuses
/// `ptrace_may_access` across domains since ABI 1). Only then do debuggers keep them.
pub(crate) fn prepare(
    settings: &SeccompSettings,
    network: &ResolvedNetwork,
    isolation: Isolation,
    ptrace_confined: bool,
) -> Result<SeccompPlan, SeccompError> {
    validate_names("seccomp.allow", &settings.allow)?;
    validate_names("seccomp.deny", &settings.deny)?;
    let profile_index = match settings.profile {
        SeccompProfile::None => return Ok(SeccompPlan { program: None }),
        SeccompProfile::Default => 0,
        SeccompProfile::Strict => 1,
    };
    let arch = NATIVE.ok_or(SeccompError::UnsupportedArch {
        arch: std::env::consts::ARCH,
    })?;
    let program = if settings.allow.is_empty() && settings.deny.is_empty() {
        let index =
            (profile_index * 9 + action_index(settings.action) * 3 + variant(network, isolation))
                * 2
                + usize::from(ptrace_confined);
        match CACHE[index].get() {
            Some(program) => Arc::clone(program),
            None => {
                let program: Arc<[sock_filter]> =
                    compile(arch, settings, network, isolation, ptrace_confined)?.into();
                Arc::clone(CACHE[index].get_or_init(|| program))
            }
        }
    } else {
        compile(arch, settings, network, isolation, ptrace_confined)?.into()
    };
    Ok(SeccompPlan {
        program: Some(program),
    })
}

/// Child: install the filter, the last step before `execve`. Everything the child does after
/// this must be allowed by the profile: it is (`execve`, `write` to the error pipe,
/// `exit_group`, `close`, `close_range`, signals).
///
/// # Safety
/// Runs between clone and execve in a copy of a possibly multi-threaded process, under the
/// contract of `std::os::unix::process::CommandExt::pre_exec`: it allocates nothing, takes no
/// lock and cannot panic; it makes two raw syscalls on the program compiled by [`prepare`].
pub(crate) unsafe fn apply(plan: &SeccompPlan) -> Result<(), Errno> {
    let Some(program) = plan.program.as_deref() else {
        return Ok(());
    };
    let fprog = libc::sock_fprog {
        // prepare() checked the length against BPF_MAXINSNS (4096).
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl with integer arguments. Required before seccomp() without
    // CAP_SYS_ADMIN; the launcher has set it already, setting it again is harmless.
    if unsafe {
        libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    } != 0
    {
        return Err(Errno::last());
    }
    // SAFETY: `fprog` points to `program`, which outlives the call; the kernel copies the
    // program and never writes through the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            0 as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// What the plan enforces: `Enforced` with a filter, `Disabled` for `profile = "none"`.
pub(crate) fn status(plan: &SeccompPlan) -> LayerStatus {
    match plan.program {
        Some(_) => LayerStatus::Enforced,
        None => LayerStatus::Disabled,
    }
}

fn validate_names(key: &'static str, names: &[String]) -> Result<(), SeccompError> {
    for name in names {
        let known = [X86_64.packed, AARCH64.packed]
            .iter()
            .any(|table| table.knows(name));
        if !known {
            return Err(SeccompError::UnknownSyscall {
                key,
                name: name.clone(),
            });
        }
    }
    Ok(())
}

fn action_index(action: SeccompAction) -> usize {
    match action {
        SeccompAction::Errno => 0,
        SeccompAction::Kill => 1,
        SeccompAction::Log => 2,
    }
}

/// 0: namespaces; 1: no namespaces, host network; 2: no namespaces, no network.
fn variant(network: &ResolvedNetwork, isolation: Isolation) -> usize {
    match (isolation, network.mode) {
        (Isolation::Namespaces, _) => 0,
        (Isolation::Landlock, NetworkMode::Host) => 1,
        (Isolation::Landlock, NetworkMode::None) => 2,
    }
}

/// The argument rules' settings and the deny verdict of `settings`.
fn rules(settings: &SeccompSettings, network: &ResolvedNetwork, isolation: Isolation) -> Rules {
    let strict = settings.profile == SeccompProfile::Strict;
    Rules {
        deny: match settings.action {
            SeccompAction::Errno => libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            SeccompAction::Kill => libc::SECCOMP_RET_KILL_PROCESS,
            SeccompAction::Log => libc::SECCOMP_RET_LOG,
        },
        personas: if strict {
            &[bpf::PERSONALITY_QUERY]
        } else {
            &[0, bpf::PERSONALITY_QUERY]
        },
        socket: match (isolation, network.mode) {
            (Isolation::Landlock, NetworkMode::None) => SocketRule::UnixOnly,
            _ => SocketRule::DenyRaw,
        },
    }
}

/// The verdict on one syscall: the policy's own lists win over the profile (`deny` over
/// `allow`), then its built-in [`packed::Class`] decides.
fn verdict(
    name: &[u8],
    class: packed::Class,
    settings: &SeccompSettings,
    rules: &Rules,
    no_pid_namespace: bool,
) -> Leaf {
    use packed::Class;
    let allow = Leaf::Ret(libc::SECCOMP_RET_ALLOW);
    let deny = Leaf::Ret(rules.deny);
    let strict = settings.profile == SeccompProfile::Strict;
    if settings.deny.iter().any(|n| n.as_bytes() == name) {
        return deny;
    }
    if settings.allow.iter().any(|n| n.as_bytes() == name) {
        return allow;
    }
    match class {
        Class::Denied => deny,
        Class::Allowed => allow,
        Class::CrossProcess if strict || no_pid_namespace => deny,
        Class::StrictDrop if strict => deny,
        Class::CrossProcess | Class::StrictDrop => allow,
        Class::NotImplemented => Leaf::Ret(RET_ENOSYS),
        Class::NamespaceFlags => Leaf::Check(Rule::NamespaceFlags),
        Class::Ioctl => Leaf::Check(Rule::Ioctl),
        Class::Personality => Leaf::Check(Rule::Personality),
        Class::Socket => Leaf::Check(Rule::Socket),
    }
}

/// Compile the filter for `arch`.
fn compile(
    arch: &Arch,
    settings: &SeccompSettings,
    network: &ResolvedNetwork,
    isolation: Isolation,
    ptrace_confined: bool,
) -> Result<Vec<sock_filter>, SeccompError> {
    let rules = rules(settings, network, isolation);
    let no_pid_namespace = isolation == Isolation::Landlock && !ptrace_confined;
    let program = bpf::compile(
        arch.audit,
        &ranges(arch, |name, class| {
            verdict(name, class, settings, &rules, no_pid_namespace)
        }),
        &rules,
    );
    if program.len() > bpf::MAX_INSNS {
        return Err(SeccompError::FilterTooLarge {
            len: program.len(),
            max: bpf::MAX_INSNS,
        });
    }
    Ok(program)
}

/// Ranges of equal decision over all of `u32`: the table's syscalls decided by `decide`, its
/// gaps and everything above it `ENOSYS`, x32 numbers killed.
fn ranges(arch: &Arch, decide: impl Fn(&[u8], packed::Class) -> Leaf) -> Vec<(u32, Leaf)> {
    let highest = arch.packed.highest();
    let mut by_number = vec![Leaf::Ret(RET_ENOSYS); highest as usize + 2];
    for (name, nr, class) in arch.packed.entries() {
        if let Some(slot) = by_number.get_mut(nr as usize) {
            *slot = decide(name, class);
        }
    }
    let mut out: Vec<(u32, Leaf)> = Vec::with_capacity(256);
    let mut push = |start: u32, leaf: Leaf| {
        if out.last().map(|(_, last)| *last) != Some(leaf) {
            out.push((start, leaf));
        }
    };
    for (nr, leaf) in by_number.iter().enumerate() {
        push(nr as u32, *leaf);
    }
    if let Some(base) = arch.x32_base {
        push(base, Leaf::Ret(libc::SECCOMP_RET_KILL_PROCESS));
    }
    out
}

#[cfg(test)]
mod tests;
