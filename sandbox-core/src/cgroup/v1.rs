//! cgroup v1 (and the v1 half of a hybrid host), as root.
//!
//! Each controller is its own hierarchy (`/sys/fs/cgroup/memory`, `…/pids`, `…/cpu` or
//! `…/cpu,cpuacct`): one launch makes one directory in each hierarchy it needs, under our
//! own cgroup of that hierarchy; without a pid namespace (landlock mode) also `freezer`
//! (race-free kill) and `cpuacct` (usage of processes nobody waited for) when mounted.

use std::path::{Path, PathBuf};

use super::fsio;
use super::host::{Ctrl, Ctrls, V1Host};
use super::{kill_pids, wait_until_empty, CgroupError, CgroupUsage, Enforced, LimitsReport};
use crate::policy::Limits;

/// The CFS period written with every quota, in µs (the kernel's default).
const CFS_PERIOD_US: u64 = 100_000;

/// One launch's v1 cgroups: one directory per hierarchy.
#[derive(Debug)]
pub(super) struct V1Cgroup {
    dirs: Vec<(Ctrls, PathBuf)>,
    usage_files: fsio::UsageFiles,
}

/// What [`V1Cgroup::usage`] reads, per controller.
const USAGE_FILES: [(Ctrl, &[&str]); 3] = [
    (
        Ctrl::Memory,
        &["memory.max_usage_in_bytes", "memory.oom_control"],
    ),
    (Ctrl::Pids, &["pids.peak", "pids.current"]),
    (Ctrl::Cpuacct, &["cpuacct.usage_user", "cpuacct.usage_sys"]),
];

/// Create `<own>/<name>` in every hierarchy that holds one of `ctrls` (with
/// `no_pid_namespace`, also `cpuacct` and `freezer`), and write the limits of `ctrls`,
/// filling their entries of `report`.
pub(super) fn create(
    host: &V1Host,
    name: &str,
    limits: &Limits,
    ctrls: Ctrls,
    no_pid_namespace: bool,
    report: &mut LimitsReport,
) -> Result<V1Cgroup, CgroupError> {
    // With a pid namespace, pid 1 reaps every process (their CPU time reaches the supervisor
    // in its rusage) and its exit kills the rest: a hierarchy each for accounting and
    // freezing would only add a mkdir, an attach and an rmdir to every launch.
    let mut wanted = ctrls;
    if no_pid_namespace {
        wanted = wanted.with(Ctrl::Cpuacct).with(Ctrl::Freezer);
    }
    // Dropping `cg` on an error removes what was created so far.
    let mut cg = V1Cgroup {
        dirs: Vec::new(),
        usage_files: fsio::UsageFiles::default(),
    };
    for h in &host.hierarchies {
        let used = h.ctrls.and(wanted);
        if used.is_empty() {
            continue;
        }
        let dir = h.own.join(name);
        fsio::mkdir(&dir)?;
        cg.dirs.push((h.ctrls, dir));
    }
    for (hier, dir) in &cg.dirs {
        write_limits(dir, limits, hier.and(ctrls), report)?;
    }
    for (ctrl, names) in USAGE_FILES {
        if let Some(dir) = cg.dir_of(ctrl).map(Path::to_path_buf) {
            cg.usage_files.open(&dir, names);
        }
    }
    Ok(cg)
}

/// Write (and read back) the limits of `ctrls` into the v1 cgroup `dir`.
pub(super) fn write_limits(
    dir: &Path,
    limits: &Limits,
    ctrls: Ctrls,
    report: &mut LimitsReport,
) -> Result<(), CgroupError> {
    if let (true, Some(bytes)) = (ctrls.has(Ctrl::Memory), limits.memory) {
        let bytes = super::memory_bytes(bytes)?.to_string();
        fsio::write_checked(&dir.join("memory.limit_in_bytes"), &bytes, &bytes)?;
        report.memory = Some(Enforced::cgroup("memory.limit_in_bytes", bytes.clone()));
        // memory + swap may not exceed the memory limit: swap off. The file is missing when
        // the kernel does not account swap (swapaccount=0).
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        report.swap = Some(if memsw.exists() {
            fsio::write_checked(&memsw, &bytes, &bytes)?;
            Enforced::cgroup("memory.memsw.limit_in_bytes", bytes)
        } else {
            Enforced::not("memory.memsw.limit_in_bytes is missing: swap accounting is off")
        });
    }
    if let (true, Some(n)) = (ctrls.has(Ctrl::Pids), limits.pids) {
        let n = n.to_string();
        fsio::write_checked(&dir.join("pids.max"), &n, &n)?;
        report.pids = Some(Enforced::cgroup("pids.max", n));
    }
    if let (true, Some(cpus)) = (ctrls.has(Ctrl::Cpu), limits.cpus) {
        let (quota, period) = super::cpu_quota(cpus)?;
        let (quota, period) = (quota.to_string(), period.to_string());
        debug_assert_eq!(period, CFS_PERIOD_US.to_string());
        // A new cgroup starts with the default period: write it only if it differs.
        let period_file = dir.join("cpu.cfs_period_us");
        if fsio::read(&period_file).ok().as_deref() != Some(period.as_str()) {
            fsio::write_checked(&period_file, &period, &period)?;
        }
        fsio::write_checked(&dir.join("cpu.cfs_quota_us"), &quota, &quota)?;
        report.cpus = Some(Enforced::cgroup(
            "cpu.cfs_quota_us",
            format!("{quota} per {period}"),
        ));
    }
    Ok(())
}

