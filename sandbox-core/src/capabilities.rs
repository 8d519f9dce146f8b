//! Capabilities: the command starts with every set empty — bounding, ambient, inheritable,
//! permitted, effective — except the capabilities the policy keeps (`[process] capabilities`),
//! which stay in all five so they survive `execve` as the in-namespace uid.
//!
//! The parent resolves the names and probes how many capabilities this kernel has (not a
//! compiled-in list, so a newer kernel's capability is dropped too); the child drops with raw `prctl`/`capset`.

use nix::errno::Errno;

use crate::sys::direct;

/// Capability names, indexed by number: the policy model's table (one list for both).
const NAMES: &[&str] = &crate::policy::CAPABILITIES;

const CAP_SETPCAP: u32 = 8;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const CAP_LAST_CAP_PATH: &str = "/proc/sys/kernel/cap_last_cap";

/// A capability problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// `[process] capabilities` names something that is not a capability.
    #[error("process.capabilities: unknown capability `{name}`")]
    Unknown {
        /// The name as written.
        name: String,
    },
    /// The capability exists, but not in the running kernel.
    #[error(
        "process.capabilities: {name} is not supported by this kernel (highest capability is {last_cap}); \
         hint: remove it from the policy or upgrade the kernel"
    )]
    NotInKernel {
        /// The canonical name.
        name: &'static str,
        /// `/proc/sys/kernel/cap_last_cap`.
        last_cap: u32,
    },
}

/// What the child keeps, compiled in the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CapabilityPlan {
    /// Bit `n` set: keep capability `n`.
    keep: u64,
    /// Highest capability number of the running kernel.
    last_cap: u32,
}

impl CapabilityPlan {
    /// Canonical names of the kept capabilities (for reports).
    #[allow(dead_code)] // for reports
    pub(crate) fn kept(&self) -> Vec<&'static str> {
        (0..NAMES.len())
            .filter(|n| self.keep & (1 << n) != 0)
            .map(|n| NAMES[n])
            .collect()
    }
}

/// Every capability name this crate knows, by number (for docs and `doctor`).
#[allow(dead_code)] // re-exported for docs/doctor when the CLI needs it
pub fn capability_names() -> &'static [&'static str] {
    NAMES
}

/// Parent: resolve the names to keep. Accepts `CAP_NET_BIND_SERVICE`, `cap_net_bind_service`
/// and `net_bind_service`.
pub(crate) fn prepare(names: &[String]) -> Result<CapabilityPlan, CapabilityError> {
    let last_cap = last_cap();
    let mut keep = 0u64;
    for name in names {
        let upper = name.to_ascii_uppercase();
        let canonical = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        let Some(number) = NAMES.iter().position(|n| *n == canonical) else {
            return Err(CapabilityError::Unknown { name: name.clone() });
        };
        if number as u32 > last_cap {
            return Err(CapabilityError::NotInKernel {
                name: NAMES[number],
                last_cap,
            });
        }
        keep |= 1 << number;
    }
    Ok(CapabilityPlan { keep, last_cap })
}

/// The running kernel's highest capability, probed with `PR_CAPBSET_READ` (which fails with
/// `EINVAL` past the last one, the same test as `/proc/sys/kernel/cap_last_cap`) upwards from
/// the highest one we know by name: two `prctl` on a kernel we know, instead of the six
/// syscalls of reading the file. The file is the fallback where `prctl` fails otherwise (a
/// caller under a seccomp filter that denies it).
fn last_cap() -> u32 {
    let known = NAMES.len() as u32 - 1;
    highest_from(known, cap_exists)
        .or_else(|| {
            std::fs::read_to_string(CAP_LAST_CAP_PATH)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
        })
        .map_or(known, |n| n.min(63))
}

/// The highest `n` for which `exists(n)`, searched from `start`: up while the next one exists,
/// down while this one does not. `None` when `exists` cannot tell or nothing exists.
fn highest_from(start: u32, exists: impl Fn(u32) -> Option<bool>) -> Option<u32> {
    let mut n = start;
    if exists(n)? {
        while n < 63 && exists(n + 1)? {
            n += 1;
        }
        return Some(n);
    }
    loop {
        n = n.checked_sub(1)?;
        if exists(n)? {
            return Some(n);
        }
    }
}

