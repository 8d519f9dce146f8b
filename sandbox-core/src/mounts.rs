//! The filesystem view: a new root on tmpfs holding only what the policy names.
//!
//! `prepare` (parent) resolves every host path, decides which directories, files and symlinks
//! the empty root needs, and compiles one flat list of [`MountOp`]s made of C strings.
//! `apply` (child, pid 1 of the sandbox, all capabilities in its user namespace) executes the
//! list with raw syscalls, then `pivot_root`s into it.
//!
//! Read-only binds use `mount_setattr(AT_RECURSIVE)` so submounts are read-only too and the
//! source's locked flags are kept (a `MS_REMOUNT` would have to repeat them); kernels older
//! than 5.12 fall back to a non-recursive `MS_REMOUNT` carrying the flags `statfs` reports for
//! the bind (its source's, which the kernel locks in a user namespace).

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::policy::{PathRule, ResolvedPolicy};
use crate::sys;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// Device nodes bound from the host into the minimal `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// Symlinks of the minimal `/dev` (name, target).
const DEV_LINKS: [(&str, &str); 6] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
];
/// `/proc` paths made read-only (Docker's list).
const PROC_READ_ONLY: [&str; 4] = ["sys", "sysrq-trigger", "irq", "bus"];
/// `/proc` paths hidden behind an empty file (Docker's list).
const PROC_MASKED: [&str; 5] = ["kcore", "keys", "timer_list", "sched_debug", "kallsyms"];

/// Where the empty root is built; the first of these that exists and holds no policy path.
const STAGING_CANDIDATES: [&str; 6] = ["/mnt", "/media", "/srv", "/opt", "/boot", "/tmp"];

/// One step of building the new root. Every path is absolute (prefixed with the staging dir
/// before `pivot_root`, plain after it).
#[derive(Debug)]
pub(crate) enum MountOp {
    /// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE)`: no mount events leak in either direction.
    MakePrivate,
    /// A fresh tmpfs.
    Tmpfs {
        target: CString,
        flags: libc::c_ulong,
        data: CString,
    },
    /// `mkdir` on the new root (EEXIST is fine).
    Mkdir { path: CString, mode: libc::mode_t },
    /// A writable scratch directory of the new root's own tmpfs (`/tmp`, `/dev/shm`, the
    /// policy's tmpfs paths outside shared trees): `mkdir`, `chmod 1777` (mkdir's mode passes
    /// through the umask), then a bind of the directory onto itself, so it stays writable
    /// when the root's mount is made read-only. A directory instead of a tmpfs of its own:
    /// each superblock costs ~25 µs to make and to tear down, and these are empty anyway.
    ScratchDir { path: CString },
    /// An empty file to serve as a mount point.
    MkFile { path: CString },
    /// A symlink (merged-/usr links, /dev links).
    Symlink { target: CString, path: CString },
    /// A recursive bind of a host tree the policy shares, checked against the inode the
    /// compile saw (see [`share`]): `ESTALE` unless the new mount's root is that device and
    /// inode. A path component swapped for a link (or the tree for another) between the
    /// compile and the bind cannot bring another host tree in, past the compile's checks of
    /// denied paths.
    Share {
        source: CString,
        target: CString,
        dev: u64,
        ino: u64,
    },
    /// `MS_BIND|MS_REC`.
    Bind {
        source: CString,
        target: CString,
        optional: bool,
    },
    /// Make a mount nosuid, nodev and, unless `writable`, read-only (recursively when possible).
    Restrict {
        target: CString,
        writable: bool,
        optional: bool,
    },
    /// procfs of the new pid namespace.
    Proc { target: CString },
    /// A private devpts instance.
    Devpts { target: CString },
    /// Make the new root's own mount read-only and noexec (`sealed`), or writable again, while
    /// the masks are bound: each bind of the mask file or directory copies these flags.
    SealMaskSources { new_root: CString, sealed: bool },
    /// `chdir(new_root)`, `pivot_root(".", put_old)`, `chdir("/")`.
    PivotRoot { new_root: CString, put_old: CString },
    /// After the pivot (paths inside the new root): detach the old root, then remove the mask
    /// file, the mask directory and the setup directory (the mask mounts keep their inodes).
    RemoveSetupDir {
        old_root: CString,
        mask_file: CString,
        mask_subdir: CString,
        setup_dir: CString,
    },
    /// `MS_REMOUNT|MS_BIND|MS_RDONLY` of a mount after pivot_root (the tmpfs root).
    RemountReadOnly {
        target: CString,
        flags: libc::c_ulong,
    },
}

