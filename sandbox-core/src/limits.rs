//! rlimits (stub until the limits layer lands).

use crate::policy::Limits;

pub(crate) struct RlimitPlan {
    core: u64,
}

pub(crate) fn prepare(limits: &Limits, _fallback_for_cgroup: bool) -> RlimitPlan {
    RlimitPlan { core: limits.core }
}

/// # Safety
/// Child only: raw syscalls.
pub(crate) unsafe fn apply(plan: &RlimitPlan) -> Result<(), nix::errno::Errno> {
    let lim = libc::rlimit { rlim_cur: plan.core, rlim_max: plan.core };
    // SAFETY: setrlimit on stack data.
    crate::sys::check_int(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) })
}
