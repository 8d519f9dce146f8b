//! Loading: built-in presets, policy files, the `extends` chain.

use std::path::{Path, PathBuf};

use super::model::PolicyFile;
use super::{Layer, Origin, Policy, PolicyError};

/// The built-in presets, compiled into the binary from `policies/*.toml`.
const PRESETS: [(&str, &str); 4] = [
    ("default", include_str!("../../../policies/default.toml")),
    ("agent", include_str!("../../../policies/agent.toml")),
    ("build", include_str!("../../../policies/build.toml")),
    ("offline", include_str!("../../../policies/offline.toml")),
];

const PRESET_NAMES: [&str; PRESETS.len()] = {
    let mut names = [""; PRESETS.len()];
    let mut i = 0;
    while i < PRESETS.len() {
        names[i] = PRESETS[i].0;
        i += 1;
    }
    names
};

/// The most files an `extends` chain may hold.
pub(crate) const MAX_DEPTH: usize = 16;

/// What identifies a file in an `extends` chain, for cycle detection.
#[derive(PartialEq, Eq)]
enum Identity {
    Preset(&'static str),
    File(PathBuf),
    Text,
}

impl Policy {
    /// Names of the built-in presets: `default`, `agent`, `build`, `offline`.
    ///
    /// ```
    /// assert!(sandbox_core::Policy::builtin_names().contains(&"default"));
    /// ```
    pub fn builtin_names() -> &'static [&'static str] {
        &PRESET_NAMES
    }

    /// The TOML text of a built-in preset, as compiled in.
    ///
    /// ```
    /// assert!(sandbox_core::Policy::builtin_text("agent").unwrap().contains("description"));
    /// ```
    pub fn builtin_text(name: &str) -> Option<&'static str> {
        PRESETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| *text)
    }

    /// Loads a preset (a name without `/` that does not end in `.toml`) or a policy file,
    /// with its whole `extends` chain.
    ///
    /// ```
    /// let policy = sandbox_core::Policy::load("agent").unwrap();
    /// assert!(!policy.description().is_empty());
    /// assert!(sandbox_core::Policy::load("no-such-preset").is_err());
    /// ```
    pub fn load(name_or_path: &str) -> Result<Policy, PolicyError> {
        let mut layers = Vec::new();
        let mut chain = Vec::new();
        load_named(name_or_path, None, &mut layers, &mut chain)?;
        layers.reverse();
        Ok(Policy { layers })
    }

    /// Parses policy text. `origin` names it in messages (a path, `"<stdin>"`, …); a relative
    /// `extends` path is taken relative to `origin`'s directory.
    ///
    /// ```
    /// let policy = sandbox_core::Policy::from_toml("extends = \"default\"\n[network]\nmode = \"host\"\n", "inline").unwrap();
    /// assert_eq!(policy.origins(), ["preset \"default\"", "inline"]);
    /// ```
    pub fn from_toml(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let origin = Origin::Text(origin.to_owned());
        let file = parse(text, &origin)?;
        Policy::from_file(file, origin)
    }

    /// A policy from an already-built [`PolicyFile`]; its `extends` is followed as in
    /// [`Policy::from_toml`].
    ///
    /// ```
    /// use sandbox_core::{Policy, PolicyFile};
    /// let file = PolicyFile { extends: Some("offline".into()), ..PolicyFile::default() };
    /// assert_eq!(Policy::from_model(file, "built in code").unwrap().origins().len(), 3);
    /// ```
    pub fn from_model(file: PolicyFile, origin: &str) -> Result<Policy, PolicyError> {
        Policy::from_file(file, Origin::Text(origin.to_owned()))
    }

    fn from_file(file: PolicyFile, origin: Origin) -> Result<Policy, PolicyError> {
        let mut layers = Vec::new();
        let mut chain = vec![(Identity::Text, origin.to_string())];
        let parent = file.extends.clone();
        let base_dir = match &origin {
            Origin::Text(name) => Path::new(name).parent().map(Path::to_path_buf),
            _ => None,
        };
        layers.push(Layer {
            origin: origin.clone(),
            file,
        });
        if let Some(parent) = parent {
            let from = Some(Parent {
                origin: &origin,
                dir: base_dir,
            });
            load_named(&parent, from, &mut layers, &mut chain)?;
        }
        layers.reverse();
        Ok(Policy { layers })
    }

    /// The description of the most derived file that has one (empty when none has).
    pub fn description(&self) -> &str {
        self.layers
            .iter()
            .rev()
            .find_map(|l| l.file.description.as_deref())
            .unwrap_or("")
    }

    /// The files of the `extends` chain, base first, as they appear in messages.
    pub fn origins(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.origin.to_string()).collect()
    }

    /// The files of the `extends` chain as written, base first.
    pub fn files(&self) -> impl Iterator<Item = &PolicyFile> {
        self.layers.iter().map(|l| &l.file)
    }
}