/// The compiled mount list.
#[derive(Debug)]
pub(crate) struct MountPlan {
    pub(crate) ops: Vec<MountOp>,
    /// Where the new root is built (see [`MountPlan::describe`]).
    pub(crate) staging: PathBuf,
    /// Paths that exist only inside the sandbox and need child-side Landlock rules.
    pub(crate) tmpfs_paths: Vec<PathBuf>,
}

impl MountPlan {
    /// The path step `index` concerns, for an error message: where it lands in the sandbox
    /// (for binds, also the host path they share), or the staging directory.
    pub(crate) fn describe(&self, index: usize) -> PathBuf {
        let path = match self.ops.get(index) {
            Some(
                MountOp::Tmpfs { target, .. }
                | MountOp::Share { target, .. }
                | MountOp::Bind { target, .. }
                | MountOp::Restrict { target, .. }
                | MountOp::Proc { target }
                | MountOp::Devpts { target }
                | MountOp::RemountReadOnly { target, .. },
            ) => target,
            Some(
                MountOp::Mkdir { path, .. }
                | MountOp::ScratchDir { path }
                | MountOp::MkFile { path }
                | MountOp::Symlink { path, .. },
            ) => path,
            Some(MountOp::RemoveSetupDir { setup_dir, .. }) => setup_dir,
            Some(MountOp::MakePrivate) => return PathBuf::from("/"),
            Some(MountOp::SealMaskSources { .. } | MountOp::PivotRoot { .. }) | None => {
                return self.staging.clone()
            }
        };
        let path = Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
        match path.strip_prefix(&self.staging) {
            Ok(inside) if !inside.as_os_str().is_empty() => Path::new("/").join(inside),
            _ => path.to_path_buf(),
        }
    }
}

/// What a policy path turned out to be on the host.
#[derive(Debug, Clone)]
struct Visible {
    path: PathBuf,
    writable: bool,
    is_dir: bool,
    /// Device and inode of a host path, when the compile saw it.
    identity: Option<(u64, u64)>,
    /// A fresh tmpfs rather than a bind of the host path.
    tmpfs: bool,
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::NulByte {
        what: p.display().to_string(),
    })
}

fn staged(staging: &Path, p: &Path) -> PathBuf {
    let rel = p.strip_prefix("/").unwrap_or(p);
    staging.join(rel)
}

/// [`staged`] as a C string, in one allocation: most steps name such a path.
fn staged_c(staging: &Path, p: &Path) -> Result<CString> {
    debug_assert!(p.is_absolute() && p != Path::new("/"), "{p:?}");
    let (staging, p) = (staging.as_os_str().as_bytes(), p.as_os_str().as_bytes());
    let mut bytes = Vec::with_capacity(staging.len() + p.len() + 1);
    bytes.extend_from_slice(staging);
    bytes.extend_from_slice(p);
    CString::new(bytes).map_err(|_| Error::NulByte {
        what: String::from_utf8_lossy(p).into_owned(),
    })
}

/// Top-level symlinks such as `/bin -> usr/bin` on merged-/usr hosts: reproduced as symlinks.
fn top_level_symlink(path: &Path) -> Option<PathBuf> {
    if sys::depth(path) != 1 {
        return None;
    }
    crate::sys::read_link(path).ok().flatten()
}

/// Choose the staging directory: it must exist and must not contain any path we bind from.
fn choose_staging(sources: &[&Path]) -> Result<PathBuf> {
    for cand in STAGING_CANDIDATES {
        let cand = Path::new(cand);
        let usable = std::fs::symlink_metadata(cand).is_ok_and(|m| m.is_dir())
            && !sources
                .iter()
                .any(|s| crate::sys::is_within(s, cand) || crate::sys::is_within(cand, s));
        if usable {
            return Ok(cand.to_path_buf());
        }
    }
    Err(Error::Path {
        key: "filesystem",
        path: PathBuf::from("/"),
        reason: "no directory to build the sandbox root on: every candidate (/mnt, /media, /srv, /opt, /boot, /tmp) is missing or shared with the sandbox".into(),
    })
}

/// Resolve one policy entry against the host: `None` if optional and missing.
fn resolve_entry(key: &'static str, rule: &PathRule) -> Result<Option<PathBuf>> {
    match crate::sys::canonicalize(&rule.path) {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && rule.optional => Ok(None),
        Err(e) => Err(Error::Path {
            key,
            path: rule.path.clone(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "does not exist (mark it `optional = true` to skip it when missing)".into()
            } else {
                e.to_string()
            },
        }),
    }
}

/// A mount the plan makes on the new root for a policy path.
struct Mounted {
    path: PathBuf,
    /// A bind of the host's path (else a directory of the root's tmpfs, or a tmpfs).
    host: bool,
    writable: bool,
}

