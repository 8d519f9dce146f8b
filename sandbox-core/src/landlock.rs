//! Landlock: a second filesystem wall under the mount namespace (and the only one in
//! `isolation = "landlock"` mode), TCP port rules and IPC scoping.
//!
//! [`prepare`] runs in the parent: it probes the ABI, decides which rights this kernel can
//! enforce, creates the ruleset and adds a rule for every host path (each opened with
//! `O_PATH`). [`apply`] runs in the child after `pivot_root`: it adds rules for the paths that
//! exist only inside the sandbox (the tmpfs root, `/proc`, `/dev`, `/tmp`, …) from C strings
//! compiled in the parent, then calls `landlock_restrict_self`. A plan is used by one launch:
//! the ruleset is a single kernel object, so the rules the child adds land in the parent's copy
//! too; build a fresh one with [`prepare`] for every launch.
//!
//! # Rights
//!
//! The ruleset handles every filesystem right of the kernel's ABI (capped at [`TESTED_ABI`]:
//! rights newer than what we test are left unhandled, i.e. unrestricted). Then:
//!
//! | policy | rights |
//! |---|---|
//! | `read_only` | `ReadFile`, `ReadDir`, `Execute` |
//! | `read_write`, extra read-write paths, child `ReadWrite` | every right |
//! | `write_only` | `MakeReg`, `WriteFile`, `Truncate` (no `ReadFile`, no `ReadDir`) |
//! | child `RootDir` | `ReadDir` only: a rule on `/` would otherwise cover every bind beneath |
//! | child `Proc` | `ReadFile`, `ReadDir` |
//! | child `Dev` | `ReadFile`, `WriteFile`, `ReadDir`, `Truncate`, `IoctlDev` |
//! | `exec` (when non-empty) | `Execute` only on these paths and on their ELF interpreters; every other rule loses `Execute` |
//!
//! Where paths nest, the innermost policy path decides, as with bind mounts (see carve-outs).
//! The policy's `tmpfs` paths exist only inside the sandbox: the launcher passes them in
//! [`LandlockInput::child_paths`].
//!
//! # The exec allowlist and the ELF interpreter
//!
//! Measured on 6.18 (test `exec_allowlist_needs_the_interpreter`): `execve` of a dynamically
//! linked binary needs `Execute` on the binary *and* on its interpreter (`ld.so`), because the
//! kernel opens the interpreter with `open_exec`; it also needs `ReadFile` on the binary (the
//! exec open is a read open). `exec` entries get `Execute` only: they must also be readable
//! through `read_only`/`read_write`, as must the loader. Shared libraries need only `ReadFile`: they
//! are `mmap`ed with `PROT_EXEC` by `ld.so`, and Landlock does not mediate `mmap`. So
//! [`prepare`] grants `Execute` on the `PT_INTERP` of every listed ELF file (and on the
//! interpreter of the running binary when a directory is listed). Consequence, documented for
//! the threat model: `exec` restricts what `execve` accepts, not what code runs. `ld.so` itself
//! stays executable, so `ld.so /some/readable/elf` runs any readable binary, and interpreters
//! (shells, python) run any readable script. A `#!` script needs its interpreter listed too.
//!
//! # Carve-outs: deny, write-only and nested paths
//!
//! Landlock is an allowlist and a rule on a directory covers everything beneath it; it has no
//! name-based rule and no way to subtract. So when a policy path C lies beneath a granted
//! directory E and must get *less* than E grants (a `deny` path, a `write_only` drop box inside
//! a read-write tree, and in landlock isolation mode also a `read_only` path inside a
//! read-write tree), E is not granted as a whole. Instead every directory A on the way from E
//! down to C (the chain) gets only the rights that are harmless for C, and every other entry
//! of A gets E's rights individually:
//!
//! - C missing (`deny`): chain directories lose every `Make*` right, so nothing can be created
//!   directly in them, and neither C nor a prefix of it can come into existence. No host
//!   artefact is needed. Trade-off: in the chain directories (for `deny = ["${CWD}/.env"]`:
//!   the working directory itself) no new file or directory can be created, and editors that
//!   save by renaming a temporary file there fail; subdirectories are unaffected.
//! - C an existing file: chain directories keep no file rights and no `RemoveFile` (the file
//!   could be deleted and replaced); listing and creating in them keeps working.
//! - C an existing directory: chain directories get only what C itself gets (for `deny`:
//!   nothing, so they cannot even be listed; for a nested `write_only` drop box: new files
//!   can be created and written in them but they cannot be listed; their other entries work
//!   as before). Put drop boxes outside granted trees to avoid this.
//!
//! Existing denied paths are hidden by the mount layer in namespaces mode, so there only
//! missing denied paths and `write_only` paths are carved out; in landlock isolation mode every
//! carve-out above is applied. Symbolic links among the entries get no rule (Landlock checks
//! the target, which has its own rights). Costs and limits: one `open` and one `add_rule` per
//! entry of each chain directory (a chain directory with 10 000 entries costs 10 000 rules);
//! entries created on the host after [`prepare`] have no rule inside. Denied paths beneath a
//! child-side path (the fresh `/tmp`) are not carved: nothing created there reaches the host.
//!
//! # Kernel compatibility
//!
//! ABI 1 = Linux 5.13, 2 = 5.19 (`Refer`), 3 = 6.2 (`Truncate`), 4 = 6.7 (TCP ports),
//! 5 = 6.10 (`IoctlDev`), 6 = 6.12 (signal and abstract-unix-socket scoping), 7 = 6.15.
//! What the policy explicitly asks for fails closed ([`LandlockError::AbiTooOld`]) unless
//! `[landlock] best_effort = true`: only TCP port lists need more than ABI 1. What the sandbox
//! adds on its own (truncate and device-ioctl restriction, scoping, TCP blocking in landlock
//! isolation mode with `--net none`) degrades to [`LayerStatus::Partial`] on older kernels, so
//! the default policy runs on 6.1 (ABI 2). On ABI 1 files cannot be renamed or linked across
//! directories at all (the kernel refuses reparenting when `Refer` is not handled). No
//! Landlock at all is an error ([`LandlockError::Unavailable`]) unless `best_effort`, then
//! [`LayerStatus::Unavailable`].
//!
//! # Network
//!
//! With `network.mode = host`, a non-empty `connect_tcp` (`bind_tcp`) list makes the ruleset
//! handle `ConnectTcp` (`BindTcp`) and allows exactly those ports; an empty list leaves that
//! operation unrestricted. In landlock isolation mode with no network, both are handled with
//! no port allowed (seccomp refuses the sockets too). In namespaces mode with no network the
//! network namespace is the boundary and nothing is handled. Landlock mediates TCP only.
//!
//! # Scoping
//!
//! With ABI ≥ 6 the ruleset is always scoped: no signals to and no connections to abstract
//! unix sockets of processes outside the sandbox's Landlock domain, even with `--net host`.

