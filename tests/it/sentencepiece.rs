//! Model folders whose tokenizer is only a SentencePiece `tokenizer.model` (Llama 2, Alpaca,
//! Tulu 2, GenARM's ARMs).
//!
//! Reference: `tests/data/sentencepiece/expected.json`, the ids transformers 5.24 gives when
//! `AutoTokenizer.from_pretrained(folder)` converts each fixture's `tokenizer.model` (BPE and
//! unigram models trained by the `sentencepiece` trainer), and the greedy ids its
//! `LlamaForCausalLM` generates from the GenARM-layout folder, all recorded by
//! `scripts/make_sentencepiece_fixtures.py`.

use std::path::Path;

use crate::common::{assert_one_line_error, data, genarm, ids, json_lines, p};
use genarm::engine::formats::tokenizer::ModelTokenizer;
use serde_json::Value as Json;

fn expected() -> Json {
    let text = std::fs::read_to_string(data("sentencepiece/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn sentencepiece_folders_give_the_ids_transformers_gives() {
    let expected = expected();
    let folders = expected["folders"].as_object().unwrap();
    assert_eq!(folders.len(), 7);
    for (name, entry) in folders {
        let dir = data("sentencepiece").join(name);
        assert!(!dir.join("tokenizer.json").exists());
        let tok = ModelTokenizer::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cases = entry["cases"].as_array().unwrap();
        assert!(cases.len() >= 19, "{name}");
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let what = format!("{name} {text:?}");
            assert_eq!(
                tok.encode_prompt(text).unwrap(),
                ids(&case["ids"]),
                "{what}"
            );
            let plain = ids(&case["ids_without_special"]);
            assert_eq!(tok.encode_response(text).unwrap(), plain, "{what}");
            assert_eq!(
                tok.decode(&plain).unwrap(),
                case["decoded"].as_str().unwrap(),
                "{what}"
            );
        }
    }
}

#[test]
fn the_fixtures_tell_the_conversions_apart() {
    // Guard for the test above: the same BPE model under three configurations, and the same
    // unigram model as transformers' Llama class and its generic conversion, give different ids.
    let expected = expected();
    let all = |name: &str| -> Vec<Vec<u32>> {
        expected["folders"][name]["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| ids(&c["ids"]))
            .collect()
    };
    let bpe = all("bpe");
    for other in [
        "bpe_legacy",
        "bpe_no_prefix",
        "bpe_llama_old_class",
        "arm_llama",
    ] {
        assert_ne!(bpe, all(other), "{other}");
    }
    assert_ne!(all("unigram"), all("unigram_plain"));
}

/// `genarm generate --json` from `base`: the prompt ids and the generated ids.
fn generate(base: &Path, extra: &[&str]) -> (Vec<u32>, Vec<u32>) {
    let mut args = vec![
        "generate",
        "--json",
        "--base",
        p(base),
        "--prompt",
        "The dragon carries",
        "--max-new-tokens",
        "12",
        "--temperature",
        "0",
    ];
    args.extend_from_slice(extra);
    let records = json_lines(&genarm(&args));
    let prompt = ids(&records[0]["prompt_token_ids"]);
    let generated = records
        .iter()
        .filter(|r| r["type"] == "token")
        .map(|r| r["token_id"].as_u64().unwrap() as u32)
        .collect();
    (prompt, generated)
}

#[test]
fn a_genarm_layout_folder_generates_what_transformers_generates() {
    // pytorch_model.bin weights and only tokenizer.model, as GenARM's released ARMs ship.
    let dir = data("sentencepiece/arm_llama");
    assert!(dir.join("pytorch_model.bin").is_file());
    let reference = &expected()["generation"];
    let (prompt, generated) = generate(&dir, &[]);
    assert_eq!(prompt, ids(&reference["prompt_ids"]));
    assert_eq!(generated, ids(&reference["greedy_ids"]));
}

#[test]
fn tokenizer_accepts_a_sentencepiece_file_or_folder() {
    // The `bpe` folder names the Llama class, which adds BOS: its ids replace the model's own.
    let bpe = data("sentencepiece/bpe");
    let want = ids(&expected()["folders"]["bpe"]["cases"][1]["ids"]);
    let dir = data("sentencepiece/arm_llama");
    for tokenizer in [bpe.clone(), bpe.join("tokenizer.model")] {
        let tok = if tokenizer.is_dir() {
            ModelTokenizer::load(&tokenizer)
        } else {
            ModelTokenizer::load_file(&tokenizer)
        }
        .unwrap();
        assert_eq!(
            tok.encode_prompt("The dragon carries the book home.")
                .unwrap(),
            want
        );
        let (prompt, generated) = generate(&dir, &["--tokenizer", p(&tokenizer)]);
        assert_eq!(prompt[0], 1, "{}", tokenizer.display());
        assert_eq!(generated.len(), 12);
    }
}

#[test]
fn a_corrupt_tokenizer_model_is_one_line_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let source = data("sentencepiece/arm_llama");
    let good = std::fs::read(source.join("tokenizer.model")).unwrap();
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "garbage",
            b"\xff\xff\xff\xff not a protobuf at all".to_vec(),
        ),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, bytes) in cases {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["config.json", "pytorch_model.bin"] {
            std::fs::copy(source.join(f), dir.join(f)).unwrap();
        }
        let model = dir.join("tokenizer.model");
        std::fs::write(&model, bytes).unwrap();
        let out = genarm(&["generate", "--base", p(&dir), "--prompt", "hi"]);
        assert_one_line_error(&out, &[p(&model), "SentencePiece model file"]);
    }
    // An added token whose id does not follow the vocabulary: tokenizer_config.json is named.
    let dir = tmp.path().join("gap");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "pytorch_model.bin", "tokenizer.model"] {
        std::fs::copy(source.join(f), dir.join(f)).unwrap();
    }
    let config = dir.join("tokenizer_config.json");
    let added = r#"{"added_tokens_decoder": {"700": {"content": "<x>", "special": true}}}"#;
    std::fs::write(&config, added).unwrap();
    let out = genarm(&["generate", "--base", p(&dir), "--prompt", "hi"]);
    assert_one_line_error(&out, &[p(&config), "\"<x>\" at id 700"]);
    // Neither tokenizer file: the folder is named.
    let dir = tmp.path().join("none");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(source.join("config.json"), dir.join("config.json")).unwrap();
    std::fs::copy(
        source.join("pytorch_model.bin"),
        dir.join("pytorch_model.bin"),
    )
    .unwrap();
    let out = genarm(&["generate", "--base", p(&dir), "--prompt", "hi"]);
    assert_one_line_error(&out, &[p(&dir), "no tokenizer.json or tokenizer.model"]);
}

