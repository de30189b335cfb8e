//! A model's tokenizer with the special-token conventions from `tokenizer_config.json` (or, for
//! a GGUF file that carries its tokenizer as metadata, from that: see `gguf_tokenizer.rs`).

use crate::engine::panic::catch;
use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;
use tokenizers::Tokenizer;

use crate::engine::error::{EngineError, Result};
use crate::engine::formats::chat::ChatTemplate;

/// The tokenizer files of a Hugging Face model folder (and `generation_config.json`, which names
/// more eos tokens): what a model made from another one, trained or random, copies unchanged.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
];

/// What a tokenizer's configuration says about its special tokens, wherever it was read from
/// (tokenizer_config.json, GGUF metadata).
pub(super) struct Conventions {
    pub bos_id: Option<u32>,
    pub eos_ids: Vec<u32>,
    /// `add_bos_token` / `add_eos_token` where the configuration sets them.
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub chat_template: Option<ChatTemplate>,
}

pub struct ModelTokenizer {
    pub inner: Tokenizer,
    pub bos_id: Option<u32>,
    /// Ids named as eos by tokenizer_config.json or the GGUF metadata (generation_config may add
    /// more).
    pub eos_ids: Vec<u32>,
    /// `add_bos_token` / `add_eos_token` when tokenizer_config.json (or the GGUF metadata) sets
    /// them; None means the tokenizer's post-processor alone decides.
    add_bos: Option<bool>,
    add_eos: Option<bool>,
    special_ids: HashSet<u32>,
    added_ids: HashSet<u32>,
    /// Byte-fallback tokens (`<0x41>`), indexed by id.
    byte_tokens: Vec<bool>,
    /// One past the largest id the tokenizer knows (added tokens included).
    pub len: usize,
    /// The chat template the tokenizer files carry, if any (compiled only for `--chat`).
    pub chat_template: Option<ChatTemplate>,
}

