//! [`load_guide`]: the base and every ARM of a [`ModelSpec`] loaded into a [`Guide`], checking
//! the spec before the (slow) loading.

use std::path::{Path, PathBuf};

use super::error::{LoadError, Role};
use super::profile::with_profile;
use super::spec::ModelSpec;
use crate::engine::formats::chat::ChatPrompt;
use crate::engine::formats::hub::resolve_model;
use crate::engine::formats::tokenizer::ModelTokenizer;
use crate::engine::remote::{RemoteBase, is_url};
use crate::engine::{Base, CausalLm, ComputeDtype, EngineError, Guide, validate_weights};

/// What [`load_guide`] loaded: the models, their weights, and notices for the user.
pub struct LoadedGuide {
    pub guide: Guide,
    pub weights: Vec<f32>,
    /// Things worth telling that are not errors, one line each (without a "notice:" prefix).
    pub notices: Vec<String>,
}

/// Load the base and every ARM of `spec`, with its profile read from the config file at
/// `config`. Notices (such as chat asked for on a model without a chat template) are returned,
/// not printed: the playground loads through this while the terminal is in raw mode.
pub fn load_guide(spec: &ModelSpec, config: Option<&Path>) -> Result<LoadedGuide, LoadError> {
    let spec = &*with_profile(spec, config)?;
    if spec.system.is_some() && !spec.chat {
        return Err(LoadError::SystemWithoutChat);
    }
    if !spec.chat_variables.is_empty() && !spec.chat {
        return Err(LoadError::KwargWithoutChat);
    }
    let (base_path, arms) = model_paths(spec)?;
    let names: Vec<String> = arms.iter().map(|(n, _)| n.clone()).collect();
    let weights = resolve_weights(&spec.weights, &names)?;
    let guide = if is_url(&base_path.to_string_lossy()) {
        load_with_remote_base(&base_path.to_string_lossy(), arms, spec)?
    } else {
        load_models(&base_path, arms, spec.dtype, spec.tokenizer.as_deref())?
    };
    let mut notices = Vec::new();
    let guide = with_prompt_format(guide, spec, &mut notices)?;
    Ok(LoadedGuide {
        guide,
        weights,
        notices,
    })
}

