//! What this kernel supports, probed by trying it: user namespaces (a real `clone` with the
//! sandbox's namespace flags), the Landlock ABI, seccomp filter actions and cgroups; and what a
//! resolved policy would get here. `sandbox doctor` prints these.
//!
//! Every answer comes from a syscall or a kernel file, never from the kernel version: a
//! feature that was not probed is reported as unknown (`None`), never as available.

use std::collections::BTreeMap;
use std::ffi::OsString;

use nix::errno::Errno;
use serde::Serialize;

use crate::cgroup::{cgroup_probe, CgroupProbe};
use crate::error::Error;
use crate::landlock::{self, TESTED_ABI};
use crate::launch::{self, CommandSpec};
use crate::namespaces::{self, ORDERED_NAMESPACES};
use crate::plan::LayerStatus;
use crate::policy::{Isolation, ResolvedPolicy};
use crate::sys;

/// What this host offers to a sandbox, for `sandbox doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// `uname -r`, for display only (features are probed, never inferred from it).
    pub kernel: String,
    /// `uname -m`.
    pub machine: String,
    /// The effective uid of the probing process.
    pub euid: u32,
    /// User namespaces and the namespaces a sandbox creates inside one.
    pub user_namespaces: UsernsReport,
    /// The Landlock ABI and what each level adds.
    pub landlock: LandlockReport,
    /// seccomp-BPF and its return actions.
    pub seccomp: SeccompReport,
    /// cgroup version, controllers and whether this process may use them.
    pub cgroups: CgroupProbe,
}

/// Whether this process can create the namespaces of `isolation = "namespaces"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsernsReport {
    /// A `clone` with every namespace a sandbox uses (user, mount, pid, ipc, uts, cgroup, net)
    /// succeeded.
    pub available: bool,
    /// The namespaces that could be created (each inside a new user namespace).
    pub namespaces: Vec<&'static str>,
    /// The errno of the refused `clone`, when refused (`EPERM`, `ENOSPC`, …).
    pub errno: Option<String>,
    /// Why it is refused, as far as the host's settings tell.
    pub why_not: Option<String>,
    /// The host settings that govern unprivileged user namespaces, where this kernel has them
    /// (`kernel.unprivileged_userns_clone`, `user.max_user_namespaces`,
    /// `kernel.apparmor_restrict_unprivileged_userns`): name → value.
    pub sysctls: BTreeMap<&'static str, String>,
}

/// The Landlock ABI of this kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandlockReport {
    /// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`; `None` when missing.
    pub abi: Option<u32>,
    /// Why there is none.
    pub why_not: Option<String>,
    /// The highest ABI this sandbox uses; rights of newer ABIs are left unrestricted.
    pub used_up_to: u32,
    /// Every ABI level, what it adds and whether this kernel has it.
    pub levels: Vec<LandlockLevel>,
}

/// One Landlock ABI level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandlockLevel {
    /// The ABI number.
    pub abi: u32,
    /// The Linux release that introduced it.
    pub linux: &'static str,
    /// What it adds.
    pub adds: &'static str,
    /// Whether this kernel's ABI includes it.
    pub available: bool,
}

/// Landlock ABI levels: (ABI, Linux release, what it adds).
pub(crate) const LANDLOCK_LEVELS: [(u32, &str, &str); 7] = [
    (1, "5.13", "filesystem access rights"),
    (2, "5.19", "refer: rename and link across directories"),
    (3, "6.2", "truncate"),
    (4, "6.7", "tcp bind and connect ports"),
    (5, "6.10", "ioctl on device files"),
    (6, "6.12", "scoping: signals and abstract unix sockets"),
    (7, "6.15", "audit logging of denials"),
];

/// seccomp on this kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeccompReport {
    /// seccomp filters can be installed (`SECCOMP_GET_ACTION_AVAIL` answered for `allow`).
    pub available: bool,
    /// Why not.
    pub why_not: Option<String>,
    /// `prctl(PR_GET_SECCOMP)` of this process: `"disabled"`, `"strict"` or `"filter"`
    /// (already filtered, e.g. by a container runtime: the sandbox's filter stacks on top).
    pub this_process: Option<&'static str>,
    /// Each return action and whether the kernel supports it; `None` when it could not be asked.
    pub actions: Vec<SeccompAction>,
}