impl ModelTokenizer {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(EngineError::invalid(
                dir,
                "no tokenizer.json (genarm needs the fast-tokenizer file of the model)",
            ));
        }
        Self::load_file(&path)
    }

    /// A tokenizer.json file, with the tokenizer_config.json beside it if there is one.
    pub fn load_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(EngineError::invalid(path, "no such tokenizer file"));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let inner = Tokenizer::from_file(path).map_err(|e| {
            EngineError::invalid(
                path,
                format!("cannot read tokenizer: {}", first_line(&e.to_string())),
            )
        })?;
        let config_path = dir.join("tokenizer_config.json");
        let config: Value = if config_path.is_file() {
            let text = std::fs::read_to_string(&config_path)
                .map_err(|e| EngineError::io(&config_path, e))?;
            serde_json::from_str(&text)
                .map_err(|e| EngineError::invalid(&config_path, format!("not valid JSON: {e}")))?
        } else {
            Value::Null
        };
        let chat_template = ChatTemplate::find(dir, &config)?;
        let mut inner = inner;
        apply_class_pipeline(&mut inner, &config).map_err(|e| {
            EngineError::invalid(path, format!("cannot set up the tokenizer pipeline: {e}"))
        })?;
        let token_of = |key: &str| -> Option<u32> {
            let content = match config.get(key)? {
                Value::String(s) => s.as_str(),
                Value::Object(o) => o.get("content")?.as_str()?,
                _ => return None,
            };
            inner.token_to_id(content)
        };
        let conventions = Conventions {
            bos_id: token_of("bos_token"),
            eos_ids: token_of("eos_token").into_iter().collect(),
            add_bos: config.get("add_bos_token").and_then(Value::as_bool),
            add_eos: config.get("add_eos_token").and_then(Value::as_bool),
            chat_template,
        };
        let tokenizer = Self::assemble(inner, conventions);
        tokenizer.probe(path)?;
        Ok(tokenizer)
    }

    /// Run the tokenizer once on a text with special tokens, refusing it (naming `source`)
    /// if it panics: the tokenizers crate trusts its file in places (a post-processor template
    /// naming a special token it does not define panics on every encode), and a tokenizer that
    /// fails on every prompt is better refused at load.
    pub(super) fn probe(&self, source: &Path) -> Result<()> {
        let text = "Hello wörld 42\n";
        let outcome = catch(|| {
            let with = self.inner.encode(text, true).map(|e| e.get_ids().to_vec());
            let without = self.inner.encode(text, false).map(|e| e.get_ids().to_vec());
            with.and_then(|ids| self.inner.decode(&ids, true))
                .and(without)
        });
        match outcome {
            Err(panic) => Err(EngineError::invalid(
                source,
                format!("the tokenizer is inconsistent: it fails on a test text ({panic})"),
            )),
            Ok(_) => Ok(()),
        }
    }

    /// A tokenizer built elsewhere (from GGUF metadata) with its special-token conventions.
    pub(super) fn assemble(inner: Tokenizer, conventions: Conventions) -> Self {
        let len = inner
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&m| m as usize + 1);
        let added = inner.get_added_tokens_decoder();
        let special_ids = added
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        let added_ids = added.keys().copied().collect();
        let mut byte_tokens = vec![false; len];
        for (token, id) in inner.get_vocab(false) {
            if is_byte_fallback_piece(&token) {
                byte_tokens[id as usize] = true;
            }
        }
        Self {
            byte_tokens,
            special_ids,
            added_ids,
            bos_id: conventions.bos_id,
            eos_ids: conventions.eos_ids,
            add_bos: conventions.add_bos,
            add_eos: conventions.add_eos,
            len,
            inner,
            chat_template: conventions.chat_template,
        }
    }

    /// Token ids of a prompt, with the special tokens the model expects (BOS where the
    /// tokenizer config says so), as `tokenizer(prompt)` does in transformers.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = catch(|| self.inner.encode(text, true))
            .map_err(|panic| EngineError::usage(format!("cannot tokenize the prompt: {panic}")))?
            .map_err(|e| EngineError::usage(format!("cannot tokenize the prompt: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        // Tokens the post-processor added are flagged in the special-tokens mask.
        let added_first = encoding.get_special_tokens_mask().first() == Some(&1);
        if let Some(bos) = self.bos_id {
            match self.add_bos {
                Some(true) if ids.first() != Some(&bos) => ids.insert(0, bos),
                Some(false) if added_first && ids.first() == Some(&bos) => {
                    ids.remove(0);
                }
                _ => {}
            }
        }
        if let (Some(true), Some(&eos)) = (self.add_eos, self.eos_ids.first())
            && ids.last() != Some(&eos)
        {
            ids.push(eos);
        }
        Ok(ids)
    }

    /// Token ids of a response to append after a prompt: no special tokens, as Hugging Face
    /// tooling tokenizes responses for scoring.
    pub fn encode_response(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_plain(text, "response")
    }

    /// Token ids of a rendered chat template: the template already placed the special tokens
    /// (BOS included) as text, so none are added — `apply_chat_template` tokenizes with
    /// `add_special_tokens=False`. Special tokens written in the text are still recognised.
    pub fn encode_chat(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_plain(text, "chat prompt")
    }

    fn encode_plain(&self, text: &str, what: &str) -> Result<Vec<u32>> {
        let encoding = catch(|| self.inner.encode(text, false))
            .map_err(|panic| EngineError::usage(format!("cannot tokenize the {what}: {panic}")))?
            .map_err(|e| EngineError::usage(format!("cannot tokenize the {what}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The raw vocabulary string of a token ("▁the", "<0x0A>", "<s>"), for display and checks.
    pub fn token_text(&self, id: u32) -> String {
        self.inner.id_to_token(id).unwrap_or_default()
    }

    /// Decode ids to text, dropping special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        catch(|| self.inner.decode(ids, true))
            .map_err(|panic| EngineError::usage(format!("cannot decode tokens: {panic}")))?
            .map_err(|e| EngineError::usage(format!("cannot decode tokens: {e}")))
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    /// Whether `id` is a byte-fallback token such as `<0xE2>`.
    pub fn is_byte_token(&self, id: u32) -> bool {
        self.byte_tokens.get(id as usize).copied().unwrap_or(false)
    }

    /// Whether `id` was added on top of the trained vocabulary (pad, chat markers, ...).
    pub fn is_added(&self, id: u32) -> bool {
        self.added_ids.contains(&id)
    }
}

/// transformers 5 does not use a Llama tokenizer's tokenizer.json pipeline as saved: its
/// `LlamaTokenizer` class keeps the vocabulary and merges and rebuilds the rest (no normalizer,
/// a Metaspace pre-tokenizer, the sentencepiece decoder). Hub files from the transformers-4 era
/// instead carry a `Prepend("▁")` normalizer, which tokenizes text that starts with a space
/// differently (" Sure" → "▁▁Sure" instead of "▁Sure"). We rebuild the same way so ids match
/// the reference implementation.
fn apply_class_pipeline(tokenizer: &mut Tokenizer, config: &Value) -> tokenizers::Result<()> {
    use tokenizers::decoders::{
        byte_fallback::ByteFallback, fuse::Fuse, sequence::Sequence, strip::Strip,
    };
    use tokenizers::normalizers::replace::Replace;
    use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
    use tokenizers::{DecoderWrapper, ModelWrapper, NormalizerWrapper};

    let class = config
        .get("tokenizer_class")
        .and_then(Value::as_str)
        .unwrap_or("");
    let is_llama_class = matches!(class, "LlamaTokenizer" | "LlamaTokenizerFast");
    if !is_llama_class || !matches!(tokenizer.get_model(), ModelWrapper::BPE(_)) {
        return Ok(());
    }
    let add_prefix_space = config
        .get("add_prefix_space")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let legacy = config
        .get("legacy")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let scheme = match (add_prefix_space, legacy) {
        (false, _) => PrependScheme::Never,
        (true, true) => PrependScheme::Always,
        (true, false) => PrependScheme::First,
    };
    tokenizer.with_normalizer(None::<NormalizerWrapper>)?;
    tokenizer.with_pre_tokenizer(Some(Metaspace::new('▁', scheme, false)));
    let mut steps: Vec<DecoderWrapper> = vec![
        Replace::new("▁", " ")?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_prefix_space {
        steps.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(Sequence::new(steps)));
    Ok(())
}

/// `<0xNN>`, the form sentencepiece byte-fallback tokens take.
fn is_byte_fallback_piece(token: &str) -> bool {
    let b = token.as_bytes();
    b.len() == 6
        && token.starts_with("<0x")
        && token.ends_with('>')
        && b[3].is_ascii_hexdigit()
        && b[4].is_ascii_hexdigit()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}
