//! Quantized weights: quantize-at-load (`--dtype q8_0|q4_k`) and GGUF files written by the test
//! the way llama.cpp's converter writes them, checked against the f32 safetensors source.

use std::path::{Path, PathBuf};

use crate::common::gguf::{GgufLayout, write_gguf};
use crate::common::{Models, assert_one_line_error, genarm, p};
use candle_core::Device;
use candle_core::quantized::GgmlDType;
use genarm::engine::{CausalLm, ComputeDtype};
use genarm::synthetic::RandomModelSpec;

/// A model whose matrices all split into 256-wide Q4_K blocks (hidden 256, intermediate 512).
fn spec(arch: &str, seed: u64, tie: bool) -> RandomModelSpec {
    RandomModelSpec {
        arch: arch.into(),
        vocab: 300,
        hidden: 256,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        intermediate: 512,
        seed,
        tie_embeddings: tie,
        ..Default::default()
    }
}

/// Write the model and scale its q and k projections so attention is far from uniform (random
/// models attend almost evenly, which would hide a wrong q/k layout).
fn sharp_model(models: &Models, name: &str, spec: RandomModelSpec) -> PathBuf {
    let dir = models.with_spec(name, spec);
    let file = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    for (name, t) in tensors.iter_mut() {
        if name.contains("q_proj") || name.contains("k_proj") {
            *t = (&*t * 3.0).unwrap();
        }
    }
    candle_core::safetensors::save(&tensors, &file).unwrap();
    dir
}

const PROMPT: &[u32] = &[1, 17, 42, 99, 7, 250, 13, 64, 5, 180, 33, 21];

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
    logits.iter().map(|x| x - lse).collect()
}

/// Log-probabilities at every position of PROMPT (teacher forcing), then of three decoding
/// steps through the KV cache.
fn logprobs(path: &Path, dtype: ComputeDtype, tokenizer: Option<&Path>) -> Vec<Vec<f32>> {
    let mut m = CausalLm::load_with(path, dtype, tokenizer)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows: Vec<Vec<f32>> = m
        .score_all(PROMPT)
        .unwrap()
        .iter()
        .map(|l| log_softmax(l))
        .collect();
    m.feed(PROMPT).unwrap();
    for t in [3u32, 77, 150] {
        rows.push(log_softmax(&m.feed(&[t]).unwrap()));
    }
    rows
}

