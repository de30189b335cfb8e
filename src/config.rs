//! The config file (TOML): key bindings, theme colours, default models, weight presets and named
//! profiles. This module's one job is the file: find it, parse it (a mistake is reported with its
//! line), and write presets back into it without disturbing the rest.
//!
//! ```toml
//! [keys]                      # playground key bindings: binding name = key or [keys]
//! export = ["ctrl-s", "w"]
//! [theme]                     # colour names ("light-blue") or "#rrggbb"
//! accent = "yellow"
//! [models]                    # used when the playground is started without --base
//! base = "/models/tulu-2-7b"
//! arms = { helpful = "/models/arm-helpful" }
//! weights = { helpful = 1.5 }
//! [presets.careful]           # weights by ARM name, saved and loaded in the playground
//! helpful = 1.0
//! harmless = 2.0
//! [profiles.tulu]             # named model sets: `--profile tulu`, or `M` in the playground
//! base = "/models/tulu-2-7b"
//! arms = { harmless = "/models/arm-harmless" }
//! weights = { harmless = 1.0 }
//! chat = true
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::Color;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::keys::{self, Key};

/// Everything the file can say; every part is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Binding name (see the keymap) → the keys that replace its defaults.
    pub keys: BTreeMap<String, Vec<Key>>,
    pub theme: Theme,
    pub models: Models,
    /// Preset name → ARM weights by ARM name.
    pub presets: BTreeMap<String, BTreeMap<String, f32>>,
    pub profiles: BTreeMap<String, Profile>,
}

/// Colours of the fixed accents; None keeps the built-in one.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Theme {
    /// Key hints, titles, the selected slider.
    #[serde(default, deserialize_with = "colour")]
    pub accent: Option<Color>,
    /// Secondary text.
    #[serde(default, deserialize_with = "colour")]
    pub dim: Option<Color>,
    /// The mark between tokens made under different weights.
    #[serde(default, deserialize_with = "colour")]
    pub segment: Option<Color>,
}

/// Models the playground opens when no `--base` is given.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    pub base: Option<PathBuf>,
    #[serde(default)]
    pub arms: BTreeMap<String, PathBuf>,
    #[serde(default, deserialize_with = "weights")]
    pub weights: BTreeMap<String, f32>,
}

/// A named set of models and settings (`[profiles.NAME]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub base: PathBuf,
    #[serde(default)]
    pub arms: BTreeMap<String, PathBuf>,
    #[serde(default, deserialize_with = "weights")]
    pub weights: BTreeMap<String, f32>,
    /// Wrap prompts in the base model's chat template.
    #[serde(default)]
    pub chat: bool,
    /// Variables for the chat template, as `--chat-kwarg NAME=VALUE` sets them (used when
    /// chat is on): `chat_kwargs = { enable_thinking = false }`.
    #[serde(default, deserialize_with = "chat_kwargs")]
    pub chat_kwargs: BTreeMap<String, serde_json::Value>,
}

impl Models {
    /// As `--base/--arm/--weight` flag values: (base, ["NAME=PATH"], ["NAME=W"]).
    pub fn as_flags(&self) -> Option<(PathBuf, Vec<String>, Vec<String>)> {
        let base = self.base.clone()?;
        let arms = self
            .arms
            .iter()
            .map(|(n, p)| format!("{n}={}", p.display()))
            .collect();
        let weights = self
            .weights
            .iter()
            .map(|(n, w)| format!("{n}={w}"))
            .collect();
        Some((base, arms, weights))
    }
}

/// A problem with the file: where, and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// The file's shape as written; [`Config`] is what it means.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    keys: BTreeMap<Spanned<String>, KeyList>,
    #[serde(default)]
    theme: Theme,
    #[serde(default)]
    models: Models,
    #[serde(default)]
    presets: BTreeMap<String, Weights>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// One key or a list of keys, each checked as it is read (so a bad one has its line).
struct KeyList(Vec<Key>);

impl<'de> Deserialize<'de> for KeyList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let names = match OneOrMany::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a key such as \"w\" or a list such as [\"w\", \"ctrl-s\"]",
            )
        })? {
            OneOrMany::One(k) => vec![k],
            OneOrMany::Many(ks) => ks,
        };
        if names.is_empty() {
            return Err(serde::de::Error::custom("the list of keys is empty"));
        }
        names
            .iter()
            .map(|k| keys::parse_key(k).map_err(serde::de::Error::custom))
            .collect::<Result<_, _>>()
            .map(KeyList)
    }
}

/// ARM name → weight, each a finite number.
struct Weights(BTreeMap<String, f32>);

