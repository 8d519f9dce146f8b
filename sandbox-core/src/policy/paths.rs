//! Paths: `${VAR}` expansion, lexical normalisation, `*`/`?` globs against the host.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::Environment;

/// What `${VAR}` resolves against.
pub(crate) struct Vars<'a> {
    pub(crate) env: &'a Environment,
    /// `${CWD}`: the caller's directory, or `--cwd`.
    pub(crate) cwd: Option<&'a Path>,
}

/// Why a value could not be expanded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExpandError {
    /// `${NAME}` with `NAME` undefined.
    Undefined(String),
    /// Malformed `$` syntax; the reason.
    Syntax(String),
}

impl Vars<'_> {
    fn lookup(&self, name: &str) -> Result<String, ExpandError> {
        let undefined = || ExpandError::Undefined(name.to_owned());
        let path_str = |p: Option<&Path>| -> Result<String, ExpandError> {
            let p = p.ok_or_else(undefined)?;
            p.to_str().map(str::to_owned).ok_or_else(|| {
                ExpandError::Syntax(format!("${{{name}}} = {} is not valid UTF-8", p.display()))
            })
        };
        match name {
            "CWD" => path_str(self.cwd),
            "HOME" => path_str(self.env.home.as_deref()),
            "USER" => self.env.user.clone().ok_or_else(undefined),
            "UID" => Ok(self.env.uid.to_string()),
            "GID" => Ok(self.env.gid.to_string()),
            _ => self.env.vars.get(name).cloned().ok_or_else(undefined),
        }
    }

    /// Expands `${NAME}`, `$$` (a literal `$`) and a leading `~` (`${HOME}`).
    pub(crate) fn expand(&self, raw: &str) -> Result<String, ExpandError> {
        if !raw.contains('$') && !raw.starts_with('~') {
            return Ok(raw.to_owned());
        }
        let mut out = String::with_capacity(raw.len() + 32);
        let mut rest = raw;
        if let Some(after) = raw.strip_prefix('~') {
            if after.is_empty() || after.starts_with('/') {
                out.push_str(&self.lookup("HOME")?);
                rest = after;
            }
        }
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| {
                    ExpandError::Syntax("unclosed \"${\" (write $$ for a literal $)".into())
                })?;
                let name = &body[..end];
                if !is_var_name(name) {
                    return Err(ExpandError::Syntax(format!(
                        "\"${{{name}}}\" is not a variable name (letters, digits, _)"
                    )));
                }
                out.push_str(&self.lookup(name)?);
                rest = &body[end + 1..];
            } else if after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                return Err(ExpandError::Syntax(
                    "write variables as ${NAME}, with braces (and $$ for a literal $)".into(),
                ));
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a variable name (also the rule for environment keys).
pub(crate) fn is_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Lexical normalisation of an absolute path: no `.`, no `..` (it stops at `/`), no trailing
/// `/`, no repeated `/`. Symlinks are not followed.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Whether a path has glob characters (`*`, `?`).
pub(crate) fn has_glob(path: &str) -> bool {
    path.contains(['*', '?'])
}

/// The host paths an absolute, normalised pattern matches, sorted. `*` and `?` match within
/// one component (and match a leading dot); unreadable directories match nothing.
pub(crate) fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    let mut matches = vec![PathBuf::from("/")];
    for component in pattern.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        let name = name.as_bytes();
        if !name.contains(&b'*') && !name.contains(&b'?') {
            for m in &mut matches {
                m.push(OsStr::from_bytes(name));
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &matches {
            let Ok(entries) = crate::sys::read_dir_names(dir) else {
                continue;
            };
            for file_name in entries {
                if glob_match(name, file_name.as_bytes()) {
                    next.push(dir.join(file_name));
                }
            }
        }
        next.sort();
        matches = next;
        if matches.is_empty() {
            break;
        }
    }
    // Literal components after the last glob may name nothing.
    matches.retain(|p| p.symlink_metadata().is_ok());
    matches
}

/// `*` (any run of bytes) and `?` (one byte) against a file name.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        assert!(glob_match(b"*_key", b"ssh_host_rsa_key"));
        assert!(!glob_match(b"*_key", b"ssh_host_rsa_key.pub"));
        assert!(glob_match(b".env.*", b".env.local"));
        assert!(!glob_match(b".env.*", b".env"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(glob_match(b"*", b".hidden"));
        assert!(glob_match(b"a*b*c", b"aXbYbZc"));
        assert!(!glob_match(b"a*b*c", b"aXbYbZ"));
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize(Path::new("/a/./b/../c/")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../../etc")), PathBuf::from("/etc"));
        assert_eq!(
            normalize(Path::new("//usr//lib")),
            PathBuf::from("/usr/lib")
        );
    }

    #[test]
    fn globs_expand_against_the_host() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a_key", "b_key", "b_key.pub", ".c_key"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let found = expand_glob(&dir.path().join("*_key"));
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, [".c_key", "a_key", "b_key"]);
        assert!(expand_glob(&dir.path().join("none*")).is_empty());
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/x"), "").unwrap();
        assert_eq!(
            expand_glob(&dir.path().join("s*/x")),
            [dir.path().join("sub/x")]
        );
        assert!(expand_glob(&dir.path().join("s*/y")).is_empty());
    }

    #[test]
    fn expansion() {
        let env = Environment {
            vars: [("FOO".to_string(), "bar".to_string())].into(),
            home: Some("/home/ada".into()),
            uid: 1000,
            ..Environment::default()
        };
        let vars = Vars {
            env: &env,
            cwd: Some(Path::new("/work")),
        };
        assert_eq!(vars.expand("${CWD}/x/${FOO}").unwrap(), "/work/x/bar");
        assert_eq!(vars.expand("~/.ssh").unwrap(), "/home/ada/.ssh");
        assert_eq!(vars.expand("/a~b").unwrap(), "/a~b");
        assert_eq!(vars.expand("/run/user/${UID}").unwrap(), "/run/user/1000");
        assert_eq!(vars.expand("/a$$b/$1").unwrap(), "/a$b/$1");
        assert_eq!(
            vars.expand("${USER}"),
            Err(ExpandError::Undefined("USER".into()))
        );
        assert!(matches!(vars.expand("$FOO"), Err(ExpandError::Syntax(_))));
        assert!(matches!(vars.expand("${FOO"), Err(ExpandError::Syntax(_))));
        assert!(matches!(vars.expand("${A-B}"), Err(ExpandError::Syntax(_))));
    }
}
