//! The policy file as written: plain serde structs, one per TOML table, unknown keys rejected.
//!
//! Every field is optional in the file. `None` (or an empty list) means "not set here", so that
//! `extends` can tell an unset value from a value set to its default; the documented default
//! applies when no layer of the `extends` chain sets it.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::resolved::{Isolation, NetworkMode, SeccompAction, SeccompProfile};

/// One policy file (or built-in preset), as written.
///
/// ```
/// use sandbox_core::PolicyFile;
/// let file: PolicyFile = toml::from_str("extends = \"default\"\n[network]\nmode = \"host\"\n").unwrap();
/// assert_eq!(file.extends.as_deref(), Some("default"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyFile {
    /// What the policy is for, one line. Default: empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A preset name (`"default"`) or a path to another policy file, merged underneath this one:
    /// later values win, lists append. A relative path is relative to the extending file.
    /// Default: none (start from nothing: no path visible at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// `[sandbox]`.
    #[serde(skip_serializing_if = "is_default")]
    pub sandbox: SandboxSection,
    /// `[process]`.
    #[serde(skip_serializing_if = "is_default")]
    pub process: ProcessSection,
    /// `[filesystem]`.
    #[serde(skip_serializing_if = "is_default")]
    pub filesystem: FilesystemSection,
    /// `[network]`.
    #[serde(skip_serializing_if = "is_default")]
    pub network: NetworkSection,
    /// `[seccomp]`.
    #[serde(skip_serializing_if = "is_default")]
    pub seccomp: SeccompSection,
    /// `[landlock]`.
    #[serde(skip_serializing_if = "is_default")]
    pub landlock: LandlockSection,
    /// `[limits]`.
    #[serde(skip_serializing_if = "is_default")]
    pub limits: LimitsSection,
}

/// `[sandbox]`: how the command is isolated.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSection {
    /// `"namespaces"` (new user, mount, pid, ipc, uts, cgroup and network namespaces plus every
    /// other layer) or `"landlock"` (no namespaces: Landlock, seccomp, rlimits only, for hosts
    /// that forbid unprivileged user namespaces). Default: `"namespaces"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
}

/// `[process]`: what the command runs as, where, with which environment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessSection {
    /// Working directory of the command (an absolute path, variables expand).
    /// Default: `"${CWD}"`, the caller's working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// uid inside the sandbox. Default: the caller's uid; 65534 (nobody) for a root caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// gid inside the sandbox. Default: the caller's gid; 65534 (nogroup) for a root caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Capabilities kept inside the user namespace (`"CAP_NET_BIND_SERVICE"`; case-insensitive,
    /// the `CAP_` prefix may be left out). Needs `isolation = "namespaces"`. Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Hostname inside the uts namespace. Default: `"sandbox"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `env = { set = {..}, pass = [..] }`.
    #[serde(skip_serializing_if = "is_default")]
    pub env: EnvSection,
}

/// `[process] env`: the environment is scrubbed to `PATH`, `HOME`, `TERM`, `LANG`, `LC_*`
/// plus what is set or passed here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvSection {
    /// Variables set to a literal value (no `${VAR}` expansion). Default: none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Names of variables passed through from the caller when it has them. Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pass: Vec<String>,
}

/// `[filesystem]`: what of the host is visible. Nothing is, unless named here.
///
/// Paths are absolute after `${VAR}` expansion (`~/` means `${HOME}/`); `*` and `?` in a
/// path are expanded against the host when the policy is resolved (`*` also matches names
/// starting with a dot).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesystemSection {
    /// Visible read-only (and executable). Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read_only: Vec<PathEntry>,
    /// Visible read-write. Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read_write: Vec<PathEntry>,
    /// Drop boxes: files may be created and written there, not read back (Landlock). Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub write_only: Vec<PathEntry>,
    /// Hidden, even inside a visible tree; one that does not exist cannot be created.
    /// Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Fresh empty tmpfs mounts. Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// When non-empty, only these files and directories may be executed (Landlock).
    /// Default: none (anything visible may be executed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
}

