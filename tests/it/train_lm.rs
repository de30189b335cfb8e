//! train-tokenizer and train-lm: a toy base model from a corpus, in the Hugging Face layout.

use std::path::Path;

use genarm::engine::formats::tokenizer::ModelTokenizer;
use genarm::engine::{CausalLm, ComputeDtype, Generation, Guide, SamplingParams};
use genarm::train::corpus::read_documents;
use genarm::train::lm::{LmSettings, train_lm};
use genarm::train::tokenizer::train_tokenizer;

fn write_corpus(path: &Path) {
    let subjects = [
        "The cat",
        "A dog",
        "My neighbour",
        "The baker",
        "Our teacher",
        "A small bird",
    ];
    let verbs = ["sees", "likes", "bakes", "finds", "paints", "feeds"];
    let objects = [
        "bread",
        "a ball",
        "the garden",
        "fresh tomatoes",
        "a red bike",
        "warm soup",
    ];
    let mut lines = Vec::new();
    for i in 0..300usize {
        let sentence = |k: usize| {
            format!(
                "{} {} {}.",
                subjects[(i * 7 + k) % 6],
                verbs[(i * 5 + k * 3) % 6],
                objects[(i + k * 11) % 6]
            )
        };
        let text = (0..3).map(sentence).collect::<Vec<_>>().join(" ");
        lines.push(serde_json::json!({ "text": text }).to_string());
    }
    lines.push(serde_json::json!({"text": "Ünïcödé café — 日本語 😀"}).to_string());
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn settings(corpus: &Path, tokenizer: &Path, out: &Path) -> LmSettings {
    LmSettings {
        corpus: corpus.into(),
        tokenizer: tokenizer.into(),
        out: out.into(),
        hidden: 32,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        intermediate: 64,
        context: 128,
        tie_embeddings: false,
        seq_len: 32,
        batch_size: 8,
        lr: 5e-3,
        weight_decay: 0.0,
        epochs: 3,
        warmup: 5,
        seed: 1,
        eval_split: 0.1,
        verbose: false,
    }
}

#[test]
fn a_trained_tokenizer_round_trips_any_text_and_adds_bos() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_corpus(&corpus);
    let out = dir.path().join("tok");
    let size = train_tokenizer(&read_documents(&corpus).unwrap(), 300, 2, &out).unwrap();
    assert!(size > 259 && size <= 300, "{size}");
    let tok = ModelTokenizer::load(&out).unwrap();
    for text in [
        "The cat likes bread.",
        "never seen: Ωmega ∑ 🚲\ttabs\nnewlines",
    ] {
        let ids = tok.encode_response(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
    let prompt = tok.encode_prompt("The cat").unwrap();
    assert_eq!(Some(prompt[0]), tok.bos_id);
    assert_eq!(tok.eos_ids.len(), 1);
    // Merges were learned: corpus text takes far fewer tokens than bytes.
    let sentence = "The baker bakes fresh tomatoes.";
    assert!(tok.encode_response(sentence).unwrap().len() * 2 < sentence.len());
    assert!(train_tokenizer(&["x".into()], 100, 2, &out).is_err());
}

#[test]
fn a_pretrained_model_learns_the_corpus_and_loads_as_a_base() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_corpus(&corpus);
    let tok = dir.path().join("tok");
    train_tokenizer(&read_documents(&corpus).unwrap(), 320, 2, &tok).unwrap();
    for tie in [false, true] {
        let out = dir.path().join(format!("lm-{tie}"));
        let mut s = settings(&corpus, &tok, &out);
        s.tie_embeddings = tie;
        let report = train_lm(&s).unwrap();
        assert!(report.train_loss < report.first_loss - 1.5, "{report:?}");
        let eval = report.eval_loss.unwrap();
        assert!(eval.is_finite() && eval < report.first_loss, "{report:?}");
        let weights = candle_core::safetensors::load(
            out.join("model.safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        assert_eq!(weights.contains_key("lm_head.weight"), !tie);

        let base = CausalLm::load(&out, ComputeDtype::F32).unwrap();
        assert_eq!(base.config.hidden_size, 32);
        let mut guide = Guide::new(base, vec![]).unwrap();
        let prompt = guide.base.tokenizer().encode_prompt("The cat").unwrap();
        let mut g = Generation::start(&mut guide, prompt, SamplingParams::default(), 8, 1).unwrap();
        while g.stopped().is_none() {
            g.step(&mut guide, &[], None).unwrap();
        }
        assert!(!g.generated().is_empty());
    }
}

#[test]
fn train_lm_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_corpus(&corpus);
    let tok = dir.path().join("tok");
    train_tokenizer(&read_documents(&corpus).unwrap(), 300, 2, &tok).unwrap();
    let out = dir.path().join("lm");
    let mut s = settings(&corpus, &tok, &out);
    s.seq_len = 500;
    assert!(train_lm(&s).unwrap_err().to_string().contains("--seq-len"));
    let tiny = dir.path().join("tiny.jsonl");
    std::fs::write(&tiny, "{\"text\":\"hi\"}").unwrap();
    let s = settings(&tiny, &tok, &out);
    assert!(
        train_lm(&s)
            .unwrap_err()
            .to_string()
            .contains("--seq-len + 1")
    );
    let s = settings(&dir.path().join("missing.jsonl"), &tok, &out);
    assert!(
        train_lm(&s)
            .unwrap_err()
            .to_string()
            .contains("missing.jsonl")
    );
}
