//! seccomp-BPF: compile the profile in the parent, install it last in the child.
//! (Stub: the real layer replaces this file.)

use crate::policy::{Isolation, ResolvedNetwork, SeccompSettings};

/// A seccomp problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// Placeholder.
    #[error("seccomp: {0}")]
    Placeholder(&'static str),
}

/// Compiled filters, ready to install.
pub(crate) struct SeccompPlan {}

/// Parent: compile the policy's profile.
pub(crate) fn prepare(
    _settings: &SeccompSettings,
    _network: &ResolvedNetwork,
    _isolation: Isolation,
) -> Result<SeccompPlan, SeccompError> {
    Ok(SeccompPlan {})
}

/// Child: install the filters.
///
/// # Safety
/// Runs between clone and execve: no allocation, no locks, no panics.
pub(crate) unsafe fn apply(_plan: &SeccompPlan) -> Result<(), nix::errno::Errno> {
    Ok(())
}

/// Stub.
pub(crate) fn status(_plan: &SeccompPlan) -> crate::LayerStatus {
    crate::LayerStatus::Disabled
}
