//! Incremental detokenisation on the real-format fixture tokenizers (Llama-style byte fallback
//! with a space-stripping decoder, and Qwen2-style byte-level BPE).

use crate::common::{data, ids};
use genarm::engine::decode::detok::IncrementalDecoder;
use genarm::engine::formats::tokenizer::ModelTokenizer;

fn tokenizer(model: &str) -> ModelTokenizer {
    ModelTokenizer::load(&data("parity/models").join(model)).unwrap()
}

const TEXTS: &[&str] = &[
    "héllo wörld € 😀 日本語",
    " leading space and\nnew lines\n\n  indented",
    "naïve café — 🤖🎉 ✓",
    "plain ascii text, nothing special.",
];

#[test]
fn streamed_pieces_concatenate_to_the_full_decode() {
    for model in ["llama_base", "qwen2_base"] {
        let tok = tokenizer(model);
        for text in TEXTS {
            let ids = tok.encode_response(text).unwrap();
            let (mut decoder, pieces) = IncrementalDecoder::replay(&tok, &ids).unwrap();
            let mut streamed = pieces.concat();
            streamed += &decoder.finish(&tok).unwrap();
            assert_eq!(streamed, tok.decode(&ids).unwrap(), "{model}: {text:?}");
            // No piece ever shows half a character.
            assert!(
                pieces.iter().all(|p| !p.contains('\u{FFFD}')),
                "{model}: {pieces:?}"
            );
        }
    }
}

#[test]
fn multibyte_characters_arrive_whole() {
    let tok = tokenizer("llama_base");
    // The emoji is not in the learned vocabulary: it becomes four byte-fallback tokens.
    let ids = tok.encode_response("a😀b").unwrap();
    assert!(ids.len() >= 6, "{ids:?}");
    let (_, pieces) = IncrementalDecoder::replay(&tok, &ids).unwrap();
    assert!(pieces.iter().any(|p| p.contains('😀')), "{pieces:?}");
    assert_eq!(
        pieces.iter().filter(|p| p.is_empty()).count(),
        4,
        "{pieces:?}"
    );
}

#[test]
fn invalid_byte_runs_decode_as_a_full_decode_does() {
    let tok = tokenizer("llama_base");
    // <0x36> ('6') followed by <0x81> (a stray continuation byte), then a word: the whole byte
    // run is invalid UTF-8 and a full decode shows it as replacement characters.
    let byte = |b: u8| tok.inner.token_to_id(&format!("<0x{b:02X}>")).unwrap();
    let word = tok.encode_response("the").unwrap();
    let ids: Vec<u32> = [byte(0x36), byte(0x81)].into_iter().chain(word).collect();
    let (mut decoder, pieces) = IncrementalDecoder::replay(&tok, &ids).unwrap();
    let streamed = pieces.concat() + &decoder.finish(&tok).unwrap();
    assert_eq!(streamed, tok.decode(&ids).unwrap());
}

/// Llama tokenizers saved in the transformers-4 Hub style are tokenized as transformers 5 does
/// (tests/data/tokenizers, made by scripts/make_tokenizer_fixtures.py).
#[test]
fn hub_style_llama_tokenizers_match_transformers() {
    let root = data("tokenizers");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("expected.json")).unwrap())
            .unwrap();
    for case in expected["cases"].as_array().unwrap() {
        let tok = ModelTokenizer::load(&root.join(case["tokenizer"].as_str().unwrap())).unwrap();
        let text = case["text"].as_str().unwrap();
        let label = format!("{} {text:?}", case["tokenizer"]);
        assert_eq!(
            tok.encode_prompt(text).unwrap(),
            ids(&case["ids"]),
            "{label}"
        );
        let without = tok.encode_response(text).unwrap();
        assert_eq!(without, ids(&case["ids_without_special"]), "{label}");
        assert_eq!(
            tok.decode(&without).unwrap(),
            case["decoded"].as_str().unwrap(),
            "{label}"
        );
    }
}
