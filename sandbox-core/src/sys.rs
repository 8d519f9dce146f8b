//! Thin raw-syscall wrappers: everything the child needs that nix/libc do not wrap, and the few
//! parent-side calls that are clearer in one place. The wrappers are allocation-free; the
//! compile's path facts ([`CanonicalCache`] and the lookups through it) are parent-only and
//! allocate.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

use nix::errno::Errno;

/// `Ok(ret)` or the current errno.
pub(crate) fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// `Ok(())` or the current errno, for int-returning libc calls.
pub(crate) fn check_int(ret: libc::c_int) -> Result<(), Errno> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// The argument block of `clone3(2)` (linux/sched.h, version 2 with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub(crate) const CLONE_PIDFD: u64 = 0x1000;
pub(crate) const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What a fork-like clone returned.
pub(crate) enum Forked {
    /// We are the child.
    Child,
    /// We are the parent; the child's pid and, when asked for, its pidfd.
    Parent {
        pid: libc::pid_t,
        pidfd: Option<RawFd>,
    },
}

/// Fork-like `clone3`: no new stack, no `CLONE_VM`, so the child continues on a copy of our
/// stack exactly as after `fork()` (but without running `pthread_atfork` handlers).
/// Falls back to `clone(2)` when the kernel has no `clone3` and no cgroup fd is needed.
///
/// # Safety
/// The child runs in a copy of a possibly multi-threaded process: until it execs or exits it
/// may only make async-signal-safe calls (no allocation, no locks, no panics).
pub(crate) unsafe fn clone_fork(
    ns_flags: u64,
    want_pidfd: bool,
    cgroup_fd: Option<RawFd>,
) -> Result<Forked, Errno> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: ns_flags,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if want_pidfd {
        args.flags |= CLONE_PIDFD;
        args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    }
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: args is a valid clone_args of the size we pass; no CLONE_VM, no stack: fork semantics.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let ret = match check(ret) {
        Err(Errno::ENOSYS) if cgroup_fd.is_none() => {
            // Kernels before 5.3: plain clone(2), flags + exit signal in one word.
            // SAFETY: fork semantics as above; the pointer arguments are unused (null).
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    (ns_flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            pidfd = -1;
            check(ret)?
        }
        other => other?,
    };
    if ret == 0 {
        Ok(Forked::Child)
    } else {
        Ok(Forked::Parent {
            pid: ret as libc::pid_t,
            pidfd: (pidfd >= 0).then_some(pidfd),
        })
    }
}

/// `openat(AT_FDCWD, path, flags, mode)` as one errno-free raw syscall (usable by pid 1 while
/// it shares memory): musl's `open` follows every `O_CLOEXEC` open with an `fcntl(F_SETFD)` for
/// kernels older than 2.6.23, one syscall more per file on the launch path.
pub(crate) fn open(path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> Result<RawFd, Errno> {
    // SAFETY: a NUL-terminated path; the kernel reads `mode` only with O_CREAT/O_TMPFILE.
    unsafe {
        direct::syscall4(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                flags as usize,
                mode as usize,
            ],
        )
    }
    .map(|fd| fd as RawFd)
}

/// `close_range(first, ~0, flags)`.
pub(crate) fn close_range(first: u32, flags: u32) -> Result<(), Errno> {
    // SAFETY: plain syscall on integers.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) }).map(drop)
}

/// `mount_setattr(AT_FDCWD, path, AT_RECURSIVE?, {attr_set, attr_clr})`.
pub(crate) fn mount_setattr(path: &CStr, recursive: bool, attr_set: u64) -> Result<(), Errno> {
    mount_setattr_flags(path, recursive, attr_set, 0)
}

/// `mount_setattr` setting `attr_set` and clearing `attr_clr`.
pub(crate) fn mount_setattr_flags(
    path: &CStr,
    recursive: bool,
    attr_set: u64,
    attr_clr: u64,
) -> Result<(), Errno> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: path is a valid C string, attr a valid mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// `mount(2)` with optional source/fstype/data.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), Errno> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: all pointers are valid C strings or null.
    check_int(unsafe {
        libc::mount(
            p(source),
            target.as_ptr(),
            p(fstype),
            flags,
            p(data) as *const libc::c_void,
        )
    })
}

