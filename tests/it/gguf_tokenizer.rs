//! A GGUF model's tokenizer rebuilt from its `tokenizer.ggml.*` metadata when no tokenizer.json
//! is beside it and no `--tokenizer` is given.
//!
//! Reference: the ids in `tests/data/gguf_tokenizers/expected.json` are what transformers 5.24
//! itself produces when it loads each fixture GGUF (`AutoTokenizer.from_pretrained(dir,
//! gguf_file=…)`), recorded by `scripts/make_gguf_tokenizer_fixtures.py`. The fixtures hold the
//! vocabularies of the parity models `llama_base` (SentencePiece-style, scores and no merges)
//! and `qwen2_base` (byte-level with merges, Qwen2.5's chat template), written with the `gguf`
//! Python package as llama.cpp's converter lays them out, plus one byte-level vocabulary whose
//! merges cross the boundaries of the three split regexes (written with pre "qwen2",
//! "llama-bpe", "gpt-2"). As a second check, the script found transformers' GGUF ids equal to
//! the ids of the original tokenizer folders for every text (`source_ids`), and so must ours be.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::common::gguf::{GgufLayout, write_gguf_with};
use crate::common::{Models, assert_one_line_error, data, genarm, ids, json_lines, p};
use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, Value};
use genarm::engine::formats::chat::ChatPrompt;
use genarm::engine::formats::gguf_tokenizer;
use serde_json::Value as Json;

/// GGUF metadata entries, in the order written.
type Metadata = Vec<(String, Value)>;

