//! `[profiles.NAME]` from the config file, laid under a [`ModelSpec`]. Every face loads through
//! here, so a profile means the same thing to `generate`, `score`, `sweep`, `bench` and the
//! playground.

use std::borrow::Cow;
use std::path::Path;

use super::error::LoadError;
use super::spec::ModelSpec;
use crate::config::{self, Profile};

/// The spec with the profile it names filled in (unchanged without one), reading the profile
/// from the config file at `config` (None: the platform has no config location).
///
/// The spec wins: its base replaces the profile's and any ARM replaces all of the profile's
/// (whose weights then no longer apply); its weights override the profile's; the profile's
/// `chat` turns chat on unless the spec asks for another prompt format; with chat on, the
/// profile's `chat_kwargs` are template variables under the spec's (a `--chat-kwarg` of the
/// same name wins).
pub(super) fn with_profile<'a>(
    spec: &'a ModelSpec,
    config: Option<&Path>,
) -> Result<Cow<'a, ModelSpec>, LoadError> {
    let Some(name) = &spec.profile else {
        return Ok(Cow::Borrowed(spec));
    };
    let Some(path) = config else {
        return Err(LoadError::NoConfigLocation {
            profile: name.clone(),
        });
    };
    let profile = find(path, name)?;
    Ok(Cow::Owned(apply(spec, &profile)))
}

/// How the base is named in output records: its path (the profile's, if the spec names a
/// profile that reads), or "demo".
pub fn base_label(spec: &ModelSpec, config: Option<&Path>) -> String {
    let merged = with_profile(spec, config);
    let base = match &merged {
        Ok(merged) => &merged.base,
        Err(_) => &spec.base,
    };
    base.as_ref()
        .map_or_else(|| "demo".to_string(), |p| p.display().to_string())
}

/// `name` from the config file at `path`, or an error naming the file and the profiles it has.
fn find(path: &Path, name: &str) -> Result<Profile, LoadError> {
    let mut config = config::load(path).map_err(|error| LoadError::ConfigFile {
        profile: name.to_string(),
        error,
    })?;
    match config.profiles.remove(name) {
        Some(profile) => Ok(profile),
        None => Err(LoadError::UnknownProfile {
            profile: name.to_string(),
            path: path.to_path_buf(),
            known: config.profiles.into_keys().collect(),
        }),
    }
}

