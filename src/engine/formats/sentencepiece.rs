//! A SentencePiece model file (`tokenizer.model`) turned into the tokenizers pipeline that
//! transformers 5 builds from it when a model folder has no tokenizer.json
//! (`TokenizersBackend._convert_from_sentencepiece`). Two cases, picked as `AutoTokenizer` picks
//! its class:
//!
//! - **Llama** (`tokenizer_class` LlamaTokenizer in tokenizer_config.json, as Llama 2, Tulu 2
//!   and Mistral folders say): a BPE over the pieces with byte fallback, its merges every
//!   split of a piece into two pieces ordered by the piece's id (transformers' `generate_merges`
//!   without scores), even when the model file is a unigram model; no normalizer; a `Metaspace`
//!   pre-tokenizer that prefixes `▁` to the first chunk (`legacy: false`, the default) or to every
//!   chunk between added tokens (`legacy: true`), or never (`add_prefix_space: false`); BOS added
//!   unless `add_bos_token` is false. See [`llama_pipeline`].
//! - **Generic** (no class named, or any other): the SentencePiece model's own settings
//!   (`SpmConverter.build_tokenizer_from_spm_proto`): a unigram model stays one; BPE merges
//!   ranked by piece score over the normal pieces; its normalizer spec (the precompiled
//!   character map, extra-space removal, whitespace escaping, the dummy prefix, `legacy` defaulting
//!   to true); user-defined pieces split out whole; no BOS unless `add_bos_token` is true.
//!
//! Either way control pieces and the unknown/bos/eos tokens are special, user-defined pieces plain
//! added tokens, and tokenizer_config.json's `added_tokens_decoder` adds its tokens at their ids.
//! Checked against transformers' own conversion in `tests/it/sentencepiece.rs`.
//!
//! The file is a protobuf (`sentencepiece_model.proto`); the messages below declare only the
//! fields read here (prost skips the rest).

use std::collections::HashMap;
use std::path::Path;

use prost::Message;
use serde_json::Value;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::{Replace, ReplacePattern};
use tokenizers::normalizers::{Precompiled, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PreTokenizerWrapper,
    SplitDelimiterBehavior, Tokenizer,
};

use crate::engine::error::{EngineError, Result};

/// `ModelProto`: the pieces and the two specs.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pieces: Vec<Piece>,
    #[prost(message, optional, tag = "2")]
    trainer_spec: Option<TrainerSpec>,
    #[prost(message, optional, tag = "3")]
    normalizer_spec: Option<NormalizerSpec>,
}

/// `ModelProto.SentencePiece`.
#[derive(Clone, PartialEq, Message)]
struct Piece {
    #[prost(string, optional, tag = "1")]
    piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    score: Option<f32>,
    /// NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6.
    #[prost(int32, optional, tag = "3", default = "1")]
    r#type: Option<i32>,
}

const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

#[derive(Clone, PartialEq, Message)]
struct TrainerSpec {
    /// UNIGRAM 1, BPE 2, WORD 3, CHAR 4.
    #[prost(int32, optional, tag = "3", default = "1")]
    model_type: Option<i32>,
    #[prost(bool, optional, tag = "35", default = "false")]
    byte_fallback: Option<bool>,
    #[prost(int32, optional, tag = "40", default = "0")]
    unk_id: Option<i32>,
    #[prost(int32, optional, tag = "41", default = "1")]
    bos_id: Option<i32>,
    #[prost(int32, optional, tag = "42", default = "2")]
    eos_id: Option<i32>,
    #[prost(string, optional, tag = "45", default = "<unk>")]
    unk_piece: Option<String>,
    #[prost(string, optional, tag = "46", default = "<s>")]
    bos_piece: Option<String>,
    #[prost(string, optional, tag = "47", default = "</s>")]
    eos_piece: Option<String>,
}

const UNIGRAM: i32 = 1;
const BPE_MODEL: i32 = 2;

#[derive(Clone, PartialEq, Message)]
struct NormalizerSpec {
    #[prost(bytes = "vec", optional, tag = "2")]
    precompiled_charsmap: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "3", default = "true")]
    add_dummy_prefix: Option<bool>,
    #[prost(bool, optional, tag = "4", default = "true")]
    remove_extra_whitespaces: Option<bool>,
    #[prost(bool, optional, tag = "5", default = "true")]
    escape_whitespaces: Option<bool>,
}

/// A SentencePiece tokenizer as transformers builds it, with the special-token names and the
/// BOS default of the class it was built as (tokenizer_config.json may override them).
pub(super) struct SentencePiece {
    pub inner: Tokenizer,
    pub unk_token: Option<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// Whether the class adds BOS when tokenizer_config.json does not say.
    pub add_bos: bool,
}