/// Whether capability `n` exists on this kernel: `None` when `prctl` fails for another reason.
fn cap_exists(n: u32) -> Option<bool> {
    // SAFETY: PR_CAPBSET_READ only reads the calling thread's bounding set.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAPBSET_READ,
            n as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r >= 0 {
        return Some(true);
    }
    (Errno::last() == Errno::EINVAL).then_some(false)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `prctl(option, arg2, arg3)` without touching errno: pid 1 also runs this code while the
/// command shares its memory, thread-local errno included (`launch.rs`).
fn prctl(option: libc::c_int, arg2: u64, arg3: u64) -> Result<usize, Errno> {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        direct::syscall6(
            libc::SYS_prctl,
            [option as usize, arg2 as usize, arg3 as usize, 0, 0, 0],
        )
    }
}

/// pid 1, before its parent releases it: drop from the bounding set every capability the
/// plan does not keep, best effort. The command inherits the result, so its own [`apply`]
/// (which stays the authority and reports failures) finds them gone; pid 1 does this while
/// it waits for its id maps anyway, ~40 syscalls off the command's path. Returns whether
/// every drop succeeded: then the bounding set holds nothing but kept capabilities, for pid 1
/// and everything it clones after, and [`apply`] need not read it back.
///
/// # Safety
/// Runs between clone and execve: raw prctl calls only.
pub(crate) unsafe fn drop_bounding(plan: &CapabilityPlan) -> bool {
    let mut all = true;
    for cap in 0..=plan.last_cap {
        if plan.keep & (1 << cap) == 0 {
            all &= prctl(libc::PR_CAPBSET_DROP, u64::from(cap), 0).is_ok();
        }
    }
    all
}

/// Child: drop every capability the plan does not keep, from all five sets, and raise the kept
/// ones into the ambient set so they survive `execve` for a non-zero uid.
///
/// Order: make the permitted set effective (so `CAP_SETPCAP` can be used after a `setuid` that
/// kept the permitted set), drop the bounding set, clear ambient, set inheritable = permitted =
/// effective = kept, raise the kept capabilities into ambient.
///
/// Without `CAP_SETPCAP` (an unprivileged caller with `isolation = "landlock"`) the bounding
/// set cannot be dropped and is left as is: `no_new_privs`, set before `execve`, keeps the
/// command from regaining anything through setuid or file capabilities. `bounding_dropped`:
/// [`drop_bounding`] succeeded in this process or the one it was cloned from, so the ~40
/// reads of the bounding set are skipped.
///
/// # Safety
/// Runs between clone and execve in a copy of a possibly multi-threaded process, under the
/// contract of `std::os::unix::process::CommandExt::pre_exec`: no allocation, no locks, no
/// panics; only raw `prctl`/`capget`/`capset` on the plan's integers.
pub(crate) unsafe fn apply(plan: &CapabilityPlan, bounding_dropped: bool) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data are the v3 layout the kernel expects (one header, two data).
    unsafe {
        direct::syscall4(
            libc::SYS_capget,
            [
                &mut header as *mut CapHeader as usize,
                data.as_mut_ptr() as usize,
                0,
                0,
            ],
        )
    }?;
    let permitted = u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32);
    let effective = u64::from(data[0].effective) | (u64::from(data[1].effective) << 32);
    if permitted & !effective != 0 {
        capset(permitted, permitted, inheritable(&data))?;
    }

    let has_setpcap = permitted & (1 << CAP_SETPCAP) != 0;
    if !bounding_dropped {
        for cap in 0..=plan.last_cap {
            if plan.keep & (1 << cap) != 0 {
                continue;
            }
            match prctl(libc::PR_CAPBSET_READ, u64::from(cap), 0) {
                Ok(1) => {}
                _ => continue, // already dropped (0) or unknown to this kernel (EINVAL)
            }
            match prctl(libc::PR_CAPBSET_DROP, u64::from(cap), 0) {
                Ok(_) => {}
                Err(Errno::EPERM) if !has_setpcap => break, // see the doc comment: nothing to drop it with
                Err(e) => return Err(e),
            }
        }
    }

    match prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
        0,
    ) {
        Ok(_) | Err(Errno::EINVAL) => {} // EINVAL: a kernel before 4.3 has no ambient set
        Err(e) => return Err(e),
    }

    capset(plan.keep, plan.keep, plan.keep)?;

    for cap in 0..=plan.last_cap {
        if plan.keep & (1 << cap) == 0 {
            continue;
        }
        prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as u64,
            u64::from(cap),
        )?;
    }
    Ok(())
}

