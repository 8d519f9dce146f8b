//! Resolve: merge the `extends` chain (later wins, lists append), expand `${VAR}`s, apply the
//! command-line overrides (which win over every file), validate every value.

use std::path::{Path, PathBuf};

use super::caps::canonical_capability;
use super::model::{PathEntry, PolicyFile};
use super::paths::{expand_glob, has_glob, is_var_name, normalize, ExpandError, Vars};
use super::units::{parse_duration, parse_size};
use super::{Environment, Overrides, Policy, PolicyError};
use super::{
    Isolation, LandlockSettings, Limits, NetworkMode, PathRule, ResolvedFilesystem,
    ResolvedNetwork, ResolvedPolicy, ResolvedProcess, SeccompSettings,
};

/// The smallest memory limit the sandbox's own setup (init, the command's loader) fits in.
pub(crate) const MIN_MEMORY: u64 = 16 << 20;

/// Directories the working directory may not be when it is shared read-write through `${CWD}`.
const SYSTEM_DIRS: [&str; 15] = [
    "/usr", "/etc", "/var", "/bin", "/sbin", "/boot", "/dev", "/proc", "/sys", "/run", "/opt",
    "/srv", "/root", "/home", "/tmp",
];

/// Where a value was written: a key in a file, or a flag.
#[derive(Debug, Clone)]
struct Site {
    key: String,
    /// `None` for a command-line flag.
    origin: Option<String>,
}

impl Site {
    fn flag(flag: &str) -> Site {
        Site {
            key: flag.to_owned(),
            origin: None,
        }
    }

