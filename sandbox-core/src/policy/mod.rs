//! The TOML policy model: parse, `extends`, `${VAR}` expansion, CLI overrides, validation.
//!
//! ```text
//! Policy::load("agent") ──▶ Policy (the extends chain, each layer as written)
//!     ──resolve(&Overrides, &Environment)──▶ ResolvedPolicy (merged, expanded, validated)
//! ```
//!
//! Every user mistake is reported by [`Policy::load`] or [`Policy::resolve`], naming the key and
//! the file (`filesystem.read_only[2] in /path/x.toml`) or the flag (`--memory`).

mod caps;
mod load;
mod model;
mod paths;
mod resolve;
mod resolved;
mod show;
mod units;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;

pub use caps::{capability_number, CAPABILITIES};
pub use model::{
    EnvSection, FilesystemSection, LandlockSection, LimitsSection, NetworkSection, PathEntry,
    PolicyFile, ProcessSection, SandboxSection, SeccompSection,
};
pub use resolved::*;

/// A policy: the chain of files its `extends` names, each layer as written, base first.
/// Turn it into a [`ResolvedPolicy`] with [`Policy::resolve`].
///
/// ```
/// use sandbox_core::{Environment, Overrides, Policy};
/// let policy = Policy::load("default").unwrap();
/// let resolved = policy.resolve(&Overrides::default(), &Environment::from_process());
/// # let _ = resolved;
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    /// Base first; the last layer is the file that was loaded.
    layers: Vec<Layer>,
}

/// One file of an `extends` chain.
#[derive(Debug, Clone)]
struct Layer {
    origin: Origin,
    file: PolicyFile,
}

/// Where a layer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// A built-in preset.
    Preset(&'static str),
    /// A file on disk, as named (relative `extends` joined to the extending file's directory).
    File(PathBuf),
    /// Text given to [`Policy::from_toml`], with the caller's name for it.
    Text(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Preset(name) => write!(f, "preset {name:?}"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Text(name) => f.write_str(name),
        }
    }
}

/// The caller's context that `${VAR}`s and relative paths resolve against.
///
/// Build it with [`Environment::from_process`], or by hand in tests.
///
/// ```
/// use sandbox_core::Environment;
/// let env = Environment {
///     cwd: Some("/home/ada/project".into()),
///     home: Some("/home/ada".into()),
///     user: Some("ada".into()),
///     uid: 1000,
///     gid: 1000,
///     ..Environment::default()
/// };
/// assert!(env.vars.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// The caller's environment variables (non-UTF-8 ones are left out).
    pub vars: HashMap<String, String>,
    /// `${CWD}`: the caller's working directory; `None` when it cannot be determined.
    pub cwd: Option<PathBuf>,
    /// `${HOME}`: the caller's home directory.
    pub home: Option<PathBuf>,
    /// `${UID}`.
    pub uid: u32,
    /// `${GID}`.
    pub gid: u32,
    /// `${USER}`.
    pub user: Option<String>,
}

impl Environment {
    /// The calling process's environment, working directory, home, uid, gid and user name.
    ///
    /// `HOME` and `USER` (or `LOGNAME`) come from the environment; only when they are unset is
    /// `/etc/passwd` read. Other NSS sources (LDAP, sssd) are not asked: glibc can only reach
    /// them by loading shared libraries, which a static build cannot do and which would add
    /// ~0.2 MB to every sandbox's supervisor. Set `HOME` and `USER` for such accounts.
    pub fn from_process() -> Environment {
        let caller = std::env::vars_os();
        // Sized once: collecting from the filter would grow (and rehash) it several times.
        let mut vars = HashMap::with_capacity(caller.size_hint().0);
        vars.extend(
            caller.filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        );
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid().as_raw();
        let mut home = vars
            .get("HOME")
            .filter(|h| h.starts_with('/'))
            .map(PathBuf::from);
        let mut user = vars
            .get("USER")
            .or_else(|| vars.get("LOGNAME"))
            .filter(|u| !u.is_empty())
            .cloned();
        if home.is_none() || user.is_none() {
            if let Some((name, dir)) = passwd_entry(uid.as_raw()) {
                home = home.or(Some(dir));
                user = user.or(Some(name));
            }
        }
        Environment {
            cwd: std::env::current_dir().ok(),
            home,
            uid: uid.as_raw(),
            gid,
            user,
            vars,
        }
    }
}

/// The name and home directory of `uid` in `/etc/passwd` (`name:pw:uid:gid:gecos:home:shell`).
fn passwd_entry(uid: u32) -> Option<(String, PathBuf)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [name, _, id, _, _, home, ..] if id.parse() == Ok(uid) && home.starts_with('/') => {
                Some(((*name).to_owned(), PathBuf::from(home)))
            }
            _ => None,
        }
    })
}

