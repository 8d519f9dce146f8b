//! sandbox-core: run a command confined by namespaces, capability dropping, seccomp-BPF,
//! Landlock and cgroup limits, without a daemon or a setuid binary.

#![deny(missing_docs)]

mod cgroup;
mod error;
mod landlock;
mod limits;
mod plan;
mod policy;
mod seccomp;

pub use error::{CgroupError, Error, LandlockError, PolicyError, Result, SeccompError};
pub use plan::LayerStatus;
pub use policy::*;
