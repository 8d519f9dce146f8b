//! The TOML policy model: parse, `extends`, `${VAR}` expansion, CLI overrides, validation.
//! (Stub: the real model replaces this file.)

mod resolved;

pub use resolved::*;

/// A policy problem: names the key and the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Placeholder until the model lands.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}
