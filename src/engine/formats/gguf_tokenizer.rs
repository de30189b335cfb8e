//! A model's tokenizer rebuilt from a GGUF file's metadata (`tokenizer.ggml.*`), for a `.gguf`
//! with no `tokenizer.json` beside it and no `--tokenizer`. The result is the tokenizer
//! transformers builds from the same file (`AutoTokenizer.from_pretrained(dir, gguf_file=…)`,
//! its `integrations/gguf` builders), checked against it in `tests/it/gguf_tokenizer.rs`.
//!
//! `tokenizer.ggml.model` says which kind of vocabulary it is:
//! - `"llama"`: SentencePiece-style BPE over `▁`-joined text with byte-fallback pieces `<0xNN>`.
//!   The file normally has a score per token and no merges; the merges are recovered from the
//!   vocabulary as transformers' converter does (every split of a token into two tokens, the
//!   token's score ranking it). The pipeline is transformers' `LlamaTokenizer`: no normalizer, a
//!   `Metaspace` pre-tokenizer that prefixes `▁` to the first piece (none when
//!   `tokenizer.ggml.add_space_prefix` is false), decoding `▁` → space, bytes, fuse, strip the
//!   prefix space. BOS is added unless `tokenizer.ggml.add_bos_token` is false.
//! - `"gpt2"`: byte-level BPE with `tokenizer.ggml.merges`, text split first by the regex that
//!   `tokenizer.ggml.pre` names (the table in `gguf_pretokenizers.rs`, every name llama.cpp maps
//!   for byte-level BPE).
//!
//! Tokens typed control (3) become special added tokens, user-defined ones (4) plain added
//! tokens, so both stay whole in text; the bos/eos/unknown/padding tokens are special too.
//! `tokenizer.chat_template` is the chat template. Whatever is missing or inconsistent is an
//! error naming the file.
//!
//! Where transformers and llama.cpp part, on files transformers handles badly, we follow
//! llama.cpp: `tokenizer.ggml.add_space_prefix = false` is honoured (transformers ignores it),
//! and in a byte-level vocabulary a control or user-defined token stored as plain text
//! (DeepSeek's `<｜begin▁of▁sentence｜>`) keeps its own id (transformers gives such a bos a
//! fresh id past the vocabulary and cannot match the others in text).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    Tokenizer,
};

use crate::engine::error::{EngineError, Input, Part, Result};
use crate::engine::formats::chat::ChatTemplate;
use crate::engine::formats::gguf_pretokenizers::{self, PreTokenizer};
use crate::engine::formats::tokenizer::{Conventions, ModelTokenizer};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// The tokenizer that the metadata of the GGUF file `path` describes. Reads only the header.
pub fn load(path: &Path) -> Result<ModelTokenizer> {
    let (content, _, _) = crate::engine::formats::gguf_header::read(path)?;
    from_metadata(path, &content.metadata)
}

