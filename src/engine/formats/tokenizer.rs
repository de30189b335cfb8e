//! A model's tokenizer with the special-token conventions from `tokenizer_config.json` (or, for
//! a GGUF file that carries its tokenizer as metadata, from that: see `gguf_tokenizer.rs`).

use crate::engine::panic::catch;
use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;
use tokenizers::{AddedToken, Tokenizer};

use crate::engine::error::{EngineError, Result};
use crate::engine::formats::chat::ChatTemplate;
use crate::engine::formats::sentencepiece;

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

#[derive(Clone)]
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
    /// The tokenizer of a model folder: its tokenizer.json, else its SentencePiece
    /// `tokenizer.model` (converted as transformers converts it), with tokenizer_config.json.
    pub fn load(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        let model = dir.join("tokenizer.model");
        if json.is_file() {
            Self::load_file(&json)
        } else if model.is_file() {
            Self::load_file(&model)
        } else {
            Err(EngineError::invalid(
                dir,
                "no tokenizer.json or tokenizer.model (genarm needs the model's tokenizer)",
            ))
        }
    }

    /// A tokenizer.json or SentencePiece `.model` file, with the tokenizer_config.json beside it
    /// if there is one.
    pub fn load_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(EngineError::invalid(path, "no such tokenizer file"));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let config = read_config(dir)?;
        if is_sentencepiece_file(path) {
            return Self::load_sentencepiece(path, dir, &config);
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| {
            EngineError::invalid(
                path,
                format!("cannot read tokenizer: {}", first_line(&e.to_string())),
            )
        })?;
        apply_class_pipeline(&mut inner, &config).map_err(|e| {
            EngineError::invalid(path, format!("cannot set up the tokenizer pipeline: {e}"))
        })?;
        Self::with_config(inner, path, dir, &config, None)
    }

    /// A SentencePiece model file, converted as transformers converts it (see
    /// `sentencepiece.rs`), with the special and added tokens tokenizer_config.json names.
    fn load_sentencepiece(path: &Path, dir: &Path, config: &Value) -> Result<Self> {
        let built = sentencepiece::load(path, config)?;
        let mut inner = built.inner;
        let config_path = dir.join("tokenizer_config.json");
        let named = |key: &str, default: &Option<String>| -> Option<String> {
            token_content(config.get(key)).or_else(|| default.clone())
        };
        let specials: Vec<AddedToken> = [
            named("unk_token", &built.unk_token),
            named("bos_token", &built.bos_token),
            named("eos_token", &built.eos_token),
        ]
        .into_iter()
        .flatten()
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
        inner
            .add_special_tokens(specials)
            .map_err(|e| EngineError::invalid(path, format!("cannot add special tokens: {e}")))?;
        add_config_tokens(&mut inner, config, &config_path)?;
        let defaults = SpecialDefaults {
            bos: built.bos_token,
            eos: built.eos_token,
            add_bos: built.add_bos,
        };
        Self::with_config(inner, path, dir, config, Some(defaults))
    }

    /// The tokenizer `inner` read from `path`, with the conventions of tokenizer_config.json
    /// (`config`) and, for a tokenizer built by genarm, the defaults of the class it stands for.
    fn with_config(
        inner: Tokenizer,
        path: &Path,
        dir: &Path,
        config: &Value,
        defaults: Option<SpecialDefaults>,
    ) -> Result<Self> {
        let chat_template = ChatTemplate::find(dir, config)?;
        let defaults = defaults.unwrap_or_default();
        let token_of = |key: &str, default: &Option<String>| -> Option<u32> {
            let content = token_content(config.get(key)).or_else(|| default.clone())?;
            inner.token_to_id(&content)
        };
        let conventions = Conventions {
            bos_id: token_of("bos_token", &defaults.bos),
            eos_ids: token_of("eos_token", &defaults.eos).into_iter().collect(),
            add_bos: flag(config, "add_bos_token").or(defaults.add_bos.then_some(true)),
            add_eos: flag(config, "add_eos_token"),
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
    if !sentencepiece::is_llama_class(config)
        || !matches!(tokenizer.get_model(), tokenizers::ModelWrapper::BPE(_))
    {
        return Ok(());
    }
    sentencepiece::llama_pipeline(
        tokenizer,
        flag(config, "add_prefix_space").unwrap_or(true),
        flag(config, "legacy").unwrap_or(false),
    )
}

/// What a tokenizer built from a SentencePiece model assumes where tokenizer_config.json is
/// silent.
#[derive(Default)]
struct SpecialDefaults {
    bos: Option<String>,
    eos: Option<String>,
    add_bos: bool,
}

/// tokenizer_config.json beside a tokenizer file, or Null where there is none.
fn read_config(dir: &Path) -> Result<Value> {
    let config_path = dir.join("tokenizer_config.json");
    if !config_path.is_file() {
        return Ok(Value::Null);
    }
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| EngineError::io(&config_path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| EngineError::invalid(&config_path, format!("not valid JSON: {e}")))
}

/// A SentencePiece model file (`tokenizer.model`) rather than a tokenizer.json.
fn is_sentencepiece_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "model")
}

fn flag(config: &Value, key: &str) -> Option<bool> {
    config.get(key).and_then(Value::as_bool)
}

/// A special token as tokenizer_config.json writes it: a string or `{"content": ...}`.
fn token_content(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// The tokens of tokenizer_config.json's `added_tokens_decoder`, in id order, each at its id:
/// a token of the vocabulary keeps its id (and becomes special if so marked), a new one must
/// come next after the vocabulary.
fn add_config_tokens(inner: &mut Tokenizer, config: &Value, config_path: &Path) -> Result<()> {
    let Some(entries) = config
        .get("added_tokens_decoder")
        .and_then(Value::as_object)
    else {
        return Ok(());
    };
    let bad = |message: String| EngineError::invalid(config_path, message);
    let mut tokens: Vec<(u32, &serde_json::Map<String, Value>)> = Vec::new();
    for (id, entry) in entries {
        let id = id
            .parse()
            .map_err(|_| bad(format!("added_tokens_decoder key {id:?} is not a token id")))?;
        let entry = entry
            .as_object()
            .ok_or_else(|| bad(format!("added_tokens_decoder entry {id} is not an object")))?;
        tokens.push((id, entry));
    }
    tokens.sort_by_key(|(id, _)| *id);
    for (id, entry) in tokens {
        let content = entry
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("added_tokens_decoder entry {id} has no content")))?;
        let on = |key: &str| entry.get(key).and_then(Value::as_bool).unwrap_or(false);
        let special = on("special");
        let token = AddedToken::from(content, special)
            .single_word(on("single_word"))
            .lstrip(on("lstrip"))
            .rstrip(on("rstrip"))
            .normalized(
                entry
                    .get("normalized")
                    .and_then(Value::as_bool)
                    .unwrap_or(!special),
            );
        let added = if special {
            inner.add_special_tokens([token])
        } else {
            inner.add_tokens([token])
        };
        added.map_err(|e| bad(format!("cannot add token {content:?}: {e}")))?;
        let got = inner.token_to_id(content);
        if got != Some(id) {
            return Err(bad(format!(
                "added_tokens_decoder puts {content:?} at id {id}, but the tokenizer has {} \
                 tokens there and gives it {}",
                inner.get_vocab_size(true),
                got.map_or("no id".to_string(), |g| g.to_string())
            )));
        }
    }
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