/// The tokenizer of the SentencePiece model file `path`, configured by `config` (the parsed
/// tokenizer_config.json beside it, or Null).
pub(super) fn load(path: &Path, config: &Value) -> Result<SentencePiece> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
    let proto = ModelProto::decode(bytes.as_slice()).map_err(|e| {
        EngineError::invalid(
            path,
            format!("not a SentencePiece model file (cannot decode its protobuf: {e})"),
        )
    })?;
    if proto.pieces.is_empty() {
        return Err(EngineError::invalid(
            path,
            "not a SentencePiece model file (it has no pieces)",
        ));
    }
    let bad = |message: String| EngineError::invalid(path, message);
    let built = if is_llama_class(config) {
        llama(&proto, config).map_err(|e| bad(format!("cannot build the tokenizer: {e}")))?
    } else {
        generic(&proto, config).map_err(|e| bad(format!("cannot build the tokenizer: {e}")))?
    };
    Ok(built)
}

/// Whether tokenizer_config.json names the Llama tokenizer class, as transformers 5 spells it
/// (`LlamaTokenizer`, `LlamaTokenizerFast`). Early Llama folders' `LLaMATokenizer` is no class
/// transformers knows: it converts those generically, and so does genarm.
pub(super) fn is_llama_class(config: &Value) -> bool {
    matches!(
        config.get("tokenizer_class").and_then(Value::as_str),
        Some("LlamaTokenizer" | "LlamaTokenizerFast")
    )
}

fn flag(config: &Value, key: &str) -> Option<bool> {
    config.get(key).and_then(Value::as_bool)
}

/// A piece's text, `""` where the file leaves it out.
fn text(piece: &Piece) -> &str {
    piece.piece.as_deref().unwrap_or("")
}

/// transformers' `LlamaTokenizer` over the pieces.
fn llama(proto: &ModelProto, config: &Value) -> tokenizers::Result<SentencePiece> {
    let vocab: Vocab = proto
        .pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (text(p).to_string(), i as u32))
        .collect();
    let merges = merges_by_id(&proto.pieces, &vocab);
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(true)
        .build()?;
    let mut inner = Tokenizer::new(model);
    llama_pipeline(
        &mut inner,
        flag(config, "add_prefix_space").unwrap_or(true),
        flag(config, "legacy").unwrap_or(false),
    )?;
    add_piece_tokens(&mut inner, &proto.pieces, false)?;
    Ok(SentencePiece {
        inner,
        unk_token: Some("<unk>".into()),
        bos_token: Some("<s>".into()),
        eos_token: Some("</s>".into()),
        add_bos: true,
    })
}

/// transformers' `LlamaTokenizer` pipeline around a BPE model: no normalizer, `▁` for spaces
/// with a prefix `▁` by `add_prefix_space` and `legacy`, and the decoder back.
pub(super) fn llama_pipeline(
    tokenizer: &mut Tokenizer,
    add_prefix_space: bool,
    legacy: bool,
) -> tokenizers::Result<()> {
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
    tokenizer.with_decoder(Some(DecoderSequence::new(steps)));
    Ok(())
}

/// The merges `generate_merges(vocab)` derives with no scores: every split of a piece into two
/// pieces, ordered by the piece's id, then by the length of the left part.
fn merges_by_id(pieces: &[Piece], vocab: &Vocab) -> Vec<(String, String)> {
    let mut merges = Vec::new();
    // A piece listed twice (no trainer writes one) counts once.
    let mut seen = std::collections::HashSet::new();
    for piece in pieces {
        let token = text(piece);
        if !seen.insert(token) {
            continue;
        }
        merges.extend(
            splits(token)
                .filter(|(l, r)| vocab.contains_key(*l) && vocab.contains_key(*r))
                .map(|(l, r)| (l.to_string(), r.to_string())),
        );
    }
    merges
}

/// Every split of `token` into two non-empty parts, the shorter left part first.
fn splits(token: &str) -> impl Iterator<Item = (&str, &str)> {
    token
        .char_indices()
        .skip(1)
        .map(move |(at, _)| token.split_at(at))
}

