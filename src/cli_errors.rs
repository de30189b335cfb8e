//! Errors as the command line prints them: the engine names inputs in words (`engine::Input`);
//! here each becomes the flag that gives it, so a message says what to change on the command line.

use crate::engine::{EngineError, Input};

/// The flag (with its value's shape where the message needs it) that gives `input`.
pub fn flag(input: Input) -> &'static str {
    match input {
        Input::Prompt => "--prompt",
        Input::Response => "--response",
        Input::Temperature => "--temperature",
        Input::TopP => "--top-p",
        Input::ArmWeight => "--weight",
        Input::TokenizerFile => "--tokenizer FILE",
        Input::TrainingData => "--data",
        Input::TrainingOutput => "--out",
        Input::Resume => "--resume",
        Input::Strict => "--strict",
        Input::Epochs => "--epochs",
        Input::BatchSize => "--batch-size",
        Input::GradAccum => "--grad-accum",
        Input::MaxLength => "--max-length",
        Input::Beta => "--beta",
        Input::Gamma => "--gamma",
        Input::LearningRate => "--lr",
        Input::EvalSplit => "--eval-split",
        Input::LoraAlpha => "--lora-alpha",
        Input::LoraRank => "--lora-rank",
        Input::VocabSize => "--vocab-size",
    }
}

/// One error as the CLI says it: an engine error about inputs names their flags, any other
/// error reads as its `Display`.
pub fn message(e: &(dyn std::error::Error + 'static)) -> String {
    match e.downcast_ref::<EngineError>() {
        Some(EngineError::BadInput(message)) => message.render(flag),
        _ => e.to_string(),
    }
}

/// The whole chain on one line, as anyhow's `{:#}` writes it (each cause after ": "), with
/// flags for inputs, newlines folded and other control characters escaped (`\u{1b}`): messages
/// quote names and values from files, which must not move the cursor or recolour the terminal.
pub fn one_line(e: &anyhow::Error) -> String {
    printable(&e.chain().map(message).collect::<Vec<_>>().join(": "))
}

/// `text` on one line with control characters escaped (see [`one_line`]).
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Part, SamplingParams};

    #[test]
    fn engine_errors_name_their_flags() {
        let params = SamplingParams {
            top_p: 1.5,
            ..Default::default()
        };
        let e = anyhow::Error::from(params.validate().unwrap_err());
        assert_eq!(one_line(&e), "--top-p must be in (0, 1], got 1.5");
        let both = EngineError::bad_input([
            Part::Input(Input::Prompt),
            " and ".into(),
            Part::Input(Input::Response),
            ": too long".into(),
        ]);
        let e = anyhow::Error::from(both).context("scoring");
        assert_eq!(one_line(&e), "scoring: --prompt and --response: too long");
        assert_eq!(format!("{e:#}"), "scoring: prompt and response: too long");
    }

    #[test]
    fn control_characters_from_files_are_escaped() {
        let e = anyhow::anyhow!("model.gguf: unsupported architecture 'x\u{1b}[31mred\u{7}'\r\n");
        assert_eq!(
            one_line(&e),
            "model.gguf: unsupported architecture 'x\\u{1b}[31mred\\u{7}'  "
        );
    }

    #[test]
    fn other_errors_read_as_anyhow_writes_them() {
        let io = std::io::Error::other("disk\nfull");
        let e = anyhow::Error::from(io).context("writing out.json");
        assert_eq!(one_line(&e), format!("{e:#}").replace('\n', " "));
    }
}