#[test]
fn an_adapter_over_a_sentencepiece_base_uses_the_bases_tokenizer() {
    // A PEFT adapter folder without tokenizer files, over the GenARM-layout base (only
    // tokenizer.model). Its LoRA B is zero, so it generates exactly what the base does.
    use candle_core::{DType, Device, Tensor};
    let tmp = tempfile::tempdir().unwrap();
    let base = data("sentencepiece/arm_llama");
    let config = serde_json::json!({
        "peft_type": "LORA",
        "r": 2,
        "lora_alpha": 4,
        "target_modules": ["q_proj"],
        "base_model_name_or_path": p(&base),
    });
    std::fs::write(tmp.path().join("adapter_config.json"), config.to_string()).unwrap();
    let key = "base_model.model.model.layers.0.self_attn.q_proj";
    let tensors = std::collections::HashMap::from([
        (
            format!("{key}.lora_A.weight"),
            Tensor::ones((2, 32), DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            format!("{key}.lora_B.weight"),
            Tensor::zeros((32, 2), DType::F32, &Device::Cpu).unwrap(),
        ),
    ]);
    candle_core::safetensors::save(&tensors, tmp.path().join("adapter_model.safetensors")).unwrap();
    let reference = &expected()["generation"];
    let (prompt, generated) = generate(tmp.path(), &[]);
    assert_eq!(prompt, ids(&reference["prompt_ids"]));
    assert_eq!(generated, ids(&reference["greedy_ids"]));
}