/// The deepest mount of `mounts` containing `p`.
fn deepest_mount<'a>(mounts: &'a [Mounted], p: &Path) -> Option<&'a Mounted> {
    mounts
        .iter()
        .filter(|m| sys::is_within(p, &m.path))
        .max_by_key(|m| sys::depth(&m.path))
}

/// Whether `p` is backed by the host: the deepest mount containing it is a bind (not a tmpfs
/// and not the empty root).
fn host_backed(mounts: &[Mounted], p: &Path) -> bool {
    deepest_mount(mounts, p).is_some_and(|m| m.host)
}

/// Parent: compile the mount plan of `policy`.
pub(crate) fn prepare(policy: &ResolvedPolicy, console: Option<&Path>) -> Result<MountPlan> {
    let fs = &policy.filesystem;
    let mut symlinks: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut visible: Vec<Visible> = Vec::new();

    let entries = fs
        .read_only
        .iter()
        .map(|r| ("filesystem.read_only", r, false))
        .chain(
            fs.read_write
                .iter()
                .map(|r| ("filesystem.read_write", r, true)),
        )
        .chain(
            fs.write_only
                .iter()
                .map(|r| ("filesystem.write_only", r, true)),
        );
    for (key, rule, writable) in entries {
        if let Some(link) = top_level_symlink(&rule.path) {
            if !symlinks.iter().any(|(p, _)| sys::same_path(p, &rule.path)) {
                symlinks.push((rule.path.clone(), link));
            }
            continue;
        }
        let Some(path) = resolve_entry(key, rule)? else {
            continue;
        };
        if path == Path::new("/") {
            return Err(Error::Path {
                key,
                path: rule.path.clone(),
                reason: "sharing the whole root filesystem defeats the sandbox".into(),
            });
        }
        // What the child binds must still be this inode (MountOp::Share).
        let Some(identity) = sys::identity(&path) else {
            return Err(Error::Path {
                key,
                path: rule.path.clone(),
                reason: "cannot be inspected (stat failed)".into(),
            });
        };
        // A later entry for the same path wins (read-write overrides read-only and vice versa).
        visible.retain(|v| !sys::same_path(&v.path, &path));
        visible.push(Visible {
            path,
            writable,
            is_dir: identity.is_dir,
            identity: Some(identity.id),
            tmpfs: false,
        });
    }
    let sources: Vec<&Path> = visible.iter().map(|v| v.path.as_path()).collect();
    let staging = choose_staging(&sources)?;
    for t in &fs.tmpfs {
        visible.retain(|v| !sys::same_path(&v.path, t));
        visible.push(Visible {
            path: t.clone(),
            writable: true,
            is_dir: true,
            identity: None,
            tmpfs: true,
        });
    }
    // Parents before children, so nested binds and tmpfs land on top of what contains them
    // (a workspace under /tmp stays visible over the fresh /tmp).
    visible.sort_by_key(|v| sys::depth(&v.path));

    let cwd = &policy.process.cwd;

    // Masks are bound from an empty mode-000 file (files) or directory (directories) in a
    // setup directory of the new root, while the new root's mount is read-only and noexec:
    // every bind of them copies those flags, so the command can neither chmod nor fill them.
    // The old root is pivoted into the same directory, detached and the directory removed,
    // so nothing of it stays visible. (One unmount in all, the old root's: every unmount
    // waits for an RCU grace period, ~50 µs idle, several times that under load. No tmpfs of
    // its own either: ~25 µs each to make and tear down.)
    let setup_rel = Path::new("/.sandbox-setup");
    let mask_dir = staged(&staging, setup_rel);
    let mask_file = mask_dir.join("empty");
    let mask_subdir = mask_dir.join("dir");
    let old_root = mask_dir.join("old");
    let inside = |p: &Path| cstring(&setup_rel.join(p.strip_prefix(&mask_dir).unwrap_or(p)));

    let mut plan = MountPlan {
        ops: Vec::with_capacity(64),
        staging: staging.clone(),
        tmpfs_paths: Vec::new(),
    };

    plan.ops.push(MountOp::MakePrivate);
    plan.ops.push(MountOp::Tmpfs {
        target: cstring(&staging)?,
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        // No size limit of its own: /tmp and /dev/shm are directories of it (ScratchDir),
        // and the rest is read-only once built. tmpfs's default applies (half of RAM).
        data: c"mode=0755".to_owned(),
    });
    plan.ops.push(MountOp::Mkdir {
        path: cstring(&mask_dir)?,
        mode: 0o700,
    });
    plan.ops.push(MountOp::MkFile {
        path: cstring(&mask_file)?,
    });
    plan.ops.push(MountOp::Mkdir {
        path: cstring(&mask_subdir)?,
        mode: 0o000,
    });
    plan.ops.push(MountOp::Mkdir {
        path: cstring(&old_root)?,
        mode: 0o700,
    });

    // Directories created on tmpfs so far, and every mount made.
    let mut created: Vec<PathBuf> = vec![PathBuf::from("/")];
    let mut bound: Vec<Mounted> = Vec::new();

    fn ensure_dirs(
        plan: &mut MountPlan,
        staging: &Path,
        created: &mut Vec<PathBuf>,
        bound: &[Mounted],
        dir: &Path,
    ) -> Result<()> {
        let mut acc = PathBuf::from("/");
        for comp in dir.components().skip(1) {
            acc.push(comp);
            if created.iter().any(|c| sys::same_path(c, &acc)) || host_backed(bound, &acc) {
                continue;
            }
            plan.ops.push(MountOp::Mkdir {
                path: staged_c(staging, &acc)?,
                mode: 0o755,
            });
            created.push(acc.clone());
        }
        Ok(())
    }

    for (path, link) in &symlinks {
        plan.ops.push(MountOp::Symlink {
            target: cstring(link)?,
            path: staged_c(&staging, path)?,
        });
        created.push(path.clone());
    }

    for v in &visible {
        let target = staged_c(&staging, &v.path)?;
        if v.tmpfs {
            if host_backed(&bound, &v.path) {
                if !v.path.is_dir() {
                    return Err(Error::Path {
                        key: "filesystem.tmpfs",
                        path: v.path.clone(),
                        reason: "is inside a shared tree but is not a directory there".into(),
                    });
                }
                // Over a host directory: a tmpfs of its own, so nothing of the host shows.
                plan.ops.push(MountOp::Tmpfs {
                    target,
                    flags: libc::MS_NOSUID | libc::MS_NODEV,
                    data: c"mode=1777".to_owned(),
                });
            } else {
                if let Some(parent) = v.path.parent() {
                    ensure_dirs(&mut plan, &staging, &mut created, &bound, parent)?;
                }
                plan.ops.push(MountOp::ScratchDir { path: target });
                created.push(v.path.clone());
            }
            plan.tmpfs_paths.push(v.path.clone());
            bound.push(Mounted {
                path: v.path.clone(),
                host: false,
                writable: true,
            });
            continue;
        }
        if !host_backed(&bound, &v.path) {
            if let Some(parent) = v.path.parent() {
                ensure_dirs(&mut plan, &staging, &mut created, &bound, parent)?;
            }
            let op = if v.is_dir {
                MountOp::Mkdir {
                    path: target.clone(),
                    mode: 0o755,
                }
            } else {
                MountOp::MkFile {
                    path: target.clone(),
                }
            };
            plan.ops.push(op);
            created.push(v.path.clone());
        }
        let source = cstring(&v.path)?;
        plan.ops.push(match v.identity {
            Some((dev, ino)) => MountOp::Share {
                source,
                target: target.clone(),
                dev,
                ino,
            },
            None => MountOp::Bind {
                source,
                target: target.clone(),
                optional: false,
            },
        });
        // Even shared-writable trees are nosuid/nodev: a setuid file planted there gains nothing.
        plan.ops.push(MountOp::Restrict {
            target,
            writable: v.writable,
            optional: false,
        });
        bound.push(Mounted {
            path: v.path.clone(),
            host: true,
            writable: v.writable,
        });
    }

    // /proc of the new pid namespace, mounted while the old root is still attached (the kernel
    // refuses a new procfs in a user namespace once no full procfs is visible).
    let proc_dir = staging.join("proc");
    ensure_dirs(
        &mut plan,
        &staging,
        &mut created,
        &bound,
        Path::new("/proc"),
    )?;
    plan.ops.push(MountOp::Proc {
        target: cstring(&proc_dir)?,
    });
    // An entry this kernel lacks (no CONFIG_MAGIC_SYSRQ, no CONFIG_PROC_KCORE, …) is skipped
    // in the child: its bind fails with ENOENT on the new procfs, which is what must be
    // covered (the host's /proc may be another mount), for about what a `stat` here costs.
    for name in PROC_READ_ONLY {
        let t = cstring(&proc_dir.join(name))?;
        plan.ops.push(MountOp::Bind {
            source: t.clone(),
            target: t.clone(),
            optional: true,
        });
        plan.ops.push(MountOp::Restrict {
            target: t,
            writable: false,
            optional: true,
        });
    }
    // The masks, bound while the new root's mount is sealed (see `mask_dir` above).
    let new_root = cstring(&staging)?;
    let seal = |sealed| MountOp::SealMaskSources {
        new_root: new_root.clone(),
        sealed,
    };
    plan.ops.push(seal(true));
    // Denied paths that exist and are visible through a bind are covered: the empty read-only
    // mask directory over a directory, the empty mask file over anything else. Missing ones are left to
    // Landlock, so no mount-point file is ever created on the host.
    let shared_trees =
        crate::sys::AliasTrees::new(bound.iter().filter(|m| m.host).map(|m| m.path.as_path()));
    // A masked path is a mount point, which cannot be renamed or removed. The directories
    // between a read-write tree and a masked path in it are made mount points too (each bound
    // onto itself), or the command could rename one and a later launch with the same policy
    // would find the denied path under the new name, unmasked. (A rename from one of them to
    // elsewhere then fails with EXDEV, which `mv` handles by copying.)
    let writable_tree = |p: &Path| {
        deepest_mount(&bound, p)
            .filter(|m| m.host && m.writable)
            .map(|m| m.path.as_path())
    };
    let mut pinned: Vec<PathBuf> = Vec::new();
    for denied in &fs.deny {
        let Ok(real) = crate::sys::canonicalize(denied) else {
            continue;
        };
        // A shared tree that is the denied path's directory under another name (a bind mount
        // on the host) shows it there too.
        let aliases = shared_trees.aliases(&real);
        let mut masked: Vec<&Path> = Vec::new();
        let names = [denied.as_path(), real.as_path()];
        for p in names
            .into_iter()
            .chain(aliases.iter().map(PathBuf::as_path))
        {
            if masked.iter().any(|m| sys::same_path(m, p)) || !host_backed(&bound, p) {
                continue;
            }
            // What `p` itself is (not following a last link): the resolution of the
            // policy's paths has read most of these links already.
            let is_dir = match crate::sys::read_link(p) {
                Err(_) => continue,
                Ok(Some(_)) => {
                    masked.push(p);
                    continue; // the link itself reveals nothing; its target is masked as `real`
                }
                Ok(None) => match crate::sys::metadata(p) {
                    Ok(meta) => meta.is_dir(),
                    Err(_) => continue,
                },
            };
            masked.push(p);
            // Real paths only: the policy's own name may run through a link.
            let is_real = !sys::same_path(p, denied) || sys::same_path(denied, &real);
            if let Some(tree) = writable_tree(p).filter(|_| is_real) {
                let between: Vec<&Path> = p
                    .ancestors()
                    .skip(1)
                    .take_while(|a| sys::is_strictly_within(a, tree))
                    .collect();
                // Outermost first: each bind copies what is mounted beneath it already.
                for dir in between.into_iter().rev() {
                    if pinned.iter().any(|x| sys::same_path(x, dir)) {
                        continue;
                    }
                    let target = staged_c(&staging, dir)?;
                    plan.ops.push(MountOp::Bind {
                        source: target.clone(),
                        target,
                        optional: false,
                    });
                    pinned.push(dir.to_path_buf());
                }
            }
            let target = staged_c(&staging, p)?;
            let source = if is_dir { &mask_subdir } else { &mask_file };
            plan.ops.push(MountOp::Bind {
                source: cstring(source)?,
                target,
                optional: false,
            });
        }
    }

    for name in PROC_MASKED {
        plan.ops.push(MountOp::Bind {
            source: cstring(&mask_file)?,
            target: cstring(&proc_dir.join(name))?,
            optional: true,
        });
    }

    plan.ops.push(seal(false));

    // A minimal /dev: a directory of the new root (read-only with it at the end) with the
    // harmless host devices bound in; each bind keeps the host mount's flags, so the root's
    // nodev does not apply to them.
    let dev = staging.join("dev");
    ensure_dirs(&mut plan, &staging, &mut created, &bound, Path::new("/dev"))?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        let is_char = std::fs::metadata(&host).is_ok_and(|m| m.file_type().is_char_device());
        if !is_char {
            continue;
        }
        plan.ops.push(MountOp::MkFile {
            path: cstring(&dev.join(name))?,
        });
        plan.ops.push(MountOp::Bind {
            source: cstring(&host)?,
            target: cstring(&dev.join(name))?,
            optional: false,
        });
    }
    // The command's own pseudo-terminal lives in the host's devpts; bound at /dev/console so
    // ttyname() finds it (the sandbox's /dev/pts is a fresh instance), as LXC does.
    if let Some(console) = console {
        let target = cstring(&dev.join("console"))?;
        plan.ops.push(MountOp::MkFile {
            path: target.clone(),
        });
        plan.ops.push(MountOp::Bind {
            source: cstring(console)?,
            target,
            optional: false,
        });
    }
    for (name, target) in DEV_LINKS {
        plan.ops.push(MountOp::Symlink {
            target: cstring(Path::new(target))?,
            path: cstring(&dev.join(name))?,
        });
    }
    plan.ops.push(MountOp::Mkdir {
        path: cstring(&dev.join("pts"))?,
        mode: 0o755,
    });
    plan.ops.push(MountOp::Devpts {
        target: cstring(&dev.join("pts"))?,
    });
    // Unless the policy's tmpfs paths made it already.
    let shm = Path::new("/dev/shm");
    if !plan.tmpfs_paths.iter().any(|t| t == shm) {
        plan.ops.push(MountOp::ScratchDir {
            path: cstring(&dev.join("shm"))?,
        });
        plan.tmpfs_paths.push(shm.to_path_buf());
    }

    // The working directory must exist in the view; a missing one is created on the tmpfs
    // (never on the host) only if it is outside every bind.
    if !host_backed(&bound, cwd) {
        ensure_dirs(&mut plan, &staging, &mut created, &bound, cwd)?;
    }

    plan.ops.push(MountOp::PivotRoot {
        new_root: cstring(&staging)?,
        put_old: cstring(&old_root)?,
    });
    plan.ops.push(MountOp::RemoveSetupDir {
        old_root: inside(&old_root)?,
        mask_file: inside(&mask_file)?,
        mask_subdir: inside(&mask_subdir)?,
        setup_dir: cstring(setup_rel)?,
    });
    plan.ops.push(MountOp::RemountReadOnly {
        target: c"/".to_owned(),
        flags: libc::MS_NOSUID | libc::MS_NODEV,
    });
    Ok(plan)
}