/// The tokenizer described by `metadata`, read from the file `path` (named in every error).
pub fn from_metadata(path: &Path, metadata: &HashMap<String, Value>) -> Result<ModelTokenizer> {
    let meta = Meta {
        map: metadata,
        path,
    };
    let Some(kind) = meta.string("tokenizer.ggml.model")? else {
        return Err(EngineError::bad_input([
            format!(
                "{}: no tokenizer: the GGUF metadata has no 'tokenizer.ggml.model'; put the \
                 model's tokenizer.json beside the .gguf or pass ",
                path.display()
            )
            .into(),
            Part::Input(Input::TokenizerFile),
        ]));
    };
    let tokens = meta
        .strings("tokenizer.ggml.tokens")?
        .ok_or_else(|| meta.missing("tokenizer.ggml.tokens"))?;
    if tokens.is_empty() {
        return Err(meta.bad("GGUF 'tokenizer.ggml.tokens' is empty"));
    }
    let types = meta.ints("tokenizer.ggml.token_type")?;
    let scores = meta.floats("tokenizer.ggml.scores")?;
    for (key, len) in [
        ("tokenizer.ggml.token_type", types.as_ref().map(Vec::len)),
        ("tokenizer.ggml.scores", scores.as_ref().map(Vec::len)),
    ] {
        if let Some(len) = len.filter(|&len| len != tokens.len()) {
            return Err(meta.bad(format!(
                "GGUF '{key}' has {len} entries but 'tokenizer.ggml.tokens' has {}",
                tokens.len()
            )));
        }
    }
    let merges = meta
        .strings("tokenizer.ggml.merges")?
        .map(|m| parse_merges(&meta, &m))
        .transpose()?;
    let id = |key: &str| meta.token_id(key, tokens.len());
    let bos_id = id("tokenizer.ggml.bos_token_id")?;
    let eos_id = id("tokenizer.ggml.eos_token_id")?;
    let unk_id = id("tokenizer.ggml.unknown_token_id")?;
    let pad_id = id("tokenizer.ggml.padding_token_id")?;
    // llama.cpp also ends generation at the end-of-turn / end-of-message tokens.
    let eot_id = id("tokenizer.ggml.eot_token_id")?;
    let eom_id = id("tokenizer.ggml.eom_token_id")?;

    let types = types.unwrap_or_default();
    let spelled = spellings(&meta, &kind, &tokens, &types)?;
    let vocab = vocabulary(spelled.iter().cloned());
    let unk_token = unk_id.map(|i| tokens[i as usize].clone());
    let mut inner = if kind == "llama" {
        let prefix = meta
            .bool("tokenizer.ggml.add_space_prefix")?
            .unwrap_or(true);
        let merges = match merges {
            Some(m) => m,
            None => {
                let scores = scores.as_ref().ok_or_else(|| {
                    meta.bad(
                        "GGUF 'llama' tokenizer has neither 'tokenizer.ggml.scores' nor \
                         'tokenizer.ggml.merges'",
                    )
                })?;
                merges_from_scores(&tokens, scores)
            }
        };
        sentencepiece_bpe(&meta, vocab, merges, unk_token, prefix)?
    } else {
        let merges = merges.ok_or_else(|| meta.missing("tokenizer.ggml.merges"))?;
        byte_level_bpe(&meta, vocab, merges, pre_tokenizer(&meta)?)?
    };
    let named = [bos_id, eos_id, unk_id, pad_id];
    add_whole_tokens(&meta, &mut inner, &spelled, &types, named)?;

    let add_bos = match meta.bool("tokenizer.ggml.add_bos_token")? {
        // llama.cpp and transformers add BOS to a SentencePiece vocabulary that does not say.
        None if kind == "llama" => Some(true),
        other => other,
    };
    let text_of = |id: Option<u32>| id.map(|i| tokens[i as usize].clone()).unwrap_or_default();
    let chat_template = meta
        .string("tokenizer.chat_template")?
        .map(|source| ChatTemplate::from_source(path, &source, &text_of(bos_id), &text_of(eos_id)));
    let mut eos_ids = Vec::new();
    for id in [eos_id, eot_id, eom_id].into_iter().flatten() {
        if !eos_ids.contains(&id) {
            eos_ids.push(id);
        }
    }
    let tokenizer = ModelTokenizer::assemble(
        inner,
        Conventions {
            bos_id,
            eos_ids,
            add_bos,
            add_eos: meta.bool("tokenizer.ggml.add_eos_token")?,
            chat_template,
        },
    );
    tokenizer.probe(path)?;
    Ok(tokenizer)
}

/// How each token is spelled in the BPE vocabulary of a tokenizer of type `kind`.
fn spellings(meta: &Meta, kind: &str, tokens: &[String], types: &[i64]) -> Result<Vec<String>> {
    let typed = |i: usize, ty: i64| types.get(i) == Some(&ty);
    match kind {
        "llama" => Ok(tokens.to_vec()),
        "gpt2" => Ok(tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                // Control and user-defined tokens stored as plain text ("<｜User｜>") keep that
                // spelling, so that the text matches them whole at their own id.
                if typed(i, CONTROL) || typed(i, USER_DEFINED) {
                    t.clone()
                } else {
                    byte_level_spelling(t)
                }
            })
            .collect()),
        other => Err(meta.bad(format!(
            "unsupported tokenizer type tokenizer.ggml.model = '{other}' (supported: llama, gpt2)"
        ))),
    }
}