    fn invalid(&self, value: impl Into<String>, reason: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            key: self.key.clone(),
            origin: self.origin.clone(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    fn expand_error(&self, value: &str, error: ExpandError) -> PolicyError {
        match error {
            ExpandError::Undefined(variable) => PolicyError::UndefinedVariable {
                key: self.key.clone(),
                origin: self.origin.clone(),
                value: value.to_owned(),
                variable,
            },
            ExpandError::Syntax(reason) => self.invalid(value, reason),
        }
    }
}

/// A path entry on its way to the resolved lists. `path` is normalised (or a syscall name),
/// so entries compare by bytes.
#[derive(Debug)]
struct Entry {
    /// Index of the layer that wrote it; the command line is `layers.len()`.
    rank: usize,
    site: Site,
    path: PathBuf,
    optional: bool,
    /// Written with `${CWD}` in a policy file (the working-directory rule applies).
    from_cwd: bool,
}

impl Policy {
    /// Merges the `extends` chain, applies `overrides`, expands variables against `env` and
    /// validates every value. Errors name the key and the file, or the flag.
    ///
    /// ```
    /// use sandbox_core::{Environment, NetworkMode, Overrides, Policy};
    /// let env = Environment { cwd: Some("/tmp/project".into()), ..Environment::default() };
    /// let policy = Policy::from_toml("[filesystem]\nread_only = [\"/usr\"]\n", "example").unwrap();
    /// let overrides = Overrides { net: Some("host".into()), ..Overrides::default() };
    /// let resolved = policy.resolve(&overrides, &env).unwrap();
    /// assert_eq!(resolved.network.mode, NetworkMode::Host);
    /// assert_eq!(resolved.process.cwd, std::path::Path::new("/tmp/project"));
    /// ```
    pub fn resolve(
        &self,
        overrides: &Overrides,
        env: &Environment,
    ) -> Result<ResolvedPolicy, PolicyError> {
        Resolver::new(self, overrides, env)?.run()
    }
}

struct Resolver<'a> {
    layers: Vec<(&'a PolicyFile, String)>,
    overrides: &'a Overrides,
    env: &'a Environment,
    /// `${CWD}`: `--cwd` when given, else the caller's directory.
    cwd: Option<PathBuf>,
    /// `--cwd`, resolved.
    cwd_override: Option<PathBuf>,
}

impl<'a> Resolver<'a> {
    fn new(
        policy: &'a Policy,
        overrides: &'a Overrides,
        env: &'a Environment,
    ) -> Result<Self, PolicyError> {
        let mut resolver = Resolver {
            layers: policy
                .layers
                .iter()
                .map(|l| (&l.file, l.origin.to_string()))
                .collect(),
            overrides,
            env,
            cwd: env.cwd.clone(),
            cwd_override: None,
        };
        if let Some(raw) = &overrides.cwd {
            let path = resolver.flag_path("--cwd", raw)?;
            resolver.cwd = Some(path.clone());
            resolver.cwd_override = Some(path);
        }
        Ok(resolver)
    }

    fn vars(&self) -> Vars<'_> {
        Vars {
            env: self.env,
            cwd: self.cwd.as_deref(),
        }
    }

    /// The command line's rank: above every layer.
    fn cli_rank(&self) -> usize {
        self.layers.len()
    }

    fn site(&self, rank: usize, key: String) -> Site {
        Site {
            key,
            origin: Some(self.layers[rank].1.clone()),
        }
    }

    /// The last layer that sets a scalar: its value, rank and a site for `key`.
    fn last<T>(&self, key: &str, get: impl Fn(&'a PolicyFile) -> Option<T>) -> Option<(T, Site)> {
        self.layers
            .iter()
            .enumerate()
            .rev()
            .find_map(|(rank, (file, _))| {
                get(file).map(|value| (value, self.site(rank, key.to_owned())))
            })
    }

    /// A path from a policy file: expanded, absolute, normalised.
    fn file_path(&self, site: &Site, raw: &str) -> Result<PathBuf, PolicyError> {
        let expanded = self
            .vars()
            .expand(raw)
            .map_err(|e| site.expand_error(raw, e))?;
        check_nul(site, raw, &expanded)?;
        if !expanded.starts_with('/') {
            return Err(site.invalid(
                raw,
                "a relative path where an absolute one is needed (write ${CWD}/path for one under the working directory)",
            ));
        }
        Ok(normalize(Path::new(&expanded)))
    }

    /// A path from a flag: expanded, relative to the caller's directory, normalised.
    fn flag_path(&self, flag: &str, raw: &str) -> Result<PathBuf, PolicyError> {
        let site = Site::flag(flag);
        let vars = Vars {
            env: self.env,
            cwd: self.env.cwd.as_deref(),
        };
        let expanded = vars.expand(raw).map_err(|e| site.expand_error(raw, e))?;
        check_nul(&site, raw, &expanded)?;
        if expanded.is_empty() {
            return Err(site.invalid(raw, "empty path"));
        }
        let path = Path::new(&expanded);
        if path.is_absolute() {
            return Ok(normalize(path));
        }
        match &self.env.cwd {
            Some(cwd) => Ok(normalize(&cwd.join(path))),
            None => Err(site.invalid(raw, "a relative path, but the current directory is unknown")),
        }
    }

    fn run(self) -> Result<ResolvedPolicy, PolicyError> {
        let isolation = self.isolation()?;
        let process = self.process(isolation)?;
        let filesystem = self.filesystem()?;
        let network = self.network()?;
        let seccomp = self.seccomp()?;
        let landlock = LandlockSettings {
            best_effort: self
                .last("landlock.best_effort", |f| f.landlock.best_effort)
                .is_some_and(|(v, _)| v),
        };
        let limits = self.limits()?;
        let description = self
            .last("description", |f| f.description.clone())
            .map(|(d, _)| d)
            .unwrap_or_default();
        Ok(ResolvedPolicy {
            description,
            isolation,
            process,
            filesystem,
            network,
            seccomp,
            landlock,
            limits,
        })
    }

    fn isolation(&self) -> Result<Isolation, PolicyError> {
        match &self.overrides.isolation {
            Some(value) => match value.trim() {
                "namespaces" => Ok(Isolation::Namespaces),
                "landlock" => Ok(Isolation::Landlock),
                _ => {
                    Err(Site::flag("--isolation").invalid(value, "expected namespaces or landlock"))
                }
            },
            None => Ok(self
                .last("sandbox.isolation", |f| f.sandbox.isolation)
                .map(|(v, _)| v)
                .unwrap_or_default()),
        }
    }

    fn process(&self, isolation: Isolation) -> Result<ResolvedProcess, PolicyError> {
        let cwd = match (
            &self.cwd_override,
            self.last("process.cwd", |f| f.process.cwd.as_ref()),
        ) {
            (Some(path), _) => path.clone(),
            (None, Some((raw, site))) => self.file_path(&site, raw)?,
            (None, None) => match &self.cwd {
                Some(cwd) => normalize(cwd),
                None => {
                    return Err(PolicyError::UndefinedVariable {
                        key: "process.cwd".into(),
                        origin: None,
                        value: "${CWD}".into(),
                        variable: "CWD".into(),
                    })
                }
            },
        };

        let mut env_set: Vec<(String, String)> = Vec::new();
        let mut set = |site: &Site, key: &str, value: &str| -> Result<(), PolicyError> {
            if !is_var_name(key) {
                return Err(site.invalid(
                    key,
                    "not a variable name (letters, digits, _; not starting with a digit)",
                ));
            }
            if value.contains('\0') {
                return Err(site.invalid(value, "contains a NUL byte"));
            }
            match env_set.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value.to_owned(),
                None => env_set.push((key.to_owned(), value.to_owned())),
            }
            Ok(())
        };
        for (rank, (file, _)) in self.layers.iter().enumerate() {
            for (key, value) in &file.process.env.set {
                set(
                    &self.site(rank, format!("process.env.set.{key}")),
                    key,
                    value,
                )?;
            }
        }
        for item in &self.overrides.env {
            let site = Site::flag("--env");
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| site.invalid(item, "expected KEY=VALUE"))?;
            set(&site, key, value)?;
        }

        let mut env_pass: Vec<String> = Vec::new();
        let mut pass = |site: Site, name: &str| -> Result<(), PolicyError> {
            if !is_var_name(name) {
                return Err(site.invalid(
                    name,
                    "not a variable name (letters, digits, _; not starting with a digit)",
                ));
            }
            if !env_pass.iter().any(|n| n == name) {
                env_pass.push(name.to_owned());
            }
            Ok(())
        };
        for (rank, (file, _)) in self.layers.iter().enumerate() {
            for (i, name) in file.process.env.pass.iter().enumerate() {
                pass(self.site(rank, format!("process.env.pass[{i}]")), name)?;
            }
        }
        for name in &self.overrides.pass_env {
            pass(Site::flag("--pass-env"), name)?;
        }

        let id =
            |key: &str, get: fn(&PolicyFile) -> Option<u32>| -> Result<Option<u32>, PolicyError> {
                match self.last(key, get) {
                    Some((u32::MAX, site)) => {
                        Err(site.invalid(u32::MAX.to_string(), "4294967295 (-1) is not a valid id"))
                    }
                    other => Ok(other.map(|(v, _)| v)),
                }
            };
        let uid = id("process.uid", |f| f.process.uid)?;
        let gid = id("process.gid", |f| f.process.gid)?;

        let mut capabilities: Vec<String> = Vec::new();
        for (rank, (file, _)) in self.layers.iter().enumerate() {
            for (i, name) in file.process.capabilities.iter().enumerate() {
                let site = self.site(rank, format!("process.capabilities[{i}]"));
                let cap = canonical_capability(name).ok_or_else(|| {
                    site.invalid(
                        name,
                        "not a known capability (CAP_CHOWN ... CAP_CHECKPOINT_RESTORE)",
                    )
                })?;
                if isolation == Isolation::Landlock {
                    return Err(site.invalid(
                        name,
                        "capabilities can only be kept inside a user namespace; hint: use isolation = \"namespaces\"",
                    ));
                }
                if !capabilities.iter().any(|c| c == cap) {
                    capabilities.push(cap.to_owned());
                }
            }
        }

        let hostname = match self.last("process.hostname", |f| f.process.hostname.as_ref()) {
            Some((name, site)) => {
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && !name.starts_with(['-', '.'])
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                if !valid {
                    return Err(
                        site.invalid(name, "not a hostname (1-64 letters, digits, '-', '.')")
                    );
                }
                name.clone()
            }
            None => "sandbox".to_owned(),
        };

        Ok(ResolvedProcess {
            cwd,
            env_set,
            env_pass,
            uid,
            gid,
            capabilities,
            hostname,
        })
    }

