//! Why a model spec did not load: which model or setting was at fault, and what went wrong.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::engine::EngineError;

/// The model a failure belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Base,
    /// An ARM, by its name.
    Arm(String),
}

/// A spec that did not load. Each variant says what failed; the text is the one the command
/// line has always printed (the spec's fields are the model flags, and the playground's profile
/// picker shows the same words), so a face that words things its own way can match on the
/// variant instead.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("--profile {profile}: no config file location on this system; set GENARM_CONFIG")]
    NoConfigLocation { profile: String },
    #[error("--profile {profile}: {error}")]
    ConfigFile { profile: String, error: ConfigError },
    #[error(
        "--profile {profile}: no profile named '{profile}' in {} ({})",
        path.display(),
        known_profiles(known)
    )]
    UnknownProfile {
        profile: String,
        path: PathBuf,
        /// The profiles the file has.
        known: Vec<String>,
    },
    #[error("--system is the system message of --chat; give --chat too")]
    SystemWithoutChat,
    #[error("--chat-kwarg sets variables of the --chat template; give --chat too")]
    KwargWithoutChat,
    #[error(
        "--weight {arm}={weight}: no ARM named '{arm}' ({})",
        known_arms(known)
    )]
    UnknownWeight {
        arm: String,
        weight: f32,
        /// The ARMs the spec has.
        known: Vec<String>,
    },
    /// The base or an ARM could not be found, fetched or read.
    #[error("{}{}", flag_of(role), crate::cli_errors::message(error))]
    Model { role: Role, error: EngineError },
    /// The base model's chat template does not compile.
    #[error("--chat: {}", crate::cli_errors::message(.0))]
    ChatTemplate(EngineError),
    #[error("--prompt-template {0:?}: it must contain {{prompt}}")]
    TemplateWithoutPrompt(String),
    /// Anything else the engine refused (models that do not fit together, weights that are not
    /// finite, the embedded demo not extracting).
    // Worded as the command line words it (not `transparent`: the engine's own text names
    // inputs, not flags), and without a source, so the chain does not say it twice.
    #[error("{}", crate::cli_errors::message(.0))]
    Engine(EngineError),
}

impl From<EngineError> for LoadError {
    fn from(error: EngineError) -> Self {
        LoadError::Engine(error)
    }
}

fn flag_of(role: &Role) -> String {
    match role {
        Role::Base => "--base ".to_string(),
        Role::Arm(name) => format!("--arm {name}: "),
    }
}

fn known_profiles(known: &[String]) -> String {
    match known.is_empty() {
        true => "it has no [profiles.NAME] tables".to_string(),
        false => format!("profiles: {}", known.join(", ")),
    }
}

fn known_arms(known: &[String]) -> String {
    match known.is_empty() {
        true => "no ARMs were given".to_string(),
        false => format!("ARMs are: {}", known.join(", ")),
    }
}