/// One seccomp return action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeccompAction {
    /// `kill_process`, `kill_thread`, `trap`, `errno`, `user_notif`, `trace`, `log`, `allow`.
    pub name: &'static str,
    /// `SECCOMP_GET_ACTION_AVAIL` said yes (`Some(true)`), no (`Some(false)`), or was not
    /// available (`None`).
    pub available: Option<bool>,
}

/// The seccomp return actions, in the kernel's order of precedence.
const SECCOMP_ACTIONS: [(&str, u32); 8] = [
    ("kill_process", libc::SECCOMP_RET_KILL_PROCESS),
    ("kill_thread", libc::SECCOMP_RET_KILL_THREAD),
    ("trap", libc::SECCOMP_RET_TRAP),
    ("errno", libc::SECCOMP_RET_ERRNO),
    ("user_notif", libc::SECCOMP_RET_USER_NOTIF),
    ("trace", libc::SECCOMP_RET_TRACE),
    ("log", libc::SECCOMP_RET_LOG),
    ("allow", libc::SECCOMP_RET_ALLOW),
];

/// The settings that can forbid unprivileged user namespaces: (sysctl name, /proc/sys path).
const USERNS_SYSCTLS: [(&str, &str); 3] = [
    (
        "kernel.unprivileged_userns_clone",
        "/proc/sys/kernel/unprivileged_userns_clone",
    ),
    (
        "user.max_user_namespaces",
        "/proc/sys/user/max_user_namespaces",
    ),
    (
        "kernel.apparmor_restrict_unprivileged_userns",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ),
];

/// The hint for a host without user namespaces.
pub(crate) const USERNS_HINT: &str = "run with `--isolation landlock` (Landlock + seccomp, no namespaces), or allow unprivileged user namespaces on this host";

/// Probe everything: user namespaces, Landlock, seccomp, cgroups. Takes about a millisecond
/// (one or a few short-lived `clone`s).
///
/// ```no_run
/// let host = sandbox_core::probe_host();
/// println!("user namespaces: {}", host.user_namespaces.available);
/// println!("landlock ABI: {:?}", host.landlock.abi);
/// ```
pub fn probe_host() -> HostReport {
    let (kernel, machine) = uname();
    HostReport {
        kernel,
        machine,
        // SAFETY: geteuid cannot fail.
        euid: unsafe { libc::geteuid() },
        user_namespaces: probe_userns(),
        landlock: probe_landlock(),
        seccomp: probe_seccomp(),
        cgroups: cgroup_probe(),
    }
}

fn uname() -> (String, String) {
    match nix::sys::utsname::uname() {
        Ok(u) => (
            u.release().to_string_lossy().into_owned(),
            u.machine().to_string_lossy().into_owned(),
        ),
        Err(_) => (String::new(), String::new()),
    }
}

/// Clone a child with `flags` that exits at once; `Ok` when the kernel created it.
fn try_clone(flags: u64) -> Result<(), Errno> {
    // SAFETY: the child only calls `_exit`, which is async-signal-safe.
    match unsafe { sys::clone_fork(flags, false, None) }? {
        sys::Forked::Child => {
            // SAFETY: we are the child; `_exit` ends it without running any destructor.
            unsafe { libc::_exit(0) }
        }
        sys::Forked::Parent { pid, .. } => {
            let mut status = 0;
            loop {
                // SAFETY: waiting for our own child.
                let r = unsafe { libc::waitpid(pid, &mut status, 0) };
                if r >= 0 || Errno::last() != Errno::EINTR {
                    break;
                }
            }
            Ok(())
        }
    }
}

fn probe_userns() -> UsernsReport {
    let sysctls = USERNS_SYSCTLS
        .iter()
        .filter_map(|(name, path)| {
            let value = std::fs::read_to_string(path).ok()?;
            Some((*name, value.trim().to_string()))
        })
        .collect();
    let all = ORDERED_NAMESPACES
        .iter()
        .fold(0, |acc, (flag, _)| acc | flag);
    let user = libc::CLONE_NEWUSER as u64;
    match try_clone(all) {
        Ok(()) => UsernsReport {
            available: true,
            namespaces: ORDERED_NAMESPACES.iter().map(|(_, n)| *n).collect(),
            errno: None,
            why_not: None,
            sysctls,
        },
        Err(errno) => {
            let (namespaces, why_not) = match try_clone(user) {
                Err(_) => {
                    let mut why = namespaces::userns_unavailable_reason();
                    // SAFETY: PR_GET_SECCOMP takes no pointer.
                    if unsafe { libc::prctl(libc::PR_GET_SECCOMP) } == 2 {
                        why.push_str(
                            "; this process runs under a seccomp filter (a container or a sandbox), which may forbid it",
                        );
                    }
                    (Vec::new(), why)
                }
                Ok(()) => {
                    let (ok, refused): (Vec<_>, Vec<_>) = ORDERED_NAMESPACES
                        .iter()
                        .partition(|(flag, _)| try_clone(user | flag).is_ok());
                    let refused: Vec<&str> = refused.iter().map(|(_, n)| *n).collect();
                    (
                        ok.iter().map(|(_, n)| *n).collect(),
                        format!(
                            "a user namespace can be created but not a {} namespace inside it",
                            refused.join(", ")
                        ),
                    )
                }
            };
            UsernsReport {
                available: false,
                namespaces,
                errno: Some(format!("{errno:?}")),
                why_not: Some(why_not),
                sysctls,
            }
        }
    }
}