/// The flags of the mount at `path` that a remount in a user namespace must repeat (nosuid,
/// nodev, noexec and the atime flags), from raw `statfs`. Allocation-free, for the child.
pub(crate) fn locked_mount_flags(path: &CStr) -> Result<libc::c_ulong, Errno> {
    /// The kernel's `struct statfs` on 64-bit architectures (the libc crate's glibc view of
    /// it does not name `f_flags`).
    #[repr(C)]
    struct KernelStatfs {
        _counts: [u64; 7],
        _fsid: [i32; 2],
        _namelen: i64,
        _frsize: i64,
        flags: i64,
        _spare: [i64; 4],
    }
    // `ST_*` bit, `MS_*` flag (ST_RELATIME, 0x1000, is named by no libc crate for musl).
    const LOCKED: [(i64, libc::c_ulong); 6] = [
        (libc::ST_NOSUID as i64, libc::MS_NOSUID),
        (libc::ST_NODEV as i64, libc::MS_NODEV),
        (libc::ST_NOEXEC as i64, libc::MS_NOEXEC),
        (libc::ST_NOATIME as i64, libc::MS_NOATIME),
        (libc::ST_NODIRATIME as i64, libc::MS_NODIRATIME),
        (0x1000, libc::MS_RELATIME),
    ];
    let mut st = std::mem::MaybeUninit::<KernelStatfs>::zeroed();
    // SAFETY: path is a valid C string; the kernel fills the struct it is given, whose size
    // is the kernel's own on the 64-bit architectures we build for.
    check(unsafe { libc::syscall(libc::SYS_statfs, path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: zero-initialised, then filled by a successful statfs.
    let st_flags = unsafe { st.assume_init() }.flags;
    Ok(LOCKED
        .iter()
        .filter(|(st, _)| st_flags & st != 0)
        .fold(0, |flags, (_, ms)| flags | ms))
}

/// Write all of `buf` to `fd`, retrying on EINTR.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        // SAFETY: buf is a valid slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Read up to `buf.len()` bytes, retrying on EINTR; returns the count (0 = EOF).
pub(crate) fn read_full(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the slice tail is valid writable memory.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

/// `pipe2(O_CLOEXEC)` → (read, write), as owned fds.
pub(crate) fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// `_exit(code)`: never returns, runs no destructors or atexit handlers.
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and always safe to call.
    unsafe { libc::_exit(code) }
}

/// `pidfd_send_signal(pidfd, sig)`.
pub(crate) fn pidfd_send_signal(pidfd: RawFd, sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: plain syscall on integers and a null siginfo.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

// glibc's setresuid/setresgid/setgroups wrappers broadcast the change to every thread of
// the process (nptl "setxid"), waiting for threads that, in a cloned child, do not exist:
// the child would hang forever. The raw syscalls change only the calling thread, which in
// the child is the whole process.

/// Raw `setresuid(2)`.
pub(crate) fn setresuid(uid: u32) -> Result<(), Errno> {
    // SAFETY: plain syscall on integers.
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

/// Raw `setresgid(2)`.
pub(crate) fn setresgid(gid: u32) -> Result<(), Errno> {
    // SAFETY: plain syscall on integers.
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

/// Raw `setgroups(0, NULL)`: drop every supplementary group.
pub(crate) fn clear_groups() -> Result<(), Errno> {
    // SAFETY: plain syscall with a null list of length 0.
    check(unsafe { libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) })
        .map(drop)
}

/// The supervisor pid in the name `<prefix><pid>-<n>` of something a launch made (its cgroup,
/// its private temporary directory), for the sweeps that remove what dead supervisors left.
pub(crate) fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse::<u32>().ok().filter(|&p| p > 1)
}

/// Whether `pid` is another process that no longer exists (ours is never gone).
pub(crate) fn pid_is_gone(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the pid exists.
    pid != std::process::id()
        && unsafe { libc::kill(pid as libc::pid_t, 0) } != 0
        && Errno::last() == Errno::ESRCH
}

/// What one compile learnt about host paths: [`canonicalize`]'s and [`metadata`]'s answers
/// (or the errno they failed with).
#[derive(Default)]
struct PathFacts {
    canonical: FactMap<std::path::PathBuf>,
    metadata: FactMap<std::fs::Metadata>,
    links: FactMap<Option<std::path::PathBuf>>,
}

thread_local! {
    /// The facts of the compile running on this thread, owned by its [`CanonicalCache`]; null
    /// when none runs. A pointer rather than the facts themselves: a thread-local that needs
    /// dropping makes std register a destructor, in a list std keeps with the C allocator, and
    /// on musl that first `malloc` set up its heap (four syscalls, three page faults a launch).
    static CANONICAL: Cell<*const RefCell<PathFacts>> = const { Cell::new(std::ptr::null()) };
}

/// While alive, [`canonicalize`] and [`metadata`] on this thread remember their answers: one
/// compile asks about the same policy paths in several layers (the mount plan, Landlock, the
/// checks), ~30 `readlink`s and `stat`s a launch. Scoped to one compile, never longer: a link
/// may point elsewhere, a directory be mounted elsewhere, by the next launch. Started while
/// another is alive, it shares that one's facts and owns none.
pub(crate) struct CanonicalCache(Option<Box<RefCell<PathFacts>>>);

impl CanonicalCache {
    pub(crate) fn start() -> CanonicalCache {
        if !CANONICAL.get().is_null() {
            return CanonicalCache(None);
        }
        let facts = Box::new(RefCell::new(PathFacts::default()));
        CANONICAL.set(&*facts);
        CanonicalCache(Some(facts))
    }
}

impl Drop for CanonicalCache {
    fn drop(&mut self) {
        if self.0.is_some() {
            CANONICAL.set(std::ptr::null());
        }
    }
}

/// Runs `f` on this thread's compile facts, `None` when no [`CanonicalCache`] is alive.
fn with_facts<R>(f: impl FnOnce(Option<&RefCell<PathFacts>>) -> R) -> R {
    let facts = CANONICAL.get();
    // SAFETY: non-null only while the `CanonicalCache` that owns the box lives (its drop
    // resets the pointer before the box goes), and only this thread sees the pointer.
    f(unsafe { facts.as_ref() })
}

/// A file's device and inode, and whether it is a directory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    /// Device and inode number.
    pub(crate) id: (u64, u64),
    pub(crate) is_dir: bool,
}

/// `std::fs::metadata` (following links), remembered for the length of a compile (see
/// [`CanonicalCache`]).
pub(crate) fn metadata(path: &std::path::Path) -> io::Result<std::fs::Metadata> {
    metadata_view(path, std::fs::Metadata::clone)
}

/// What `view` reads from [`metadata`]'s answer for `path`. A remembered answer is read in
/// place: the compile asks for the identity of every ancestor of every denial against every
/// shared tree, and cloning the path and the whole `Metadata` for each was most of its cost.
fn metadata_view<T>(
    path: &std::path::Path,
    view: impl Fn(&std::fs::Metadata) -> T,
) -> io::Result<T> {
    use std::os::unix::ffi::OsStrExt;
    let known = with_facts(|facts| {
        let facts = facts?.borrow();
        let mut key = path.as_os_str().as_bytes();
        // A path already resolved is stat'ed by its real name: two spellings, one `stat`.
        if let Some(Ok(real)) = facts.canonical.get(key) {
            key = real.as_os_str().as_bytes();
        }
        let answer = facts.metadata.get(key)?;
        Some(answer.as_ref().map(&view).map_err(|e| *e))
    });
    if let Some(known) = known {
        return known.map_err(io::Error::from_raw_os_error);
    }
    let real = known_canonical(path).filter(|real| real.as_path() != path);
    let name = real.as_deref().unwrap_or(path);
    remembered(name, |f| &mut f.metadata, || std::fs::metadata(name)).map(|m| view(&m))
}

/// The real path of `path`, if this compile has resolved it already.
fn known_canonical(path: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    with_facts(|facts| {
        facts?
            .borrow()
            .canonical
            .get(path.as_os_str().as_bytes())
            .cloned()
            .and_then(Result::ok)
    })
}

/// The target of `path` if it is a symbolic link, `None` if it is something else, remembered
/// for the length of a compile (see [`CanonicalCache`]): resolving a path reads its last
/// component's link already. Asked with `lstat` first (`readlink` only for a link): most
/// policy paths are no links, and what `lstat` says about those is what [`metadata`] would
/// learn from a `stat` of the same name later, so it is remembered for it too (one syscall
/// where `readlink` + `stat` were two).
pub(crate) fn read_link(path: &std::path::Path) -> io::Result<Option<std::path::PathBuf>> {
    remembered(
        path,
        |f| &mut f.links,
        || match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => std::fs::read_link(path).map(Some),
            Ok(m) => {
                remember(path, |f| &mut f.metadata, Ok(m));
                Ok(None)
            }
            Err(e) => {
                // A missing last component is missing to `stat` as well; other errors (a
                // component that is no directory, a denied search) may differ, so ask again.
                if e.raw_os_error() == Some(libc::ENOENT) {
                    remember(path, |f| &mut f.metadata, Err(libc::ENOENT));
                }
                Err(e)
            }
        },
    )
}

/// Records `answer` for `path` in the map `pick` selects, while a compile's cache is on.
fn remember<T>(
    path: &std::path::Path,
    pick: fn(&mut PathFacts) -> &mut FactMap<T>,
    answer: Result<T, i32>,
) {
    use std::os::unix::ffi::OsStrExt;
    with_facts(|facts| {
        if let Some(facts) = facts {
            pick(&mut facts.borrow_mut()).insert(path.as_os_str().as_bytes().to_vec(), answer);
        }
    });
}

/// One of [`PathFacts`]' maps, keyed by a path's bytes: hashing a `Path` walks its
/// components, and SipHash's resistance to chosen keys buys nothing for the caller's own paths.
type FactMap<T> =
    std::collections::HashMap<Vec<u8>, Result<T, i32>, std::hash::BuildHasherDefault<Fnv1a>>;

/// FNV-1a, 64-bit: a fast hash for keys no attacker chooses (the policy's paths).
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The answer the map `pick` selects holds for `path`, else `compute`'s, kept there while a
/// compile's cache is on. No borrow is held while `compute` runs (it may ask about other
/// paths).
fn remembered<T: Clone>(
    path: &std::path::Path,
    pick: fn(&mut PathFacts) -> &mut FactMap<T>,
    compute: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    use std::os::unix::ffi::OsStrExt;
    let key = path.as_os_str().as_bytes();
    let cached =
        with_facts(|facts| facts.and_then(|f| pick(&mut f.borrow_mut()).get(key).cloned()));
    if let Some(known) = cached {
        return known.map_err(io::Error::from_raw_os_error);
    }
    let found = compute();
    let known = match &found {
        Ok(answer) => Ok(answer.clone()),
        Err(e) => Err(e.raw_os_error().unwrap_or(libc::EIO)),
    };
    remember(path, pick, known);
    found
}

/// [`metadata`] reduced to an [`Identity`]; `None` when it fails.
pub(crate) fn identity(path: &std::path::Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    metadata_view(path, |m| Identity {
        id: (m.dev(), m.ino()),
        is_dir: m.is_dir(),
    })
    .ok()
}

/// Whether `path` is `dir` or lies beneath it. Both must be normalised absolute paths (the
/// policy's, [`crate::policy::paths::normalize`]d, or real paths): for those, comparing bytes
/// agrees with `Path::starts_with`, which walks components and was a hot spot of the compile.
pub(crate) fn is_within(path: &std::path::Path, dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    debug_assert!(
        is_normalised(path) && is_normalised(dir),
        "{path:?} {dir:?}"
    );
    let (path, dir) = (path.as_os_str().as_bytes(), dir.as_os_str().as_bytes());
    path.starts_with(dir)
        && (path.len() == dir.len() || dir == b"/" || path.get(dir.len()) == Some(&b'/'))
}

/// Whether two normalised absolute paths (see [`is_within`]) are the same: their bytes are
/// equal. `Path`'s `==` walks both paths' components whenever the bytes differ.
pub(crate) fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    debug_assert!(is_normalised(a) && is_normalised(b), "{a:?} {b:?}");
    a.as_os_str() == b.as_os_str()
}

/// The number of components of a normalised absolute path (`/` has none).
pub(crate) fn depth(path: &std::path::Path) -> usize {
    use std::os::unix::ffi::OsStrExt;
    debug_assert!(is_normalised(path), "{path:?}");
    match path.as_os_str().as_bytes() {
        b"/" => 0,
        bytes => bytes.iter().filter(|&&b| b == b'/').count(),
    }
}

/// [`is_within`], and not `dir` itself.
pub(crate) fn is_strictly_within(path: &std::path::Path, dir: &std::path::Path) -> bool {
    is_within(path, dir) && path.as_os_str().len() != dir.as_os_str().len()
}

/// Absolute, no empty, `.` or `..` component, no trailing `/` (but `/` itself).
fn is_normalised(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    bytes == b"/"
        || (bytes.first() == Some(&b'/')
            && bytes[1..]
                .split(|b| *b == b'/')
                .all(|part| !matches!(part, b"" | b"." | b"..")))
}

/// Where `target` (an absolute, symlink-free path) can also be reached beneath `tree` (a
/// shared directory, symlink-free, that `target` is not textually beneath): when `tree` is
/// `target` itself or one of its ancestors reached by another name — a bind mount on the host
/// — the path beneath `tree` that leads to `target`. Compared by device and inode, walking up
/// from `target`; `None` when `tree` is no such ancestor. The compile asks through
/// [`AliasTrees`]; this is the definition its test holds it to.
#[cfg(test)]
fn alias_beneath(target: &std::path::Path, tree: &std::path::Path) -> Option<std::path::PathBuf> {
    if is_within(target, tree) {
        return None;
    }
    let tree_id = identity(tree).filter(|i| i.is_dir)?;
    let mut ancestor = Some(target);
    while let Some(dir) = ancestor {
        if identity(dir) == Some(tree_id) {
            return Some(tree.join(target.strip_prefix(dir).ok()?));
        }
        ancestor = dir.parent();
    }
    None
}

/// [`alias_beneath`] for many targets against the same trees: each tree's identity is looked
/// up once, and each target's ancestors once, not once per tree. The compile asks it for
/// every denial against every shared tree, hundreds of lookups a launch the other way.
pub(crate) struct AliasTrees<'a> {
    /// Each tree with its identity, `None` when it is no directory (it aliases nothing).
    trees: Vec<(&'a std::path::Path, Option<Identity>)>,
}

impl<'a> AliasTrees<'a> {
    pub(crate) fn new(trees: impl IntoIterator<Item = &'a std::path::Path>) -> AliasTrees<'a> {
        let trees = trees
            .into_iter()
            .map(|tree| (tree, identity(tree).filter(|i| i.is_dir)))
            .collect();
        AliasTrees { trees }
    }

    /// What [`alias_beneath`] answers for `target` and each tree, in the trees' order, where
    /// it answers something.
    pub(crate) fn aliases(&self, target: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut ancestors: Vec<(&std::path::Path, Option<Identity>)> = Vec::new();
        let mut found = Vec::new();
        for (tree, tree_id) in &self.trees {
            let Some(tree_id) = tree_id else { continue };
            if is_within(target, tree) {
                continue;
            }
            if ancestors.is_empty() {
                ancestors = target.ancestors().map(|dir| (dir, identity(dir))).collect();
            }
            let matching = ancestors.iter().find(|(_, id)| *id == Some(*tree_id));
            if let Some(rest) = matching.and_then(|(dir, _)| target.strip_prefix(dir).ok()) {
                found.push(tree.join(rest));
            }
        }
        found
    }
}

/// `path` opened with a raw `openat` and `O_CLOEXEC` (parent side: the C string is allocated
/// here): musl's `open` follows an `O_CLOEXEC` open with an `fcntl(F_SETFD)` for kernels
/// older than 2.6.23, and its `opendir` sets up musl's heap. A path with a NUL byte is EINVAL.
pub(crate) fn open_path(
    path: &std::path::Path,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<std::os::fd::OwnedFd> {
    let fd = open(&path_cstring(path)?, flags | libc::O_CLOEXEC, mode)?;
    Ok(owned_fd(fd))
}

/// `path` as a C string for the parent's raw opens; a NUL byte in it is EINVAL.
fn path_cstring(path: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// An fd the kernel just returned, owned (no allocation: usable in the child).
pub(crate) fn owned_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the kernel just opened `fd` for us; nobody else owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// [`open_path`] through `openat2` with `RESOLVE_NO_SYMLINKS`: `ELOOP` if any component of
/// `path` is a symbolic link.
pub(crate) fn open_no_symlinks(
    path: &std::path::Path,
    flags: libc::c_int,
) -> io::Result<std::os::fd::OwnedFd> {
    let c_path = path_cstring(path)?;
    // SAFETY: plain data, all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: a NUL-terminated path and an open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    let fd = check(fd).map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    Ok(owned_fd(fd as RawFd))
}

/// The names in directory `path` (without `.` and `..`), read with raw `getdents64` into a
/// stack buffer: `std::fs::read_dir` goes through `opendir`, whose `DIR` musl allocates with
/// its own allocator, which on first use sets up its heap (`brk`, two `mmap`s, a `munmap`:
/// six syscalls and three page faults for one listing).
pub(crate) fn read_dir_names(path: &std::path::Path) -> io::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStringExt;
    let fd = open_path(path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut names = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        // SAFETY: getdents64 writes at most `buf.len()` bytes into `buf`.
        let filled = unsafe {
            direct::syscall4(
                libc::SYS_getdents64,
                [
                    std::os::fd::AsRawFd::as_raw_fd(&fd) as usize,
                    buf.as_mut_ptr() as usize,
                    buf.len(),
                    0,
                ],
            )
        }?;
        if filled == 0 {
            return Ok(names);
        }
        let filled = buf.get(..filled).unwrap_or_default();
        // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
        let mut record = filled;
        while let Some(len) = record
            .get(16..18)
            .map(|b| usize::from(u16::from_ne_bytes([b[0], b[1]])))
        {
            let Some(name) = record.get(19..len.max(19)) else {
                break;
            };
            let name = name.split(|b| *b == 0).next().unwrap_or_default();
            if name != b"." && name != b".." {
                names.push(std::ffi::OsString::from_vec(name.to_vec()));
            }
            record = record.get(len.max(19)..).unwrap_or_default();
        }
    }
}

/// `std::fs::canonicalize` without its allocation inside the C library: `realpath` with a
/// buffer of ours. musl's `realpath(path, NULL)` mallocs the result, and musl's allocator
/// maps and unmaps a page for it each time (bench/README.md).
pub(crate) fn canonicalize(path: &std::path::Path) -> io::Result<std::path::PathBuf> {
    canonicalize_within(path, 0)
}

/// [`canonicalize`], `links` symbolic links deep into resolving another path.
fn canonicalize_within(path: &std::path::Path, links: u32) -> io::Result<std::path::PathBuf> {
    remembered(
        path,
        |f| &mut f.canonical,
        || resolve_through_parent(path, links).unwrap_or_else(|| resolve_path(path)),
    )
}

/// With the cache on, resolve `path` through its resolved parent: one `readlink` of the last
/// component instead of one per component (`realpath`); a link there is followed through the
/// cache too. `None` (let `realpath` resolve it whole) for anything unusual: a relative path,
/// `.` or `..` inside, a link target with `..` past its start, or links nested too deep.
fn resolve_through_parent(
    path: &std::path::Path,
    links: u32,
) -> Option<io::Result<std::path::PathBuf>> {
    use std::path::Component;
    let active = with_facts(|facts| facts.is_some());
    if !active || !path.is_absolute() || links > 8 {
        return None;
    }
    let plain = |c: Component| !matches!(c, Component::ParentDir | Component::CurDir);
    if !path.components().all(plain) {
        return None;
    }
    let (parent, name) = (path.parent()?, path.file_name()?);
    let real_parent = canonicalize_within(parent, links).ok()?;
    let candidate = real_parent.join(name);
    let target = match read_link(&candidate) {
        // Not a link, so it exists and `candidate` is its real path.
        Ok(None) => return Some(Ok(candidate)),
        Ok(Some(target)) => target,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Some(Err(e)),
        Err(_) => return None,
    };
    // Leading `..` of a relative target climb the (link-free) parent; later ones need realpath.
    let mut next = if target.is_absolute() {
        std::path::PathBuf::from("/")
    } else {
        real_parent
    };
    let mut climbing = true;
    for part in target.components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir if climbing => {
                next.pop();
            }
            Component::ParentDir => return None,
            Component::Normal(p) => {
                climbing = false;
                next.push(p);
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(canonicalize_within(&next, links + 1))
}

/// `realpath(3)`. Out of line: its PATH_MAX buffer would otherwise sit in the frame of
/// [`canonicalize_within`], which recurses once per component through
/// [`resolve_through_parent`], and every 4 KiB of stack a launch reaches is a page to fault in.
#[inline(never)]
fn resolve_path(path: &std::path::Path) -> io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes() == b"/" {
        return Ok(path.to_path_buf());
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut resolved = [0 as libc::c_char; libc::PATH_MAX as usize];
    // SAFETY: a NUL-terminated path and a PATH_MAX buffer, as realpath requires.
    if unsafe { libc::realpath(c_path.as_ptr(), resolved.as_mut_ptr()) }.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success realpath wrote a NUL-terminated path into the buffer.
    let resolved = unsafe { CStr::from_ptr(resolved.as_ptr()) };
    Ok(std::ffi::OsStr::from_bytes(resolved.to_bytes()).into())
}

/// A stack for a child that shares our memory (`CLONE_VM`): an anonymous mapping with a
/// guard page below it, so an overflow faults instead of writing over the heap.
pub(crate) struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    /// Reserve `size` bytes (plus the guard page); pages are only touched when used.
    pub(crate) fn new(size: usize) -> io::Result<ChildStack> {
        let page = 4096 * 16; // covers 4 KiB and 64 KiB page sizes
        let len = size + page;
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest pages of our own mapping.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    fn top(&self) -> *mut libc::c_void {
        // Stacks grow down on every architecture we build for; keep 16-byte alignment.
        (self.base as usize + self.len) as *mut libc::c_void
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping `new` created.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// `clone(2)` through glibc's wrapper: the child runs `f(arg)` on `stack` and exits with its
/// return value. `flags` must include `CLONE_VM`-compatible choices made by the caller; the
/// exit signal is SIGCHLD, so the child is waited for like any other.
///
/// # Safety
/// With `CLONE_VM` the child shares our memory and thread-local storage (errno included):
/// while both run, only one of them may use errno-setting calls, and `stack` must not be in
/// use by another live child. `arg` must stay valid until the child exits or execs.
pub(crate) unsafe fn clone_on_stack(
    flags: libc::c_int,
    stack: &ChildStack,
    f: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> Result<libc::pid_t, Errno> {
    // SAFETY: the caller upholds the sharing rules above; `stack` is a live mapping.
    let pid = unsafe { libc::clone(f, stack.top(), flags | libc::SIGCHLD, arg) };
    if pid < 0 {
        Err(Errno::last())
    } else {
        Ok(pid)
    }
}

/// Syscalls that return `-errno` instead of setting errno: for pid 1 while a `CLONE_VM`
/// helper shares its thread-local errno (see [`clone_on_stack`]).
pub(crate) mod direct {
    use std::os::fd::RawFd;

    use nix::errno::Errno;

    /// One raw syscall with up to four arguments.
    ///
    /// # Safety
    /// The arguments must be valid for syscall `nr`.
    pub(crate) unsafe fn syscall4(nr: libc::c_long, a: [usize; 4]) -> Result<usize, Errno> {
        // SAFETY: forwarded; the two extra arguments are zero.
        unsafe { syscall6(nr, [a[0], a[1], a[2], a[3], 0, 0]) }
    }

    /// One raw syscall with up to six arguments.
    ///
    /// # Safety
    /// The arguments must be valid for syscall `nr`.
    #[cfg(target_arch = "x86_64")]
    pub(crate) unsafe fn syscall6(nr: libc::c_long, a: [usize; 6]) -> Result<usize, Errno> {
        let ret: isize;
        // SAFETY: the x86_64 syscall ABI; rcx and r11 are clobbered by the instruction.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a[0],
                in("rsi") a[1],
                in("rdx") a[2],
                in("r10") a[3],
                in("r8") a[4],
                in("r9") a[5],
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        decode(ret)
    }

    /// One raw syscall with up to six arguments.
    ///
    /// # Safety
    /// The arguments must be valid for syscall `nr`.
    #[cfg(target_arch = "aarch64")]
    pub(crate) unsafe fn syscall6(nr: libc::c_long, a: [usize; 6]) -> Result<usize, Errno> {
        let ret: isize;
        // SAFETY: the aarch64 syscall ABI (number in x8, result in x0).
        unsafe {
            std::arch::asm!(
                "svc 0",
                in("x8") nr,
                inlateout("x0") a[0] as isize => ret,
                in("x1") a[1],
                in("x2") a[2],
                in("x3") a[3],
                in("x4") a[4],
                in("x5") a[5],
                options(nostack),
            );
        }
        decode(ret)
    }

    fn decode(ret: isize) -> Result<usize, Errno> {
        if (-4095..0).contains(&ret) {
            Err(Errno::from_raw(-ret as i32))
        } else {
            Ok(ret as usize)
        }
    }

    /// `unshare(flags)`.
    pub(crate) fn unshare(flags: libc::c_int) -> Result<(), Errno> {
        // SAFETY: integer argument only.
        unsafe { syscall4(libc::SYS_unshare, [flags as usize, 0, 0, 0]) }.map(drop)
    }

    /// `sethostname(name, len)`.
    pub(crate) fn sethostname(name: &[u8]) -> Result<(), Errno> {
        // SAFETY: a valid buffer and its length.
        unsafe {
            syscall4(
                libc::SYS_sethostname,
                [name.as_ptr() as usize, name.len(), 0, 0],
            )
        }
        .map(drop)
    }

    /// `close(fd)`.
    pub(crate) fn close(fd: RawFd) -> Result<(), Errno> {
        // SAFETY: integer argument only.
        unsafe { syscall4(libc::SYS_close, [fd as usize, 0, 0, 0]) }.map(drop)
    }

    /// `read(fd, buf)`, retried on EINTR; returns the count (0 = EOF).
    pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
        loop {
            // SAFETY: a valid writable buffer and its length.
            let r = unsafe {
                syscall4(
                    libc::SYS_read,
                    [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0],
                )
            };
            if r != Err(Errno::EINTR) {
                return r;
            }
        }
    }

    /// `sendmsg` of one byte carrying `fd` (SCM_RIGHTS).
    pub(crate) fn send_fd(socket: RawFd, fd: RawFd) -> Result<(), Errno> {
        let byte = [b'n'];
        let mut iov = libc::iovec {
            iov_base: byte.as_ptr() as *mut libc::c_void,
            iov_len: 1,
        };
        let mut control = [0u64; 4];
        // SAFETY: msghdr and the control buffer are plain stack data; CMSG_* stay inside it.
        unsafe {
            let mut msg = super::one_byte_msghdr(&mut iov, &mut control);
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
            loop {
                // MSG_NOSIGNAL: a command that died meanwhile must not take pid 1 with it.
                let r = syscall4(
                    libc::SYS_sendmsg,
                    [
                        socket as usize,
                        &msg as *const _ as usize,
                        libc::MSG_NOSIGNAL as usize,
                        0,
                    ],
                );
                if r != Err(Errno::EINTR) {
                    return r.map(drop);
                }
            }
        }
    }

    /// `send(socket, buf, MSG_NOSIGNAL)` once, retried on EINTR (no SIGPIPE if the peer is
    /// gone).
    pub(crate) fn send(socket: RawFd, buf: &[u8]) -> Result<usize, Errno> {
        loop {
            // SAFETY: a valid buffer and its length; no address (connected socket).
            let r = unsafe {
                syscall6(
                    libc::SYS_sendto,
                    [
                        socket as usize,
                        buf.as_ptr() as usize,
                        buf.len(),
                        libc::MSG_NOSIGNAL as usize,
                        0,
                        0,
                    ],
                )
            };
            if r != Err(Errno::EINTR) {
                return r;
            }
        }
    }

    /// `kill(pid, sig)`.
    pub(crate) fn kill(pid: libc::pid_t, sig: libc::c_int) -> Result<(), Errno> {
        // SAFETY: integer arguments only.
        unsafe { syscall4(libc::SYS_kill, [pid as usize, sig as usize, 0, 0]) }.map(drop)
    }

    /// `wait4(pid, &status, __WALL, NULL)`, retried on EINTR; returns the wait status.
    pub(crate) fn wait(pid: libc::pid_t) -> Result<libc::c_int, Errno> {
        let mut status: libc::c_int = 0;
        loop {
            // SAFETY: status is valid writable memory; no rusage.
            let r = unsafe {
                syscall4(
                    libc::SYS_wait4,
                    [
                        pid as usize,
                        &mut status as *mut libc::c_int as usize,
                        libc::__WALL as usize,
                        0,
                    ],
                )
            };
            match r {
                Ok(_) => return Ok(status),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// `pipe2(O_CLOEXEC)` as raw fds, for the child side (no allocation, no `OwnedFd`).
pub(crate) fn pipe_raw() -> Result<(RawFd, RawFd), Errno> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array.
    check_int(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)` as raw fds, for the child side.
pub(crate) fn socketpair_raw() -> Result<(RawFd, RawFd), Errno> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: socketpair fills the two-element array.
    check_int(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok((fds[0], fds[1]))
}

/// A `msghdr` for one byte (`iov`) and room for one SCM_RIGHTS message carrying one int,
/// suitably aligned (`control`); plain data, errno-free, so pid 1 can use it too. The
/// pointers it holds are only valid while `iov` and `control` are.
fn one_byte_msghdr(iov: &mut libc::iovec, control: &mut [u64; 4]) -> libc::msghdr {
    // SAFETY: msghdr is plain data, for which all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(control) as _;
    msg
}

/// The command: receive one fd sent with [`direct::send_fd`] (close-on-exec); `None` at EOF.
pub(crate) fn recv_fd(socket: RawFd) -> Result<Option<RawFd>, Errno> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain data; every pointer refers to the stack buffers above.
    unsafe {
        let mut msg = one_byte_msghdr(&mut iov, &mut control);
        let n = loop {
            let n = libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || Errno::last() != Errno::EINTR {
                break n;
            }
        };
        if n < 0 {
            return Err(Errno::last());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0 || cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Ok(None);
        }
        Ok(Some(std::ptr::read_unaligned(
            libc::CMSG_DATA(cmsg).cast::<RawFd>(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    fn set_errno(v: i32) {
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() = v };
    }

    #[test]
    fn locked_mount_flags_match_mountinfo() {
        // Per mount point, the flags its mountinfo line lists (the last line for a point wins,
        // as the topmost mount is the one `statfs` sees).
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let listed = |point: &str| {
            let opts = mountinfo
                .lines()
                .rev()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    (f.get(4) == Some(&point)).then(|| f[5].to_owned())
                })
                .unwrap();
            let mut flags = 0;
            for (name, flag) in [
                ("nosuid", libc::MS_NOSUID),
                ("nodev", libc::MS_NODEV),
                ("noexec", libc::MS_NOEXEC),
                ("noatime", libc::MS_NOATIME),
                ("nodiratime", libc::MS_NODIRATIME),
                ("relatime", libc::MS_RELATIME),
            ] {
                if opts.split(',').any(|o| o == name) {
                    flags |= flag;
                }
            }
            flags
        };
        let mut seen = 0;
        for (point, c_point) in [("/", c"/"), ("/proc", c"/proc"), ("/dev", c"/dev")] {
            assert_eq!(
                locked_mount_flags(c_point).unwrap(),
                listed(point),
                "{point}"
            );
            seen |= listed(point);
        }
        // Some flag was set (relatime is the kernel's default), so a mapping that lost every
        // bit would have failed above.
        assert_ne!(seen, 0);
        assert_eq!(locked_mount_flags(c"/nonexistent-x"), Err(Errno::ENOENT));
    }

    #[test]
    fn alias_trees_agree_with_alias_beneath() {
        // A host bind mount makes a directory reachable by two names; made in a child with
        // its own user and mount namespaces, so it needs no privilege and leaves no mount.
        let tmp = std::env::temp_dir().join(format!("sandbox-alias-{}", std::process::id()));
        let (a, b, c) = (tmp.join("a"), tmp.join("b"), tmp.join("c"));
        std::fs::create_dir_all(a.join("sub/deeper")).unwrap();
        std::fs::write(a.join("sub/secret"), "x").unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("file"), "x").unwrap();
        let c_path = |p: &std::path::Path| {
            std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())).unwrap()
        };
        let (src, dst) = (c_path(&a.join("sub")), c_path(&b));
        // SAFETY: test-only fork; the child checks and `_exit`s.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: plain syscalls in the forked child.
                let code = unsafe {
                    if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                        libc::_exit(77);
                    }
                    mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
                        .and_then(|()| mount(Some(&src), &dst, None, libc::MS_BIND, None))
                        .map_or(78, |()| 0)
                };
                if code != 0 {
                    // SAFETY: ends the child.
                    unsafe { libc::_exit(code) };
                }
                let trees = [
                    tmp.as_path(),
                    a.as_path(),
                    b.as_path(),
                    c.as_path(),
                    &c.join("file"),
                ];
                let targets = [
                    a.join("sub/secret"),
                    a.join("sub/deeper"),
                    a.join("sub"),
                    b.join("secret"),
                    c.join("file"),
                    tmp.join("missing"),
                ];
                let batched = AliasTrees::new(trees);
                let mut seen = 0;
                let mut ok = true;
                for target in &targets {
                    let one_by_one: Vec<_> = trees
                        .iter()
                        .filter_map(|t| alias_beneath(target, t))
                        .collect();
                    seen += one_by_one.len();
                    ok &= batched.aliases(target) == one_by_one;
                }
                // a/sub/* is reachable beneath b, and b/secret beneath... no tree (a is
                // textually above a/sub, b is the bind itself): aliases were found at all.
                ok &= batched.aliases(&a.join("sub/secret")) == [b.join("secret")];
                // SAFETY: ends the child.
                unsafe { libc::_exit(if ok && seen > 0 { 0 } else { 1 }) }
            }
            pid => {
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                std::fs::remove_dir_all(&tmp).unwrap();
                match libc::WEXITSTATUS(status) {
                    77 | 78 => println!("skipped: user namespaces: cannot make a bind mount"),
                    code => assert_eq!(code, 0, "batched and one-by-one aliases differ"),
                }
            }
        }
    }

    #[test]
    fn read_dir_names_agrees_with_std() {
        let tmp = std::env::temp_dir().join(format!("sandbox-dirnames-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("temp dir");
        for name in ["a", ".hidden", "with space", "x".repeat(200).as_str(), "ü"] {
            std::fs::write(tmp.join(name), b"").expect("file");
        }
        for dir in [
            std::path::Path::new("/etc"),
            std::path::Path::new("/usr/bin"),
            &tmp,
        ] {
            let mut ours = read_dir_names(dir).expect("ours");
            let mut std_names: Vec<_> = std::fs::read_dir(dir)
                .expect("std")
                .map(|e| e.expect("entry").file_name())
                .collect();
            ours.sort();
            std_names.sort();
            assert!(!ours.is_empty());
            assert_eq!(ours, std_names, "{dir:?}");
        }
        assert!(read_dir_names(&tmp.join("a")).is_err(), "not a directory");
        assert!(read_dir_names(&tmp.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn byte_comparisons_agree_with_components() {
        use std::path::Path;
        let paths = [
            "/",
            "/a",
            "/ab",
            "/a/b",
            "/a/bc",
            "/a/b/c",
            "/ab/c",
            "/b",
            "/a/b.c",
            "/home/u/.ssh",
            "/home/u/.ssh2",
            "/home/u",
        ];
        for p in paths {
            for d in paths {
                let (p, d) = (Path::new(p), Path::new(d));
                assert_eq!(is_within(p, d), p.starts_with(d), "{p:?} within {d:?}");
                assert_eq!(
                    is_strictly_within(p, d),
                    p != d && p.starts_with(d),
                    "{p:?} strictly within {d:?}"
                );
            }
        }
        for odd in ["a/b", "/a/", "/a//b", "/a/./b", "/a/../b", ""] {
            assert!(!is_normalised(Path::new(odd)), "{odd:?}");
        }
    }

    #[test]
    fn canonicalize_agrees_with_std() {
        let dir = std::env::temp_dir().join(format!("sandbox-canon-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("real/sub")).unwrap();
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("real", &link).unwrap();
        for path in [
            dir.clone(),
            link.join("sub"),
            link.join("sub/../sub/."),
            std::path::PathBuf::from("/"),
            std::path::PathBuf::from("."),
        ] {
            assert_eq!(
                canonicalize(&path).unwrap(),
                std::fs::canonicalize(&path).unwrap(),
                "{path:?}"
            );
        }
        let missing = canonicalize(&dir.join("missing")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(
            canonicalize(std::path::Path::new("a\0b"))
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::InvalidInput
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Within a compile, paths are resolved through their already-resolved parents: the
    /// answers must stay std's, links at the end and in the middle included.
    #[test]
    fn cached_canonicalize_agrees_with_std() {
        let dir = tempfile::tempdir().unwrap();
        let base = canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("real/sub")).unwrap();
        std::fs::write(base.join("real/sub/file"), "x").unwrap();
        std::os::unix::fs::symlink("real", base.join("link")).unwrap();
        std::os::unix::fs::symlink("sub/file", base.join("real/flink")).unwrap();
        std::os::unix::fs::symlink(base.join("real/sub"), base.join("abs")).unwrap();
        std::os::unix::fs::symlink("../link/sub", base.join("real/up")).unwrap();
        std::os::unix::fs::symlink("link", base.join("chain")).unwrap();
        std::os::unix::fs::symlink("real/../real/sub", base.join("mid")).unwrap();
        std::os::unix::fs::symlink("loop2", base.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", base.join("loop2")).unwrap();
        std::os::unix::fs::symlink("nowhere", base.join("dangling")).unwrap();
        let _cache = CanonicalCache::start();
        for path in [
            base.join("real"),
            base.join("real/sub"),
            base.join("real/sub/file"),
            base.join("link"),
            base.join("link/sub/file"),
            base.join("real/flink"),
            base.join("link/flink"),
            base.join("abs/file"),
            base.join("real/up/file"),
            base.join("chain/sub"),
            base.join("mid/file"),
        ] {
            assert_eq!(
                canonicalize(&path).unwrap(),
                std::fs::canonicalize(&path).unwrap(),
                "{path:?}"
            );
        }
        let missing = canonicalize(&base.join("real/missing")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let missing = canonicalize(&base.join("link/missing/deeper")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let dangling = canonicalize(&base.join("dangling")).unwrap_err();
        assert_eq!(dangling.kind(), std::io::ErrorKind::NotFound);
        assert!(std::fs::canonicalize(base.join("loop1")).is_err());
        assert!(canonicalize(&base.join("loop1")).is_err());
        assert!(canonicalize(&base.join("loop2/x")).is_err());
        // The links read on the way, and stats by either name, agree with std too.
        for name in [
            "link",
            "real/flink",
            "abs",
            "chain",
            "dangling",
            "real",
            "real/sub/file",
        ] {
            let path = base.join(name);
            assert_eq!(
                read_link(&path).unwrap(),
                std::fs::read_link(&path).ok(),
                "{path:?}"
            );
        }
        assert_eq!(
            read_link(&base.join("real/missing")).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        use std::os::unix::fs::MetadataExt;
        for name in ["link/sub/file", "real/sub/file", "chain", "real"] {
            let path = base.join(name);
            let ours = metadata(&path).unwrap();
            let std = std::fs::metadata(&path).unwrap();
            assert_eq!((ours.dev(), ours.ino()), (std.dev(), std.ino()), "{path:?}");
        }
    }

    /// The cache lives for one compile only: a link retargeted between two launches is seen
    /// anew by the next one.
    #[test]
    fn canonical_cache_is_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let base = canonicalize(dir.path()).unwrap();
        for d in ["a", "b"] {
            std::fs::create_dir(base.join(d)).unwrap();
        }
        let link = base.join("link");
        std::os::unix::fs::symlink("a", &link).unwrap();
        let retarget = |to: &str| {
            std::fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(to, &link).unwrap();
        };
        {
            let _cache = CanonicalCache::start();
            assert_eq!(canonicalize(&link).unwrap(), base.join("a"));
            assert!(canonicalize(&base.join("missing")).is_err());
            retarget("b");
            std::fs::create_dir(base.join("missing")).unwrap();
            // Within one compile, every layer sees the same resolution.
            assert_eq!(canonicalize(&link).unwrap(), base.join("a"));
            assert!(canonicalize(&base.join("missing")).is_err());
        }
        assert_eq!(canonicalize(&link).unwrap(), base.join("b"));
        assert_eq!(
            canonicalize(&base.join("missing")).unwrap(),
            base.join("missing")
        );
    }

    #[test]
    fn direct_syscalls_report_errors_without_touching_errno() {
        // SAFETY: getpid has no arguments.
        let pid = unsafe { direct::syscall4(libc::SYS_getpid, [0; 4]) }.unwrap();
        assert_eq!(pid as libc::pid_t, std::process::id() as libc::pid_t);
        set_errno(12345);
        assert_eq!(direct::close(-1), Err(Errno::EBADF));
        assert_eq!(direct::unshare(-1), Err(Errno::EINVAL));
        let mut buf = [0u8; 1];
        assert_eq!(direct::read(-1, &mut buf), Err(Errno::EBADF));
        assert_eq!(direct::send(-1, b"x"), Err(Errno::EBADF));
        assert_eq!(errno(), 12345, "a direct syscall wrote errno");
    }

    #[test]
    fn an_fd_crosses_the_socket_pair() {
        let (ours, theirs) = socketpair_raw().unwrap();
        let (r, w) = pipe_raw().unwrap();
        direct::send_fd(ours, w).unwrap();
        direct::send(ours, b"l").unwrap();
        let received = recv_fd(theirs).unwrap().expect("an fd");
        assert_ne!(received, w);
        // SAFETY: plain fcntl/write/read/close on fds this test owns.
        unsafe {
            assert!(libc::fcntl(received, libc::F_GETFD) & libc::FD_CLOEXEC != 0);
            assert_eq!(libc::write(received, b"z".as_ptr().cast(), 1), 1);
            let mut buf = [0u8; 1];
            assert_eq!(direct::read(r, &mut buf), Ok(1));
            assert_eq!(&buf, b"z");
            assert_eq!(read_full(theirs, &mut buf), Ok(1));
            assert_eq!(&buf, b"l");
            // The peer gone: EOF, no fd.
            direct::close(ours).unwrap();
            assert_eq!(recv_fd(theirs), Ok(None));
            for fd in [received, r, w, theirs] {
                libc::close(fd);
            }
        }
    }

    #[test]
    fn a_child_on_its_own_stack_shares_our_memory() {
        extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
            // SAFETY: the parent passes a valid AtomicU32 and waits for us.
            let flag = unsafe { &*(arg as *const std::sync::atomic::AtomicU32) };
            flag.store(42, std::sync::atomic::Ordering::SeqCst);
            7
        }
        let stack = ChildStack::new(64 * 1024).unwrap();
        let flag = std::sync::atomic::AtomicU32::new(0);
        // SAFETY: the child only stores to `flag`, which outlives it (we wait below).
        let pid = unsafe {
            clone_on_stack(
                libc::CLONE_VM,
                &stack,
                child,
                &flag as *const _ as *mut libc::c_void,
            )
        }
        .unwrap();
        let status = direct::wait(pid).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7);
        assert_eq!(flag.load(std::sync::atomic::Ordering::SeqCst), 42);
    }
}