/// Largest |Δ log p| at every position over the tokens the reference `a` gives at least
/// 1e-4 probability (quantization error is relative to the logits' size, so it is largest on
/// tokens with log-probs of -50 that no sampler ever picks).
fn max_error_plausible(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    let floor = 1e-4f32.ln();
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            x.iter()
                .zip(y)
                .filter(|(p, _)| **p > floor)
                .map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// Largest |Δ log p| over every position and every token.
fn max_error(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

// Tolerances on |Δ log p| against f32, over all 300 tokens at 15 positions (the error is
// largest on unlikely tokens). Q8_0 keeps 8 bits per weight plus a scale per 32 weights: the
// largest error seen is 0.07. Q4_K keeps 4.5 bits: 0.42 seen. Both are set about twice what
// was seen or more, and below what a wrong q/k row order gives (1.5, see
// `a_gguf_without_llama_cpp_row_order_is_not_a_match`).
const Q8_TOLERANCE: f32 = 0.2;
const Q4K_TOLERANCE: f32 = 0.8;

#[test]
fn quantize_at_load_matches_f32_within_tolerance() {
    let models = Models::new();
    // Untied: with tied random embeddings the logits are so large that one token takes all.
    for (arch, tie) in [("llama", false), ("qwen2", false)] {
        let dir = sharp_model(&models, arch, spec(arch, 3, tie));
        let f32 = logprobs(&dir, ComputeDtype::F32, None);
        let q8 = logprobs(&dir, ComputeDtype::Q8_0, None);
        let q4 = logprobs(&dir, ComputeDtype::Q4K, None);
        let (e8, e4) = (
            max_error_plausible(&f32, &q8),
            max_error_plausible(&f32, &q4),
        );
        eprintln!("{arch}: q8_0 max |Δ log p| {e8}, q4_k {e4}");
        assert!(e8 < Q8_TOLERANCE, "{arch} q8_0: {e8}");
        assert!(e4 < Q4K_TOLERANCE, "{arch} q4_k: {e4}");
        // The weights really were quantized (not left dense), and fewer bits cost more.
        assert!(
            e8 > 1e-5,
            "{arch}: q8_0 identical to f32, nothing was quantized?"
        );
        assert!(
            e4 > e8,
            "{arch}: q4_k ({e4}) should be less exact than q8_0 ({e8})"
        );
    }
}

// bf16 keeps 8 bits of mantissa in weights and activations; decoding steps multiply its
// weights in `gemv.rs` (one row), the 12-token prompt in candle's matmul. Largest error seen:
// 0.06 (llama), 0.054 (qwen2); the tolerance is about three times that.
const BF16_TOLERANCE: f32 = 0.2;

#[test]
fn bf16_decoding_matches_f32_within_tolerance() {
    let models = Models::new();
    for arch in ["llama", "qwen2"] {
        let dir = sharp_model(&models, arch, spec(arch, 5, false));
        let f32 = logprobs(&dir, ComputeDtype::F32, None);
        let bf16 = logprobs(&dir, ComputeDtype::Bf16, None);
        let e = max_error_plausible(&f32, &bf16);
        eprintln!("{arch}: bf16 max |Δ log p| {e}");
        assert!(e < BF16_TOLERANCE, "{arch} bf16: {e}");
        assert!(
            e > 1e-5,
            "{arch}: bf16 identical to f32, nothing was rounded?"
        );
    }
}

#[test]
fn matrices_that_do_not_split_into_blocks_stay_dense() {
    // hidden 96: rows of 96 are whole Q8_0 blocks (32) but not Q4_K blocks (256).
    let models = Models::new();
    let dir = sharp_model(
        &models,
        "odd",
        RandomModelSpec {
            hidden: 96,
            heads: 4,
            kv_heads: 2,
            intermediate: 192,
            ..Default::default()
        },
    );
    let f32 = logprobs(&dir, ComputeDtype::F32, None);
    let q4 = logprobs(&dir, ComputeDtype::Q4K, None);
    // Q4_K (and Q6_K for the output layer) need rows of 256: everything stays dense.
    assert!(max_error(&f32, &q4) < 1e-4);
    let q8 = logprobs(&dir, ComputeDtype::Q8_0, None);
    assert!(max_error(&f32, &q8) > 1e-5);
}

fn write(models: &Models, source: &Path, name: &str, layout: GgufLayout) -> std::path::PathBuf {
    let folder = models.path(name);
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("model.gguf");
    write_gguf(source, &file, layout);
    file
}

fn layout(matrices: GgmlDType, arch: &'static str) -> GgufLayout {
    GgufLayout {
        matrices,
        embedding: GgmlDType::F32,
        arch,
        llama_cpp_order: true,
    }
}

#[test]
fn f32_gguf_matches_its_safetensors_source() {
    let models = Models::new();
    for (arch, gguf_arch, tie) in [
        ("llama", "llama", false),
        ("llama", "llama", true),
        ("mistral", "llama", false),
        ("qwen2", "qwen2", false),
    ] {
        let name = format!("{arch}-{tie}");
        let dir = sharp_model(&models, &name, spec(arch, 5, tie));
        let gguf = write(
            &models,
            &dir,
            &format!("{name}-gguf"),
            layout(GgmlDType::F32, gguf_arch),
        );
        let tokenizer = dir.join("tokenizer.json");
        let from_gguf = logprobs(&gguf, ComputeDtype::F32, Some(&tokenizer));
        let source = logprobs(&dir, ComputeDtype::F32, None);
        let err = max_error(&source, &from_gguf);
        assert!(
            err < 1e-4,
            "{name}: f32 GGUF differs from its source by {err}"
        );
    }
}

#[test]
fn q8_0_gguf_matches_its_source_quantized_at_load() {
    // Row-wise blocks do not depend on the row order, so a Q8_0 GGUF of the (permuted) matrices,
    // un-permuted at load, holds exactly the blocks `--dtype q8_0` makes from the source.
    let models = Models::new();
    let dir = sharp_model(&models, "llama", spec("llama", 7, false));
    let gguf = write(&models, &dir, "llama-q8", layout(GgmlDType::Q8_0, "llama"));
    // The tokenizer beside the .gguf is found without --tokenizer.
    std::fs::copy(
        dir.join("tokenizer.json"),
        gguf.with_file_name("tokenizer.json"),
    )
    .unwrap();
    let from_gguf = logprobs(&gguf, ComputeDtype::F32, None);
    let at_load = logprobs(&dir, ComputeDtype::Q8_0, None);
    let f32 = logprobs(&dir, ComputeDtype::F32, None);
    assert!(max_error(&at_load, &from_gguf) < 1e-4);
    assert!(max_error_plausible(&f32, &from_gguf) < Q8_TOLERANCE);
}

#[test]
fn a_gguf_without_llama_cpp_row_order_is_not_a_match() {
    // Guard for the tests above: the q/k un-permutation at load is what makes them pass. A file
    // written without llama.cpp's permutation, read as a llama GGUF, must differ a lot.
    let models = Models::new();
    let dir = sharp_model(&models, "llama", spec("llama", 9, false));
    let plain = GgufLayout {
        llama_cpp_order: false,
        ..layout(GgmlDType::F32, "llama")
    };
    let gguf = write(&models, &dir, "unpermuted", plain);
    let tokenizer = dir.join("tokenizer.json");
    let wrong = logprobs(&gguf, ComputeDtype::F32, Some(&tokenizer));
    let source = logprobs(&dir, ComputeDtype::F32, None);
    let err = max_error_plausible(&source, &wrong);
    assert!(
        err > 5.0 * Q8_TOLERANCE,
        "a wrong row order gave only {err}"
    );
}

#[test]
fn a_gguf_base_guided_by_safetensors_arms() {
    let models = Models::new();
    let base = models.with_spec("base", spec("llama", 1, false));
    let arm = models.with_spec("arm", spec("llama", 2, false));
    let gguf = write(
        &models,
        &base,
        "base-gguf",
        layout(GgmlDType::Q8_0, "llama"),
    );
    let tokenizer = base.join("tokenizer.json");
    let run = |base: &Path, extra: &[&str]| {
        let helpful = format!("helpful={}", p(&arm));
        let mut args = vec![
            "generate",
            "--json",
            "--base",
            p(base),
            "--arm",
            &helpful,
            "--prompt",
            "w5 w6 w7",
            "--max-new-tokens",
            "8",
        ];
        args.extend_from_slice(extra);
        let out = genarm(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let from_gguf = run(&gguf, &["--tokenizer", p(&tokenizer)]);
    let tokens = |jsonl: &str| -> Vec<u64> {
        jsonl
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["type"] == "token")
            .map(|v| v["token_id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(tokens(&from_gguf).len(), 8);
    // The same greedy tokens as the source quantized at load (same Q8_0 blocks).
    let at_load = run(&base, &["--dtype", "q8_0"]);
    assert_eq!(tokens(&from_gguf), tokens(&at_load));
}

/// `bench` says what each model of each `--dtypes` row stores: quantize-at-load follows the
/// format's plan (Q4_K keeps the output layer in Q6_K, as llama.cpp's Q4_K_M does), and a GGUF
/// file keeps its own formats whatever the row.
#[test]
fn bench_reports_the_formats_each_model_stores() {
    let models = Models::new();
    let base = models.with_spec("base", spec("llama", 1, false));
    let arm_source = models.with_spec("arm", spec("llama", 2, false));
    let arm = write(
        &models,
        &arm_source,
        "arm-gguf",
        layout(GgmlDType::Q8_0, "llama"),
    );
    let arm_flag = format!("a={}", p(&arm));
    let out = genarm(&[
        "bench",
        "--base",
        p(&base),
        "--arm",
        &arm_flag,
        "--tokenizer",
        p(&arm_source.join("tokenizer.json")),
        "--dtypes",
        "f32,q8_0,q4_k",
        "--prompt-tokens",
        "4",
        "--decode-tokens",
        "2",
        "--repeats",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let formats: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["dtype"].as_str().unwrap(),
                r["weight_formats"]["base"].as_str().unwrap(),
                r["weight_formats"]["a"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        formats,
        [
            ("f32", "f32", "q8_0"),
            ("q8_0", "q8_0", "q8_0"),
            ("q4_k", "q4_k+q6_k", "q8_0"),
        ]
    );
}

#[test]
fn bad_gguf_input_gives_one_line_naming_the_file() {
    let models = Models::new();
    let base = models.with_spec("base", spec("llama", 1, false));
    let tokenizer = base.join("tokenizer.json");
    let generate = |model: &Path, extra: &[&str]| {
        let mut args = vec!["generate", "--base", p(model), "--prompt", "w5"];
        args.extend_from_slice(extra);
        genarm(&args)
    };

    // Not a GGUF file at all.
    let garbage = models.path("garbage.gguf");
    std::fs::write(&garbage, b"this is not a gguf file, just text").unwrap();
    let out = generate(&garbage, &["--tokenizer", p(&tokenizer)]);
    assert_one_line_error(&out, &["--base", "garbage.gguf", "GGUF"]);

    // A truncated one.
    let gguf = write(&models, &base, "good", layout(GgmlDType::Q8_0, "llama"));
    let bytes = std::fs::read(&gguf).unwrap();
    let cut = models.path("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = generate(&cut, &["--tokenizer", p(&tokenizer)]);
    assert_one_line_error(&out, &["cut.gguf"]);

    // No tokenizer beside it and no --tokenizer.
    let out = generate(&gguf, &[]);
    assert_one_line_error(&out, &["model.gguf", "--tokenizer"]);

    // A --tokenizer that does not exist.
    let out = generate(&gguf, &["--tokenizer", "/nonexistent/tokenizer.json"]);
    assert_one_line_error(&out, &["/nonexistent/tokenizer.json"]);

    // An architecture the decoder does not run.
    let other = write(&models, &base, "gpt2", layout(GgmlDType::F32, "gpt2"));
    let out = generate(&other, &["--tokenizer", p(&tokenizer)]);
    assert_one_line_error(
        &out,
        &["model.gguf", "unsupported GGUF architecture 'gpt2'"],
    );

    // A missing file.
    let out = generate(&models.path("absent.gguf"), &["--tokenizer", p(&tokenizer)]);
    assert_one_line_error(&out, &["absent.gguf"]);
}