mod elf;
mod rules;
#[cfg(test)]
mod tests;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use landlock::{Access, AccessFs, BitFlags, Scope, ABI};

use crate::plan::LayerStatus;
use crate::policy::{Isolation, NetworkMode, ResolvedPolicy};

pub(crate) use rules::ChildAccess;

/// The newest Landlock ABI this layer was tested with; newer rights stay unhandled.
pub const TESTED_ABI: u32 = 7;

/// The Linux release that introduced each ABI (index = ABI).
const LINUX_FOR_ABI: [&str; 8] = ["-", "5.13", "5.19", "6.2", "6.7", "6.10", "6.12", "6.15"];

/// The Linux release that introduced Landlock ABI `abi`.
pub fn linux_for_abi(abi: u32) -> &'static str {
    LINUX_FOR_ABI.get(abi as usize).copied().unwrap_or("newer")
}

/// `landlock_create_ruleset` flag: return the ABI version (uapi `linux/landlock.h`).
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// Why Landlock cannot be used on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// `ENOSYS`: the kernel is older than 5.13 or built without `CONFIG_SECURITY_LANDLOCK`.
    NotBuilt,
    /// `EOPNOTSUPP`: built in but not enabled at boot (`lsm=` lacks `landlock`).
    Disabled,
    /// Any other errno from `landlock_create_ruleset`.
    Errno(i32),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NotBuilt => {
                f.write_str("the kernel has no landlock (needs linux 5.13+ with CONFIG_SECURITY_LANDLOCK)")
            }
            Unavailable::Disabled => {
                f.write_str("landlock is built in but disabled at boot (add landlock to the lsm= boot parameter)")
            }
            Unavailable::Errno(e) => write!(
                f,
                "landlock_create_ruleset failed: {}",
                io::Error::from_raw_os_error(*e)
            ),
        }
    }
}

