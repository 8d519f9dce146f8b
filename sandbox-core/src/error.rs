//! The one public error type. Each variant names the layer; the layer's own enum names the step.

use std::io;
use std::path::PathBuf;

pub use crate::capabilities::CapabilityError;
pub use crate::cgroup::CgroupError;
pub use crate::landlock::LandlockError;
pub use crate::policy::PolicyError;
pub use crate::seccomp::SeccompError;

/// Everything that can make a sandbox fail before or while it starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy is invalid: the message names the key and the file.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The seccomp profile could not be compiled or installed.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// Landlock could not be set up as the policy asks.
    #[error(transparent)]
    Landlock(#[from] LandlockError),
    /// A capability the policy keeps is unknown.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    /// cgroup limits could not be set up as the policy asks.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A path the policy names is unusable.
    #[error("{key}: {path}: {reason}")]
    Path {
        /// The policy key (`filesystem.read_only`, `process.cwd`, …).
        key: &'static str,
        /// The offending path.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The host does not allow what the policy needs.
    #[error("{feature} is not available: {why}; hint: {hint}")]
    Unsupported {
        /// The missing feature (`user namespaces`, …).
        feature: &'static str,
        /// Why it is missing on this host.
        why: String,
        /// How to get it, or how to run without it.
        hint: String,
    },
    /// A step of the launch failed in the parent.
    #[error("{stage}: {source}")]
    Launch {
        /// What the parent was doing.
        stage: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A step of the launch failed in the child, before the command ran.
    #[error("sandbox setup failed at {stage}: {source}")]
    Setup {
        /// The child-side stage (`mount`, `pivot_root`, …).
        stage: &'static str,
        /// The OS error reported by the child.
        #[source]
        source: io::Error,
    },
    /// The command could not be executed (exit 126).
    #[error("cannot execute {program}: {source}")]
    NotExecutable {
        /// The program as given.
        program: String,
        /// The OS error from execve.
        #[source]
        source: io::Error,
    },
    /// The command was not found (exit 127).
    #[error("command not found: {program}")]
    NotFound {
        /// The program as given.
        program: String,
    },
    /// An argument or environment string contains a NUL byte.
    #[error("{what} contains a NUL byte")]
    NulByte {
        /// Which string.
        what: String,
    },
}

impl Error {
    /// The CLI exit code for this error: 126, 127 or 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotExecutable { .. } => 126,
            Error::NotFound { .. } => 127,
            _ => 125,
        }
    }

    pub(crate) fn launch(stage: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Launch { stage, source }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
