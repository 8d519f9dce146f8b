//! What the host offers: cgroup v2, v1 (or hybrid), or nothing usable, and why.
//!
//! Everything here reads files under a root path given as a parameter, so the unit tests
//! point it at a fake tree in a `TempDir`. Nothing here changes the host.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A controller this layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ctrl {
    /// Memory limit, swap, peak and OOM counters.
    Memory,
    /// Process limit.
    Pids,
    /// CPU bandwidth (quota/period).
    Cpu,
    /// v1 only: CPU usage (on v2, `cpu.stat` is always there).
    Cpuacct,
    /// v1 only: freeze the tree to kill it without races.
    Freezer,
}

impl Ctrl {
    /// Every controller, in report order.
    pub(super) const ALL: [Ctrl; 5] = [
        Ctrl::Memory,
        Ctrl::Cpu,
        Ctrl::Pids,
        Ctrl::Cpuacct,
        Ctrl::Freezer,
    ];

    /// The kernel's name for it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Ctrl::Memory => "memory",
            Ctrl::Pids => "pids",
            Ctrl::Cpu => "cpu",
            Ctrl::Cpuacct => "cpuacct",
            Ctrl::Freezer => "freezer",
        }
    }

    fn from_name(name: &str) -> Option<Ctrl> {
        Ctrl::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Ctrls(u8);

impl Ctrls {
    /// No controller.
    pub(super) const NONE: Ctrls = Ctrls(0);
    /// The controllers that enforce a policy limit.
    pub(super) const LIMITS: Ctrls =
        Ctrls(1 << Ctrl::Memory as u8 | 1 << Ctrl::Pids as u8 | 1 << Ctrl::Cpu as u8);

    /// This set plus `c`.
    pub(super) fn with(self, c: Ctrl) -> Ctrls {
        Ctrls(self.0 | c.bit())
    }
    /// Whether `c` is in the set.
    pub(super) fn has(self, c: Ctrl) -> bool {
        self.0 & c.bit() != 0
    }
    /// The controllers in `self` but not in `other`.
    pub(super) fn minus(self, other: Ctrls) -> Ctrls {
        Ctrls(self.0 & !other.0)
    }
    /// The controllers in both.
    pub(super) fn and(self, other: Ctrls) -> Ctrls {
        Ctrls(self.0 & other.0)
    }
    /// Whether the set is empty.
    pub(super) fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The members, in [`Ctrl::ALL`] order.
    pub(super) fn iter(self) -> impl Iterator<Item = Ctrl> {
        Ctrl::ALL.into_iter().filter(move |c| self.has(*c))
    }
    /// The members' names.
    pub(super) fn names(self) -> Vec<&'static str> {
        self.iter().map(Ctrl::name).collect()
    }
    /// The controllers named in a space-separated list (`cgroup.controllers`), ours only.
    pub(super) fn parse(list: &str) -> Ctrls {
        list.split_whitespace()
            .filter_map(Ctrl::from_name)
            .fold(Ctrls::NONE, Ctrls::with)
    }
}

/// Why this process cannot use cgroups on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unusable {
    /// Neither a cgroup2 root nor any v1 hierarchy we use is mounted.
    #[error("no cgroup filesystem with memory, cpu or pids controllers is mounted at {root}")]
    NoCgroupFs {
        /// Where we looked.
        root: PathBuf,
    },
    /// `/proc/self/cgroup` does not say where this process lives.
    #[error("/proc/self/cgroup has no {what} entry")]
    OwnCgroupUnknown {
        /// The missing entry (`0::` for v2).
        what: &'static str,
    },
    /// The process lives outside the root of its cgroup namespace.
    #[error("this process's cgroup {path} lies outside its cgroup namespace")]
    OutsideNamespace {
        /// The path as `/proc/self/cgroup` shows it.
        path: String,
    },
    /// cgroup v1 cannot be delegated safely to an ordinary user.
    #[error("cgroup v1 limits need root and this process runs as uid {euid}")]
    V1NotRoot {
        /// Our effective uid.
        euid: u32,
    },
    /// The own v2 cgroup is not delegated to us.
    #[error("cgroup {cgroup} is not delegated to uid {euid} ({file} is not writable)")]
    V2NotDelegated {
        /// The cgroup directory.
        cgroup: PathBuf,
        /// The file or directory we may not write.
        file: PathBuf,
        /// Our effective uid.
        euid: u32,
    },
}