/// Command-line flags that override the policy. Every field empty means no override.
///
/// ```
/// use sandbox_core::Overrides;
/// let overrides = Overrides { rw: vec!["./out".into()], memory: Some("1G".into()), ..Overrides::default() };
/// # let _ = overrides;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--ro PATH`: appended to `filesystem.read_only` (and removed from `read_write`).
    pub ro: Vec<String>,
    /// `--rw PATH`: appended to `filesystem.read_write` (and removed from `read_only`).
    pub rw: Vec<String>,
    /// `--deny PATH`: appended to `filesystem.deny`.
    pub deny: Vec<String>,
    /// `--tmpfs PATH`: appended to `filesystem.tmpfs`.
    pub tmpfs: Vec<String>,
    /// `--net none|host`: replaces `network.mode`; `none` also drops the port lists.
    pub net: Option<String>,
    /// `--cwd PATH`: the working directory, and what `${CWD}` means.
    pub cwd: Option<String>,
    /// `--env KEY=VALUE`: added to `process.env.set`.
    pub env: Vec<String>,
    /// `--pass-env KEY`: added to `process.env.pass`.
    pub pass_env: Vec<String>,
    /// `--memory SIZE`.
    pub memory: Option<String>,
    /// `--cpus N`.
    pub cpus: Option<String>,
    /// `--pids N`.
    pub pids: Option<String>,
    /// `--timeout DURATION`.
    pub timeout: Option<String>,
    /// `--isolation namespaces|landlock`.
    pub isolation: Option<String>,
}

/// A policy problem. Each variant names the key and the file (or the flag) in its fields.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `--policy NAME` (or `extends = "NAME"`) names no built-in preset.
    #[error("no built-in policy named {name:?} (built-in: {}); hint: a file path must contain '/' or end in .toml", Policy::builtin_names().join(", "))]
    UnknownPreset {
        /// The name asked for.
        name: String,
    },
    /// A policy file could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Malformed TOML, an unknown key or a wrong type.
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        /// The file (or preset, or the caller's name for the text).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (names the unknown key, the expected type, …).
        message: String,
    },
    /// `extends` leads back to a file already in the chain.
    #[error("extends cycle: {}", chain.join(" -> "))]
    ExtendsCycle {
        /// The chain, ending with the repeated file.
        chain: Vec<String>,
    },
    /// `extends` chain longer than the limit.
    #[error("extends chain in {origin} is deeper than {limit} files")]
    ExtendsTooDeep {
        /// The file whose `extends` went over the limit.
        origin: String,
        /// The limit.
        limit: usize,
    },
    /// A value is invalid.
    #[error("{}: {value:?}: {reason}", at(key, origin))]
    Invalid {
        /// The key (`filesystem.read_only[2]`, `limits.memory`) or the flag (`--memory`).
        key: String,
        /// The file or preset that sets it; `None` for a command-line flag.
        origin: Option<String>,
        /// The value as written.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A `${VAR}` names a variable that is not defined.
    #[error("{}: {value:?}: undefined variable ${{{variable}}}", at(key, origin))]
    UndefinedVariable {
        /// The key or the flag.
        key: String,
        /// The file or preset; `None` for a command-line flag.
        origin: Option<String>,
        /// The value as written.
        value: String,
        /// The undefined variable.
        variable: String,
    },
    /// A required (not `optional`) path does not exist.
    #[error("{}: {} does not exist; hint: {}", at(key, origin), path.display(), missing_hint(origin))]
    MissingPath {
        /// The key or the flag.
        key: String,
        /// The file or preset; `None` for a command-line flag.
        origin: Option<String>,
        /// The missing path (expanded).
        path: PathBuf,
    },
    /// The working directory may not be shared read-write (`/`, the home directory, a system
    /// directory).
    #[error("{}: refusing to share {} read-write: {reason}; hint: run from a project directory, or name the directory explicitly with --rw", at(key, origin), path.display())]
    WorkingDirectory {
        /// The key (`filesystem.read_write[0]`).
        key: String,
        /// The file or preset.
        origin: Option<String>,
        /// The directory `${CWD}` resolved to.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A resolved policy could not be written as TOML.
    #[error("cannot write the policy as TOML: {message}")]
    Serialize {
        /// The serializer's message.
        message: String,
    },
}

/// `key in origin`, or just the flag.
fn at(key: &str, origin: &Option<String>) -> String {
    match origin {
        Some(origin) => format!("{key} in {origin}"),
        None => key.to_owned(),
    }
}

/// How to get past a missing path: optional entries exist only in files.
fn missing_hint(origin: &Option<String>) -> &'static str {
    match origin {
        Some(_) => "create it, or write { path = \"...\", optional = true }",
        None => "check the path (a flag names a path that must exist; a policy file can mark one optional)",
    }
}
