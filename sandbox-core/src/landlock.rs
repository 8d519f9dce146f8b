//! Landlock: build the ruleset in the parent, `restrict_self` in the child.
//! (Stub: the real layer replaces this file.)

/// A Landlock problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LandlockError {
    /// Placeholder.
    #[error("landlock: {0}")]
    Placeholder(&'static str),
}

use std::path::PathBuf;

use crate::policy::ResolvedPolicy;

/// What a path that exists only inside the sandbox needs.
#[allow(dead_code)]
pub(crate) enum ChildAccess {
    /// ReadDir only.
    RootDir,
    /// procfs.
    Proc,
    /// /dev.
    Dev,
    /// Full access.
    ReadWrite,
}

/// Inputs of [`prepare`].
pub(crate) struct LandlockInput<'a> {
    pub policy: &'a ResolvedPolicy,
    pub child_paths: &'a [(PathBuf, ChildAccess)],
    pub extra_read_write: &'a [PathBuf],
}

/// Stub plan.
pub(crate) struct LandlockPlan {}

/// Stub.
pub(crate) fn prepare(
    _input: &LandlockInput,
) -> Result<(LandlockPlan, crate::LayerStatus), LandlockError> {
    Ok((LandlockPlan {}, crate::LayerStatus::Disabled))
}

/// Stub.
///
/// # Safety
/// Child only.
pub(crate) unsafe fn apply(_plan: &mut LandlockPlan) -> Result<(), nix::errno::Errno> {
    Ok(())
}