/// Lay `profile` under `spec` (see [`with_profile`]).
fn apply(spec: &ModelSpec, profile: &Profile) -> ModelSpec {
    let mut merged = spec.clone();
    merged.profile = None;
    if merged.base.is_none() {
        merged.base = Some(profile.base.clone());
    }
    if merged.arms.is_empty() {
        merged.arms = profile
            .arms
            .iter()
            .map(|(arm, path)| (arm.clone(), path.clone()))
            .collect();
        // Profile weights first, so the spec's weight for the same ARM (applied later) wins.
        merged.weights = profile
            .weights
            .iter()
            .map(|(arm, w)| (arm.clone(), *w))
            .chain(spec.weights.iter().cloned())
            .collect();
    }
    merged.chat = spec.chat || (profile.chat && spec.prompt_template.is_none());
    if merged.chat {
        // Profile variables first: a later one of the same name wins when rendering.
        merged.chat_variables = profile
            .chat_kwargs
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .chain(spec.chat_variables.iter().cloned())
            .collect();
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn profile() -> Profile {
        Profile {
            base: PathBuf::from("/m/base"),
            arms: BTreeMap::from([
                ("harmless".to_string(), PathBuf::from("/m/harmless")),
                ("helpful".to_string(), PathBuf::from("/m/helpful")),
            ]),
            weights: BTreeMap::from([("harmless".to_string(), 2.0)]),
            chat: true,
            chat_kwargs: BTreeMap::from([
                ("enable_thinking".to_string(), serde_json::json!(false)),
                ("style".to_string(), serde_json::json!("short")),
            ]),
        }
    }

    fn pairs<T: Clone>(items: &[(&str, T)]) -> Vec<(String, T)> {
        items
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn a_profile_alone_gives_its_models_weights_and_chat() {
        let got = apply(&ModelSpec::default(), &profile());
        assert_eq!(got.base, Some(PathBuf::from("/m/base")));
        assert_eq!(
            got.arms,
            pairs(&[
                ("harmless", PathBuf::from("/m/harmless")),
                ("helpful", PathBuf::from("/m/helpful"))
            ])
        );
        assert_eq!(got.weights, pairs(&[("harmless", 2.0)]));
        assert!(got.chat);
        assert_eq!(
            got.chat_variables,
            pairs(&[
                ("enable_thinking", serde_json::json!(false)),
                ("style", serde_json::json!("short"))
            ])
        );
        assert_eq!(got.profile, None);
    }

    #[test]
    fn chat_kwarg_flags_come_after_the_profile_s_and_need_chat() {
        let spec = ModelSpec {
            chat_variables: pairs(&[("style", serde_json::json!("long"))]),
            ..ModelSpec::default()
        };
        let got = apply(&spec, &profile());
        // The flag's value comes later, so it is the one the template sees.
        assert_eq!(
            got.chat_variables,
            pairs(&[
                ("enable_thinking", serde_json::json!(false)),
                ("style", serde_json::json!("short")),
                ("style", serde_json::json!("long"))
            ])
        );
        // Another prompt format turns the profile's chat off, and its variables with it.
        let spec = ModelSpec {
            prompt_template: Some("Q: {prompt}\nA:".into()),
            ..ModelSpec::default()
        };
        assert!(apply(&spec, &profile()).chat_variables.is_empty());
    }

    #[test]
    fn flags_win_over_the_profile() {
        let spec = ModelSpec {
            base: Some("/other/base".into()),
            weights: pairs(&[("harmless", 0.5)]),
            prompt_template: Some("Q: {prompt}\nA:".into()),
            ..ModelSpec::default()
        };
        let got = apply(&spec, &profile());
        assert_eq!(got.base, Some(PathBuf::from("/other/base")));
        // The profile's ARMs stay; the flag's weight comes after the profile's, so it wins.
        assert_eq!(got.weights, pairs(&[("harmless", 2.0), ("harmless", 0.5)]));
        // A prompt template is another format: the profile's chat does not override it.
        assert!(!got.chat);

        let spec = ModelSpec {
            arms: pairs(&[("mine", PathBuf::from("/m/mine"))]),
            ..ModelSpec::default()
        };
        let got = apply(&spec, &profile());
        assert_eq!(got.arms, pairs(&[("mine", PathBuf::from("/m/mine"))]));
        assert!(
            got.weights.is_empty(),
            "the profile's weights were for its own ARMs"
        );
    }

    #[test]
    fn an_unknown_profile_names_the_file_and_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[profiles.tulu]\nbase = \"/m\"\n[profiles.qwen]\nbase = \"/q\"\n",
        )
        .unwrap();
        let err = find(&path, "llama").unwrap_err().to_string();
        assert!(
            err.starts_with("--profile llama: no profile named 'llama' in "),
            "{err}"
        );
        assert!(
            err.contains("config.toml") && err.contains("profiles: qwen, tulu"),
            "{err}"
        );
        assert_eq!(find(&path, "qwen").unwrap().base, PathBuf::from("/q"));

        std::fs::write(&path, "[theme]\naccent = \"red\"\n").unwrap();
        let err = find(&path, "tulu").unwrap_err().to_string();
        assert!(err.contains("it has no [profiles.NAME] tables"), "{err}");

        std::fs::write(&path, "[profiles.tulu]\nbsae = \"/m\"\n").unwrap();
        let err = find(&path, "tulu").unwrap_err().to_string();
        assert!(
            err.contains("config.toml:2"),
            "a broken file is named with its line: {err}"
        );
    }
}