/// The file whose `extends` is being followed.
struct Parent<'a> {
    origin: &'a Origin,
    /// Directory that a relative path is relative to (`None`: the process's working directory).
    dir: Option<PathBuf>,
}

/// Whether `extends`/`--policy` names a preset rather than a file.
pub(crate) fn is_preset_name(name: &str) -> bool {
    !name.contains('/') && !name.ends_with(".toml")
}

/// Loads `name` and what it extends, pushing layers most-derived first.
fn load_named(
    name: &str,
    from: Option<Parent<'_>>,
    layers: &mut Vec<Layer>,
    chain: &mut Vec<(Identity, String)>,
) -> Result<(), PolicyError> {
    let (identity, origin, text) =
        if is_preset_name(name) {
            let (preset, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                PolicyError::UnknownPreset {
                    name: name.to_owned(),
                }
            })?;
            (
                Identity::Preset(preset),
                Origin::Preset(preset),
                (*text).to_owned(),
            )
        } else {
            if let Some(Parent {
                origin: Origin::Preset(preset),
                ..
            }) = &from
            {
                return Err(PolicyError::Invalid {
                    key: "extends".into(),
                    origin: Some(Origin::Preset(preset).to_string()),
                    value: name.into(),
                    reason: "a built-in preset can only extend another preset".into(),
                });
            }
            let path = match from.as_ref().and_then(|p| p.dir.as_deref()) {
                Some(dir) if Path::new(name).is_relative() => dir.join(name),
                _ => PathBuf::from(name),
            };
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
                path: path.clone(),
                source,
            })?;
            let canonical = crate::sys::canonicalize(&path).unwrap_or_else(|_| path.clone());
            (Identity::File(canonical), Origin::File(path), text)
        };
    if chain.iter().any(|(id, _)| *id == identity) {
        let mut names: Vec<String> = chain.iter().map(|(_, o)| o.clone()).collect();
        names.push(origin.to_string());
        return Err(PolicyError::ExtendsCycle { chain: names });
    }
    if chain.len() >= MAX_DEPTH {
        return Err(PolicyError::ExtendsTooDeep {
            origin: chain.last().map(|(_, o)| o.clone()).unwrap_or_default(),
            limit: MAX_DEPTH,
        });
    }
    let file = parse(&text, &origin)?;
    chain.push((identity, origin.to_string()));
    let parent = file.extends.clone();
    let dir = match &origin {
        Origin::File(path) => path.parent().map(Path::to_path_buf),
        _ => None,
    };
    layers.push(Layer { origin, file });
    if let Some(parent) = parent {
        let index = layers.len() - 1;
        let origin = layers[index].origin.clone();
        load_named(
            &parent,
            Some(Parent {
                origin: &origin,
                dir,
            }),
            layers,
            chain,
        )?;
    }
    Ok(())
}

/// TOML → [`PolicyFile`], errors located by line and column.
fn parse(text: &str, origin: &Origin) -> Result<PolicyFile, PolicyError> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let (line, column) = match e.span() {
            Some(span) => line_column(text, span.start),
            None => (1, 1),
        };
        PolicyError::Parse {
            origin: origin.to_string(),
            line,
            column,
            message: e.message().trim_end_matches('\n').to_owned(),
        }
    })
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