    /// Every entry of one `[filesystem]` list, from every layer and then the flag.
    fn entries(
        &self,
        kind: &str,
        get: impl Fn(&'a PolicyFile) -> Vec<(&'a str, bool)>,
        flag: &str,
        flag_values: &[String],
    ) -> Result<Vec<Entry>, PolicyError> {
        let mut out = Vec::new();
        for (rank, (file, _)) in self.layers.iter().enumerate() {
            for (i, (raw, optional)) in get(file).into_iter().enumerate() {
                let site = self.site(rank, format!("filesystem.{kind}[{i}]"));
                let path = self.file_path(&site, raw)?;
                let from_cwd = raw.contains("${CWD}");
                push_expanded(
                    &mut out,
                    kind,
                    Entry {
                        rank,
                        site,
                        path,
                        optional,
                        from_cwd,
                    },
                );
            }
        }
        for raw in flag_values {
            let path = self.flag_path(flag, raw)?;
            let entry = Entry {
                rank: self.cli_rank(),
                site: Site::flag(flag),
                path,
                optional: false,
                from_cwd: false,
            };
            push_expanded(&mut out, kind, entry);
        }
        Ok(out)
    }

    fn filesystem(&self) -> Result<ResolvedFilesystem, PolicyError> {
        let ov = self.overrides;
        let rules =
            |list: &'a [PathEntry]| list.iter().map(|e| (e.path.as_str(), e.optional)).collect();
        let plain = |list: &'a [String]| list.iter().map(|p| (p.as_str(), false)).collect();
        let mut read_only = self.entries(
            "read_only",
            |f| rules(&f.filesystem.read_only),
            "--ro",
            &ov.ro,
        )?;
        let mut read_write = self.entries(
            "read_write",
            |f| rules(&f.filesystem.read_write),
            "--rw",
            &ov.rw,
        )?;
        let write_only =
            self.entries("write_only", |f| rules(&f.filesystem.write_only), "", &[])?;
        let deny = self.entries("deny", |f| plain(&f.filesystem.deny), "--deny", &ov.deny)?;
        let tmpfs = self.entries(
            "tmpfs",
            |f| plain(&f.filesystem.tmpfs),
            "--tmpfs",
            &ov.tmpfs,
        )?;
        let exec = self.entries("exec", |f| plain(&f.filesystem.exec), "", &[])?;

        // Before settling: `${CWD}` = /etc must say why, not that /etc is listed twice.
        for entry in read_write.iter().filter(|e| e.from_cwd) {
            if let Some(reason) = self.unshareable(&entry.path) {
                return Err(PolicyError::WorkingDirectory {
                    key: entry.site.key.clone(),
                    origin: entry.site.origin.clone(),
                    path: entry.path.clone(),
                    reason,
                });
            }
        }

        dedup(&mut read_only);
        dedup(&mut read_write);
        settle(&mut read_only, &mut read_write, "read_only")?;
        let mut write_only = write_only;
        dedup(&mut write_only);

        for entry in read_only.iter().chain(&read_write).chain(&write_only) {
            if !entry.optional && is_missing(&entry.path) {
                return Err(PolicyError::MissingPath {
                    key: entry.site.key.clone(),
                    origin: entry.site.origin.clone(),
                    path: entry.path.clone(),
                });
            }
        }
        for entry in tmpfs.iter() {
            if entry.path == Path::new("/") {
                return Err(entry.site.invalid("/", "a tmpfs cannot replace the root"));
            }
        }
        let to_rules = |v: Vec<Entry>| -> Vec<PathRule> {
            v.into_iter()
                .map(|e| PathRule {
                    path: e.path,
                    optional: e.optional,
                })
                .collect()
        };
        let to_paths = |mut v: Vec<Entry>| -> Vec<PathBuf> {
            dedup(&mut v);
            v.into_iter().map(|e| e.path).collect()
        };
        Ok(ResolvedFilesystem {
            read_only: to_rules(read_only),
            read_write: to_rules(read_write),
            deny: to_paths(deny),
            tmpfs: to_paths(tmpfs),
            exec: to_paths(exec),
            write_only: to_rules(write_only),
        })
    }