/// Child, before switching to a non-zero uid: keep the permitted set across `setresuid`
/// (`PR_SET_KEEPCAPS`), so that [`apply`] can still drop the bounding set and keep the
/// policy's capabilities. The kernel clears the flag at `execve`.
///
/// # Safety
/// Same contract as [`apply`]: one raw `prctl`, no allocation.
pub(crate) unsafe fn keep_across_setuid() -> Result<(), Errno> {
    prctl(libc::PR_SET_KEEPCAPS, 1, 0).map(drop)
}

fn inheritable(data: &[CapData; 2]) -> u64 {
    u64::from(data[0].inheritable) | (u64::from(data[1].inheritable) << 32)
}

/// Raw `capset` of the calling thread. Allocation-free.
fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: the v3 header and two data words, as the kernel expects; it only reads `data`.
    unsafe {
        direct::syscall4(
            libc::SYS_capset,
            [
                &mut header as *mut CapHeader as usize,
                data.as_ptr() as usize,
                0,
                0,
            ],
        )
    }
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_field(status: &str, field: &str) -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    }

    #[test]
    fn names_match_kernel_numbers() {
        assert_eq!(NAMES.len(), 41);
        assert_eq!(NAMES[CAP_SETPCAP as usize], "CAP_SETPCAP");
        for (name, number) in [
            ("CAP_CHOWN", 0),
            ("CAP_NET_BIND_SERVICE", 10),
            ("CAP_NET_RAW", 13),
            ("CAP_SYS_ADMIN", 21),
            ("CAP_SETFCAP", 31),
            ("CAP_AUDIT_READ", 37),
            ("CAP_CHECKPOINT_RESTORE", 40),
        ] {
            assert_eq!(
                NAMES.iter().position(|n| *n == name),
                Some(number),
                "{name}"
            );
        }
        assert_eq!(capability_names().len(), NAMES.len());
    }

    #[test]
    fn probed_last_cap_is_the_kernels() {
        let file = std::fs::read_to_string(CAP_LAST_CAP_PATH).expect("cap_last_cap");
        assert_eq!(last_cap(), file.trim().parse::<u32>().expect("a number"));
        assert_eq!(cap_exists(0), Some(true));
        assert_eq!(cap_exists(63), Some(false));
        // Older and newer kernels than the names we know, and a prctl that fails.
        let upto = |last: u32| move |n: u32| Some(n <= last);
        assert_eq!(highest_from(40, upto(37)), Some(37));
        assert_eq!(highest_from(40, upto(43)), Some(43));
        assert_eq!(highest_from(40, upto(40)), Some(40));
        assert_eq!(highest_from(40, upto(70)), Some(63));
        assert_eq!(highest_from(3, |_| Some(false)), None);
        assert_eq!(highest_from(40, |_| None), None);
    }

    #[test]
    fn prepare_resolves_names() {
        let plan = prepare(&["CAP_NET_BIND_SERVICE".into(), "net_raw".into()]);
        let plan = plan.map_err(|e| e.to_string());
        assert_eq!(plan.as_ref().map(|p| p.keep), Ok((1 << 10) | (1 << 13)));
        assert_eq!(
            plan.map(|p| p.kept()),
            Ok(vec!["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"])
        );
        let empty = prepare(&[]).map_err(|e| e.to_string());
        assert_eq!(empty.as_ref().map(|p| p.keep), Ok(0));
        // The host's kernel has at least CAP_CHECKPOINT_RESTORE (5.9).
        assert!(empty.map(|p| p.last_cap >= 40).unwrap_or(false));
    }

    #[test]
    fn unknown_name_names_the_key() {
        match prepare(&["CAP_NET_BIND_SERVICE".into(), "CAP_FLY".into()]) {
            Err(e @ CapabilityError::Unknown { .. }) => {
                let msg = e.to_string();
                assert!(msg.starts_with("process.capabilities: "), "{msg}");
                assert!(msg.contains("CAP_FLY"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// Fork; apply the plan; report the five sets from /proc/self/status through a pipe.
    fn sets_after_apply(plan: &CapabilityPlan) -> Result<[u64; 5], String> {
        let mut fds = [0; 2];
        // SAFETY: pipe fills the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only makes raw syscalls and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: raw syscalls; _exit.
            unsafe {
                let code = match apply(plan, false) {
                    Ok(()) => 0,
                    Err(e) => e as i32,
                };
                // Copy /proc/self/status to the pipe with read/write only.
                let fd = libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY);
                let mut buf = [0u8; 4096];
                loop {
                    let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                    if n <= 0 {
                        break;
                    }
                    libc::write(fds[1], buf.as_ptr().cast(), n as usize);
                }
                libc::_exit(code);
            }
        }
        // SAFETY: closing our write end, reading into a buffer, waiting for our child.
        let (text, st) = unsafe {
            libc::close(fds[1]);
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
                if n <= 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n as usize]);
            }
            libc::close(fds[0]);
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            (String::from_utf8_lossy(&out).into_owned(), st)
        };
        if !libc::WIFEXITED(st) || libc::WEXITSTATUS(st) != 0 {
            return Err(format!("apply failed: wait status {st:#x}"));
        }
        let get = |f: &str| status_field(&text, f).ok_or(format!("no {f} in status"));
        Ok([
            get("CapInh:")?,
            get("CapPrm:")?,
            get("CapEff:")?,
            get("CapBnd:")?,
            get("CapAmb:")?,
        ])
    }

    /// The launcher's sequence: keep caps, switch to uid/gid 65534, apply, execve `cat
    /// /proc/self/status`; returns the five sets of the executed program.
    fn sets_after_setuid_and_exec(plan: &CapabilityPlan) -> Result<[u64; 5], String> {
        let cat = c"/bin/cat";
        let argv = [
            cat.as_ptr(),
            c"/proc/self/status".as_ptr(),
            std::ptr::null(),
        ];
        let envp = [std::ptr::null::<libc::c_char>()];
        let mut fds = [0; 2];
        // SAFETY: pipe fills the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only makes raw syscalls on data prepared before the fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: raw syscalls; _exit on every failure.
            unsafe {
                if keep_across_setuid().is_err() {
                    libc::_exit(10);
                }
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(65534, 65534, 65534) != 0
                    || libc::setresuid(65534, 65534, 65534) != 0
                {
                    libc::_exit(11);
                }
                if apply(plan, false).is_err() {
                    libc::_exit(12);
                }
                libc::dup2(fds[1], 1);
                libc::execve(cat.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(13);
            }
        }
        // SAFETY: closing our write end, reading, waiting for our child.
        let (text, st) = unsafe {
            libc::close(fds[1]);
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
                if n <= 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n as usize]);
            }
            libc::close(fds[0]);
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            (String::from_utf8_lossy(&out).into_owned(), st)
        };
        if !libc::WIFEXITED(st) || libc::WEXITSTATUS(st) != 0 {
            return Err(format!("child failed: wait status {st:#x}"));
        }
        let get = |f: &str| status_field(&text, f).ok_or(format!("no {f} in status"));
        Ok([
            get("CapInh:")?,
            get("CapPrm:")?,
            get("CapEff:")?,
            get("CapBnd:")?,
            get("CapAmb:")?,
        ])
    }

    #[test]
    fn kept_capability_survives_setuid_and_execve() {
        if !is_root_with_setpcap() {
            println!("skipped: capabilities: test needs root");
            return;
        }
        let plan = prepare(&["CAP_NET_BIND_SERVICE".into()]).map_err(|e| e.to_string());
        let sets = plan.and_then(|p| sets_after_setuid_and_exec(&p));
        assert_eq!(sets, Ok([1 << 10; 5]));
        let plan = prepare(&[]).map_err(|e| e.to_string());
        let sets = plan.and_then(|p| sets_after_setuid_and_exec(&p));
        assert_eq!(sets, Ok([0; 5]));
    }

    fn is_root_with_setpcap() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status_field(&status, "CapEff:").is_some_and(|e| e & (1 << CAP_SETPCAP) != 0)
    }

    #[test]
    fn apply_clears_every_set() {
        if !is_root_with_setpcap() {
            println!("skipped: capabilities: test needs CAP_SETPCAP (run as root)");
            return;
        }
        let plan = prepare(&[]).map_err(|e| e.to_string());
        let sets = plan.and_then(|p| sets_after_apply(&p));
        assert_eq!(sets, Ok([0; 5]));
    }

    #[test]
    fn apply_keeps_named_capability_in_all_sets() {
        if !is_root_with_setpcap() {
            println!("skipped: capabilities: test needs CAP_SETPCAP (run as root)");
            return;
        }
        let plan = prepare(&["CAP_NET_BIND_SERVICE".into()]).map_err(|e| e.to_string());
        let sets = plan.and_then(|p| sets_after_apply(&p));
        assert_eq!(sets, Ok([1 << 10; 5]));
    }
}
