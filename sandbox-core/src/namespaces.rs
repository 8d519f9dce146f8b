//! Namespaces: which ones a launch creates, and the uid/gid maps the parent writes for the child.

use std::io::Write;

use crate::error::{Error, Result};
use crate::policy::{Isolation, NetworkMode, ResolvedPolicy};

/// The namespaces of a sandbox, in the order the kernel creates them with one `clone3`.
/// The user namespace comes first: it owns the others, so the child holds every capability
/// over them without holding any on the host.
pub(crate) const ORDERED_NAMESPACES: [(u64, &str); 7] = [
    (libc::CLONE_NEWUSER as u64, "user"),
    (libc::CLONE_NEWNS as u64, "mount"),
    (libc::CLONE_NEWPID as u64, "pid"),
    (libc::CLONE_NEWIPC as u64, "ipc"),
    (libc::CLONE_NEWUTS as u64, "uts"),
    (libc::CLONE_NEWCGROUP as u64, "cgroup"),
    (libc::CLONE_NEWNET as u64, "net"),
];

/// The uid/gid the command runs as inside, and what they map to outside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdMapping {
    pub(crate) inside_uid: u32,
    pub(crate) inside_gid: u32,
    pub(crate) outside_uid: u32,
    pub(crate) outside_gid: u32,
    /// An unprivileged caller must deny setgroups before writing gid_map; the sandbox then
    /// keeps the caller's supplementary groups (the kernel forbids dropping them).
    pub(crate) deny_setgroups: bool,
    /// A root caller also maps inside 0 to host 0, for pid 1 alone during setup: its DAC
    /// checks as the owner of root-owned host paths let it bind what the (root) caller could
    /// read (`/root/.gitconfig` behind a mode-0700 `/root`). pid 1 switches to the command's
    /// ids right after forking it; the command never holds uid 0 unless the policy names it.
    pub(crate) setup_as_root: bool,
}

/// The user nobody/nogroup, which a root caller becomes unless the policy names ids.
pub(crate) const NOBODY: u32 = 65534;

/// Parent: the clone flags and the id mapping for `policy`.
pub(crate) fn prepare(policy: &ResolvedPolicy) -> (u64, IdMapping) {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let root = uid == 0;
    let inside_uid = policy
        .process
        .uid
        .unwrap_or(if root { NOBODY } else { uid });
    let inside_gid = policy
        .process
        .gid
        .unwrap_or(if root { NOBODY } else { gid });
    // A root caller maps the chosen inside id to the same host id, so the command never holds
    // host uid 0 unless the policy names uid 0; an unprivileged caller can only map itself.
    let mapping = IdMapping {
        inside_uid,
        inside_gid,
        outside_uid: if root { inside_uid } else { uid },
        outside_gid: if root { inside_gid } else { gid },
        deny_setgroups: !root,
        setup_as_root: root,
    };
    let flags = match policy.isolation {
        Isolation::Landlock => 0,
        Isolation::Namespaces => ORDERED_NAMESPACES
            .iter()
            .filter(|(flag, _)| {
                *flag != libc::CLONE_NEWNET as u64 || policy.network.mode == NetworkMode::None
            })
            .fold(0, |acc, (flag, _)| acc | flag),
    };
    (flags, mapping)
}

/// Parent, after clone: write `setgroups`, `uid_map`, `gid_map` of the child.
pub(crate) fn write_id_maps(pid: libc::pid_t, map: &IdMapping) -> Result<()> {
    // Formatted on the stack and written with raw `openat`/`write`: pid 1 is a copy of this
    // process by now, so every heap page written here would be copied first, and musl follows
    // an `O_CLOEXEC` open with an `fcntl`.
    let write = |file: &str, content: &[u8]| -> Result<()> {
        let stage = match file {
            "setgroups" => "writing setgroups of the sandbox",
            "uid_map" => "writing uid_map of the sandbox",
            _ => "writing gid_map of the sandbox",
        };
        let failed = |e: nix::errno::Errno| Error::Launch {
            stage,
            source: std::io::Error::from_raw_os_error(e as i32),
        };
        let mut path = [0u8; 48];
        let mut cursor = &mut path[..];
        // "/proc/<pid>/<file>\0" fits: pid ≤ 7 digits, file ≤ 9 bytes.
        write!(cursor, "/proc/{pid}/{file}\0")
            .map_err(|_| failed(nix::errno::Errno::ENAMETOOLONG))?;
        let path = std::ffi::CStr::from_bytes_until_nul(&path)
            .map_err(|_| failed(nix::errno::Errno::EINVAL))?;
        let fd = crate::sys::open(path, libc::O_WRONLY | libc::O_CLOEXEC, 0).map_err(failed)?;
        let written = crate::sys::write_all(fd, content);
        // SAFETY: `fd` was opened above and is closed once.
        unsafe { libc::close(fd) };
        written.map_err(failed)
    };
    if map.deny_setgroups {
        write("setgroups", b"deny")?;
    }
    let format = |line: &mut [u8; 64], inside: u32, outside: u32| -> usize {
        let capacity = line.len();
        let mut cursor = &mut line[..];
        // Two lines of two u32 each fit in 64 bytes.
        let _ = if map.setup_as_root && inside != 0 && outside != 0 {
            write!(cursor, "0 0 1\n{inside} {outside} 1\n")
        } else {
            writeln!(cursor, "{inside} {outside} 1")
        };
        capacity - cursor.len()
    };
    let mut line = [0u8; 64];
    let n = format(&mut line, map.inside_uid, map.outside_uid);
    write("uid_map", &line[..n])?;
    let n = format(&mut line, map.inside_gid, map.outside_gid);
    write("gid_map", &line[..n])
}

/// Why user namespaces are unavailable on this host, if we can tell.
pub(crate) fn userns_unavailable_reason() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "sysctl kernel.unprivileged_userns_clone = 0".into();
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "sysctl user.max_user_namespaces = 0".into();
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)".into();
    }
    if std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
    {
        return "this looks like a container whose seccomp profile or capabilities forbid creating namespaces".into();
    }
    "the kernel refused to create them".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_namespace_is_created_first() {
        assert_eq!(ORDERED_NAMESPACES[0].1, "user");
        let names: Vec<_> = ORDERED_NAMESPACES.iter().map(|n| n.1).collect();
        assert_eq!(
            names,
            ["user", "mount", "pid", "ipc", "uts", "cgroup", "net"]
        );
    }
}
