//! Reading and writing cgroupfs files: one `write(2)` per value, every limit read back.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;

use super::CgroupError;

/// The errno of an I/O error (`EINVAL` for the non-OS errors std can produce, such as
/// invalid UTF-8).
pub(super) fn errno_of(e: &io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EINVAL, Errno::from_raw)
}

fn open(path: &Path, read: bool) -> io::Result<fs::File> {
    // On cgroupfs every file exists as soon as its directory does, and `O_CREAT` would turn
    // a missing file into a misleading EACCES. The fake trees of the unit tests need it.
    let create = if cfg!(test) {
        libc::O_CREAT | libc::O_TRUNC
    } else {
        0
    };
    let access = if read { libc::O_RDWR } else { libc::O_WRONLY };
    open_raw(path, access | create)
}

/// Opens with [`crate::sys::open_path`] (raw `openat`: a dozen `fcntl`s fewer per limited
/// launch than musl's `open`).
fn open_raw(path: &Path, flags: libc::c_int) -> io::Result<fs::File> {
    crate::sys::open_path(path, flags, 0o644).map(fs::File::from)
}

fn write_error(path: &Path, value: &str) -> impl Fn(io::Error) -> CgroupError {
    let (path, value) = (path.to_path_buf(), value.to_owned());
    move |e| CgroupError::Write {
        path: path.clone(),
        value: value.clone(),
        errno: errno_of(&e),
    }
}

/// Write `value` with a single `write(2)`: cgroupfs parses each write as one request.
pub(super) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let fail = write_error(path, value);
    let mut file = open(path, false).map_err(&fail)?;
    file.write_all(value.as_bytes()).map_err(fail)
}

/// The whole of a cgroupfs file in as few syscalls as it allows: open, read, close.
pub(super) fn read_text(path: &Path) -> io::Result<String> {
    read_from_start(&open_raw(path, libc::O_RDONLY)?)
}

/// The whole of an open cgroupfs file, read from offset 0 (where cgroupfs generates it
/// afresh). A cgroupfs (kernfs/seq_file) read fills the buffer as far as the content goes, so
/// a short read is the end of the file; std's `read_to_string` adds an `fstat` and a final
/// empty read, on the launch path.
fn read_from_start(file: &fs::File) -> io::Result<String> {
    let mut text = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = file.read_at(&mut chunk, text.len() as u64)?;
        text.extend_from_slice(&chunk[..n]);
        if n < chunk.len() {
            break;
        }
    }
    String::from_utf8(text).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// The accounting files read when the sandbox ends, opened when the cgroup is made, so that
/// the end costs one `pread` a file instead of open, read and close: between pid 1's exit and
/// the supervisor's, where nothing else runs. A cgroupfs file read from
/// offset 0 is generated afresh. A file that could not be opened then is read by path.
#[derive(Debug, Default)]
pub(super) struct UsageFiles(Vec<(&'static str, fs::File)>);

impl UsageFiles {
    /// Opens the files of `names` that exist in `dir`, adding to those already open.
    pub(super) fn open(&mut self, dir: &Path, names: &[&'static str]) {
        for name in names {
            if let Ok(file) = open_raw(&dir.join(name), libc::O_RDONLY) {
                self.0.push((name, file));
            }
        }
    }

    /// The content of `name` (in `dir`), through the open file when there is one.
    fn text(&self, dir: &Path, name: &str) -> Option<String> {
        match self.0.iter().find(|(n, _)| *n == name) {
            Some((_, file)) => read_from_start(file).ok(),
            None => read_text(&dir.join(name)).ok(),
        }
    }

    /// A file holding one number.
    pub(super) fn u64(&self, dir: &Path, name: &str) -> Option<u64> {
        self.text(dir, name)?.trim().parse().ok()
    }

    /// The values of `keys` in the flat-keyed file `name`.
    pub(super) fn keys<const N: usize>(
        &self,
        dir: &Path,
        name: &str,
        keys: [&str; N],
    ) -> [Option<u64>; N] {
        self.text(dir, name)
            .map_or([None; N], |text| parse_keys(&text, keys))
    }
}

/// The contents of a cgroup file, trimmed.
pub(super) fn read(path: &Path) -> Result<String, CgroupError> {
    read_text(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| CgroupError::Read {
            path: path.to_path_buf(),
            errno: errno_of(&e),
        })
}

/// Write `value`, read the file back and require `expect`: a limit is never silently
/// unapplied (the kernel may round or clamp what it is given). One descriptor serves both
/// (open, write, pread, close), as this is on the launch path.
pub(super) fn write_checked(path: &Path, value: &str, expect: &str) -> Result<(), CgroupError> {
    let fail = write_error(path, value);
    let mut file = open(path, true).map_err(&fail)?;
    file.write_all(value.as_bytes()).map_err(fail)?;
    let mut buf = [0u8; 128];
    let n = file.read_at(&mut buf, 0).map_err(|e| CgroupError::Read {
        path: path.to_path_buf(),
        errno: errno_of(&e),
    })?;
    let read = String::from_utf8_lossy(&buf[..n]);
    let read = read.trim();
    if read == expect {
        Ok(())
    } else {
        Err(CgroupError::ReadBack {
            path: path.to_path_buf(),
            wrote: value.to_owned(),
            read: read.to_owned(),
        })
    }
}

/// `key value` lines → the values of `keys`.
fn parse_keys<const N: usize>(text: &str, keys: [&str; N]) -> [Option<u64>; N] {
    let mut values = [None; N];
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        if let Some(i) = keys.iter().position(|key| *key == k) {
            values[i] = v.trim().parse().ok();
        }
    }
    values
}

/// The pids listed in a `cgroup.procs` file (empty when it cannot be read).
pub(super) fn pids(procs: &Path) -> Vec<libc::pid_t> {
    read_text(procs)
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Create a cgroup directory.
pub(super) fn mkdir(path: &Path) -> Result<(), CgroupError> {
    fs::create_dir(path).map_err(|e| CgroupError::Create {
        path: path.to_path_buf(),
        errno: errno_of(&e),
    })
}

/// Remove a cgroup directory, retrying with growing sleeps while it is busy (its last
/// processes are still exiting). A directory that is already gone counts as removed.
pub(super) fn rmdir_retry(path: &Path, tries: u32) -> Result<(), CgroupError> {
    let mut delay = Duration::from_micros(500);
    let mut attempt = 0;
    loop {
        let err = match remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(Errno::ENOENT) => return Ok(()),
            Err(errno) => errno,
        };
        attempt += 1;
        if err != Errno::EBUSY || attempt >= tries {
            return Err(CgroupError::Remove {
                path: path.to_path_buf(),
                errno: err,
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

fn remove_dir(path: &Path) -> Result<(), Errno> {
    match fs::remove_dir(path).map_err(|e| errno_of(&e)) {
        // Fake trees in the unit tests hold the files we wrote; a cgroupfs directory is
        // removable while it lists its (virtual) files, so this never runs on the host.
        Err(Errno::ENOTEMPTY) if cfg!(test) => {
            for entry in fs::read_dir(path).into_iter().flatten().flatten() {
                let _ = fs::remove_file(entry.path());
            }
            fs::remove_dir(path).map_err(|e| errno_of(&e))
        }
        r => r,
    }
}
