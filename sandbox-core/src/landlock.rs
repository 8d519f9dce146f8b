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
