//! Capabilities (stub until the capabilities layer lands).

/// A capability problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// Placeholder.
    #[error("process.capabilities: unknown capability {0}")]
    Unknown(String),
}

pub(crate) struct CapabilityPlan {
    last_cap: u32,
}

pub(crate) fn prepare(_names: &[String]) -> Result<CapabilityPlan, CapabilityError> {
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
    Ok(CapabilityPlan { last_cap })
}

/// # Safety
/// Child only: raw syscalls.
pub(crate) unsafe fn apply(plan: &CapabilityPlan) -> Result<(), nix::errno::Errno> {
    // SAFETY: raw prctl/capset on stack data.
    unsafe {
        for c in 0..=plan.last_cap {
            if libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) < 0 {
                let e = nix::errno::Errno::last();
                if e != nix::errno::Errno::EINVAL {
                    return Err(e);
                }
            }
        }
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let hdr = Header { version: 0x2008_0522, pid: 0 };
        let data = [Data { effective: 0, permitted: 0, inheritable: 0 }, Data { effective: 0, permitted: 0, inheritable: 0 }];
        if libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) < 0 {
            return Err(nix::errno::Errno::last());
        }
    }
    Ok(())
}