/// A path in `read_only`, `read_write` or `write_only`: `"/usr"` or
/// `{ path = "/lib64", optional = true }`.
///
/// A missing required path is an error; a missing optional one is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEntry {
    /// The path as written (variables not yet expanded).
    pub path: String,
    /// Skip the entry when the path does not exist. Default: `false`.
    pub optional: bool,
}

impl PathEntry {
    /// A required entry.
    pub fn required(path: impl Into<String>) -> Self {
        PathEntry {
            path: path.into(),
            optional: false,
        }
    }

    /// An optional entry.
    pub fn optional(path: impl Into<String>) -> Self {
        PathEntry {
            path: path.into(),
            optional: true,
        }
    }
}

/// The table form of a [`PathEntry`].
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PathTable {
    path: String,
    #[serde(default)]
    optional: bool,
}

impl<'de> Deserialize<'de> for PathEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = PathEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path string or a table { path = \"...\", optional = true }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PathEntry, E> {
                Ok(PathEntry::required(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PathEntry, A::Error> {
                let table = PathTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PathEntry {
                    path: table.path,
                    optional: table.optional,
                })
            }
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}

impl Serialize for PathEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.optional {
            PathTable {
                path: self.path.clone(),
                optional: true,
            }
            .serialize(serializer)
        } else {
            serializer.serialize_str(&self.path)
        }
    }
}

/// `[network]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSection {
    /// `"none"` (a new network namespace with only loopback) or `"host"` (the host's network).
    /// Default: `"none"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<NetworkMode>,
    /// With `mode = "host"`: the only TCP ports `connect` may reach (Landlock ABI 4, Linux 6.7).
    /// Default: none listed, any port.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_tcp: Vec<u16>,
    /// With `mode = "host"`: the only TCP ports `bind` may use (Landlock ABI 4).
    /// Default: none listed, any port.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bind_tcp: Vec<u16>,
}

/// `[seccomp]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeccompSection {
    /// `"default"` (an allowlist in the spirit of Docker's), `"strict"` (a smaller one) or
    /// `"none"` (no filter). Default: `"default"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<SeccompProfile>,
    /// Syscall names added to the allowlist. Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Syscall names denied on top of the profile. Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// What a denied call does: `"errno"` (fails with EPERM), `"kill"` or `"log"`.
    /// Default: `"errno"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<SeccompAction>,
}

/// `[landlock]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LandlockSection {
    /// Run with what the kernel's Landlock supports and report the rest, instead of failing.
    /// Default: `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_effort: Option<bool>,
}

/// `[limits]`. Sizes are bytes or `"512M"`, `"1.5G"` (K, M, G, T are powers of 1024);
/// durations are seconds or `"500ms"`, `"30s"`, `"10m"`, `"1h"`, `"1h30m"`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Memory (cgroup `memory.max`, swap off), at least 16M. Default: unlimited.
    #[serde(
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<String>,
    /// CPUs (cgroup `cpu.max`), e.g. `1.5`; at least 0.01. Default: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Processes and threads (cgroup `pids.max`), at least 1. Default: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// Wall-clock timeout; when it expires the whole sandbox is killed (exit 124).
    /// Default: none.
    #[serde(
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<String>,
    /// Open files (`RLIMIT_NOFILE`), at least 1. Default: inherited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    /// Largest file the command may write (`RLIMIT_FSIZE`), a size. Default: unlimited.
    #[serde(
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_size: Option<String>,
    /// Core dump size (`RLIMIT_CORE`), a size. Default: `"0"` (no core dumps).
    #[serde(
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub core: Option<String>,
    /// Without usable cgroups, fall back to rlimits and report it, instead of failing.
    /// Default: `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_effort: Option<bool>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Accepts `"512M"` or `536870912` (or `-5`, rejected later with the key named).
fn string_or_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct TextVisitor;
    impl Visitor<'_> for TextVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string such as \"512M\" or \"10m\", or a number")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
    }
    deserializer.deserialize_any(TextVisitor)
}
