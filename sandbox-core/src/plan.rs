//! How each layer ended up: reported to the caller, as the landlock crate's `RestrictionStatus`.

use serde::Serialize;

/// The outcome of one isolation layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum LayerStatus {
    /// Everything the policy asked for is in force.
    Enforced,
    /// Some of it is in force; the string says what is not.
    Partial(String),
    /// Not in force; the string says why.
    Unavailable(String),
    /// The policy did not ask for this layer.
    Disabled,
}