/// Child: build the new root and pivot into it. On failure returns the index of the failed op.
///
/// # Safety
/// Runs between clone and execve (see `CommandExt::pre_exec`): only raw syscalls on the
/// prepared C strings, no allocation, no locks, no panics.
pub(crate) unsafe fn apply(plan: &MountPlan) -> Result<(), (usize, Errno)> {
    for (i, op) in plan.ops.iter().enumerate() {
        // SAFETY: forwarded contract.
        unsafe { apply_op(op) }.map_err(|e| (i, e))?;
    }
    Ok(())
}

unsafe fn apply_op(op: &MountOp) -> Result<(), Errno> {
    match op {
        MountOp::MakePrivate => sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None),
        MountOp::Tmpfs {
            target,
            flags,
            data,
        } => sys::mount(Some(c"tmpfs"), target, Some(c"tmpfs"), *flags, Some(data)),
        MountOp::Mkdir { path, mode } => {
            // SAFETY: valid C string.
            match sys::check_int(unsafe { libc::mkdir(path.as_ptr(), *mode) }) {
                Err(Errno::EEXIST) => Ok(()),
                other => other,
            }
        }
        MountOp::ScratchDir { path } => {
            // SAFETY: valid C string.
            match sys::check_int(unsafe { libc::mkdir(path.as_ptr(), 0o1777) }) {
                Ok(()) => {}
                // Only ever a directory of ours; chmod and mount follow links, so anything
                // else (a link made by another step) is refused rather than followed.
                Err(Errno::EEXIST) => {
                    // SAFETY: plain data, all-zero is a valid value.
                    let mut st: libc::stat = unsafe { std::mem::zeroed() };
                    // SAFETY: a valid C string and a stat buffer of ours.
                    sys::check_int(unsafe { libc::lstat(path.as_ptr(), &mut st) })?;
                    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                        return Err(Errno::ENOTDIR);
                    }
                }
                Err(e) => return Err(e),
            }
            // SAFETY: valid C string.
            sys::check_int(unsafe { libc::chmod(path.as_ptr(), 0o1777) })?;
            sys::mount(Some(path), path, None, libc::MS_BIND, None)
        }
        MountOp::MkFile { path } => {
            let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
            let fd = match sys::open(path, flags, 0o000) {
                Ok(fd) => fd,
                Err(Errno::EEXIST) => return Ok(()),
                Err(e) => return Err(e),
            };
            // SAFETY: fd is ours, closed right away.
            unsafe { libc::close(fd) };
            Ok(())
        }
        MountOp::Symlink { target, path } => {
            // SAFETY: valid C strings.
            sys::check_int(unsafe { libc::symlink(target.as_ptr(), path.as_ptr()) })
        }
        MountOp::Share {
            source,
            target,
            dev,
            ino,
        } => share(source, target, (*dev, *ino)),
        MountOp::Bind {
            source,
            target,
            optional,
        } => match sys::mount(
            Some(source),
            target,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        ) {
            Err(Errno::ENOENT) if *optional => Ok(()),
            other => other,
        },
        MountOp::Restrict {
            target,
            writable,
            optional,
        } => {
            let (attr_ro, ms_ro) = if *writable {
                (0, 0)
            } else {
                (MOUNT_ATTR_RDONLY, libc::MS_RDONLY)
            };
            let attrs = attr_ro | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
            let r = match sys::mount_setattr(target, true, attrs) {
                // Before Linux 5.12 a remount must repeat the flags the mount is locked with
                // (a bind carries its source's), or the kernel refuses it in a user namespace.
                Err(Errno::ENOSYS) => sys::locked_mount_flags(target).and_then(|locked| {
                    sys::mount(
                        None,
                        target,
                        None,
                        libc::MS_REMOUNT
                            | libc::MS_BIND
                            | ms_ro
                            | libc::MS_NOSUID
                            | libc::MS_NODEV
                            | locked,
                        None,
                    )
                }),
                other => other,
            };
            match r {
                Err(Errno::ENOENT) if *optional => Ok(()),
                other => other,
            }
        }
        MountOp::Proc { target } => sys::mount(
            Some(c"proc"),
            target,
            Some(c"proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        ),
        MountOp::Devpts { target } => sys::mount(
            Some(c"devpts"),
            target,
            Some(c"devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some(c"newinstance,ptmxmode=0666,mode=0620"),
        ),
        MountOp::SealMaskSources { new_root, sealed } => {
            let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC;
            let (set, clear) = if *sealed { (attrs, 0) } else { (0, attrs) };
            match sys::mount_setattr_flags(new_root, false, set, clear) {
                Err(Errno::ENOSYS) => {
                    let sealed_flags = if *sealed {
                        libc::MS_RDONLY | libc::MS_NOEXEC
                    } else {
                        0
                    };
                    sys::mount(
                        None,
                        new_root,
                        None,
                        libc::MS_REMOUNT
                            | libc::MS_BIND
                            | libc::MS_NOSUID
                            | libc::MS_NODEV
                            | sealed_flags,
                        None,
                    )
                }
                other => other,
            }
        }
        MountOp::PivotRoot { new_root, put_old } => {
            // SAFETY: valid C strings.
            unsafe {
                sys::check_int(libc::chdir(new_root.as_ptr()))?;
                sys::check_int(
                    libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), put_old.as_ptr())
                        as libc::c_int,
                )?;
                sys::check_int(libc::chdir(c"/".as_ptr()))
            }
        }
        MountOp::RemoveSetupDir {
            old_root,
            mask_file,
            mask_subdir,
            setup_dir,
        } => {
            // SAFETY: valid C strings.
            unsafe {
                sys::check_int(libc::umount2(old_root.as_ptr(), libc::MNT_DETACH))?;
                sys::check_int(libc::unlink(mask_file.as_ptr()))?;
                for dir in [mask_subdir, old_root, setup_dir] {
                    sys::check_int(libc::rmdir(dir.as_ptr()))?;
                }
                Ok(())
            }
        }
        MountOp::RemountReadOnly { target, flags } => sys::mount(
            None,
            target,
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags,
            None,
        ),
    }
}

