//! rlimits: computed in the parent, applied in the child before execve.
//!
//! `open_files` (`RLIMIT_NOFILE`), `file_size` (`RLIMIT_FSIZE`) and `core` (`RLIMIT_CORE`,
//! 0 by default) are always rlimits. `RLIMIT_AS`, `RLIMIT_NPROC` and `RLIMIT_CPU` stand in for
//! the cgroup limits only when cgroups are unusable and the policy says
//! `[limits] best_effort = true`; they are weaker (see [`RlimitPlan::caveat`]) and the
//! launch report says so.
//!
//! Soft and hard limits are set to the same value, so the command cannot raise them again.

// The launcher (issue 2) calls this layer; until it is wired in, the non-test build sees it unused.

use crate::policy::Limits;

/// The resource argument type of `setrlimit` differs between libcs.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// The most entries a plan can hold: NOFILE, FSIZE, CORE, AS, NPROC, CPU.
const MAX_ENTRIES: usize = 6;

/// One rlimit to set: both soft and hard limit are `value`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RlimitEntry {
    /// `RLIMIT_*` constant.
    resource: Resource,
    /// The constant's name, for the report.
    pub(crate) name: &'static str,
    /// Soft and hard limit.
    pub(crate) value: u64,
}

/// The rlimits of one launch: a fixed array compiled in the parent, so the child only calls
/// `setrlimit`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RlimitPlan {
    entries: [RlimitEntry; MAX_ENTRIES],
    len: usize,
}

impl RlimitPlan {
    const EMPTY: RlimitEntry = RlimitEntry {
        resource: 0,
        name: "",
        value: 0,
    };

    fn push(&mut self, resource: Resource, name: &'static str, value: u64) {
        // At most one push per resource below, so `len` never exceeds MAX_ENTRIES; `get_mut`
        // keeps this free of a panic path anyway.
        if let Some(slot) = self.entries.get_mut(self.len) {
            *slot = RlimitEntry {
                resource,
                name,
                value,
            };
            self.len += 1;
        }
    }

    /// The rlimits in the order they are applied.
    pub(crate) fn entries(&self) -> &[RlimitEntry] {
        &self.entries[..self.len]
    }

    /// The entry for `name` (`"RLIMIT_AS"`, …), if the plan sets it.
    pub(crate) fn get(&self, name: &str) -> Option<&RlimitEntry> {
        self.entries().iter().find(|e| e.name == name)
    }

    /// How much weaker than its cgroup counterpart a fallback rlimit is.
    pub(crate) fn caveat(name: &str) -> Option<&'static str> {
        match name {
            "RLIMIT_AS" => Some(
                "limits each process's virtual address space, not the sandbox's resident memory; \
                 programs that reserve large mappings may fail early",
            ),
            "RLIMIT_NPROC" => Some(
                "counts every process of the sandbox's uid (in its user namespace), not only the \
                 sandbox's; enforced on fork, per process tree it is weaker than pids.max",
            ),
            "RLIMIT_CPU" => Some(
                "caps each process's total cpu time at cpus x timeout seconds; it does not limit the \
                 rate (cpus has no rlimit equivalent)",
            ),
            _ => None,
        }
    }
}

