//! A resolved policy written back as a policy file (`sandbox policy show`).

use std::path::Path;

use super::model::{
    EnvSection, FilesystemSection, LandlockSection, LimitsSection, NetworkSection, PathEntry,
    PolicyFile, ProcessSection, SandboxSection, SeccompSection,
};
use super::units::{format_duration, format_size};
use super::{PathRule, PolicyError, ResolvedPolicy};

impl ResolvedPolicy {
    /// This policy as a self-contained [`PolicyFile`] (no `extends`, every value explicit,
    /// paths absolute): loading it resolves to the same policy.
    pub fn to_policy_file(&self) -> PolicyFile {
        // `$` is doubled so that the path is not expanded again when the file is loaded.
        let text = |p: &Path| p.to_string_lossy().replace('$', "$$");
        let rules = |rules: &[PathRule]| -> Vec<PathEntry> {
            rules
                .iter()
                .map(|r| PathEntry {
                    path: text(&r.path),
                    optional: r.optional,
                })
                .collect()
        };
        let paths = |paths: &[std::path::PathBuf]| paths.iter().map(|p| text(p)).collect();
        let p = &self.process;
        let l = &self.limits;
        PolicyFile {
            description: Some(self.description.clone()),
            extends: None,
            sandbox: SandboxSection {
                isolation: Some(self.isolation),
            },
            process: ProcessSection {
                cwd: Some(text(&p.cwd)),
                uid: p.uid,
                gid: p.gid,
                capabilities: p.capabilities.clone(),
                hostname: Some(p.hostname.clone()),
                env: EnvSection {
                    set: p.env_set.iter().cloned().collect(),
                    pass: p.env_pass.clone(),
                },
            },
            filesystem: FilesystemSection {
                read_only: rules(&self.filesystem.read_only),
                read_write: rules(&self.filesystem.read_write),
                write_only: rules(&self.filesystem.write_only),
                deny: paths(&self.filesystem.deny),
                tmpfs: paths(&self.filesystem.tmpfs),
                exec: paths(&self.filesystem.exec),
            },
            network: NetworkSection {
                mode: Some(self.network.mode),
                connect_tcp: self.network.connect_tcp.clone(),
                bind_tcp: self.network.bind_tcp.clone(),
            },
            seccomp: SeccompSection {
                profile: Some(self.seccomp.profile),
                allow: self.seccomp.allow.clone(),
                deny: self.seccomp.deny.clone(),
                action: Some(self.seccomp.action),
            },
            landlock: LandlockSection {
                best_effort: Some(self.landlock.best_effort),
            },
            limits: LimitsSection {
                memory: l.memory.map(format_size),
                cpus: l.cpus,
                pids: l.pids,
                timeout: l.timeout.map(format_duration),
                open_files: l.open_files,
                file_size: l.file_size.map(format_size),
                core: Some(format_size(l.core)),
                best_effort: Some(l.best_effort),
            },
        }
    }

    /// This policy as TOML that loads back to the same policy (see [`Self::to_policy_file`]).
    ///
    /// ```
    /// use sandbox_core::{Environment, Overrides, Policy};
    /// let env = Environment { cwd: Some("/tmp/project".into()), ..Environment::default() };
    /// let resolved = Policy::from_toml("", "empty").unwrap().resolve(&Overrides::default(), &env).unwrap();
    /// assert!(resolved.to_toml().unwrap().contains("mode = \"none\""));
    /// ```
    pub fn to_toml(&self) -> Result<String, PolicyError> {
        toml::to_string_pretty(&self.to_policy_file()).map_err(|e| PolicyError::Serialize {
            message: e.to_string(),
        })
    }
}