/// The base and the ARMs to load: the spec's, or the embedded demo's when it names no base
/// (with the demo's two ARMs unless it names others).
fn model_paths(spec: &ModelSpec) -> Result<(PathBuf, Vec<(String, PathBuf)>), LoadError> {
    let mut arms = spec.arms.clone();
    let base = match &spec.base {
        Some(path) => path.clone(),
        None => {
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
    Ok((base, arms))
}

/// One weight per ARM of `names` from `(name, weight)` settings applied in order; ARMs not named
/// get 1. A setting for an ARM that is not there, or a weight that is not finite, is an error.
fn resolve_weights(settings: &[(String, f32)], names: &[String]) -> Result<Vec<f32>, LoadError> {
    let mut weights = vec![1.0f32; names.len()];
    for (name, weight) in settings {
        let Some(index) = names.iter().position(|n| n == name) else {
            return Err(LoadError::UnknownWeight {
                arm: name.clone(),
                weight: *weight,
                known: names.to_vec(),
            });
        };
        weights[index] = *weight;
    }
    validate_weights(names, &weights)?;
    Ok(weights)
}

/// Load every model (Hub ids become cache folders here, downloading what is missing) into a
/// guide.
fn load_models(
    base: &Path,
    arms: Vec<(String, PathBuf)>,
    dtype: ComputeDtype,
    tokenizer: Option<&Path>,
) -> Result<Guide, LoadError> {
    let load = |path: &Path, role: Role| {
        resolve_model(path)
            .and_then(|path| CausalLm::load_with(&path, dtype, tokenizer))
            .map_err(|error| LoadError::Model { role, error })
    };
    let base = load(base, Role::Base)?;
    let mut loaded = Vec::with_capacity(arms.len());
    for (name, path) in arms {
        let arm = load(&path, Role::Arm(name.clone()))?;
        loaded.push((name, arm));
    }
    Ok(Guide::new(base, loaded)?)
}

/// Load the ARMs and reach the served base at `url`. genarm tokenizes with `--tokenizer`, else
/// the first ARM's tokenizer (checked against the server's at start).
fn load_with_remote_base(
    url: &str,
    arms: Vec<(String, PathBuf)>,
    spec: &ModelSpec,
) -> Result<Guide, LoadError> {
    let mut loaded = Vec::with_capacity(arms.len());
    for (name, path) in arms {
        let role = Role::Arm(name.clone());
        if is_url(&path.to_string_lossy()) {
            return Err(LoadError::Model {
                role,
                error: EngineError::usage(
                    "an ARM cannot be served yet: ARMs run here, only the base may be a URL",
                ),
            });
        }
        let arm = resolve_model(&path)
            .and_then(|path| CausalLm::load_with(&path, spec.dtype, spec.tokenizer.as_deref()))
            .map_err(|error| LoadError::Model { role, error })?;
        loaded.push((name, arm));
    }
    let remote_error = |error| LoadError::Model {
        role: Role::Base,
        error,
    };
    let (tokenizer, eos_ids, source) = match (&spec.tokenizer, loaded.first()) {
        (Some(path), _) => {
            let tokenizer = if path.is_dir() {
                ModelTokenizer::load(path)
            } else {
                ModelTokenizer::load_file(path)
            }
            .map_err(remote_error)?;
            let eos = tokenizer.eos_ids.clone();
            (tokenizer, eos, path.display().to_string())
        }
        (None, Some((name, arm))) => (
            arm.tokenizer.clone(),
            arm.eos_ids.clone(),
            format!("ARM '{name}'"),
        ),
        (None, None) => {
            return Err(remote_error(EngineError::usage(
                "a served base needs a tokenizer here: give --tokenizer or an --arm",
            )));
        }
    };
    let remote = RemoteBase::connect(url, &spec.remote, tokenizer, eos_ids, &source)
        .map_err(remote_error)?;
    Ok(Guide::new(remote, loaded)?)
}

/// The guide with the spec's prompt format: the chat template, a prompt template, or the
/// demo's format when the demo base is loaded without either.
fn with_prompt_format(
    mut guide: Guide,
    spec: &ModelSpec,
    notices: &mut Vec<String>,
) -> Result<Guide, LoadError> {
    if spec.chat {
        guide.chat = chat_prompt(&guide.base, spec.system.clone(), notices)?
            .map(|chat| chat.with_variables(&spec.chat_variables));
    }
    guide.prompt_template = match (&spec.prompt_template, &spec.base) {
        // The chat template replaces any prompt format (the command line refuses both at once).
        _ if guide.chat.is_some() => None,
        (Some(template), _) => {
            if !template.contains("{prompt}") {
                return Err(LoadError::TemplateWithoutPrompt(template.clone()));
            }
            Some(template.replace("\\n", "\n"))
        }
        (None, None) => Some(crate::demo::world::prompt_for("{prompt}")),
        (None, Some(_)) => None,
    };
    Ok(guide)
}

/// The base model's chat template compiled, or None with a notice when it has none.
fn chat_prompt(
    base: &Base,
    system: Option<String>,
    notices: &mut Vec<String>,
) -> Result<Option<ChatPrompt>, LoadError> {
    let Some(template) = &base.tokenizer().chat_template else {
        let ignored = if system.is_some() {
            " (--system is ignored)"
        } else {
            ""
        };
        notices.push(format!(
            "--chat: {} has no chat template in its tokenizer_config.json; using the plain prompt{ignored}",
            base.display_name()
        ));
        return Ok(None);
    };
    ChatPrompt::new(template, system)
        .map(Some)
        .map_err(LoadError::ChatTemplate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["helpful".into(), "harmless".into()]
    }

    fn settings(items: &[(&str, f32)]) -> Vec<(String, f32)> {
        items.iter().map(|(n, w)| (n.to_string(), *w)).collect()
    }

    #[test]
    fn weights_default_to_one_and_accept_negatives() {
        let w = resolve_weights(&settings(&[("harmless", -0.5)]), &names()).unwrap();
        assert_eq!(w, vec![1.0, -0.5]);
    }

    #[test]
    fn bad_weights_name_the_flag() {
        for bad in [
            ("nope", 1.0),
            ("helpful", f32::NAN),
            ("helpful", f32::INFINITY),
        ] {
            // As the command line prints it (the engine names the input, the CLI its flag).
            let err = resolve_weights(&settings(&[bad]), &names()).unwrap_err();
            let err = crate::cli_errors::message(&err);
            assert!(err.contains("--weight"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_model_that_fails_to_load_is_named_by_its_role() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/parity/models/llama_base");
        let spec = ModelSpec {
            base: Some(missing.clone()),
            ..ModelSpec::default()
        };
        let err = load_guide(&spec, None).err().unwrap();
        assert!(
            matches!(
                &err,
                LoadError::Model {
                    role: Role::Base,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with("--base "), "{err}");

        let spec = ModelSpec {
            base: Some(fixture),
            arms: vec![("helpful".into(), missing)],
            ..ModelSpec::default()
        };
        let err = load_guide(&spec, None).err().unwrap();
        assert!(
            matches!(&err, LoadError::Model { role: Role::Arm(name), .. } if name == "helpful"),
            "{err}"
        );
        assert!(err.to_string().starts_with("--arm helpful: "), "{err}");
    }
}