    /// Why `path` (the working directory) may not be shared read-write, if it may not.
    fn unshareable(&self, path: &Path) -> Option<&'static str> {
        if path == Path::new("/") {
            return Some("it is the root directory: the whole host would be writable");
        }
        if let Some(home) = &self.env.home {
            let home = normalize(home);
            if path == home {
                return Some("it is your home directory: every secret in it would be exposed");
            }
            if home.starts_with(path) {
                return Some(
                    "it contains your home directory: every secret in it would be exposed",
                );
            }
        }
        let top_lib = path.parent() == Some(Path::new("/"))
            && path
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"lib"));
        if top_lib || SYSTEM_DIRS.iter().any(|d| path == Path::new(d)) {
            return Some("it is a system directory");
        }
        None
    }

    fn network(&self) -> Result<ResolvedNetwork, PolicyError> {
        let (mode, mode_rank) = match &self.overrides.net {
            Some(value) => match value.trim() {
                "none" => (NetworkMode::None, self.cli_rank()),
                "host" => (NetworkMode::Host, self.cli_rank()),
                _ => return Err(Site::flag("--net").invalid(value, "expected none or host")),
            },
            None => self
                .layers
                .iter()
                .enumerate()
                .rev()
                .find_map(|(rank, (f, _))| f.network.mode.map(|m| (m, rank)))
                .unwrap_or((NetworkMode::None, 0)),
        };
        let ports = |kind: &str, get: fn(&PolicyFile) -> &[u16]| -> Result<Vec<u16>, PolicyError> {
            let mut out: Vec<u16> = Vec::new();
            for (rank, (file, _)) in self.layers.iter().enumerate() {
                for (i, &port) in get(file).iter().enumerate() {
                    let site = self.site(rank, format!("network.{kind}[{i}]"));
                    if port == 0 {
                        return Err(site.invalid("0", "not a port (1-65535)"));
                    }
                    if mode == NetworkMode::None {
                        // A later `mode = "none"` (or --net none) drops earlier port lists.
                        if rank < mode_rank {
                            continue;
                        }
                        return Err(site.invalid(
                            port.to_string(),
                            "port rules need network mode = \"host\" (with \"none\" there is only loopback)",
                        ));
                    }
                    if !out.contains(&port) {
                        out.push(port);
                    }
                }
            }
            Ok(out)
        };
        Ok(ResolvedNetwork {
            mode,
            connect_tcp: ports("connect_tcp", |f| &f.network.connect_tcp)?,
            bind_tcp: ports("bind_tcp", |f| &f.network.bind_tcp)?,
        })
    }

    fn seccomp(&self) -> Result<SeccompSettings, PolicyError> {
        let names = |kind: &str,
                     get: fn(&PolicyFile) -> &[String]|
         -> Result<Vec<Entry>, PolicyError> {
            let mut out = Vec::new();
            for (rank, (file, _)) in self.layers.iter().enumerate() {
                for (i, name) in get(file).iter().enumerate() {
                    let site = self.site(rank, format!("seccomp.{kind}[{i}]"));
                    let valid = !name.is_empty()
                        && name.len() <= 64
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                    if !valid {
                        return Err(site
                            .invalid(name, "not a syscall name (lower-case letters, digits, _)"));
                    }
                    out.push(Entry {
                        rank,
                        site,
                        path: PathBuf::from(name),
                        optional: false,
                        from_cwd: false,
                    });
                }
            }
            dedup(&mut out);
            Ok(out)
        };
        let mut allow = names("allow", |f| &f.seccomp.allow)?;
        let mut deny = names("deny", |f| &f.seccomp.deny)?;
        settle(&mut deny, &mut allow, "seccomp.deny")?;
        let to_names = |v: Vec<Entry>| -> Vec<String> {
            v.into_iter()
                .map(|e| e.path.to_string_lossy().into_owned())
                .collect()
        };
        Ok(SeccompSettings {
            profile: self
                .last("seccomp.profile", |f| f.seccomp.profile)
                .map(|(v, _)| v)
                .unwrap_or_default(),
            allow: to_names(allow),
            deny: to_names(deny),
            action: self
                .last("seccomp.action", |f| f.seccomp.action)
                .map(|(v, _)| v)
                .unwrap_or_default(),
        })
    }

    /// A value from its flag, else from the last layer that sets `key`.
    fn text(
        &self,
        flag: &str,
        flag_value: &Option<String>,
        key: &str,
        get: fn(&PolicyFile) -> Option<&String>,
    ) -> Option<(String, Site)> {
        match flag_value {
            Some(v) => Some((v.clone(), Site::flag(flag))),
            None => self.last(key, get).map(|(v, site)| (v.clone(), site)),
        }
    }

    fn limits(&self) -> Result<Limits, PolicyError> {
        let ov = self.overrides;
        let size =
            |found: Option<(String, Site)>| -> Result<Option<(u64, String, Site)>, PolicyError> {
                match found {
                    Some((text, site)) => match parse_size(&text) {
                        Ok(bytes) => Ok(Some((bytes, text, site))),
                        Err(reason) => Err(site.invalid(text, reason)),
                    },
                    None => Ok(None),
                }
            };

        let memory = match size(self.text("--memory", &ov.memory, "limits.memory", |f| {
            f.limits.memory.as_ref()
        }))? {
            Some((0, text, site)) => return Err(site.invalid(text, "must be more than 0")),
            Some((bytes, text, site)) if bytes < MIN_MEMORY => {
                return Err(site.invalid(text, "below what the sandbox itself needs (16M)"))
            }
            other => other.map(|(bytes, _, _)| bytes),
        };

        let cpus = match &ov.cpus {
            Some(text) => {
                let site = Site::flag("--cpus");
                let value: f64 = text
                    .trim()
                    .parse()
                    .map_err(|_| site.invalid(text, "not a number"))?;
                Some((value, text.clone(), site))
            }
            None => self
                .last("limits.cpus", |f| f.limits.cpus)
                .map(|(v, site)| (v, v.to_string(), site)),
        };
        let cpus = match cpus {
            Some((value, text, site)) => {
                if !value.is_finite() || value <= 0.0 {
                    return Err(site.invalid(text, "must be a number more than 0"));
                }
                if value < 0.01 {
                    return Err(site.invalid(text, "below the smallest CPU quota (0.01)"));
                }
                Some(value)
            }
            None => None,
        };

        let pids = match &ov.pids {
            Some(text) => {
                let site = Site::flag("--pids");
                let value: u64 = text
                    .trim()
                    .parse()
                    .map_err(|_| site.invalid(text, "not a whole number"))?;
                Some((value, site))
            }
            None => self.last("limits.pids", |f| f.limits.pids),
        };
        let pids = match pids {
            Some((0, site)) => return Err(site.invalid("0", "must be at least 1")),
            other => other.map(|(v, _)| v),
        };

        let timeout = match self.text("--timeout", &ov.timeout, "limits.timeout", |f| {
            f.limits.timeout.as_ref()
        }) {
            Some((text, site)) => match parse_duration(&text) {
                Ok(d) if d.is_zero() => return Err(site.invalid(text, "must be more than 0")),
                Ok(d) => Some(d),
                Err(reason) => return Err(site.invalid(text, reason)),
            },
            None => None,
        };

        let open_files = match self.last("limits.open_files", |f| f.limits.open_files) {
            Some((0, site)) => return Err(site.invalid("0", "must be at least 1")),
            other => other.map(|(v, _)| v),
        };
        let from_file = |key: &str, get: fn(&PolicyFile) -> Option<&String>| {
            self.last(key, get).map(|(v, site)| (v.clone(), site))
        };
        let file_size = size(from_file("limits.file_size", |f| {
            f.limits.file_size.as_ref()
        }))?
        .map(|(bytes, _, _)| bytes);
        let core = size(from_file("limits.core", |f| f.limits.core.as_ref()))?
            .map_or(0, |(bytes, _, _)| bytes);
        let best_effort = self
            .last("limits.best_effort", |f| f.limits.best_effort)
            .is_some_and(|(v, _)| v);

        Ok(Limits {
            memory,
            cpus,
            pids,
            timeout,
            open_files,
            file_size,
            core,
            best_effort,
        })
    }
}