fn probe_landlock() -> LandlockReport {
    let probed = landlock::probe();
    let abi = probed.as_ref().ok().copied();
    LandlockReport {
        abi,
        why_not: probed.err().map(|e| e.to_string()),
        used_up_to: TESTED_ABI,
        levels: LANDLOCK_LEVELS
            .iter()
            .map(|&(level, linux, adds)| LandlockLevel {
                abi: level,
                linux,
                adds,
                available: abi.is_some_and(|a| a >= level),
            })
            .collect(),
    }
}

/// `seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action)`.
fn action_available(action: u32) -> Result<(), Errno> {
    // SAFETY: the kernel reads one u32 from a valid pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0u32,
            &action as *const u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

fn probe_seccomp() -> SeccompReport {
    // SAFETY: PR_GET_SECCOMP takes no pointer; in strict mode it would kill us, but then we
    // could not have run this far (strict mode allows only read/write/exit/sigreturn).
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP) };
    let this_process = match mode {
        0 => Some("disabled"),
        1 => Some("strict"),
        2 => Some("filter"),
        _ => None,
    };
    let allow = action_available(libc::SECCOMP_RET_ALLOW);
    let why_not = match (mode, allow) {
        (m, _) if m < 0 => Some("prctl(PR_GET_SECCOMP) failed: the kernel is built without CONFIG_SECCOMP".to_string()),
        (_, Ok(())) => None,
        (_, Err(Errno::EINVAL)) => Some("seccomp(SECCOMP_GET_ACTION_AVAIL) is unknown: the kernel lacks CONFIG_SECCOMP_FILTER or is older than 4.14".to_string()),
        (_, Err(e)) => Some(format!("seccomp(SECCOMP_GET_ACTION_AVAIL) failed: {e}")),
    };
    let asked = allow.is_ok();
    SeccompReport {
        available: why_not.is_none(),
        why_not,
        this_process,
        actions: SECCOMP_ACTIONS
            .iter()
            .map(|&(name, action)| SeccompAction {
                name,
                available: asked.then(|| action_available(action).is_ok()),
            })
            .collect(),
    }
}

/// Whether a resolved policy can run on this host, and which layers it would get.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyCheck {
    /// Every layer compiles and the host has what the policy requires.
    pub runnable: bool,
    /// The error a launch would fail with (the same message `sandbox run` prints).
    pub error: Option<String>,
    /// Each layer's status; empty when compiling failed before the layers were known.
    pub layers: Vec<LayerReport>,
}

/// One layer of a [`PolicyCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    /// `namespaces`, `landlock`, `seccomp`, `limits`.
    pub layer: &'static str,
    /// `{"status": "enforced" | "partial" | "unavailable" | "disabled", "detail": …}`.
    #[serde(flatten)]
    pub status: LayerStatus,
}