/// Control pieces as special added tokens and user-defined pieces as plain ones (with
/// `normalized` false, so that they match the raw text).
fn add_piece_tokens(
    inner: &mut Tokenizer,
    pieces: &[Piece],
    skip_user_defined: bool,
) -> tokenizers::Result<()> {
    let of_type = |ty: i32| {
        pieces
            .iter()
            .filter(move |p| p.r#type() == ty)
            .map(move |p| AddedToken::from(text(p), ty == CONTROL).normalized(false))
    };
    inner.add_special_tokens(of_type(CONTROL).collect::<Vec<_>>())?;
    if !skip_user_defined {
        inner.add_tokens(of_type(USER_DEFINED).collect::<Vec<_>>())?;
    }
    Ok(())
}

/// The pipeline SentencePiece's own settings describe (`build_tokenizer_from_spm_proto`).
fn generic(proto: &ModelProto, config: &Value) -> tokenizers::Result<SentencePiece> {
    let trainer = proto.trainer_spec.clone().unwrap_or_default();
    let spec = proto.normalizer_spec.clone().unwrap_or_default();
    let byte_fallback = trainer.byte_fallback();
    let user_defined: Vec<&str> = proto
        .pieces
        .iter()
        .filter(|p| p.r#type() == USER_DEFINED)
        .map(text)
        .collect();
    let model: ModelWrapper = match trainer.model_type() {
        UNIGRAM => {
            let vocab = proto
                .pieces
                .iter()
                .map(|p| (text(p).to_string(), f64::from(p.score.unwrap_or(0.0))))
                .collect();
            let unk = usize::try_from(trainer.unk_id()).ok();
            Unigram::from(vocab, unk, byte_fallback)?.into()
        }
        BPE_MODEL => {
            let vocab: Vocab = proto
                .pieces
                .iter()
                .enumerate()
                .map(|(i, p)| (text(p).to_string(), i as u32))
                .collect();
            BPE::builder()
                .vocab_and_merges(vocab, merges_by_score(&proto.pieces))
                .unk_token(trainer.unk_piece().to_string())
                .fuse_unk(true)
                .byte_fallback(byte_fallback)
                .ignore_merges(!user_defined.is_empty())
                .build()?
                .into()
        }
        other => {
            return Err(format!(
                "SentencePiece model type {other} (only unigram and BPE models are supported)"
            )
            .into());
        }
    };
    let mut inner = Tokenizer::new(model);
    let legacy = flag(config, "legacy").unwrap_or(true);
    inner.with_normalizer(Some(NormalizerSequence::new(normalizers(&spec, legacy)?)))?;
    let mut pre: Vec<PreTokenizerWrapper> = Vec::new();
    if spec.add_dummy_prefix() {
        let scheme = if legacy {
            PrependScheme::Always
        } else {
            PrependScheme::First
        };
        pre.push(Metaspace::new('▁', scheme, false).into());
    }
    if !user_defined.is_empty() {
        pre.push(whole_pieces(&user_defined)?.into());
    }
    if !pre.is_empty() {
        inner.with_pre_tokenizer(Some(PreSequence::new(pre)));
    }
    inner.with_decoder(Some(generic_decoder(
        byte_fallback,
        spec.add_dummy_prefix(),
    )?));
    add_piece_tokens(&mut inner, &proto.pieces, true)?;
    let named = |id: i32, piece: &str| (id >= 0).then(|| piece.to_string());
    Ok(SentencePiece {
        inner,
        unk_token: named(trainer.unk_id(), trainer.unk_piece()),
        bos_token: named(trainer.bos_id(), trainer.bos_piece()),
        eos_token: named(trainer.eos_id(), trainer.eos_piece()),
        add_bos: false,
    })
}

/// SentencePiece's normalization, in its order: the character map, extra spaces removed (spaces
/// only), spaces escaped as `▁`, and under `legacy` a doubled `▁` where the text already starts
/// with one (SentencePiece adds its dummy prefix even then; `Metaspace` would not).
fn normalizers(spec: &NormalizerSpec, legacy: bool) -> tokenizers::Result<Vec<NormalizerWrapper>> {
    let mut steps: Vec<NormalizerWrapper> = Vec::new();
    if let Some(map) = spec
        .precompiled_charsmap
        .as_deref()
        .filter(|m| !m.is_empty())
    {
        let map = Precompiled::from(map).map_err(|e| format!("precompiled_charsmap: {e}"))?;
        steps.push(map.into());
    }
    let regex = |pattern: &str, content: &str| {
        Replace::new(ReplacePattern::Regex(pattern.to_string()), content)
    };
    if spec.remove_extra_whitespaces() {
        steps.push(regex(r"\A +| +\z", "")?.into());
        steps.push(regex(" {2,}", " ")?.into());
    }
    if spec.escape_whitespaces() {
        steps.push(Replace::new(" ", "▁")?.into());
    }
    if spec.add_dummy_prefix() && legacy {
        steps.push(regex(r"\A▁", "▁▁")?.into());
    }
    Ok(steps)
}

/// A split that isolates each user-defined piece (the longest first), which SentencePiece
/// always emits whole.
fn whole_pieces(pieces: &[&str]) -> tokenizers::Result<Split> {
    let mut sorted = pieces.to_vec();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.chars().count()));
    let pattern = sorted
        .iter()
        .map(|p| regex_escape(p))
        .collect::<Vec<_>>()
        .join("|");
    Split::new(
        SplitPattern::Regex(pattern),
        SplitDelimiterBehavior::Isolated,
        false,
    )
}

