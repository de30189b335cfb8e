//! [`ModelSpec`]: which models to load and how, as plain data (the command line builds one from
//! its flags, the playground keeps the one it started with).

use std::path::PathBuf;

use crate::config::Models;
use crate::engine::ComputeDtype;
use crate::engine::remote::RemoteOptions;

/// The models to load, their weights and the prompt format.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// A model folder, a .gguf file or a Hub id `org/repo[@revision]`; None: the embedded demo
    /// (with its helpful and harmless ARMs unless `arms` names others).
    pub base: Option<PathBuf>,
    /// ARMs by name, each a path or Hub id like `base`; names are unique.
    pub arms: Vec<(String, PathBuf)>,
    /// ARM weights by name, in order (a later one for the same ARM wins); unnamed ARMs get 1.
    pub weights: Vec<(String, f32)>,
    pub dtype: ComputeDtype,
    /// tokenizer.json for GGUF models, instead of the one beside the file or in its metadata.
    pub tokenizer: Option<PathBuf>,
    /// Prompts wrapped in this text, `{prompt}` marking where the prompt goes (`\n` written as
    /// two characters is a newline).
    pub prompt_template: Option<String>,
    /// Prompts rendered as a user message with the base model's chat template.
    pub chat: bool,
    /// The system message of the chat conversation (needs `chat`).
    pub system: Option<String>,
    /// Variables for the chat template (`--chat-kwarg`; needs `chat`).
    pub chat_variables: Vec<(String, serde_json::Value)>,
    /// A named model set from the config file's `[profiles.NAME]`, laid under the fields above.
    pub profile: Option<String>,
    /// How to use a base given as a URL (`--remote-*`).
    pub remote: RemoteOptions,
}

/// The embedded demo in f32, nothing else set.
impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            base: None,
            arms: Vec::new(),
            weights: Vec::new(),
            dtype: ComputeDtype::F32,
            tokenizer: None,
            prompt_template: None,
            chat: false,
            system: None,
            chat_variables: Vec::new(),
            profile: None,
            remote: RemoteOptions::default(),
        }
    }
}

impl ModelSpec {
    /// The config file's `[models]` when the spec names no models (nor a profile): what the
    /// playground opens without `--base`. The spec's weights come after the file's, so they
    /// win.
    pub fn or_config_models(mut self, config: &Models) -> Self {
        if self.base.is_none()
            && self.arms.is_empty()
            && self.profile.is_none()
            && let Some(base) = &config.base
        {
            self.base = Some(base.clone());
            self.arms = config
                .arms
                .iter()
                .map(|(name, path)| (name.clone(), path.clone()))
                .collect();
            self.weights = config
                .weights
                .iter()
                .map(|(name, w)| (name.clone(), *w))
                .chain(self.weights)
                .collect();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(base: Option<&str>, arms: &[(&str, &str)], weights: &[(&str, f32)]) -> ModelSpec {
        ModelSpec {
            base: base.map(Into::into),
            arms: arms
                .iter()
                .map(|(n, p)| (n.to_string(), p.into()))
                .collect(),
            weights: weights.iter().map(|(n, w)| (n.to_string(), *w)).collect(),
            ..ModelSpec::default()
        }
    }

    #[test]
    fn config_models_apply_only_without_model_flags_and_flag_weights_win() {
        let config = crate::config::parse(
            "[models]\nbase = \"/m/b\"\narms = { helpful = \"/m/h\" }\nweights = { helpful = 2.0 }\n",
        )
        .unwrap()
        .models;
        let got = spec(None, &[], &[("helpful", 3.0)]).or_config_models(&config);
        assert_eq!(got.base, Some("/m/b".into()));
        assert_eq!(got.arms, vec![("helpful".to_string(), "/m/h".into())]);
        // The weights are applied in order, so the last one wins: the command line's.
        assert_eq!(
            got.weights,
            vec![("helpful".to_string(), 2.0), ("helpful".to_string(), 3.0)]
        );
        let own = spec(Some("/x"), &[], &[]);
        assert_eq!(own.or_config_models(&config).base, Some("/x".into()));
        let demo_arms = spec(None, &[("a", "/y")], &[]);
        assert_eq!(demo_arms.or_config_models(&config).base, None);
        let empty = Models::default();
        assert_eq!(spec(None, &[], &[]).or_config_models(&empty).base, None);
    }
}