fn expected() -> Json {
    let text = std::fs::read_to_string(data("gguf_tokenizers/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn fixture_tokenizers_give_the_ids_transformers_gives() {
    let expected = expected();
    let files = expected["files"].as_object().unwrap();
    assert_eq!(files.len(), 6);
    for (name, entry) in files {
        let path = data("gguf_tokenizers").join(name);
        let tok = gguf_tokenizer::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cases = entry["cases"].as_array().unwrap();
        assert!(cases.len() >= 21, "{name}");
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let what = format!("{name} {text:?}");
            let want = ids(&case["ids"]);
            assert_eq!(tok.encode_prompt(text).unwrap(), want, "{what}");
            if case.get("source_ids").is_some() {
                assert_eq!(want, ids(&case["source_ids"]), "{what}: fixture");
            }
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
fn the_three_split_regexes_are_told_apart() {
    // Guard for the test above: the byte-level fixtures differ only in tokenizer.ggml.pre, and
    // their expected ids differ, so using one regex for another would fail it.
    let expected = expected();
    let cases = |pre: &str| -> Vec<Vec<u32>> {
        expected["files"][format!("bytes_{pre}.gguf")]["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| ids(&c["ids"]))
            .collect()
    };
    let (qwen2, llama3, gpt2) = (cases("qwen2"), cases("llama_bpe"), cases("gpt2"));
    assert_ne!(qwen2, llama3);
    assert_ne!(qwen2, gpt2);
    assert_ne!(llama3, gpt2);
}

#[test]
fn the_chat_template_comes_from_the_metadata() {
    let expected = expected();
    let path = data("gguf_tokenizers/qwen2.gguf");
    let tok = gguf_tokenizer::load(&path).unwrap();
    let template = tok
        .chat_template
        .as_ref()
        .expect("qwen2.gguf has a template");
    assert_eq!(template.path, path);
    let chats = expected["files"]["qwen2.gguf"]["chat"].as_array().unwrap();
    assert_eq!(chats.len(), 2);
    for chat in chats {
        let messages = chat["messages"].as_array().unwrap();
        let system = messages
            .iter()
            .find(|m| m["role"] == "system")
            .map(|m| m["content"].as_str().unwrap().to_string());
        let user = messages.last().unwrap()["content"].as_str().unwrap();
        let text = ChatPrompt::new(template, system)
            .unwrap()
            .render(user)
            .unwrap();
        assert_eq!(
            tok.encode_chat(&text).unwrap(),
            ids(&chat["ids"]),
            "{text:?}"
        );
    }
    // The llama fixture has none.
    let llama = gguf_tokenizer::load(&data("gguf_tokenizers/llama.gguf")).unwrap();
    assert!(llama.chat_template.is_none());
    assert_eq!(llama.bos_id, Some(1));
    assert_eq!(llama.eos_ids, [2]);
}

/// The `tokenizer.*` metadata of a fixture, its token arrays cut to `vocab` entries (the
/// llama fixture has one user-defined token more than the model's embedding).
fn tokenizer_metadata(fixture: &str, vocab: usize) -> Metadata {
    let path = data("gguf_tokenizers").join(fixture);
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let content = Content::read(&mut reader).unwrap();
    let mut out: Metadata = content
        .metadata
        .into_iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .map(|(k, v)| match v {
            Value::Array(mut items) if k != "tokenizer.ggml.merges" => {
                items.truncate(vocab);
                (k, Value::Array(items))
            }
            other => (k, other),
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn f32_layout(arch: &'static str) -> GgufLayout {
    GgufLayout {
        matrices: GgmlDType::F32,
        embedding: GgmlDType::F32,
        arch,
        llama_cpp_order: true,
    }
}

/// A parity model converted to GGUF with the tokenizer metadata of `fixture`, alone in its
/// folder (no tokenizer.json beside it).
fn gguf_of(models: &Models, model: &str, arch: &'static str, fixture: &str) -> PathBuf {
    let source = data("parity/models").join(model);
    let config: Json =
        serde_json::from_str(&std::fs::read_to_string(source.join("config.json")).unwrap())
            .unwrap();
    let vocab = config["vocab_size"].as_u64().unwrap() as usize;
    let folder = models.path(&format!("{model}-gguf"));
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("model.gguf");
    write_gguf_with(
        &source,
        &file,
        f32_layout(arch),
        &tokenizer_metadata(fixture, vocab),
    );
    assert!(!folder.join("tokenizer.json").exists());
    file
}

/// `genarm generate --json` records: the start record and (token ids, token texts, end text).
fn generate(base: &Path, prompt: &str, extra: &[&str]) -> (Json, Vec<u64>, Vec<String>, String) {
    let mut args = vec![
        "generate",
        "--json",
        "--base",
        p(base),
        "--prompt",
        prompt,
        "--max-new-tokens",
        "6",
    ];
    args.extend_from_slice(extra);
    let records = json_lines(&genarm(&args));
    let tokens: Vec<&Json> = records.iter().filter(|r| r["type"] == "token").collect();
    let end = records.last().unwrap();
    assert_eq!(end["type"], "end");
    (
        records[0].clone(),
        tokens
            .iter()
            .map(|t| t["token_id"].as_u64().unwrap())
            .collect(),
        tokens
            .iter()
            .map(|t| t["text"].as_str().unwrap().to_string())
            .collect(),
        end["text"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_gguf_without_tokenizer_json_generates_with_its_metadata_tokenizer() {
    let models = Models::new();
    for (model, arch, fixture) in [
        ("llama_base", "llama", "llama.gguf"),
        ("qwen2_base", "qwen2", "qwen2.gguf"),
    ] {
        let gguf = gguf_of(&models, model, arch, fixture);
        let folder = data("parity/models").join(model);
        let prompt = " The dragon carries 42 books\nhome.";
        let (start, ids, texts, text) = generate(&gguf, prompt, &[]);
        // The same prompt ids, tokens and text as the model folder with its tokenizer.json (f32
        // weights equal within 1e-4, see tests/it/quant.rs; greedy decoding).
        let (want_start, want_ids, want_texts, want_text) = generate(&folder, prompt, &[]);
        assert_eq!(
            start["prompt_token_ids"], want_start["prompt_token_ids"],
            "{model}"
        );
        assert_eq!(ids, want_ids, "{model}");
        assert_eq!(texts, want_texts, "{model}");
        assert_eq!(text, want_text, "{model}");
        assert_eq!(ids.len(), 6, "{model}");
        assert_eq!(texts.concat(), text, "{model}");
    }
}

#[test]
fn chat_uses_the_template_in_the_metadata() {
    let models = Models::new();
    let gguf = gguf_of(&models, "qwen2_base", "qwen2", "qwen2.gguf");
    let expected = expected();
    let chat = &expected["files"]["qwen2.gguf"]["chat"][1];
    let system = chat["messages"][0]["content"].as_str().unwrap();
    let user = chat["messages"][1]["content"].as_str().unwrap();
    let (start, generated, _, _) = generate(&gguf, user, &["--chat", "--system", system]);
    // transformers' apply_chat_template ids for the same conversation.
    assert_eq!(ids(&start["prompt_token_ids"]), ids(&chat["ids"]));
    assert_eq!(generated.len(), 6);
}

#[test]
fn bad_tokenizer_metadata_is_one_line_naming_the_file() {
    let models = Models::new();
    let source = data("parity/models/llama_base");
    let good = tokenizer_metadata("llama.gguf", 439);
    let edit = |changes: &[(&str, Option<Value>)]| -> Metadata {
        let mut meta: HashMap<String, Value> = good.iter().cloned().collect();
        for (key, value) in changes {
            match value {
                Some(v) => meta.insert(key.to_string(), v.clone()),
                None => meta.remove(*key),
            };
        }
        let mut meta: Metadata = meta.into_iter().collect();
        meta.sort_by(|a, b| a.0.cmp(&b.0));
        meta
    };
    let strings =
        |items: &[&str]| Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect());
    let short_scores = Value::Array(vec![Value::F32(0.0); 10]);
    let cases: Vec<(&str, Metadata, Vec<&str>)> = vec![
        (
            "no-tokens",
            edit(&[("tokenizer.ggml.tokens", None)]),
            vec!["no 'tokenizer.ggml.tokens'"],
        ),
        (
            "short-scores",
            edit(&[("tokenizer.ggml.scores", Some(short_scores))]),
            vec!["'tokenizer.ggml.scores' has 10 entries", "439"],
        ),
        (
            "bert",
            edit(&[("tokenizer.ggml.model", Some(Value::String("bert".into())))]),
            vec!["tokenizer.ggml.model = 'bert'", "llama, gpt2"],
        ),
        (
            "unknown-pre",
            edit(&[
                ("tokenizer.ggml.model", Some(Value::String("gpt2".into()))),
                ("tokenizer.ggml.pre", Some(Value::String("kimi-k2".into()))),
                ("tokenizer.ggml.merges", Some(strings(&["▁ t"]))),
            ]),
            vec![
                "tokenizer.ggml.pre = 'kimi-k2'",
                "tokenizer.json works with --tokenizer",
            ],
        ),
        (
            "bad-merge",
            edit(&[("tokenizer.ggml.merges", Some(strings(&["▁ t", "oops"])))]),
            vec!["'tokenizer.ggml.merges' entry 1", "oops"],
        ),
        (
            "eos-out-of-range",
            edit(&[("tokenizer.ggml.eos_token_id", Some(Value::U32(5000)))]),
            vec!["'tokenizer.ggml.eos_token_id' is 5000", "439 tokens"],
        ),
        (
            "tokens-not-strings",
            edit(&[(
                "tokenizer.ggml.tokens",
                Some(Value::Array(vec![Value::U32(1)])),
            )]),
            vec!["'tokenizer.ggml.tokens' is not an array of strings"],
        ),
        (
            "no-tokenizer",
            edit(&[("tokenizer.ggml.model", None)]),
            vec!["no tokenizer", "--tokenizer"],
        ),
    ];
    for (name, metadata, needles) in cases {
        let folder = models.path(name);
        std::fs::create_dir_all(&folder).unwrap();
        let file = folder.join(format!("{name}.gguf"));
        write_gguf_with(&source, &file, f32_layout("llama"), &metadata);
        let out = genarm(&["generate", "--base", p(&file), "--prompt", "hello"]);
        let mut all = vec![p(&file)];
        all.extend(needles);
        assert_one_line_error(&out, &all);
        // A tokenizer.json given with --tokenizer wins over broken metadata.
        let out = genarm(&[
            "generate",
            "--base",
            p(&file),
            "--tokenizer",
            p(&source.join("tokenizer.json")),
            "--prompt",
            "hello",
            "--max-new-tokens",
            "2",
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