impl<'de> Deserialize<'de> for Weights {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, f64>::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (name, w) in map {
            if !w.is_finite() {
                return Err(serde::de::Error::custom(format!(
                    "weight of '{name}' must be a finite number"
                )));
            }
            out.insert(name, w as f32);
        }
        Ok(Weights(out))
    }
}

fn weights<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f32>, D::Error> {
    Weights::deserialize(d).map(|w| w.0)
}

/// Template variable name → value (any TOML value, as JSON), each name one a user may set.
fn chat_kwargs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, serde_json::Value>, D::Error> {
    let map = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    for name in map.keys() {
        if let Some(problem) = crate::engine::formats::chat::variable_name_problem(name) {
            return Err(serde::de::Error::custom(format!("chat_kwargs: {problem}")));
        }
    }
    Ok(map)
}

fn colour<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Color>, D::Error> {
    let name = String::deserialize(d)?;
    name.parse::<Color>().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "'{name}' is not a colour (a name such as \"light-blue\", or \"#rrggbb\")"
        ))
    })
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).unwrap_or(text).matches('\n').count() + 1
}

/// Parse the text of a config file; errors carry their line when the parser knows it.
pub fn parse(text: &str) -> Result<Config, (Option<usize>, String)> {
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        (line, e.message().trim().to_string())
    })?;
    let known = keys::BINDING_NAMES;
    let mut keys = BTreeMap::new();
    for (name, list) in raw.keys {
        if !known.contains(&name.get_ref().as_str()) {
            return Err((
                Some(line_of(text, name.span().start)),
                format!(
                    "[keys]: no binding named '{}' (bindings are: {})",
                    name.get_ref(),
                    known.join(", ")
                ),
            ));
        }
        keys.insert(name.into_inner(), list.0);
    }
    Ok(Config {
        keys,
        theme: raw.theme,
        models: raw.models,
        presets: raw.presets.into_iter().map(|(n, w)| (n, w.0)).collect(),
        profiles: raw.profiles,
    })
}

/// The config file: `GENARM_CONFIG` if set, else `config.toml` in the platform config dir.
pub fn default_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GENARM_CONFIG") {
        return Some(PathBuf::from(path));
    }
    directories::ProjectDirs::from("", "", "genarm").map(|d| d.config_dir().join("config.toml"))
}

/// Read and parse `path`. A missing file is the empty config, not an error.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let error = |line, message| ConfigError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => return Err(error(None, e.to_string())),
    };
    parse(&text).map_err(|(line, message)| error(line, message))
}

/// Load the config for the playground: problems become a message and the defaults are used.
pub fn load_or_default(path: Option<&Path>) -> (Config, Option<String>) {
    match path.map(load) {
        Some(Ok(config)) => (config, None),
        Some(Err(e)) => (
            Config::default(),
            Some(format!("config ignored, defaults used: {e}")),
        ),
        None => (Config::default(), None),
    }
}

/// Write `weights` as `[presets.NAME]` into the file at `path` (created if missing), replacing a
/// preset of that name and keeping everything else as written, comments included. The file is
/// replaced atomically (temp file + rename); a file that does not parse is left alone.
pub fn save_preset(path: &Path, name: &str, weights: &[(String, f32)]) -> Result<(), ConfigError> {
    let error = |message: String| ConfigError {
        path: path.to_path_buf(),
        line: None,
        message,
    };
    if name.trim().is_empty() {
        return Err(error("a preset needs a name".into()));
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(error(e.to_string())),
    };
    // Refuse to rewrite a file we would not load: the user's text is worth more than a preset.
    parse(&text).map_err(|(line, message)| ConfigError {
        path: path.to_path_buf(),
        line,
        message: format!("not saved, fix the file first: {message}"),
    })?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| error(format!("{e}")))?;
    let presets = doc
        .entry("presets")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| error("'presets' is not a table".into()))?;
    let mut table = toml_edit::Table::new();
    for (arm, w) in weights {
        // Through f64 with the f32's own shortest digits, so 0.1 is written as 0.1.
        let value: f64 = w.to_string().parse().unwrap_or(f64::from(*w));
        table.insert(arm, toml_edit::value(value));
    }
    presets.insert(name, toml_edit::Item::Table(table));
    write_atomically(path, &doc.to_string()).map_err(|e| error(e.to_string()))
}

/// The config file is replaced whole, keeping its mode (it may be private on purpose).
fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(crate::output::parent_of(path))?;
    crate::output::write_file(path, contents.as_bytes())
}

#[cfg(test)]
mod tests;