/// The split before byte-level BPE that `tokenizer.ggml.pre` names (a missing key means
/// llama.cpp's "default").
fn pre_tokenizer(meta: &Meta) -> Result<&'static PreTokenizer> {
    let pre = meta
        .string("tokenizer.ggml.pre")?
        .unwrap_or_else(|| "default".to_string());
    gguf_pretokenizers::find(&pre).ok_or_else(|| {
        EngineError::bad_input([
            format!(
                "{}: unsupported pre-tokenizer tokenizer.ggml.pre = '{pre}'; the model's own \
                 tokenizer.json works with ",
                meta.path.display()
            )
            .into(),
            Part::Input(Input::TokenizerFile),
        ])
    })
}

/// Tokens the text matches whole: control tokens and the `named` ones (bos, eos, unknown,
/// padding) as special tokens, user-defined tokens as plain added ones.
fn add_whole_tokens(
    meta: &Meta,
    inner: &mut Tokenizer,
    spelled: &[String],
    types: &[i64],
    named: [Option<u32>; 4],
) -> Result<()> {
    let typed = |i: usize, ty: i64| types.get(i) == Some(&ty);
    let special: Vec<AddedToken> = (0..spelled.len())
        .filter(|&i| typed(i, CONTROL))
        .chain(named.into_iter().flatten().map(|i| i as usize))
        .map(|i| AddedToken::from(spelled[i].as_str(), true).normalized(false))
        .collect();
    inner
        .add_special_tokens(special)
        .map_err(|e| meta.bad(format!("cannot add special tokens: {e}")))?;
    let user: Vec<AddedToken> = (0..spelled.len())
        .filter(|&i| typed(i, USER_DEFINED))
        .map(|i| AddedToken::from(spelled[i].as_str(), false).normalized(false))
        .collect();
    inner
        .add_tokens(user)
        .map_err(|e| meta.bad(format!("cannot add tokens: {e}")))?;
    Ok(())
}

/// Token → id; where a token repeats, the later id wins (as a Python dict built in order).
fn vocabulary(tokens: impl Iterator<Item = String>) -> Vocab {
    tokens.enumerate().map(|(i, t)| (t, i as u32)).collect()
}

/// transformers' `LlamaTokenizer` over the given vocabulary and merges.
fn sentencepiece_bpe(
    meta: &Meta,
    vocab: Vocab,
    merges: Vec<(String, String)>,
    unk_token: Option<String>,
    add_prefix_space: bool,
) -> Result<Tokenizer> {
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(true);
    if let Some(unk) = unk_token {
        builder = builder.unk_token(unk);
    }
    let model = builder
        .build()
        .map_err(|e| meta.bad(format!("inconsistent GGUF tokenizer vocabulary: {e}")))?;
    let mut tokenizer = Tokenizer::new(model);
    let scheme = if add_prefix_space {
        PrependScheme::First
    } else {
        PrependScheme::Never
    };
    tokenizer.with_pre_tokenizer(Some(Metaspace::new('▁', scheme, false)));
    let mut steps: Vec<DecoderWrapper> = vec![
        Replace::new("▁", " ")
            .map_err(|e| meta.bad(e.to_string()))?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_prefix_space {
        steps.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(steps)));
    Ok(tokenizer)
}

/// A byte-level BPE (transformers' `GPT2Tokenizer`), text first split as `pre` says.
fn byte_level_bpe(
    meta: &Meta,
    vocab: Vocab,
    merges: Vec<(String, String)>,
    pre: &PreTokenizer,
) -> Result<Tokenizer> {
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(|e| meta.bad(format!("inconsistent GGUF tokenizer vocabulary: {e}")))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(None::<NormalizerWrapper>)
        .map_err(|e| meta.bad(e.to_string()))?;
    let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(pre.splits.len() + 1);
    for regex in pre.splits {
        let split = Split::new(
            SplitPattern::Regex((*regex).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| meta.bad(format!("pre-tokenizer regex: {e}")))?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, true, false).into());
    tokenizer.with_pre_tokenizer(Some(PreSequence::new(steps)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    Ok(tokenizer)
}

/// Merges written as "left right".
fn parse_merges(meta: &Meta, merges: &[String]) -> Result<Vec<(String, String)>> {
    merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut parts = m.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                    Ok((a.to_string(), b.to_string()))
                }
                _ => Err(meta.bad(format!(
                    "GGUF 'tokenizer.ggml.merges' entry {i} ({m:?}) is not two tokens separated \
                     by one space"
                ))),
            }
        })
        .collect()
}