/// Probe the running kernel's Landlock ABI version (`landlock_create_ruleset(NULL, 0,
/// LANDLOCK_CREATE_RULESET_VERSION)`), or why there is none.
///
/// ```ignore
/// match landlock::probe() { Ok(abi) => println!("ABI {abi}"), Err(why) => println!("{why}") }
/// ```
pub fn probe() -> Result<u32, Unavailable> {
    // SAFETY: with a NULL attr, size 0 and the VERSION flag the kernel only returns the ABI.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v >= 1 {
        return Ok(u32::try_from(v).unwrap_or(u32::MAX));
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) => Err(Unavailable::NotBuilt),
        Some(libc::EOPNOTSUPP) => Err(Unavailable::Disabled),
        Some(e) => Err(Unavailable::Errno(e)),
        None => Err(Unavailable::Errno(0)),
    }
}

/// The running kernel's Landlock ABI version; `None` when Landlock is missing or disabled
/// ([`probe`] says why).
pub fn abi_version() -> Option<u32> {
    probe().ok()
}

/// A Landlock problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LandlockError {
    /// Landlock cannot be used at all on this host.
    #[error("landlock is not available: {why}; hint: set [landlock] best_effort = true or upgrade the kernel")]
    Unavailable {
        /// Why.
        why: Unavailable,
    },
    /// The policy asks for something the kernel's ABI lacks.
    #[error("{feature} needs landlock ABI {needs} (linux {linux}) but this kernel has ABI {have}; hint: set [landlock] best_effort = true or upgrade the kernel")]
    AbiTooOld {
        /// What the policy asked for (`network.connect_tcp`, …).
        feature: &'static str,
        /// The ABI that has it.
        needs: u32,
        /// The Linux release that introduced that ABI.
        linux: &'static str,
        /// The running kernel's ABI.
        have: u32,
    },
    /// A path the policy names does not exist.
    #[error("{key}: {path}: no such file or directory")]
    MissingPath {
        /// The policy key.
        key: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A path could not be opened, inspected or listed for a rule.
    #[error("{key}: {path}: cannot {step} it for a landlock rule: {source}")]
    Path {
        /// The policy key the rule comes from.
        key: &'static str,
        /// The path.
        path: PathBuf,
        /// `open`, `stat`, `list` or `read the ELF header of`.
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A path contains a NUL byte.
    #[error("{key}: {path}: contains a NUL byte")]
    NulByte {
        /// The policy key.
        key: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The ruleset could not be created.
    #[error("landlock: cannot create the ruleset: {source}")]
    CreateRuleset {
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A rule could not be added.
    #[error("landlock: cannot add the rule for {what}: {source}")]
    AddRule {
        /// The path or `tcp port N`.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// What the parent compiled for one launch: the ruleset with every host rule, and the
/// child-side paths as C strings.
#[derive(Debug)]
pub(crate) struct LandlockPlan {
    /// The ruleset's fd; `None` when Landlock is unavailable and the policy allowed that (best
    /// effort).
    ruleset: Option<OwnedFd>,
    /// Rules added in the child after `pivot_root`.
    child_rules: Vec<(CString, BitFlags<AccessFs>)>,
}

/// What [`prepare`] needs.
pub(crate) struct LandlockInput<'a> {
    /// The resolved policy.
    pub policy: &'a ResolvedPolicy,
    /// Paths that exist only inside the sandbox after pivot_root in namespaces mode (the tmpfs
    /// root "/", "/proc", "/tmp" and the policy's tmpfs paths, "/dev/pts", "/dev/shm", "/dev"):
    /// rules for them are added in the child, by precomputed C strings, after pivot_root.
    /// Each with the access it needs.
    pub child_paths: &'a [(PathBuf, ChildAccess)],
    /// Extra host paths with full read-write access (e.g. a private temp dir in landlock
    /// isolation mode).
    pub extra_read_write: &'a [PathBuf],
}

/// Parent: probe the ABI, check the policy's requirements, build the ruleset with every host
/// rule and compile the child-side paths. Returns the plan and what will be enforced.
pub(crate) fn prepare(input: &LandlockInput) -> Result<(LandlockPlan, LayerStatus), LandlockError> {
    let best_effort = input.policy.landlock.best_effort;
    let abi = match probe() {
        Ok(abi) => abi,
        Err(why) if best_effort => {
            let plan = LandlockPlan {
                ruleset: None,
                child_rules: Vec::new(),
            };
            return Ok((plan, LayerStatus::Unavailable(format!("landlock: {why}"))));
        }
        Err(why) => return Err(LandlockError::Unavailable { why }),
    };
    prepare_with_abi(input, abi)
}

/// [`prepare`] for a given kernel ABI (tests simulate older kernels with it: the ruleset is
/// then built with that ABI's rights only).
fn prepare_with_abi(
    input: &LandlockInput,
    kernel_abi: u32,
) -> Result<(LandlockPlan, LayerStatus), LandlockError> {
    let policy = input.policy;
    let abi = kernel_abi.min(TESTED_ABI);
    let gaps = rules::feature_gaps(policy, abi);
    if let Some(missing) = gaps.requested.first() {
        if !policy.landlock.best_effort {
            return Err(LandlockError::AbiTooOld {
                feature: missing.feature,
                needs: missing.needs,
                linux: linux_for_abi(missing.needs),
                have: kernel_abi,
            });
        }
    }

    let crate_abi = ABI::from(abi as i32);
    let rights = rules::Rights::new(crate_abi, !policy.filesystem.exec.is_empty());
    let host_rules = rules::host_rules(input, &rights)?;
    let net = rules::net_rules(policy, abi);

    // The rights come from the crate (what each ABI has); the syscalls are made here. The
    // crate's `create` probes the ABI again and its `add_rule` `fstat`s every rule's fd to drop
    // directory rights from a file: the ABI is probed above, and `rules` gives a file only
    // file rights already (a path that turned into a file since then fails, with EINVAL). Eight
    // syscalls fewer per launch in the parent, six in the child.
    let scoped = if abi >= 6 {
        Scope::from_all(crate_abi).bits()
    } else {
        0
    };
    let ruleset = create_ruleset(
        AccessFs::from_all(crate_abi).bits(),
        net.handled.bits(),
        scoped,
    )
    .map_err(|e| LandlockError::CreateRuleset { source: e.into() })?;
    for rule in &host_rules {
        let fd = open_rule_path(&rule.path, rule.real).map_err(|source| LandlockError::Path {
            key: rule.key,
            path: rule.path.clone(),
            step: "open",
            source,
        })?;
        add_path_rule(ruleset.as_raw_fd(), fd.as_raw_fd(), rule.access.bits()).map_err(|e| {
            LandlockError::AddRule {
                what: rule.path.display().to_string(),
                source: e.into(),
            }
        })?;
    }
    for port in &net.ports {
        add_port_rule(ruleset.as_raw_fd(), port.port, port.access.bits()).map_err(|e| {
            LandlockError::AddRule {
                what: format!("tcp port {}", port.port),
                source: e.into(),
            }
        })?;
    }

    let mut child_rules = Vec::with_capacity(input.child_paths.len());
    for (path, kind) in input.child_paths {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| LandlockError::NulByte {
            key: "child path",
            path: path.clone(),
        })?;
        child_rules.push((c, rights.child(*kind)));
    }

    let not_enforced: Vec<String> = gaps
        .requested
        .iter()
        .chain(gaps.baseline.iter())
        .map(|g| {
            format!(
                "{} (needs landlock ABI {}, linux {})",
                g.feature,
                g.needs,
                linux_for_abi(g.needs)
            )
        })
        .collect();
    let status = if not_enforced.is_empty() {
        LayerStatus::Enforced
    } else {
        LayerStatus::Partial(format!(
            "landlock: not enforced: {}",
            not_enforced.join("; ")
        ))
    };
    let plan = LandlockPlan {
        ruleset: Some(ruleset),
        child_rules,
    };
    Ok((plan, status))
}

/// Open `path` with `O_PATH | O_CLOEXEC`, following symbolic links (the exec allowlist's
/// paths, as the rule should).
fn open_path(path: &Path) -> io::Result<OwnedFd> {
    crate::sys::open_path(path, libc::O_PATH, 0)
}

/// Open a rule's path: a real path refusing any symbolic link on the way (`openat2`'s
/// `RESOLVE_NO_SYMLINKS`, Linux 5.6, older than any Landlock), so that a component swapped
/// for a link after the compile resolved it fails the launch (`ELOOP`) instead of putting the
/// rule on whatever the link names; other paths as [`open_path`].
fn open_rule_path(path: &Path, real: bool) -> io::Result<OwnedFd> {
    if !real {
        return open_path(path);
    }
    match crate::sys::open_no_symlinks(path, libc::O_PATH) {
        // A filter that predates openat2 (some container runtimes'): the plain open.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => open_path(path),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(io::Error::other(
            "it changed while the sandbox was being set up (a component is a symbolic link now)",
        )),
        other => other,
    }
}

/// Child: add the rules for the child-side paths, then restrict the calling thread (this
/// also sets `PR_SET_NO_NEW_PRIVS`, which `landlock_restrict_self` requires without
/// `CAP_SYS_ADMIN`). A no-op when Landlock was unavailable (best effort).
///
/// No allocation: the paths are C strings compiled by [`prepare`]; raw `open`,
/// `landlock_add_rule`, `close`, `prctl` and `landlock_restrict_self` (checked by the test
/// `child_side_does_not_allocate`).
///
/// # Safety
///
/// Runs between `clone` and `execve` in a copy of a possibly multi-threaded process, under the
/// contract of [`std::os::unix::process::CommandExt::pre_exec`]: no allocation, no locks, no
/// panics. Call it once, after every mount (a restricted thread can no longer mount).
pub(crate) unsafe fn apply(plan: &mut LandlockPlan) -> Result<(), nix::errno::Errno> {
    let Some(ruleset) = plan.ruleset.take() else {
        return Ok(());
    };
    for (path, access) in &plan.child_rules {
        // Dropping it closes it.
        let fd = crate::sys::owned_fd(crate::sys::open(path, libc::O_PATH | libc::O_CLOEXEC, 0)?);
        add_path_rule(ruleset.as_raw_fd(), fd.as_raw_fd(), access.bits())?;
    }
    // SAFETY: plain prctl on integers.
    crate::sys::check_int(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    // SAFETY: a ruleset fd and no flags.
    crate::sys::check(unsafe {
        libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32)
    })
    .map(drop)
}

/// `landlock_create_ruleset` handling `fs` and `net` accesses and `scoped` IPC (uapi
/// `struct landlock_ruleset_attr`; fields an older kernel lacks are zero, which it accepts).
fn create_ruleset(fs: u64, net: u64, scoped: u64) -> Result<OwnedFd, nix::errno::Errno> {
    #[repr(C)]
    struct RulesetAttr {
        handled_access_fs: u64,
        handled_access_net: u64,
        scoped: u64,
    }
    let attr = RulesetAttr {
        handled_access_fs: fs,
        handled_access_net: net,
        scoped,
    };
    // SAFETY: a valid attr of the size passed; no flags.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    // An fd fits in an int.
    Ok(crate::sys::owned_fd(crate::sys::check(fd)? as RawFd))
}

/// `landlock_add_rule(LANDLOCK_RULE_PATH_BENEATH)`: `access` beneath the file `parent` is
/// open on. Allocation-free, for the child too.
fn add_path_rule(ruleset: RawFd, parent: RawFd, access: u64) -> Result<(), nix::errno::Errno> {
    const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
    #[repr(C, packed)]
    struct PathBeneathAttr {
        allowed_access: u64,
        parent_fd: i32,
    }
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: parent,
    };
    // SAFETY: a valid packed attr, as the uapi declares it; no flags.
    crate::sys::check(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    })
    .map(drop)
}

