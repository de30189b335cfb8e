//! `--profile NAME`: a named model set from the config file (`[profiles.NAME]`), laid under the
//! command-line flags. Every command that loads models goes through [`with_profile`], so a
//! profile means the same thing to `generate`, `score`, `sweep`, `bench` and the playground.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{Result, bail};

use crate::cli::ModelArgs;
use crate::config::{self, Profile};

/// The model flags with the profile named by `--profile` filled in (unchanged without one).
///
/// Flags win: `--base` replaces the profile's base and any `--arm` replaces all of its ARMs (its
/// weights then no longer apply); `--weight` overrides a profile weight; the profile's `chat`
/// turns `--chat` on unless `--prompt-template` asks for another format.
pub fn with_profile(args: &ModelArgs) -> Result<Cow<'_, ModelArgs>> {
    with_profile_in(args, config::default_path().as_deref())
}

/// [`with_profile`] reading the profile from the config file at `config` (None: the platform
/// has no config location). The playground's profile picker loads through this, with the
/// config file its session uses.
pub fn with_profile_in<'a>(
    args: &'a ModelArgs,
    config: Option<&Path>,
) -> Result<Cow<'a, ModelArgs>> {
    let Some(name) = &args.profile else {
        return Ok(Cow::Borrowed(args));
    };
    let Some(path) = config else {
        bail!("--profile {name}: no config file location on this system; set GENARM_CONFIG");
    };
    let profile = find(path, name)?;
    Ok(Cow::Owned(apply(args, &profile)))
}

/// `name` from the config file at `path`, or an error naming the file and the profiles it has.
pub fn find(path: &Path, name: &str) -> Result<Profile> {
    let mut config = config::load(path).map_err(|e| anyhow::anyhow!("--profile {name}: {e}"))?;
    if let Some(profile) = config.profiles.remove(name) {
        return Ok(profile);
    }
    let known: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
    let known = match known.is_empty() {
        true => "it has no [profiles.NAME] tables".to_string(),
        false => format!("profiles: {}", known.join(", ")),
    };
    bail!(
        "--profile {name}: no profile named '{name}' in {} ({known})",
        path.display()
    )
}

/// Lay `profile` under the flags in `args` (see [`with_profile`]).
pub fn apply(args: &ModelArgs, profile: &Profile) -> ModelArgs {
    let mut merged = args.clone();
    merged.profile = None;
    if merged.base.is_none() {
        merged.base = Some(profile.base.clone());
    }
    if merged.arms.is_empty() {
        merged.arms = profile
            .arms
            .iter()
            .map(|(arm, path)| format!("{arm}={}", path.display()))
            .collect();
        // Profile weights first, so a --weight for the same ARM (parsed later) wins.
        merged.weights = profile
            .weights
            .iter()
            .map(|(arm, w)| format!("{arm}={w}"))
            .chain(args.weights.iter().cloned())
            .collect();
    }
    merged.chat = args.chat || (profile.chat && args.prompt_template.is_none());
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
        }
    }

    #[test]
    fn a_profile_alone_gives_its_models_weights_and_chat() {
        let got = apply(&ModelArgs::default(), &profile());
        assert_eq!(got.base, Some(PathBuf::from("/m/base")));
        assert_eq!(got.arms, ["harmless=/m/harmless", "helpful=/m/helpful"]);
        assert_eq!(got.weights, ["harmless=2"]);
        assert!(got.chat);
        assert_eq!(got.profile, None);
    }

    #[test]
    fn flags_win_over_the_profile() {
        let args = ModelArgs {
            base: Some("/other/base".into()),
            weights: vec!["harmless=0.5".into()],
            prompt_template: Some("Q: {prompt}\nA:".into()),
            ..ModelArgs::default()
        };
        let got = apply(&args, &profile());
        assert_eq!(got.base, Some(PathBuf::from("/other/base")));
        // The profile's ARMs stay; the flag's weight comes after the profile's, so it wins.
        assert_eq!(got.weights, ["harmless=2", "harmless=0.5"]);
        // A prompt template is another format: the profile's chat does not override it.
        assert!(!got.chat);

        let args = ModelArgs {
            arms: vec!["mine=/m/mine".into()],
            ..ModelArgs::default()
        };
        let got = apply(&args, &profile());
        assert_eq!(got.arms, ["mine=/m/mine"]);
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
