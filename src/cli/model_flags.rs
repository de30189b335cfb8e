//! The model flags at the command line's edge: `--base/--arm/--weight/--dtype/...` parsed into a
//! [`ModelSpec`], and the models loaded the way the headless commands want them (notices on
//! stderr).

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::ModelArgs;
use crate::engine::remote::RemoteOptions;
use crate::engine::{ComputeDtype, Guide};
use crate::loading::{self, ModelSpec};

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

/// Parse `--weight NAME=W` values (whether each names an ARM is known once the models are).
pub fn parse_weights(raw: &[String]) -> Result<Vec<(String, f32)>> {
    raw.iter()
        .map(|item| {
            let (name, value) = split_pair("--weight", item)?;
            let w: f32 = value
                .parse()
                .map_err(|_| anyhow::anyhow!("--weight {item}: '{value}' is not a number"))?;
            Ok((name.to_string(), w))
        })
        .collect()
}

pub fn parse_dtype(raw: &str) -> Result<ComputeDtype> {
    raw.parse()
        .map_err(|e: String| anyhow::anyhow!("--dtype: {e}"))
}

impl ModelArgs {
    /// The flags as a spec for the loading layer; errors name the flag that is malformed.
    pub fn to_spec(&self) -> Result<ModelSpec> {
        Ok(ModelSpec {
            base: self.base.clone(),
            arms: parse_arms(&self.arms)?,
            weights: parse_weights(&self.weights)?,
            dtype: parse_dtype(&self.dtype)?,
            tokenizer: self.tokenizer.clone(),
            prompt_template: self.prompt_template.clone(),
            chat: self.chat,
            system: self.system.clone(),
            chat_variables: parse_chat_kwargs(&self.chat_kwargs)?,
            profile: self.profile.clone(),
            remote: self.remote_options()?,
        })
    }

    /// The `--remote-*` flags; only a base given as a URL uses them.
    fn remote_options(&self) -> Result<RemoteOptions> {
        let api = match &self.remote_api {
            Some(raw) => Some(
                raw.parse()
                    .map_err(|e: String| anyhow::anyhow!("--remote-api: {e}"))?,
            ),
            None => None,
        };
        if self.remote_top_k == 0 {
            bail!("--remote-top-k: must be at least 1");
        }
        if !(self.remote_timeout.is_finite() && self.remote_timeout > 0.0) {
            bail!("--remote-timeout: must be a positive number of seconds");
        }
        Ok(RemoteOptions {
            api,
            model: self.remote_model.clone(),
            top_k: self.remote_top_k,
            timeout: std::time::Duration::from_secs_f64(self.remote_timeout.min(86_400.0)),
            exact_greedy: self.remote_exact_greedy,
            exact_candidates: !self.remote_bounds_only,
        })
    }
}

/// `--chat-kwarg NAME=VALUE` flags: VALUE as JSON where it is JSON, else as text. The names a
/// conversation is rendered with are genarm's to set.
fn parse_chat_kwargs(raw: &[String]) -> Result<Vec<(String, serde_json::Value)>> {
    raw.iter()
        .map(|item| {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--chat-kwarg {item}: expected NAME=VALUE"))?;
            if let Some(problem) = crate::engine::formats::chat::variable_name_problem(name) {
                anyhow::bail!("--chat-kwarg {item}: {problem}");
            }
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            Ok((name.to_string(), value))
        })
        .collect()
}

/// Load the base and every ARM the flags name, with `--profile` read from the config file;
/// notices go to stderr.
pub fn load_guide(args: &ModelArgs) -> Result<(Guide, Vec<f32>)> {
    let spec = args.to_spec()?;
    let loaded = loading::load_guide(&spec, crate::config::default_path().as_deref())?;
    for notice in &loaded.notices {
        eprintln!("notice: {notice}");
    }
    Ok((loaded.guide, loaded.weights))
}

/// How the base is named in output records: its path (with `--profile` applied), or "demo".
pub fn base_label(args: &ModelArgs) -> String {
    // Only the base and the profile matter here, and neither needs parsing.
    let spec = ModelSpec {
        base: args.base.clone(),
        profile: args.profile.clone(),
        ..ModelSpec::default()
    };
    loading::base_label(&spec, crate::config::default_path().as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_weights_name_the_flag() {
        for bad in ["helpful=abc", "helpful", "=1", "helpful="] {
            let err = parse_weights(&[bad.into()]).unwrap_err().to_string();
            assert!(err.contains("--weight"), "{bad}: {err}");
        }
        assert_eq!(
            parse_weights(&["harmless=-0.5".into()]).unwrap(),
            vec![("harmless".to_string(), -0.5)]
        );
    }

    #[test]
    fn duplicate_arm_names_are_refused() {
        let err = parse_arms(&["a=x".into(), "a=y".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("already"), "{err}");
    }
}