/// The merges a SentencePiece BPE vocabulary implies, as transformers' `generate_merges`
/// derives them: every split of a token into two tokens of the vocabulary, ranked by the
/// token's score (highest first), then by the longer left piece, then the longer right piece,
/// then vocabulary order. (Two splits of one token never tie: their left pieces differ in
/// length.)
fn merges_from_scores(tokens: &[String], scores: &[f32]) -> Vec<(String, String)> {
    // Membership as a dict built in order; scores likewise (a repeated token keeps its last
    // score) but listed in order of first appearance.
    let known: HashSet<&str> = tokens.iter().map(String::as_str).collect();
    let mut order: Vec<&str> = Vec::with_capacity(tokens.len());
    let mut score: HashMap<&str, f32> = HashMap::with_capacity(tokens.len());
    for (t, s) in tokens.iter().zip(scores) {
        if score.insert(t.as_str(), *s).is_none() {
            order.push(t.as_str());
        }
    }
    let mut merges: Vec<(&str, &str, f32)> = Vec::new();
    for token in order {
        let s = score.get(token).copied().unwrap_or(f32::NEG_INFINITY);
        merges.extend(
            token
                .char_indices()
                .skip(1)
                .map(|(at, _)| token.split_at(at))
                .filter(|(l, r)| known.contains(l) && known.contains(r))
                .map(|(l, r)| (l, r, s)),
        );
    }
    let chars = |s: &str| s.chars().count();
    // Stable, descending: equal keys keep their order, as Python's sorted(reverse=True).
    merges.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| chars(b.0).cmp(&chars(a.0)))
            .then_with(|| chars(b.1).cmp(&chars(a.1)))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

/// GPT-2's byte → printable character table (`bytes_to_unicode`): printable Latin-1 bytes stand
/// for themselves, the other 68 for U+0100 onwards in byte order.
fn byte_alphabet() -> &'static [char; 256] {
    static TABLE: OnceLock<[char; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = ['\0'; 256];
        let mut next = 0x100u32;
        for b in 0..=255u8 {
            table[b as usize] = if is_printable_byte(b) {
                char::from(b)
            } else {
                next += 1;
                char::from_u32(next - 1).unwrap_or('\u{FFFD}')
            };
        }
        table
    })
}

fn is_printable_byte(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// Whether every character of `token` is one of the byte alphabet's 256.
fn is_byte_level_spelled(token: &str) -> bool {
    token.chars().all(|c| match u8::try_from(u32::from(c)) {
        Ok(b) => is_printable_byte(b),
        Err(_) => ('\u{100}'..='\u{143}').contains(&c),
    })
}

/// A token as a byte-level vocabulary spells it: unchanged when it already is, else its UTF-8
/// bytes through the byte alphabet (converters sometimes store added tokens as plain text).
fn byte_level_spelling(token: &str) -> String {
    if is_byte_level_spelled(token) {
        return token.to_string();
    }
    let alphabet = byte_alphabet();
    token.bytes().map(|b| alphabet[b as usize]).collect()
}

/// Typed reads of the metadata, each error naming the file and the key.
struct Meta<'a> {
    map: &'a HashMap<String, Value>,
    path: &'a Path,
}

impl Meta<'_> {
    fn bad(&self, message: impl Into<String>) -> EngineError {
        EngineError::invalid(self.path, message)
    }

    fn missing(&self, key: &str) -> EngineError {
        self.bad(format!("GGUF metadata has no '{key}'"))
    }

    fn wrong_type(&self, key: &str, expected: &str) -> EngineError {
        self.bad(format!("GGUF '{key}' is not {expected}"))
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong_type(key, "a string")),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong_type(key, "a boolean")),
        }
    }

    fn array(&self, key: &str) -> Result<Option<&Vec<Value>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(self.wrong_type(key, "an array")),
        }
    }

    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(self.wrong_type(key, "an array of strings")),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn floats(&self, key: &str) -> Result<Option<Vec<f32>>> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| match v {
                Value::F32(x) => Ok(*x),
                Value::F64(x) => Ok(*x as f32),
                _ => Err(self.wrong_type(key, "an array of numbers")),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| integer(v).ok_or_else(|| self.wrong_type(key, "an array of integers")))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A token id, which must index `tokens` entries.
    fn token_id(&self, key: &str, tokens: usize) -> Result<Option<u32>> {
        let Some(v) = self.map.get(key) else {
            return Ok(None);
        };
        let id = integer(v).ok_or_else(|| self.wrong_type(key, "an integer"))?;
        if id < 0 || id as u64 >= tokens as u64 {
            return Err(self.bad(format!(
                "GGUF '{key}' is {id}, outside the vocabulary of {tokens} tokens"
            )));
        }
        Ok(Some(id as u32))
    }
}

