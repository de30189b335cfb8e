//! [`load_guide`]: the base and every ARM of a [`ModelSpec`] loaded into a [`Guide`], checking
//! the spec before the (slow) loading.

use std::path::{Path, PathBuf};

use super::error::{LoadError, Role};
use super::profile::with_profile;
use super::spec::ModelSpec;
use crate::engine::decode::arm::Arm;
use crate::engine::formats::chat::ChatPrompt;
use crate::engine::formats::hub::resolve_model;
use crate::engine::formats::tokenizer::ModelTokenizer;
use crate::engine::remote::{RemoteApi, RemoteArm, RemoteBase, is_url};
use crate::engine::{Base, CausalLm, EngineError, Guide, validate_weights};

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
    let guide = load_models(&base_path, arms, spec)?;
    let mut notices = guide
        .base
        .remote()
        .map_or_else(Vec::new, |r| r.notices.clone());
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

/// Load every model (Hub ids become cache folders here, downloading what is missing) and
/// reach every served one (a URL as the base or an ARM) into a guide.
fn load_models(
    base: &Path,
    arms: Vec<(String, PathBuf)>,
    spec: &ModelSpec,
) -> Result<Guide, LoadError> {
    let load = |path: &Path, role: Role| {
        resolve_model(path)
            .and_then(|path| CausalLm::load_with(&path, spec.dtype, spec.tokenizer.as_deref()))
            .map_err(|error| LoadError::Model { role, error })
    };
    let served = |path: &Path| is_url(&path.to_string_lossy());
    // The local ARMs first (a served one is None for now): the first may be the tokenizer a
    // served base is read with.
    let mut slots = Vec::with_capacity(arms.len());
    for (name, path) in arms {
        let model = match served(&path) {
            true => None,
            false => Some(load(&path, Role::Arm(name.clone()))?),
        };
        slots.push((name, path, model));
    }
    let local_base = match served(base) {
        true => None,
        false => Some(load(base, Role::Base)?),
    };
    let encoding = match &local_base {
        Some(model) => Encoding {
            tokenizer: model.tokenizer.clone(),
            eos_ids: model.eos_ids.clone(),
            source: format!("the base ({})", model.dir.display()),
        },
        None => {
            let first = slots.iter().find_map(|(n, _, m)| Some((n, m.as_ref()?)));
            encoding_for_served_base(spec, base, first)?
        }
    };
    let connect = |url: &Path, role: Role| {
        RemoteBase::connect(
            &url.to_string_lossy(),
            &spec.remote,
            encoding.tokenizer.clone(),
            encoding.eos_ids.clone(),
            &encoding.source,
        )
        .map_err(|error| LoadError::Model { role, error })
    };
    let base: Base = match local_base {
        Some(model) => model.into(),
        None => connect(base, Role::Base)?.into(),
    };
    let mut loaded = Vec::with_capacity(slots.len());
    for (name, path, model) in slots {
        let arm = match model {
            Some(model) => Arm::Local(model),
            None => Arm::Remote(RemoteArm::new(connect(&path, Role::Arm(name.clone()))?)),
        };
        loaded.push((name, arm));
    }
    Ok(Guide::with_arms(base, loaded)?)
}

/// The tokenizer genarm encodes with and checks every served model against.
struct Encoding {
    tokenizer: ModelTokenizer,
    eos_ids: Vec<u32>,
    /// Where it came from, for messages.
    source: String,
}

/// A served base's tokenizer: `--tokenizer`, else the first local ARM's.
fn encoding_for_served_base(
    spec: &ModelSpec,
    url: &Path,
    first_local_arm: Option<(&String, &CausalLm)>,
) -> Result<Encoding, LoadError> {
    let remote_error = |error| LoadError::Model {
        role: Role::Base,
        error,
    };
    match (&spec.tokenizer, first_local_arm) {
        (Some(path), _) => {
            let tokenizer = if path.is_dir() {
                ModelTokenizer::load(path)
            } else {
                ModelTokenizer::load_file(path)
            }
            .map_err(remote_error)?;
            Ok(Encoding {
                eos_ids: tokenizer.eos_ids.clone(),
                tokenizer,
                source: path.display().to_string(),
            })
        }
        (None, Some((name, arm))) => Ok(Encoding {
            tokenizer: arm.tokenizer.clone(),
            eos_ids: arm.eos_ids.clone(),
            source: format!("ARM '{name}'"),
        }),
        (None, None) => Err(remote_error(EngineError::usage(format!(
            "{}: a served base needs a tokenizer here: give --tokenizer or a local --arm",
            url.display()
        )))),
    }
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
    check_served_chat(&guide, notices)?;
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

/// A served base whose server renders chat itself (vLLM's `/tokenize` with messages) is asked
/// for a probe conversation: the local template genarm renders with (`--tokenizer`'s, or the
/// first ARM's) should give the same ids, and a notice says where they part. llama-server's
/// template is the one genarm renders with already (`/props`).
fn check_served_chat(guide: &Guide, notices: &mut Vec<String>) -> Result<(), LoadError> {
    const USER: &str = "Hello! What is 12 + 3?";
    let (Some(chat), Some(remote)) = (&guide.chat, guide.base.remote()) else {
        return Ok(());
    };
    if remote.api != RemoteApi::OpenAi {
        return Ok(());
    }
    let Some(served) = remote.chat_ids(&chat.messages(USER), chat.variables()) else {
        return Ok(());
    };
    let local = guide.prompt_ids(USER).map_err(LoadError::ChatTemplate)?;
    if served != local {
        let at = served
            .iter()
            .zip(&local)
            .take_while(|(a, b)| a == b)
            .count();
        notices.push(format!(
            "--chat: the server at {} renders a conversation as {} tokens, the local template \
             ({}) as {}, first differing at token {at}; prompts follow the local template (give \
             the served model's tokenizer folder with --tokenizer)",
            remote.url,
            served.len(),
            chat.path().display(),
            local.len()
        ));
    }
    Ok(())
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
