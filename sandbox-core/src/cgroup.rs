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