/// The bind of [`MountOp::Share`]: by path, as any bind, and then the new mount's root is
/// checked. What got bound is whatever `source` named at that moment; the target is a path of
/// this namespace's own tmpfs, out of everyone else's reach, so `stat`ing it through the new
/// mount shows exactly that. A tree that is not the one the compile saw fails the launch
/// before anything runs in the sandbox (its mount goes with the namespace). One `stat` per
/// shared tree: a detached `open_tree` copy checked before `move_mount` cost ~8 µs more per
/// tree (an anonymous mount namespace made and freed for each).
fn share(source: &CStr, target: &CStr, expected: (u64, u64)) -> Result<(), Errno> {
    sys::mount(
        Some(source),
        target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    // SAFETY: plain data, all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a stat buffer of ours.
    sys::check_int(unsafe { libc::stat(target.as_ptr(), &mut st) })?;
    #[allow(clippy::unnecessary_cast)] // st_dev and st_ino are not u64 everywhere
    if (st.st_dev as u64, st.st_ino as u64) == expected {
        Ok(())
    } else {
        Err(Errno::ESTALE)
    }
}

/// The uid/gid a path is owned by (for messages and tests).
#[allow(dead_code)]
pub(crate) fn owner(path: &Path) -> Option<(u32, u32)> {
    std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Environment, Overrides, Policy};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_shared_tree_swapped_for_a_link_is_refused() {
        // Between the compile and the bind, a tree the policy shares is replaced by a link to
        // another directory (which a sandboxed process with write access beside it can do).
        // Made in a child with its own user and mount namespaces: no privilege, no mount left.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let (tree, secret) = (dir.join("tree"), dir.join("secret"));
        let targets: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("target{i}"))).collect();
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("mine"), "x").unwrap();
        std::fs::create_dir_all(&secret).unwrap();
        std::fs::write(secret.join("key"), "x").unwrap();
        for t in &targets {
            std::fs::create_dir_all(t).unwrap();
        }
        let meta = std::fs::metadata(&tree).unwrap();
        let (dev, ino) = (meta.dev(), meta.ino());
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
        let share = |target: &Path| MountOp::Share {
            source: c(&tree),
            target: c(target),
            dev,
            ino,
        };
        // Everything the child needs, made before the fork (the test harness has threads).
        let (share_1, share_2) = (share(&targets[0]), share(&targets[1]));
        let by_path = MountOp::Bind {
            source: c(&tree),
            target: c(&targets[2]),
            optional: false,
        };
        let mine_1 = targets[0].join("mine");
        let key_3 = targets[2].join("key");
        let old = dir.join("tree.old");
        // SAFETY: test-only fork; the child checks and `_exit`s.
        match unsafe { libc::fork() } {
            0 => {
                let code = (|| {
                    // SAFETY: plain syscalls in the forked child.
                    unsafe {
                        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                            return 77;
                        }
                        if apply_op(&MountOp::MakePrivate).is_err() {
                            return 78;
                        }
                        // The tree as compiled: bound, its own file visible.
                        if apply_op(&share_1).is_err() {
                            return 1;
                        }
                    }
                    if !mine_1.exists() {
                        return 2;
                    }
                    if std::fs::rename(&tree, &old).is_err()
                        || std::os::unix::fs::symlink(&secret, &tree).is_err()
                    {
                        return 6;
                    }
                    // SAFETY: as above.
                    unsafe {
                        if apply_op(&share_2) != Err(Errno::ESTALE) {
                            return 3;
                        }
                        // What a bind by path does now: the link's target.
                        if apply_op(&by_path).is_err() {
                            return 4;
                        }
                    }
                    if !key_3.exists() {
                        return 5;
                    }
                    0
                })();
                // SAFETY: ends the child.
                unsafe { libc::_exit(code) }
            }
            pid => {
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                match libc::WEXITSTATUS(status) {
                    77 | 78 => println!("skipped: user namespaces: cannot make a bind mount"),
                    code => assert_eq!(code, 0, "step {code} of the swap test failed"),
                }
            }
        }
    }

    #[test]
    fn each_step_is_described_by_the_path_it_concerns() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().canonicalize().unwrap().join("project");
        std::fs::create_dir_all(&project).unwrap();
        let env = Environment {
            cwd: Some(project.clone()),
            home: Some(dir.path().to_path_buf()),
            uid: 1000,
            gid: 1000,
            user: Some("ada".into()),
            ..Environment::default()
        };
        let policy = Policy::load("default")
            .unwrap()
            .resolve(&Overrides::default(), &env)
            .unwrap();
        let plan = prepare(&policy, None).unwrap();
        let described: Vec<PathBuf> = (0..plan.ops.len()).map(|i| plan.describe(i)).collect();
        let first = |pred: &dyn Fn(&MountOp) -> bool| {
            let i = plan.ops.iter().position(pred).unwrap();
            described[i].clone()
        };
        let bind_onto = |path: &Path| {
            let target = staged(&plan.staging, path);
            first(&|op| match op {
                MountOp::Bind { target: t, .. } | MountOp::Share { target: t, .. } => {
                    t.as_bytes() == target.as_os_str().as_bytes()
                }
                _ => false,
            })
        };
        assert_eq!(
            first(&|op| matches!(op, MountOp::MakePrivate)),
            Path::new("/")
        );
        assert_eq!(bind_onto(&project), project, "the workspace's bind");
        let shared: Vec<PathBuf> = (0..plan.ops.len())
            .filter(|&i| matches!(plan.ops[i], MountOp::Share { .. }))
            .map(|i| described[i].clone())
            .collect();
        assert!(shared.contains(&project), "{shared:?}");
        assert!(shared.contains(&PathBuf::from("/usr")), "{shared:?}");
        assert_eq!(
            bind_onto(Path::new("/proc/kcore")),
            Path::new("/proc/kcore")
        );
        assert_eq!(
            first(&|op| matches!(op, MountOp::Proc { .. })),
            Path::new("/proc")
        );
        assert_eq!(
            first(&|op| matches!(op, MountOp::PivotRoot { .. })),
            plan.staging
        );
        assert_eq!(
            first(&|op| matches!(op, MountOp::RemountReadOnly { .. })),
            Path::new("/")
        );
        assert_eq!(plan.describe(plan.ops.len()), plan.staging, "out of range");
        for (i, path) in described.iter().enumerate() {
            assert!(path.is_absolute(), "step {i}: {path:?}");
            assert!(
                !sys::is_strictly_within(path, &plan.staging) || path == &plan.staging,
                "step {i} names the staging directory's inside: {path:?}"
            );
        }
    }
}