/// Any integer-typed value, widened.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::U8(x) => Some(i64::from(*x)),
        Value::I8(x) => Some(i64::from(*x)),
        Value::U16(x) => Some(i64::from(*x)),
        Value::I16(x) => Some(i64::from(*x)),
        Value::U32(x) => Some(i64::from(*x)),
        Value::I32(x) => Some(i64::from(*x)),
        Value::U64(x) => i64::try_from(*x).ok(),
        Value::I64(x) => Some(*x),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn merges_follow_the_scores_of_the_tokens_they_make() {
        let tokens = strings(&["a", "b", "c", "ab", "bc", "abc"]);
        let merges = merges_from_scores(&tokens, &[0.0, 0.0, 0.0, -1.0, -2.0, -3.0]);
        // "abc" splits two ways; the longer left piece first.
        assert_eq!(
            merges,
            pairs(&[("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")])
        );
    }

    #[test]
    fn equal_scores_fall_back_to_piece_lengths_then_vocabulary_order() {
        let tokens = strings(&["a", "b", "c", "ab", "bc", "abc"]);
        let merges = merges_from_scores(&tokens, &[-1000.0; 6]);
        assert_eq!(
            merges,
            pairs(&[("ab", "c"), ("a", "bc"), ("a", "b"), ("b", "c")])
        );
    }

    #[test]
    fn byte_level_spelling_matches_gpt2s_alphabet() {
        assert_eq!(byte_level_spelling(" hi\n"), "ĠhiĊ");
        // Outside the alphabet: respelled byte by byte (as transformers' bytes_to_unicode gives).
        assert_eq!(byte_level_spelling("日"), "æĹ¥");
        // "é" is itself one of the alphabet's characters (byte 0xE9), so it stays.
        assert_eq!(byte_level_spelling("é"), "é");
        assert_eq!(byte_level_spelling("Ġalready"), "Ġalready");
        assert!(is_byte_level_spelled("<|im_start|>"));
        assert!(!is_byte_level_spelled("<｜end▁of▁sentence｜>"));
        // 68 bytes are remapped, to U+0100..=U+0143.
        let alphabet = byte_alphabet();
        assert_eq!(alphabet[0], '\u{100}');
        assert_eq!(alphabet[0xAD], '\u{143}');
        assert_eq!(alphabet[b' ' as usize], 'Ġ');
    }

    fn meta(entries: Vec<(&str, Value)>) -> HashMap<String, Value> {
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    fn string_array(items: &[&str]) -> Value {
        Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
    }

    fn error(entries: Vec<(&str, Value)>) -> String {
        match from_metadata(Path::new("m.gguf"), &meta(entries)) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_tiny_llama_vocabulary_tokenizes_and_decodes() {
        let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
        tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        tokens.extend(strings(&["▁", "h", "i", "hi", "▁hi"]));
        let n = tokens.len();
        let mut types = vec![Value::I32(2), Value::I32(3), Value::I32(3)];
        types.extend((0..256).map(|_| Value::I32(6)));
        types.extend((0..5).map(|_| Value::I32(1)));
        let mut scores = vec![Value::F32(0.0); n - 5];
        scores.extend([-10.0f32, -11.0, -12.0, -1.0, -2.0].map(Value::F32));
        let tok = from_metadata(
            Path::new("m.gguf"),
            &meta(vec![
                ("tokenizer.ggml.model", Value::String("llama".into())),
                (
                    "tokenizer.ggml.tokens",
                    Value::Array(tokens.iter().cloned().map(Value::String).collect()),
                ),
                ("tokenizer.ggml.scores", Value::Array(scores)),
                ("tokenizer.ggml.token_type", Value::Array(types)),
                ("tokenizer.ggml.bos_token_id", Value::U32(1)),
                ("tokenizer.ggml.eos_token_id", Value::U32(2)),
                ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
            ]),
        )
        .unwrap();
        let hi = (n - 1) as u32;
        // BOS added by default; "é" is not in the vocabulary: its two UTF-8 bytes.
        assert_eq!(
            tok.encode_prompt("hi é").unwrap(),
            vec![1, hi, (n - 5) as u32, 3 + 0xC3, 3 + 0xA9]
        );
        assert_eq!(
            tok.decode(&[1, hi, hi, 3 + 0xC3, 3 + 0xA9, 2]).unwrap(),
            "hi hié"
        );
        assert!(tok.is_special(1) && tok.is_special(0) && tok.is_byte_token(3 + 0x41));
        assert_eq!(tok.eos_ids, [2]);
        assert!(tok.chat_template.is_none());
    }

    #[test]
    fn plain_text_control_tokens_keep_their_ids_in_a_byte_level_vocabulary() {
        // The 256 byte characters (id = byte), "hi", then DeepSeek-style tokens stored as text.
        let mut tokens: Vec<String> = byte_alphabet().iter().map(|c| c.to_string()).collect();
        tokens.extend(strings(&["hi", "<｜begin▁of▁sentence｜>", "<think> x"]));
        let mut types = vec![Value::I32(1); 257];
        types.extend([Value::I32(3), Value::I32(4)]);
        let tok = from_metadata(
            Path::new("m.gguf"),
            &meta(vec![
                ("tokenizer.ggml.model", Value::String("gpt2".into())),
                (
                    "tokenizer.ggml.pre",
                    Value::String("deepseek-r1-qwen".into()),
                ),
                (
                    "tokenizer.ggml.tokens",
                    Value::Array(tokens.into_iter().map(Value::String).collect()),
                ),
                ("tokenizer.ggml.token_type", Value::Array(types)),
                ("tokenizer.ggml.merges", string_array(&["h i"])),
                ("tokenizer.ggml.bos_token_id", Value::U32(257)),
                ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
            ]),
        )
        .unwrap();
        assert_eq!(tok.encode_prompt("hi<think> x").unwrap(), [257, 256, 258]);
        assert_eq!(
            tok.encode_prompt("<｜begin▁of▁sentence｜>hi 日").unwrap(),
            [257, 256, u32::from(b' '), 0xE6, 0x97, 0xA5]
        );
        assert_eq!(
            tok.decode(&[257, 256, 258, 0xE6, 0x97, 0xA5]).unwrap(),
            "hi<think> x日"
        );
        assert!(tok.is_special(257) && !tok.is_special(258) && tok.is_added(258));
        assert_eq!(tok.len, 259);
    }

    #[test]
    fn bad_metadata_names_the_file_and_the_key() {
        let none = error(vec![]);
        assert!(
            none.starts_with("m.gguf: ") && none.ends_with("or pass a tokenizer file"),
            "{none}"
        );
        let tokens = ("tokenizer.ggml.tokens", string_array(&["a", "b"]));
        let err = error(vec![
            ("tokenizer.ggml.model", Value::String("rwkv".into())),
            tokens.clone(),
        ]);
        assert!(err.contains("tokenizer.ggml.model = 'rwkv'"), "{err}");
        let err = error(vec![
            ("tokenizer.ggml.model", Value::String("llama".into())),
            tokens.clone(),
            (
                "tokenizer.ggml.token_type",
                Value::Array(vec![Value::I32(1)]),
            ),
        ]);
        assert!(
            err.contains(
                "'tokenizer.ggml.token_type' has 1 entries but 'tokenizer.ggml.tokens' has 2"
            ),
            "{err}"
        );
        let err = error(vec![
            ("tokenizer.ggml.model", Value::String("llama".into())),
            tokens.clone(),
        ]);
        assert!(err.contains("neither 'tokenizer.ggml.scores' nor"), "{err}");
        let err = error(vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            tokens.clone(),
        ]);
        assert!(err.contains("no 'tokenizer.ggml.merges'"), "{err}");
        let err = error(vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            tokens.clone(),
            ("tokenizer.ggml.merges", string_array(&["a c"])),
        ]);
        assert!(
            err.contains("inconsistent GGUF tokenizer vocabulary"),
            "{err}"
        );
        let err = error(vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            tokens,
            ("tokenizer.ggml.merges", string_array(&[])),
            ("tokenizer.ggml.bos_token_id", Value::I32(-1)),
        ]);
        assert!(err.contains("'tokenizer.ggml.bos_token_id' is -1"), "{err}");
    }
}
