//! `train-tokenizer`: a byte-level BPE tokenizer trained on a corpus with the tokenizers crate.
//!
//! Byte-level (as GPT-2, Llama 3 and Qwen2 use) so that any text is encodable without unknown
//! tokens. Special tokens: `<s>` (BOS, added by the post-processor), `</s>` (EOS), `<pad>`.
//! `tokenizer_config.json` names the class `PreTrainedTokenizerFast`, so transformers uses
//! tokenizer.json exactly as written.

use std::path::Path;

use serde_json::json;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::model::write_atomically;
use crate::engine::{EngineError, Input, Result};

pub const BOS: &str = "<s>";
pub const EOS: &str = "</s>";
pub const PAD: &str = "<pad>";

/// Train on `documents` and write tokenizer.json, tokenizer_config.json and
/// special_tokens_map.json into `out` (created if needed). Returns the vocabulary size.
pub fn train_tokenizer(
    documents: &[String],
    vocab_size: usize,
    min_frequency: u64,
    out: &Path,
) -> Result<usize> {
    let specials = [BOS, EOS, PAD];
    if vocab_size < 256 + specials.len() + 1 {
        return Err(Input::VocabSize.error(format!(
            " must be at least {} (256 bytes, the special tokens and one merge)",
            256 + specials.len() + 1
        )));
    }
    let fail = |e: tokenizers::Error| EngineError::usage(format!("tokenizer training failed: {e}"));
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(min_frequency)
        .show_progress(false)
        .special_tokens(
            specials
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect(),
        )
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    tokenizer
        .train(&mut trainer, documents.iter())
        .map_err(fail)?;
    let bos_id = tokenizer
        .token_to_id(BOS)
        .ok_or_else(|| EngineError::usage("tokenizer training lost the <s> token"))?;
    let template = TemplateProcessing::builder()
        .try_single(format!("{BOS} $A"))
        .and_then(|b| b.try_pair(format!("{BOS} $A $B")))
        .map_err(|e| EngineError::usage(format!("tokenizer template: {e}")))?
        .special_tokens(vec![(BOS, bos_id)])
        .build()
        .map_err(|e| EngineError::usage(format!("tokenizer template: {e}")))?;
    tokenizer.with_post_processor(Some(template));

    std::fs::create_dir_all(out).map_err(|e| EngineError::io(out, e))?;
    let text = tokenizer.to_string(true).map_err(fail)?;
    write_atomically(&out.join("tokenizer.json"), text.as_bytes())?;
    let config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
        "clean_up_tokenization_spaces": false,
        "model_max_length": 1_000_000,
    });
    write_atomically(
        &out.join("tokenizer_config.json"),
        pretty(&config).as_bytes(),
    )?;
    let map = json!({"bos_token": BOS, "eos_token": EOS, "pad_token": PAD});
    write_atomically(
        &out.join("special_tokens_map.json"),
        pretty(&map).as_bytes(),
    )?;
    Ok(tokenizer.get_vocab_size(true))
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