/// `text` matched literally. Only the regex meta characters are escaped: `\<` and `\>` would
/// be word boundaries.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn generic_decoder(
    byte_fallback: bool,
    add_dummy_prefix: bool,
) -> tokenizers::Result<DecoderSequence> {
    let mut steps: Vec<DecoderWrapper> = vec![Replace::new("▁", " ")?.into()];
    if byte_fallback {
        steps.push(ByteFallback::new().into());
    }
    if add_dummy_prefix {
        // Strip works token by token: fuse first so only the start of the text loses its space.
        steps.push(Fuse::new().into());
        steps.push(Strip::new(' ', 1, 0).into());
    } else if byte_fallback {
        steps.push(Fuse::new().into());
    }
    Ok(DecoderSequence::new(steps))
}

/// BPE merges ranked as SentencePiece ranks them: every split of a normal piece into two normal
/// pieces, by the piece's score (highest first), then its id, then the two parts as strings.
fn merges_by_score(pieces: &[Piece]) -> Vec<(String, String)> {
    let mut normal: HashMap<&str, (f32, usize)> = HashMap::new();
    for (i, p) in pieces.iter().enumerate() {
        if p.r#type() == NORMAL {
            normal.insert(text(p), (p.score.unwrap_or(0.0), i));
        }
    }
    let mut ranked: Vec<(f32, usize, &str, &str)> = Vec::new();
    for (&token, &(score, id)) in &normal {
        ranked.extend(
            splits(token)
                .filter(|(l, r)| normal.contains_key(l) && normal.contains_key(r))
                .map(|(l, r)| (score, id, l, r)),
        );
    }
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(b.2))
            .then(a.3.cmp(b.3))
    });
    ranked
        .into_iter()
        .map(|(_, _, l, r)| (l.to_string(), r.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(text: &str, score: f32, ty: i32) -> Piece {
        Piece {
            piece: Some(text.into()),
            score: Some(score),
            r#type: Some(ty),
        }
    }

    #[test]
    fn merges_by_id_follow_piece_order_then_left_length() {
        let pieces = [
            piece("<unk>", 0.0, 2),
            piece("a", 0.0, NORMAL),
            piece("b", 0.0, NORMAL),
            piece("c", 0.0, NORMAL),
            piece("bc", -1.0, NORMAL),
            piece("ab", -2.0, NORMAL),
            piece("abc", -3.0, NORMAL),
        ];
        let vocab = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (text(p).to_string(), i as u32))
            .collect();
        let merges = merges_by_id(&pieces, &vocab);
        let want = [("b", "c"), ("a", "b"), ("a", "bc"), ("ab", "c")];
        assert_eq!(
            merges,
            want.map(|(l, r)| (l.to_string(), r.to_string())).to_vec()
        );
    }

    #[test]
    fn merges_by_score_rank_normal_pieces_only() {
        let pieces = [
            piece("a", 0.0, NORMAL),
            piece("b", 0.0, NORMAL),
            piece("ab", -5.0, NORMAL),
            piece("ba", -1.0, NORMAL),
            // A user-defined piece is never merged into.
            piece("aa", 0.0, USER_DEFINED),
            piece("bab", -1.0, NORMAL),
        ];
        let merges = merges_by_score(&pieces);
        // "ba" and "bab" tie on score: the lower id first; "bab" splits "b"+"ab", "ba"+"b".
        let want = [("b", "a"), ("b", "ab"), ("ba", "b"), ("a", "b")];
        assert_eq!(
            merges,
            want.map(|(l, r)| (l.to_string(), r.to_string())).to_vec()
        );
    }

    #[test]
    fn user_defined_pieces_are_escaped_longest_first() {
        assert_eq!(regex_escape("<|a.b|>"), r"<\|a\.b\|>");
        let split = whole_pieces(&["<t>", "</think>"]);
        assert!(split.is_ok());
    }

    #[test]
    fn the_llama_class_is_recognised_as_transformers_spells_it() {
        for class in ["LlamaTokenizer", "LlamaTokenizerFast"] {
            assert!(is_llama_class(
                &serde_json::json!({ "tokenizer_class": class })
            ));
        }
        for class in ["LLaMATokenizer", "T5Tokenizer"] {
            assert!(!is_llama_class(
                &serde_json::json!({ "tokenizer_class": class })
            ));
        }
        assert!(!is_llama_class(&Value::Null));
    }
}
