//! sandbox-core: run a command confined by namespaces, capability dropping, seccomp-BPF,
//! Landlock and cgroup limits, without a daemon or a setuid binary.

#![deny(missing_docs)]

mod capabilities;
mod cgroup;
mod command;
mod error;
mod init;
mod landlock;
mod launch;
mod limits;
mod mounts;
mod namespaces;
mod network;
mod plan;
mod policy;
mod probe;
mod pty;
mod seccomp;
mod supervisor;
mod sys;
#[doc(hidden)]
pub mod trace;

pub use cgroup::{cgroup_probe, CgroupProbe, Enforced, LimitsReport, Unusable};
pub use command::{Command, Output, Sandbox, Stdio};
pub use error::{
    CapabilityError, CgroupError, Error, LandlockError, PolicyError, Result, SeccompError,
};
pub use landlock::{
    abi_version as landlock_abi_version, probe as landlock_probe,
    Unavailable as LandlockUnavailable,
};
pub use plan::LayerStatus;
pub use policy::*;
pub use probe::{
    check_policy, probe_host, HostReport, LandlockLevel, LandlockReport, LayerReport, PolicyCheck,
    SeccompAction as SeccompActionReport, SeccompReport, UsernsReport,
};
pub use supervisor::{Child, Outcome, Usage};
