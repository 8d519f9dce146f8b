//! From the policy to Landlock rules: rights per policy key, carve-outs, TCP ports and the
//! features a kernel ABI lacks. Parent-side only (allocates, stats and lists directories).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use landlock::{make_bitflags, Access, AccessFs, AccessNet, BitFlags, ABI};

use super::{elf, landlock_isolation, shares_network, LandlockError, LandlockInput};
use crate::policy::ResolvedPolicy;

/// What a child-side path (one that exists only after `pivot_root`) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildAccess {
    /// `ReadDir` only, so a rule on "/" doesn't cover the binds beneath.
    RootDir,
    /// The new `/proc`: read files and list directories.
    Proc,
    /// The minimal `/dev` (a directory): read, write and ioctl the device nodes, list it.
    Dev,
    /// A device node of the host's `/dev` (landlock isolation mode): `Dev`'s file rights.
    DevNode,
    /// A fresh tmpfs (`/tmp`, `/dev/shm`, the policy's tmpfs paths): every right.
    ReadWrite,
}

type Fs = BitFlags<AccessFs>;

/// Every `Make*` right.
const MAKE: Fs = make_bitflags!(AccessFs::{
    MakeChar | MakeDir | MakeReg | MakeSock | MakeFifo | MakeBlock | MakeSym
});

/// The rights of each policy key for one ABI.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rights {
    /// Every filesystem right of the ABI (the handled set).
    pub all: Fs,
    /// Rights that apply to non-directories.
    pub file: Fs,
    /// `read_only`.
    pub read: Fs,
    /// `read_write` and extra read-write paths.
    pub read_write: Fs,
    /// `write_only`.
    pub write_only: Fs,
}

impl Rights {
    /// Rights for `abi`; with an exec allowlist no grant carries `Execute`.
    pub fn new(abi: ABI, exec_restricted: bool) -> Rights {
        let all = AccessFs::from_all(abi);
        let no_exec = if exec_restricted {
            Fs::from(AccessFs::Execute)
        } else {
            Fs::EMPTY
        };
        Rights {
            all,
            file: AccessFs::from_file(abi),
            read: AccessFs::from_read(abi) & !no_exec,
            read_write: all & !no_exec,
            write_only: make_bitflags!(AccessFs::{WriteFile | MakeReg | Truncate}) & all,
        }
    }

    /// The rights of a child-side path.
    pub fn child(&self, access: ChildAccess) -> Fs {
        match access {
            ChildAccess::RootDir => AccessFs::ReadDir.into(),
            ChildAccess::Proc => make_bitflags!(AccessFs::{ReadFile | ReadDir}),
            ChildAccess::Dev => {
                make_bitflags!(AccessFs::{ReadFile | WriteFile | ReadDir | Truncate | IoctlDev})
                    & self.all
            }
            // A rule on a file may only carry file rights.
            ChildAccess::DevNode => self.child(ChildAccess::Dev) & self.file,
            ChildAccess::ReadWrite => self.read_write,
        }
    }
}

/// One rule on a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostRule {
    /// The path, opened with `O_PATH`.
    pub path: PathBuf,
    /// A real path (resolved by the compile, so free of symbolic links), opened refusing any:
    /// a component swapped for a link since cannot put the rule on another tree. The exec
    /// allowlist's paths are the policy's own and are followed.
    pub real: bool,
    /// The rights beneath it.
    pub access: Fs,
    /// The policy key it comes from.
    pub key: &'static str,
}

/// A feature the kernel's ABI lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gap {
    /// What is not enforced.
    pub feature: &'static str,
    /// The ABI that has it.
    pub needs: u32,
}

/// What the kernel's ABI lacks: asked for by the policy (fail closed unless best effort), or
/// added by the sandbox on its own (reported as partial).
#[derive(Debug, Default)]
pub(super) struct Gaps {
    /// Explicitly requested by the policy.
    pub requested: Vec<Gap>,
    /// Default protections.
    pub baseline: Vec<Gap>,
}

