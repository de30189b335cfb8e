//! Turning `--base/--arm/--weight/--dtype` into a loaded [`Guide`] and a weight vector.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::cli::ModelArgs;
use crate::engine::formats::chat::ChatPrompt;
use crate::engine::formats::hub::resolve_model;
use crate::engine::{CausalLm, ComputeDtype, EngineError, Guide, validate_weights};

/// Split `NAME=VALUE`, naming the flag when the shape is wrong.
pub fn split_pair<'a>(flag: &str, raw: &'a str) -> Result<(&'a str, &'a str)> {
    match raw.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
            Ok((name.trim(), value.trim()))
        }
        _ => bail!("{flag} {raw}: expected NAME=VALUE"),
    }
}

/// Parse `--arm NAME=PATH` values, refusing duplicate names.
pub fn parse_arms(raw: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let mut arms: Vec<(String, PathBuf)> = Vec::new();
    for item in raw {
        let (name, path) = split_pair("--arm", item)?;
        if arms.iter().any(|(n, _)| n == name) {
            bail!("--arm {item}: an ARM named '{name}' was already given");
        }
        arms.push((name.to_string(), PathBuf::from(path)));
    }
    Ok(arms)
}

/// Parse `--weight NAME=W` against the ARM names; unnamed ARMs get 1.
pub fn parse_weights(raw: &[String], names: &[String]) -> Result<Vec<f32>> {
    let mut weights = vec![1.0f32; names.len()];
    for item in raw {
        let (name, value) = split_pair("--weight", item)?;
        let Some(index) = names.iter().position(|n| n == name) else {
            let known = if names.is_empty() {
                "no ARMs were given".to_string()
            } else {
                format!("ARMs are: {}", names.join(", "))
            };
            bail!("--weight {item}: no ARM named '{name}' ({known})");
        };
        let w: f32 = value
            .parse()
            .map_err(|_| anyhow::anyhow!("--weight {item}: '{value}' is not a number"))?;
        weights[index] = w;
    }
    validate_weights(names, &weights)
        .map_err(|e| anyhow::anyhow!(crate::cli_errors::message(&e)))?;
    Ok(weights)
}

pub fn parse_dtype(raw: &str) -> Result<ComputeDtype> {
    raw.parse()
        .map_err(|e: String| anyhow::anyhow!("--dtype: {e}"))
}

/// How the base is named in output records: its path, or "demo".
pub fn base_label(args: &ModelArgs) -> String {
    let args = super::profile::with_profile(args).unwrap_or(std::borrow::Cow::Borrowed(args));
    args.base
        .as_ref()
        .map_or_else(|| "demo".to_string(), |p| p.display().to_string())
}

/// Load the base and every ARM, checking the flags before the (slow) loading. Notices (such as
/// `--chat` on a model without a chat template) go to stderr.
pub fn load_guide(args: &ModelArgs) -> Result<(Guide, Vec<f32>)> {
    let loaded = load_guide_from(args, crate::config::default_path().as_deref())?;
    for notice in &loaded.notices {
        eprintln!("notice: {notice}");
    }
    Ok((loaded.guide, loaded.weights))
}

/// What [`load_guide_from`] loaded: the models, their weights, and notices for the user.
pub struct LoadedGuide {
    pub guide: Guide,
    pub weights: Vec<f32>,
    /// Things worth telling that are not errors, one line each (without a "notice:" prefix).
    pub notices: Vec<String>,
}