/// `landlock_add_rule(LANDLOCK_RULE_NET_PORT)`: `access` on TCP `port`.
fn add_port_rule(ruleset: RawFd, port: u16, access: u64) -> Result<(), nix::errno::Errno> {
    const LANDLOCK_RULE_NET_PORT: libc::c_int = 2;
    #[repr(C)]
    struct NetPortAttr {
        allowed_access: u64,
        port: u64,
    }
    let attr = NetPortAttr {
        allowed_access: access,
        port: u64::from(port),
    };
    // SAFETY: a valid attr, as the uapi declares it; no flags.
    crate::sys::check(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_NET_PORT,
            &attr as *const NetPortAttr,
            0u32,
        )
    })
    .map(drop)
}

/// The TCP access rights of ABI 4, for tests.
#[cfg(test)]
pub(crate) fn tcp_rights() -> BitFlags<landlock::AccessNet> {
    landlock::AccessNet::from_all(ABI::V4)
}

/// Is the policy's network shared with the host (so TCP port rules mean something)?
fn shares_network(policy: &ResolvedPolicy) -> bool {
    policy.network.mode == NetworkMode::Host
}

/// Does the policy run without namespaces?
fn landlock_isolation(policy: &ResolvedPolicy) -> bool {
    policy.isolation == Isolation::Landlock
}
