//! The `PT_INTERP` of an ELF file: the loader `execve` opens with `open_exec`, so it needs
//! Landlock's `Execute` right too. 64-bit little-endian ELF only (x86_64, aarch64).

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const PT_INTERP: u32 = 3;

/// The interpreter named by `path`'s `PT_INTERP` program header; `None` for a static
/// binary, a script or anything that is not a 64-bit little-endian ELF file.
pub(super) fn interpreter(path: &Path) -> io::Result<Option<PathBuf>> {
    let file = File::open(path)?;
    let mut header = [0u8; 64];
    let n = file.read_at(&mut header, 0)?;
    if n < 64 || header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Ok(None);
    }
    let phoff = u64::from_le_bytes(bytes(&header, 0x20));
    let phentsize = u64::from(u16::from_le_bytes(bytes(&header, 0x36)));
    let phnum = u64::from(u16::from_le_bytes(bytes(&header, 0x38)));
    if phentsize < 56 || phnum == 0 || phnum > 256 {
        return Ok(None);
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    file.read_exact_at(&mut table, phoff)?;
    for ph in table.chunks_exact(phentsize as usize) {
        if u32::from_le_bytes(bytes(ph, 0)) != PT_INTERP {
            continue;
        }
        let offset = u64::from_le_bytes(bytes(ph, 8));
        let size = u64::from_le_bytes(bytes(ph, 32));
        if size == 0 || size > 4096 {
            return Ok(None);
        }
        let mut name = vec![0u8; size as usize];
        file.read_exact_at(&mut name, offset)?;
        if let Some(nul) = name.iter().position(|&b| b == 0) {
            name.truncate(nul);
        }
        return Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(name))));
    }
    Ok(None)
}

/// `N` bytes of `buf` at `at` (the caller checked the length).
fn bytes<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_loader_of_a_dynamic_binary() {
        let interp = interpreter(Path::new("/bin/sh")).unwrap();
        let interp = interp.expect("/bin/sh is dynamically linked on this host");
        assert!(interp.to_string_lossy().contains("ld-"), "{interp:?}");
        assert!(interp.exists());
    }

    #[test]
    fn a_script_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(interpreter(&script).unwrap(), None);
    }
}