/// Parent: compile the rlimits of a launch.
///
/// `open_files`, `file_size` and `core` are always set. With `fallback_for_cgroup` the cgroup
/// limits that are set in `limits` become rlimits too: `memory` → `RLIMIT_AS`, `pids` →
/// `RLIMIT_NPROC`, and `cpus` with a `timeout` → `RLIMIT_CPU` = ⌈cpus × timeout⌉ seconds
/// (without a timeout `cpus` has no rlimit equivalent).
pub(crate) fn prepare(limits: &Limits, fallback_for_cgroup: bool) -> RlimitPlan {
    let mut plan = RlimitPlan {
        entries: [RlimitPlan::EMPTY; MAX_ENTRIES],
        len: 0,
    };
    if let Some(n) = limits.open_files {
        plan.push(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", n);
    }
    if let Some(n) = limits.file_size {
        plan.push(libc::RLIMIT_FSIZE, "RLIMIT_FSIZE", n);
    }
    plan.push(libc::RLIMIT_CORE, "RLIMIT_CORE", limits.core);
    if fallback_for_cgroup {
        if let Some(bytes) = limits.memory {
            plan.push(libc::RLIMIT_AS, "RLIMIT_AS", bytes);
        }
        if let Some(n) = limits.pids {
            plan.push(libc::RLIMIT_NPROC, "RLIMIT_NPROC", n);
        }
        if let (Some(cpus), Some(timeout)) = (limits.cpus, limits.timeout) {
            let secs = (cpus * timeout.as_secs_f64()).ceil().max(1.0) as u64;
            plan.push(libc::RLIMIT_CPU, "RLIMIT_CPU", secs);
        }
    }
    plan
}

/// Child: set every rlimit of the plan (soft = hard).
///
/// # Safety
/// Runs between clone and execve in a copy of a possibly multi-threaded process, under the
/// contract of [`std::os::unix::process::CommandExt::pre_exec`]: it only calls `setrlimit` on
/// data compiled in the parent; no allocation, no locks, no panics.
pub(crate) unsafe fn apply(plan: &RlimitPlan) -> Result<(), nix::errno::Errno> {
    for entry in plan.entries() {
        let rlim = libc::rlimit {
            rlim_cur: entry.value as libc::rlim_t,
            rlim_max: entry.value as libc::rlim_t,
        };
        // SAFETY: `rlim` is a valid, initialised rlimit that outlives the call.
        if unsafe { libc::setrlimit(entry.resource, &rlim) } != 0 {
            return Err(nix::errno::Errno::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn names(plan: &RlimitPlan) -> Vec<(&'static str, u64)> {
        plan.entries().iter().map(|e| (e.name, e.value)).collect()
    }

    #[test]
    fn always_core_and_only_requested_rlimits() {
        let limits = Limits {
            memory: Some(1 << 20),
            pids: Some(10),
            ..Limits::default()
        };
        assert_eq!(names(&prepare(&limits, false)), vec![("RLIMIT_CORE", 0)]);
    }

    #[test]
    fn fallback_maps_cgroup_limits() {
        let limits = Limits {
            memory: Some(64 << 20),
            pids: Some(32),
            cpus: Some(1.5),
            timeout: Some(Duration::from_secs(10)),
            open_files: Some(128),
            file_size: Some(4096),
            core: 0,
            best_effort: true,
        };
        assert_eq!(
            names(&prepare(&limits, true)),
            vec![
                ("RLIMIT_NOFILE", 128),
                ("RLIMIT_FSIZE", 4096),
                ("RLIMIT_CORE", 0),
                ("RLIMIT_AS", 64 << 20),
                ("RLIMIT_NPROC", 32),
                ("RLIMIT_CPU", 15),
            ]
        );
    }

    #[test]
    fn cpus_without_timeout_has_no_rlimit() {
        let limits = Limits {
            cpus: Some(2.0),
            ..Limits::default()
        };
        assert!(prepare(&limits, true).get("RLIMIT_CPU").is_none());
    }

    #[test]
    fn apply_sets_limits_in_a_child() {
        let limits = Limits {
            open_files: Some(17),
            file_size: Some(12345),
            core: 0,
            ..Limits::default()
        };
        let plan = prepare(&limits, false);
        // SAFETY: the child only calls async-signal-safe functions before _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: in the forked child; raw syscalls only.
            unsafe {
                let code = if apply(&plan).is_err() {
                    1
                } else {
                    let mut r = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
                    let nofile_ok = r.rlim_cur == 17 && r.rlim_max == 17;
                    libc::getrlimit(libc::RLIMIT_FSIZE, &mut r);
                    let fsize_ok = r.rlim_cur == 12345 && r.rlim_max == 12345;
                    if nofile_ok && fsize_ok {
                        0
                    } else {
                        2
                    }
                };
                libc::_exit(code);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