impl V1Cgroup {
    fn dir_of(&self, ctrl: Ctrl) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| c.has(ctrl))
            .map(|(_, d)| d.as_path())
    }

    /// The directories, one per hierarchy.
    pub(super) fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }

    /// Move `pid` into the cgroup of every hierarchy.
    pub(super) fn attach(&self, pid: libc::pid_t) -> Result<(), CgroupError> {
        let pid_s = pid.to_string();
        for (_, dir) in &self.dirs {
            fsio::write(&dir.join("cgroup.procs"), &pid_s).map_err(|e| e.attach(pid))?;
        }
        Ok(())
    }

    /// Freeze (when the freezer is mounted: nothing can fork meanwhile), SIGKILL every
    /// process, thaw (frozen tasks die only once thawed); repeat until every hierarchy is
    /// empty.
    pub(super) fn kill(&self) -> Result<(), CgroupError> {
        let procs: Vec<PathBuf> = self.dirs().map(|d| d.join("cgroup.procs")).collect();
        let Some(first) = procs.first() else {
            return Ok(());
        };
        let freezer = self.dir_of(Ctrl::Freezer).map(|d| d.join("freezer.state"));
        wait_until_empty(first, &procs, || {
            if let Some(state) = &freezer {
                fsio::write(state, "FROZEN")?;
                wait_frozen(state);
            }
            // Every process is in every hierarchy: kill the union once.
            let mut pids: Vec<libc::pid_t> = procs.iter().flat_map(|p| fsio::pids(p)).collect();
            pids.sort_unstable();
            pids.dedup();
            kill_pids(&pids);
            match &freezer {
                Some(state) => fsio::write(state, "THAWED"),
                None => Ok(()),
            }
        })
    }

    /// Peak memory, OOM kills, pids, CPU time.
    pub(super) fn usage(&self) -> CgroupUsage {
        let files = &self.usage_files;
        let mut u = CgroupUsage::default();
        if let Some(d) = self.dir_of(Ctrl::Memory) {
            u.memory_peak_bytes = files.u64(d, "memory.max_usage_in_bytes");
            [u.oom_kills] = files.keys(d, "memory.oom_control", ["oom_kill"]);
            u.oom_killed = u.oom_kills.is_some_and(|n| n > 0);
        }
        if let Some(d) = self.dir_of(Ctrl::Pids) {
            u.pids_peak = files.u64(d, "pids.peak");
            u.pids_current = files.u64(d, "pids.current");
        }
        if let Some(d) = self.dir_of(Ctrl::Cpuacct) {
            let usec = |f: &str| files.u64(d, f).map(|ns| ns / 1000);
            u.cpu_user_usec = usec("cpuacct.usage_user");
            u.cpu_system_usec = usec("cpuacct.usage_sys");
        }
        u
    }

    /// Remove every directory, retrying `tries` times while processes drain. Keeps the
    /// ones that could not be removed for a later attempt and reports the first failure.
    pub(super) fn remove(&mut self, tries: u32) -> Result<(), CgroupError> {
        self.usage_files = fsio::UsageFiles::default();
        let mut first_err = None;
        self.dirs
            .retain(|(_, dir)| match fsio::rmdir_retry(dir, tries) {
                Ok(()) => false,
                Err(e) => {
                    first_err.get_or_insert(e);
                    true
                }
            });
        first_err.map_or(Ok(()), Err)
    }
}

/// Wait (briefly) until `freezer.state` says FROZEN; a task in uninterruptible sleep can
/// hold it in FREEZING, in which case we kill what we see and loop.
fn wait_frozen(state: &Path) {
    for _ in 0..100 {
        if fsio::read(state).is_ok_and(|s| s == "FROZEN") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

impl Drop for V1Cgroup {
    fn drop(&mut self) {
        let _ = self.remove(super::DROP_TRIES);
    }
}