/// Check whether `policy` can run here: compile every layer as a launch would (a dry run that
/// creates no process and no cgroup, like [`crate::Command::check`]) and add what compiling
/// does not try: user namespaces and cgroup limits, from `host`.
///
/// ```no_run
/// use sandbox_core::{check_policy, probe_host, Environment, Overrides, Policy};
/// let host = probe_host();
/// let policy = Policy::load("default")?.resolve(&Overrides::default(), &Environment::from_process())?;
/// let check = check_policy(&policy, &host);
/// println!("default: {}", if check.runnable { "ok" } else { "no" });
/// # Ok::<(), sandbox_core::Error>(())
/// ```
pub fn check_policy(policy: &ResolvedPolicy, host: &HostReport) -> PolicyCheck {
    let program = OsString::from("true");
    let spec = CommandSpec {
        program: &program,
        args: &[],
        env: &[],
        cwd: None,
        console: None,
    };
    let plan = match launch::compile(policy, &spec, false) {
        Ok(plan) => plan,
        Err(e) => {
            return PolicyCheck {
                runnable: false,
                error: Some(e.to_string()),
                layers: Vec::new(),
            }
        }
    };
    let mut error = None;
    let mut layers: Vec<LayerReport> = plan
        .layers
        .iter()
        .map(|(layer, status)| LayerReport {
            layer,
            status: status.clone(),
        })
        .collect();
    if policy.isolation == Isolation::Namespaces && !host.user_namespaces.available {
        let why = host.user_namespaces.why_not.clone().unwrap_or_default();
        if let Some(l) = layers.iter_mut().find(|l| l.layer == "namespaces") {
            l.status = LayerStatus::Unavailable(why.clone());
        }
        error = Some(
            Error::Unsupported {
                feature: "user namespaces",
                why,
                hint: USERNS_HINT.into(),
            }
            .to_string(),
        );
    }
    let (status, limits_error) = limits_status(policy, &host.cgroups);
    layers.push(LayerReport {
        layer: "limits",
        status,
    });
    error = error.or(limits_error);
    PolicyCheck {
        runnable: error.is_none(),
        error,
        layers,
    }
}

/// The cgroup limits layer: what the policy asks (memory, cpus, pids) against what the host
/// offers. rlimits are always set and need nothing from the host.
fn limits_status(policy: &ResolvedPolicy, cgroups: &CgroupProbe) -> (LayerStatus, Option<String>) {
    let l = &policy.limits;
    let asked: Vec<&str> = [
        ("memory", l.memory.is_some()),
        ("cpus", l.cpus.is_some()),
        ("pids", l.pids.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(n, _)| *n)
    .collect();
    if asked.is_empty() {
        return (LayerStatus::Disabled, None);
    }
    if cgroups.usable {
        return (LayerStatus::Enforced, None);
    }
    let why = cgroups
        .why_not
        .clone()
        .unwrap_or_else(|| "cgroups are not usable".into());
    if l.best_effort {
        (
            LayerStatus::Partial(format!(
                "{} not enforced by a cgroup (best_effort: rlimits only): {why}",
                asked.join(", ")
            )),
            None,
        )
    } else {
        let hint = cgroups.hint.unwrap_or("set [limits] best_effort = true");
        (
            LayerStatus::Unavailable(why.clone()),
            Some(format!(
                "cgroup limits are not available: {why}; hint: {hint}"
            )),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landlock_levels_are_complete_and_ordered() {
        let abis: Vec<u32> = LANDLOCK_LEVELS.iter().map(|l| l.0).collect();
        assert_eq!(abis, (1..=TESTED_ABI).collect::<Vec<_>>());
        assert_eq!(LANDLOCK_LEVELS[3].1, "6.7");
    }

    #[test]
    fn landlock_levels_follow_the_probed_abi() {
        let r = probe_landlock();
        match r.abi {
            Some(abi) => {
                for l in &r.levels {
                    assert_eq!(l.available, l.abi <= abi, "level {}", l.abi);
                }
                assert!(r.why_not.is_none());
            }
            None => {
                assert!(r.levels.iter().all(|l| !l.available));
                assert!(r.why_not.is_some());
            }
        }
    }

    #[test]
    fn seccomp_allow_is_available_when_seccomp_is() {
        let r = probe_seccomp();
        assert_eq!(r.actions.len(), 8);
        if r.available {
            let allow = r.actions.iter().find(|a| a.name == "allow");
            assert_eq!(allow.and_then(|a| a.available), Some(true));
            // A bogus action value is refused: the probe can say no.
            assert_eq!(action_available(0x1234_5678), Err(Errno::EOPNOTSUPP));
        } else {
            println!("skipped: seccomp: {:?}", r.why_not);
        }
    }

    #[test]
    fn userns_probe_agrees_with_unshare() {
        // SAFETY: fork; the child only unshares and exits.
        let direct = unsafe {
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
        };
        let r = probe_userns();
        if r.available {
            assert!(direct);
            assert_eq!(r.namespaces.len(), ORDERED_NAMESPACES.len());
            assert!(r.errno.is_none() && r.why_not.is_none());
        } else {
            assert!(r.why_not.is_some());
            assert_eq!(direct, r.namespaces.contains(&"user"));
        }
    }
}