fn check_nul(site: &Site, raw: &str, expanded: &str) -> Result<(), PolicyError> {
    if expanded.contains('\0') {
        return Err(site.invalid(raw, "contains a NUL byte"));
    }
    Ok(())
}

/// Pushes `entry`, or every host path its glob matches (`tmpfs` entries are never globs).
fn push_expanded(out: &mut Vec<Entry>, kind: &str, entry: Entry) {
    let Some(text) = entry.path.to_str() else {
        out.push(entry);
        return;
    };
    if kind == "tmpfs" || !has_glob(text) {
        out.push(entry);
        return;
    }
    let matches = expand_glob(&entry.path);
    if matches.is_empty() && !entry.optional && kind != "deny" && kind != "exec" {
        // Kept as is: reported as a missing path, naming the pattern.
        out.push(entry);
        return;
    }
    for path in matches {
        out.push(Entry {
            path,
            site: entry.site.clone(),
            ..entry
        });
    }
}

/// Same path twice in one list: keep the first position, take the later entry's site and flags.
fn dedup(list: &mut Vec<Entry>) {
    let mut i = 0;
    while i < list.len() {
        if let Some(first) = list[..i]
            .iter()
            .position(|e| e.path.as_os_str() == list[i].path.as_os_str())
        {
            let later = list.remove(i);
            list[first] = later;
        } else {
            i += 1;
        }
    }
}

/// A path in both lists: the entry of the later layer wins and leaves the other list; both in
/// the same layer is an error.
fn settle(a: &mut Vec<Entry>, b: &mut Vec<Entry>, a_name: &str) -> Result<(), PolicyError> {
    let mut i = 0;
    while i < b.len() {
        match a
            .iter()
            .position(|e| e.path.as_os_str() == b[i].path.as_os_str())
        {
            Some(j) if a[j].rank == b[i].rank => {
                let entry = &b[i];
                return Err(entry.site.invalid(
                    entry.path.to_string_lossy(),
                    format!(
                        "also listed in {a_name} ({}) at the same level",
                        a[j].site.key
                    ),
                ));
            }
            Some(j) if a[j].rank > b[i].rank => {
                b.remove(i);
            }
            Some(j) => {
                a.remove(j);
                i += 1;
            }
            None => i += 1,
        }
    }
    Ok(())
}

/// Whether `path` certainly does not exist (other errors are left to the mount layer).
fn is_missing(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}