/// How an ordinary user on a systemd host gets cgroup limits.
pub(super) const HINT_DELEGATE: &str =
    "run it in a delegated cgroup: systemd-run --user --scope -p Delegate=yes sandbox run …, \
     or set [limits] best_effort = true to fall back to rlimits";

/// The fix for a v1 host when not root.
pub(super) const HINT_V1: &str =
    "run as root, or boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) and use \
     systemd-run --user --scope -p Delegate=yes sandbox run …, \
     or set [limits] best_effort = true to fall back to rlimits";

impl Unusable {
    /// The fix for this cause.
    pub(super) fn hint(&self) -> &'static str {
        match self {
            Unusable::V1NotRoot { .. } => HINT_V1,
            _ => HINT_DELEGATE,
        }
    }
}

/// The inputs of the decision: where cgroupfs is mounted, what `/proc/self/cgroup` says,
/// and who we are.
pub(super) struct Host<'a> {
    /// Normally `/sys/fs/cgroup`.
    pub(super) root: &'a Path,
    /// The contents of `/proc/self/cgroup`.
    pub(super) self_cgroup: &'a str,
    /// Effective uid.
    pub(super) euid: u32,
    /// Effective gid.
    pub(super) egid: u32,
}

/// What the supervisor must do before controllers can be enabled for its children
/// (the v2 no-internal-processes rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Leaf {
    /// We live in the root cgroup, which is exempt from the rule.
    RootCgroup,
    /// Move this process into this leaf (`<own>/supervisor`) first.
    Move(PathBuf),
    /// We already live in `<base>/supervisor` (a previous setup, or a parent process).
    AlreadyThere,
}

/// A usable cgroup v2 host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct V2Host {
    /// Our own cgroup (from the `0::` line).
    pub(super) own: PathBuf,
    /// The cgroup under which sandbox cgroups are created.
    pub(super) base: PathBuf,
    /// The no-internal-processes step.
    pub(super) leaf: Leaf,
    /// Our controllers among `<base>/cgroup.controllers`: what the parent offers.
    pub(super) offered: Ctrls,
}

/// One v1 hierarchy we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct V1Hierarchy {
    /// Our controllers mounted in it (`cpu,cpuacct` share one).
    pub(super) ctrls: Ctrls,
    /// Our own cgroup in it.
    pub(super) own: PathBuf,
}

/// A usable cgroup v1 (or hybrid) host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct V1Host {
    /// A cgroup2 mount at `<root>/unified` (it has no controllers we can use: ignored).
    pub(super) hybrid: bool,
    /// The hierarchies of our controllers.
    pub(super) hierarchies: Vec<V1Hierarchy>,
}

impl V1Host {
    /// The controllers mounted.
    pub(super) fn offered(&self) -> Ctrls {
        self.hierarchies
            .iter()
            .fold(Ctrls::NONE, |acc, h| Ctrls(acc.0 | h.ctrls.0))
    }
}

/// The decision: which backend, or why none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Layout {
    /// Pure cgroup v2 that we may write.
    V2(V2Host),
    /// cgroup v1 or hybrid, as root.
    V1(V1Host),
    /// Nothing usable.
    Unusable {
        /// `"v2"`, `"v1 hybrid"`, `"v1"` or `"none"`.
        version: &'static str,
        /// Why.
        why: Unusable,
    },
}

impl Layout {
    /// `"v2"`, `"v1 hybrid"`, `"v1"` or `"none"`.
    pub(super) fn version(&self) -> &'static str {
        match self {
            Layout::V2(_) => "v2",
            Layout::V1(h) if h.hybrid => "v1 hybrid",
            Layout::V1(_) => "v1",
            Layout::Unusable { version, .. } => version,
        }
    }
}

/// Decide which backend this host offers to this process.
pub(super) fn decide(host: &Host<'_>) -> Layout {
    if host.root.join("cgroup.controllers").exists() {
        decide_v2(host)
    } else {
        decide_v1(host)
    }
}

fn unusable(version: &'static str, why: Unusable) -> Layout {
    Layout::Unusable { version, why }
}

