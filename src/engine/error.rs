//! The engine's error type: every variant names the file, input or model it is about, so a face
//! can show it as one actionable line. Inputs are named in words (`Input`); the CLI says them as
//! its flags (`crate::cli_errors`), the playground as they are.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    // Not named `source`: thiserror would make the io error this one's cause as well, and a
    // one-line report that walks the causes would say it twice.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
    /// A value the caller gave (a prompt, a sampling setting, a training setting) is unusable.
    #[error("{}", .0.render(Input::name))]
    BadInput(InputMessage),
    #[error("model computation failed: {0}")]
    Compute(#[from] candle_core::Error),
    /// A served base (`--base URL`): the URL (never the API key) and what went wrong.
    #[error("{url}: {message}")]
    Remote { url: String, message: String },
}

impl EngineError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            error: source,
        }
    }

    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub fn remote(url: &str, message: impl Into<String>) -> Self {
        Self::Remote {
            url: url.to_string(),
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    /// An error about the inputs named in `parts`, in their places in the text.
    pub fn bad_input(parts: impl IntoIterator<Item = Part>) -> Self {
        Self::BadInput(InputMessage {
            parts: parts.into_iter().collect(),
        })
    }
}

/// A value a caller hands the engine or the trainer, named in the errors about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Prompt,
    Response,
    Temperature,
    TopP,
    /// One ARM's weight, written `NAME=W`.
    ArmWeight,
    /// A tokenizer file given beside a model that carries none.
    TokenizerFile,
    // Training an ARM.
    TrainingData,
    TrainingOutput,
    Resume,
    Strict,
    Epochs,
    BatchSize,
    GradAccum,
    MaxLength,
    Beta,
    Gamma,
    LearningRate,
    EvalSplit,
    LoraAlpha,
    LoraRank,
    // Training a tokenizer.
    VocabSize,
}

impl Input {
    /// Its name in words, as the engine's own messages say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::Response => "response",
            Self::Temperature => "temperature",
            Self::TopP => "top-p",
            Self::ArmWeight => "ARM weight",
            Self::TokenizerFile => "a tokenizer file",
            Self::TrainingData => "training data",
            Self::TrainingOutput => "output folder",
            Self::Resume => "resume",
            Self::Strict => "strict",
            Self::Epochs => "epochs",
            Self::BatchSize => "batch size",
            Self::GradAccum => "gradient accumulation",
            Self::MaxLength => "max length",
            Self::Beta => "beta",
            Self::Gamma => "gamma",
            Self::LearningRate => "learning rate",
            Self::EvalSplit => "eval split",
            Self::LoraAlpha => "LoRA alpha",
            Self::LoraRank => "LoRA rank",
            Self::VocabSize => "vocabulary size",
        }
    }

    /// An error about this input alone: its name, then `rest` (which starts with its own
    /// separator, ": " or " ").
    pub fn error(self, rest: impl Into<String>) -> EngineError {
        EngineError::bad_input([Part::Input(self), Part::Text(rest.into())])
    }
}

/// A piece of an `InputMessage`: text, or an input named in its place.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Input(Input),
}

impl From<Input> for Part {
    fn from(input: Input) -> Self {
        Self::Input(input)
    }
}

impl From<&str> for Part {
    fn from(text: &str) -> Self {
        Self::Text(text.to_string())
    }
}

impl From<String> for Part {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

/// What went wrong with one or more inputs, each named where the text mentions it, so every
/// face can name them its own way.
#[derive(Debug, Clone, PartialEq)]
pub struct InputMessage {
    parts: Vec<Part>,
}

impl InputMessage {
    /// The message with each input said by `name`.
    pub fn render<'a>(&self, name: impl Fn(Input) -> &'a str) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.as_str(),
                Part::Input(input) => name(*input),
            })
            .collect()
    }

    /// The inputs the message names, in order.
    pub fn inputs(&self) -> impl Iterator<Item = Input> + '_ {
        self.parts.iter().filter_map(|part| match part {
            Part::Input(input) => Some(*input),
            Part::Text(_) => None,
        })
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