/// Compare what the policy needs with ABI `abi`.
pub(super) fn feature_gaps(policy: &ResolvedPolicy, abi: u32) -> Gaps {
    let mut gaps = Gaps::default();
    let net = &policy.network;
    if shares_network(policy) && !net.connect_tcp.is_empty() && abi < 4 {
        gaps.requested.push(Gap {
            feature: "network.connect_tcp port rules",
            needs: 4,
        });
    }
    if shares_network(policy) && !net.bind_tcp.is_empty() && abi < 4 {
        gaps.requested.push(Gap {
            feature: "network.bind_tcp port rules",
            needs: 4,
        });
    }
    if abi < 3 {
        gaps.baseline.push(Gap {
            feature: "truncation of files outside read-write paths",
            needs: 3,
        });
    }
    if abi < 4 && landlock_isolation(policy) && !shares_network(policy) {
        gaps.baseline.push(Gap {
            feature: "blocking tcp connect and bind (seccomp still refuses inet sockets)",
            needs: 4,
        });
    }
    if abi < 5 {
        gaps.baseline.push(Gap {
            feature: "device ioctl restriction",
            needs: 5,
        });
    }
    if abi < 6 && (landlock_isolation(policy) || shares_network(policy)) {
        gaps.baseline.push(Gap {
            feature: "signal and abstract unix socket scoping",
            needs: 6,
        });
    }
    gaps
}

/// One TCP port rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PortRule {
    /// The port.
    pub port: u16,
    /// `ConnectTcp`, `BindTcp` or both.
    pub access: BitFlags<AccessNet>,
}

/// The network part of the ruleset.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct NetPlan {
    /// Handled TCP rights (empty: TCP unrestricted by Landlock).
    pub handled: BitFlags<AccessNet>,
    /// Allowed ports.
    pub ports: Vec<PortRule>,
}

/// TCP rules for ABI `abi` (nothing below ABI 4).
pub(super) fn net_rules(policy: &ResolvedPolicy, abi: u32) -> NetPlan {
    let mut plan = NetPlan::default();
    if abi < 4 {
        return plan;
    }
    if shares_network(policy) {
        let lists = [
            (&policy.network.connect_tcp, AccessNet::ConnectTcp),
            (&policy.network.bind_tcp, AccessNet::BindTcp),
        ];
        for (ports, access) in lists {
            if ports.is_empty() {
                continue;
            }
            plan.handled |= access;
            for &port in ports {
                match plan.ports.iter_mut().find(|p| p.port == port) {
                    Some(p) => p.access |= access,
                    None => plan.ports.push(PortRule {
                        port,
                        access: access.into(),
                    }),
                }
            }
        }
    } else if landlock_isolation(policy) {
        plan.handled = AccessNet::from_all(ABI::V4);
    }
    plan
}

/// What a policy path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
}

/// A policy path with its rights, looked up on the host.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    access: Fs,
    key: &'static str,
    /// `None`: missing (only denied paths may be).
    kind: Option<Kind>,
    deny: bool,
    write_only: bool,
}

