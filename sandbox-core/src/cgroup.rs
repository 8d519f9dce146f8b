//! cgroups: memory, CPU and process limits (v2, delegated v2, v1), usage and teardown.
//! (Stub: the real layer replaces this file.)

/// A cgroup problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// Placeholder.
    #[error("cgroup: {0}")]
    Placeholder(&'static str),
}

use crate::policy::Limits;

/// Stub.
#[derive(Debug)]
pub(crate) struct Cgroup {}

/// Stub.
pub(crate) struct CgroupSetup {
    pub cgroup: Option<Cgroup>,
    pub rlimits: crate::limits::RlimitPlan,
}

/// Usage counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct CgroupUsage {
    pub memory_peak: Option<u64>,
    pub oom_killed: bool,
    pub pids_peak: Option<u64>,
}

/// Stub.
pub(crate) fn prepare(limits: &Limits) -> Result<CgroupSetup, CgroupError> {
    Ok(CgroupSetup {
        cgroup: None,
        rlimits: crate::limits::prepare(limits, false),
    })
}

#[allow(dead_code)]
impl Cgroup {
    pub(crate) fn clone_into_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
    pub(crate) fn attach(&self, _pid: libc::pid_t) -> Result<(), CgroupError> {
        Ok(())
    }
    pub(crate) fn kill(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    pub(crate) fn usage(&self) -> CgroupUsage {
        CgroupUsage::default()
    }
    pub(crate) fn remove(self) -> Result<(), CgroupError> {
        Ok(())
    }
}

/// Stub: validate without creating anything.
pub(crate) fn check(limits: &Limits) -> Result<CgroupSetup, CgroupError> {
    prepare(limits)
}