/// `root` + a cgroup path from `/proc/self/cgroup`, never letting an absolute path replace
/// the root (the cgroups-rs trap).
fn join_rel(root: &Path, rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

fn escapes(rel: &str) -> bool {
    rel.split('/').any(|c| c == "..")
}

fn decide_v2(host: &Host<'_>) -> Layout {
    let Some(rel) = host
        .self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
    else {
        return unusable("v2", Unusable::OwnCgroupUnknown { what: "0::" });
    };
    if escapes(rel) {
        return unusable(
            "v2",
            Unusable::OutsideNamespace {
                path: rel.to_owned(),
            },
        );
    }
    let own = join_rel(host.root, rel);
    let in_leaf = rel.trim_end_matches('/').rsplit('/').next() == Some("supervisor");
    let (base, leaf) = match own.parent() {
        _ if rel.trim_matches('/').is_empty() => (own.clone(), Leaf::RootCgroup),
        Some(parent) if in_leaf && delegated(host, parent).is_ok() => {
            (parent.to_path_buf(), Leaf::AlreadyThere)
        }
        _ => (own.clone(), Leaf::Move(own.join("supervisor"))),
    };
    if host.euid != 0 {
        if let Err(file) = delegated(host, &base) {
            return unusable(
                "v2",
                Unusable::V2NotDelegated {
                    cgroup: base,
                    file,
                    euid: host.euid,
                },
            );
        }
    }
    let offered = fs::read_to_string(base.join("cgroup.controllers"))
        .map(|s| Ctrls::parse(&s).and(Ctrls::LIMITS))
        .unwrap_or_default();
    Layout::V2(V2Host {
        own,
        base,
        leaf,
        offered,
    })
}

/// Whether `dir` is delegated to us: we may create cgroups in it, move processes into it
/// and enable its controllers. On failure, the first path we may not write.
fn delegated(host: &Host<'_>, dir: &Path) -> Result<(), PathBuf> {
    if host.euid == 0 {
        return Ok(());
    }
    let checks: [(PathBuf, u32); 3] = [
        (dir.to_path_buf(), 0o3),
        (dir.join("cgroup.procs"), 0o2),
        (dir.join("cgroup.subtree_control"), 0o2),
    ];
    for (path, want) in checks {
        let ok = fs::metadata(&path).is_ok_and(|m| may(&m, host.euid, host.egid, want));
        if !ok {
            return Err(path);
        }
    }
    Ok(())
}

/// Whether the owner/group/other bits of `meta` grant `want` (rwx bits, 0o1–0o7) to
/// `euid`/`egid` (supplementary groups are not considered: delegation chowns to the user).
pub(super) fn may(meta: &fs::Metadata, euid: u32, egid: u32, want: u32) -> bool {
    let mode = meta.mode();
    let bits = if meta.uid() == euid {
        mode >> 6
    } else if meta.gid() == egid {
        mode >> 3
    } else {
        mode
    };
    bits & want == want
}

fn decide_v1(host: &Host<'_>) -> Layout {
    let hybrid = host.root.join("unified/cgroup.controllers").exists();
    let version = if hybrid { "v1 hybrid" } else { "v1" };
    let mut hierarchies = Vec::new();
    for line in host.self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(list), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let ctrls = list
            .split(',')
            .filter_map(Ctrl::from_name)
            .fold(Ctrls::NONE, Ctrls::with);
        if ctrls.is_empty() {
            continue;
        }
        if escapes(rel) {
            return unusable(
                version,
                Unusable::OutsideNamespace {
                    path: rel.to_owned(),
                },
            );
        }
        // Mounted as `<root>/cpu,cpuacct` with `cpu` and `cpuacct` symlinks, or `<root>/memory`.
        let mount = [host.root.join(list)]
            .into_iter()
            .chain(ctrls.iter().map(|c| host.root.join(c.name())))
            .find(|p| p.join("cgroup.procs").exists());
        if let Some(mount) = mount {
            hierarchies.push(V1Hierarchy {
                ctrls,
                own: join_rel(&mount, rel),
            });
        }
    }
    if hierarchies
        .iter()
        .all(|h| h.ctrls.and(Ctrls::LIMITS).is_empty())
    {
        let version = if hybrid { version } else { "none" };
        return unusable(
            version,
            Unusable::NoCgroupFs {
                root: host.root.to_path_buf(),
            },
        );
    }
    if host.euid != 0 {
        return unusable(version, Unusable::V1NotRoot { euid: host.euid });
    }
    Layout::V1(V1Host {
        hybrid,
        hierarchies,
    })
}