/// [`load_guide`] with `--profile` read from the config file at `config`, and the notices
/// returned instead of printed: the playground's profile picker loads through this while the
/// terminal is in raw mode, so a profile means exactly what it means to the CLI.
pub fn load_guide_from(args: &ModelArgs, config: Option<&Path>) -> Result<LoadedGuide> {
    let args = &*super::profile::with_profile_in(args, config)?;
    let mut notices = Vec::new();
    let dtype = parse_dtype(&args.dtype)?;
    if args.system.is_some() && !args.chat {
        bail!("--system is the system message of --chat; give --chat too");
    }
    let mut arms = parse_arms(&args.arms)?;
    let base_path = match &args.base {
        Some(path) => path.clone(),
        None => {
            // No --base: the embedded demo, with its two ARMs unless others were named.
            let demo = crate::demo::assets::demo_models()?;
            if arms.is_empty() {
                arms = vec![
                    ("helpful".into(), demo.helpful),
                    ("harmless".into(), demo.harmless),
                ];
            }
            demo.base
        }
    };
    let names: Vec<String> = arms.iter().map(|(n, _)| n.clone()).collect();
    let weights = parse_weights(&args.weights, &names)?;
    // Hub ids become cache folders here (downloading what is missing), after the flags are
    // known to be good.
    let tokenizer = args.tokenizer.as_deref();
    // Engine errors are flattened into the flag's message: name their inputs as flags.
    let said = |e: &EngineError| crate::cli_errors::message(e);
    let base_path =
        resolve_model(&base_path).map_err(|e| anyhow::anyhow!("--base {}", said(&e)))?;
    let base = CausalLm::load_with(&base_path, dtype, tokenizer)
        .map_err(|e| anyhow::anyhow!("--base {}", said(&e)))?;
    let mut loaded = Vec::with_capacity(arms.len());
    for (name, path) in arms {
        let arm = resolve_model(&path)
            .and_then(|path| CausalLm::load_with(&path, dtype, tokenizer))
            .map_err(|e| anyhow::anyhow!("--arm {name}: {}", said(&e)))?;
        loaded.push((name, arm));
    }
    let mut guide = Guide::new(base, loaded)?;
    if args.chat {
        guide.chat = chat_prompt(&guide.base, args.system.clone(), &mut notices)?;
    }
    guide.prompt_template = match (&args.prompt_template, &args.base) {
        // The chat template replaces any prompt format (clap refuses --prompt-template too).
        _ if guide.chat.is_some() => None,
        (Some(template), _) => {
            if !template.contains("{prompt}") {
                bail!("--prompt-template {template:?}: it must contain {{prompt}}");
            }
            Some(template.replace("\\n", "\n"))
        }
        (None, None) => Some(crate::demo::world::prompt_for("{prompt}")),
        (None, Some(_)) => None,
    };
    Ok(LoadedGuide {
        guide,
        weights,
        notices,
    })
}

/// `--chat`: the base model's chat template compiled, or None with a notice when it has none.
fn chat_prompt(
    base: &CausalLm,
    system: Option<String>,
    notices: &mut Vec<String>,
) -> Result<Option<ChatPrompt>> {
    match &base.tokenizer.chat_template {
        Some(template) => Ok(Some(
            ChatPrompt::new(template, system).map_err(|e| anyhow::anyhow!("--chat: {e}"))?,
        )),
        None => {
            let ignored = if system.is_some() {
                " (--system is ignored)"
            } else {
                ""
            };
            notices.push(format!(
                "--chat: {} has no chat template in its tokenizer_config.json; using the plain prompt{ignored}",
                base.display_name()
            ));
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["helpful".into(), "harmless".into()]
    }

    #[test]
    fn weights_default_to_one_and_accept_negatives() {
        let w = parse_weights(&["harmless=-0.5".into()], &names()).unwrap();
        assert_eq!(w, vec![1.0, -0.5]);
    }

    #[test]
    fn bad_weights_name_the_flag() {
        for bad in [
            "nope=1",
            "helpful=abc",
            "helpful=NaN",
            "helpful=inf",
            "helpful",
        ] {
            let err = parse_weights(&[bad.into()], &names())
                .unwrap_err()
                .to_string();
            assert!(err.contains("--weight"), "{bad}: {err}");
        }
    }

    #[test]
    fn duplicate_arm_names_are_refused() {
        let err = parse_arms(&["a=x".into(), "a=y".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("already"), "{err}");
    }
}