/// `stat` (following symbolic links): `Ok(None)` when missing.
fn kind_of(path: &Path) -> io::Result<Option<Kind>> {
    match crate::sys::metadata(path) {
        Ok(m) if m.is_dir() => Ok(Some(Kind::Dir)),
        Ok(_) => Ok(Some(Kind::File)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where a path really is, symbolic links resolved. Landlock attaches a rule to the directory
/// a path resolves to, so grants and carve-outs are compared by these paths: a tree shared as
/// `/bin` on a merged-/usr host is `/usr/bin`, and a denial inside it, named either way, must
/// be carved out of both grants. A missing path is resolved through its deepest existing
/// ancestor.
fn real_path(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut base = path;
    loop {
        if let Ok(real) = crate::sys::canonicalize(base) {
            return missing.iter().rev().fold(real, |acc, name| acc.join(name));
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name);
                base = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The host rules for the policy's filesystem, extra read-write paths and exec allowlist.
pub(super) fn host_rules(
    input: &LandlockInput,
    rights: &Rights,
) -> Result<Vec<HostRule>, LandlockError> {
    let fs = &input.policy.filesystem;
    let landlock_mode = landlock_isolation(input.policy);
    let real_denied: Vec<PathBuf> = fs.deny.iter().map(|d| real_path(d)).collect();

    let mut entries = Vec::new();
    let grants = [
        ("filesystem.read_only", rights.read, &fs.read_only, false),
        (
            "filesystem.read_write",
            rights.read_write,
            &fs.read_write,
            false,
        ),
        (
            "filesystem.write_only",
            rights.write_only,
            &fs.write_only,
            true,
        ),
    ];
    let extra = input.extra_read_write.iter().map(|p| (p, false));
    let policy_paths = grants.iter().flat_map(|(key, access, rules, wo)| {
        rules
            .iter()
            .map(move |r| (*key, *access, &r.path, r.optional, *wo))
    });
    let extra_paths = extra.map(|(p, opt)| ("extra_read_write", rights.read_write, p, opt, false));
    for (key, access, path, optional, write_only) in policy_paths.chain(extra_paths) {
        let kind = kind_of(path).map_err(|source| stat_error(key, path, source))?;
        match kind {
            None if optional => continue,
            None => {
                return Err(LandlockError::MissingPath {
                    key,
                    path: path.clone(),
                })
            }
            Some(_) => entries.push(Entry {
                path: real_path(path),
                access,
                key,
                kind,
                deny: false,
                write_only,
            }),
        }
    }
    // A granted tree that is another entry's directory under another name (a bind mount on
    // the host) reaches that entry there too: what is carved out of a tree (a write-only drop
    // box; in landlock mode any nested entry; the denials below) is carved out at that name
    // as well. A copy that lands on a grant's own path replaces that grant: both name one
    // directory, whose rules Landlock keeps per inode anyway.
    // (A grant is never an alias of itself: `alias_beneath` skips a target within the tree.)
    let mut aliased: Vec<Entry> = Vec::new();
    if entries.iter().any(|x| x.write_only || landlock_mode) {
        let grants = crate::sys::AliasTrees::new(entries.iter().map(|g| g.path.as_path()));
        for x in entries.iter().filter(|x| x.write_only || landlock_mode) {
            for alias in grants.aliases(&x.path) {
                aliased.push(Entry {
                    path: alias,
                    ..x.clone()
                });
            }
        }
    }
    entries.retain(|e| !aliased.iter().any(|a| a.path == e.path));
    entries.extend(aliased);
    let grants = crate::sys::AliasTrees::new(entries.iter().map(|g| g.path.as_path()));
    let mut denials: Vec<(&PathBuf, PathBuf)> = Vec::new();
    for (path, real) in fs.deny.iter().zip(&real_denied) {
        denials.push((path, real.clone()));
        for alias in grants.aliases(real) {
            denials.push((path, alias));
        }
    }
    // Deny wins over a grant of the same path.
    entries.retain(|e| !denials.iter().any(|(_, d)| d == &e.path));
    for (path, real) in denials {
        let kind = kind_of(path).map_err(|source| stat_error("filesystem.deny", path, source))?;
        entries.push(Entry {
            path: real,
            access: Fs::EMPTY,
            key: "filesystem.deny",
            kind,
            deny: true,
            write_only: false,
        });
    }

    let entry_paths: BTreeSet<&Path> = entries.iter().map(|e| e.path.as_path()).collect();
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| !e.deny) {
        let access = match e.kind {
            Some(Kind::File) => e.access & rights.file,
            _ => e.access,
        };
        if access.is_empty() {
            continue;
        }
        let carves: Vec<&Entry> = if e.kind == Some(Kind::Dir) {
            entries
                .iter()
                .filter(|c| strictly_beneath(&c.path, &e.path))
                .filter(|c| c.deny && c.kind.is_none() || c.write_only || landlock_mode)
                .filter(|c| !(access & !leak(c, rights)).is_empty())
                .collect()
        } else {
            Vec::new()
        };
        if carves.is_empty() {
            out.push(HostRule {
                path: e.path.clone(),
                access,
                key: e.key,
                real: true,
            });
        } else {
            split(
                &e.path,
                access,
                e.key,
                &carves,
                &entry_paths,
                rights,
                &mut out,
            )?;
        }
    }

    if !fs.exec.is_empty() {
        exec_rules(&fs.exec, &mut out)?;
    }
    Ok(out)
}

fn stat_error(key: &'static str, path: &Path, source: io::Error) -> LandlockError {
    LandlockError::Path {
        key,
        path: path.to_path_buf(),
        step: "stat",
        source,
    }
}

fn strictly_beneath(path: &Path, dir: &Path) -> bool {
    crate::sys::is_strictly_within(path, dir)
}

/// The rights a rule on an ancestor of carve-out `c` may carry without giving `c` more than
/// its own rights (see the module docs).
fn leak(c: &Entry, rights: &Rights) -> Fs {
    match c.kind {
        None => rights.all & !MAKE,
        // No RemoveDir either above a denied file: renaming a directory on the way would move
        // the file to a name a later launch does not deny.
        Some(Kind::File) if c.deny => {
            rights.all & !rights.file & !AccessFs::RemoveFile & !AccessFs::RemoveDir
        }
        Some(Kind::File) => c.access | (rights.all & !rights.file & !AccessFs::RemoveFile),
        Some(Kind::Dir) => c.access,
    }
}

/// Grant `access` beneath directory `dir` except what the carve-outs beneath it must not get:
/// `dir` itself gets only the rights harmless for them, its other entries get `access`
/// individually, and the directories leading to a carve-out are split the same way.
fn split(
    dir: &Path,
    access: Fs,
    key: &'static str,
    carves: &[&Entry],
    entry_paths: &BTreeSet<&Path>,
    rights: &Rights,
    out: &mut Vec<HostRule>,
) -> Result<(), LandlockError> {
    let own = carves.iter().fold(access, |acc, c| acc & leak(c, rights));
    if !own.is_empty() {
        out.push(HostRule {
            path: dir.to_path_buf(),
            access: own,
            key,
            real: true,
        });
    }
    let list_error = |source| LandlockError::Path {
        key,
        path: dir.to_path_buf(),
        step: "list",
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let file_type = entry.file_type().map_err(list_error)?;
        names.push((entry.path(), file_type));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0)); // deterministic rule order (tests, reproducible plans)
    for (path, file_type) in names {
        if entry_paths.contains(path.as_path()) {
            continue; // its own policy entry (or its denial) decides
        }
        let below: Vec<&Entry> = carves
            .iter()
            .copied()
            .filter(|c| strictly_beneath(&c.path, &path))
            .collect();
        if !below.is_empty() && file_type.is_dir() {
            split(&path, access, key, &below, entry_paths, rights, out)?;
        } else if file_type.is_symlink() {
            // No rule: Landlock checks the target, which has rights of its own.
        } else {
            let access = if file_type.is_dir() {
                access
            } else {
                access & rights.file
            };
            if !access.is_empty() {
                out.push(HostRule {
                    path,
                    access,
                    key,
                    real: true,
                });
            }
        }
    }
    Ok(())
}

/// `Execute` on the exec allowlist and on the ELF interpreters it needs.
fn exec_rules(exec: &[PathBuf], out: &mut Vec<HostRule>) -> Result<(), LandlockError> {
    let key = "filesystem.exec";
    let mut interpreters = BTreeSet::new();
    let mut has_dir = false;
    for path in exec {
        match kind_of(path).map_err(|source| stat_error(key, path, source))? {
            None => {
                return Err(LandlockError::MissingPath {
                    key,
                    path: path.clone(),
                })
            }
            Some(Kind::Dir) => has_dir = true,
            Some(Kind::File) => {
                let interp = elf::interpreter(path).map_err(|source| LandlockError::Path {
                    key,
                    path: path.clone(),
                    step: "read the ELF header of",
                    source,
                })?;
                interpreters.extend(interp);
            }
        }
        out.push(HostRule {
            path: path.clone(),
            access: AccessFs::Execute.into(),
            key,
            real: false,
        });
    }
    if has_dir {
        // The binaries of a listed directory use the system's loader: the one of this binary.
        if let Ok(Some(interp)) = elf::interpreter(Path::new("/proc/self/exe")) {
            interpreters.insert(interp);
        }
    }
    for interp in interpreters {
        if exec.contains(&interp) {
            continue;
        }
        if kind_of(&interp).ok().flatten().is_some() {
            out.push(HostRule {
                path: interp,
                access: AccessFs::Execute.into(),
                key,
                real: false,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::real_path;

    #[test]
    fn real_paths_resolve_links_also_above_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let base = crate::sys::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("alias")).unwrap();
        assert_eq!(real_path(&base.join("alias")), base.join("real"));
        assert_eq!(
            real_path(&base.join("alias/missing/file")),
            base.join("real/missing/file")
        );
        assert_eq!(real_path(&base.join("real/x")), base.join("real/x"));
    }
}
