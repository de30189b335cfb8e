//! Quantized weights: quantize-at-load (`--dtype q8_0|q4_k`) and GGUF files written by the test
//! the way llama.cpp's converter writes them, checked against the f32 safetensors source.

use std::path::{Path, PathBuf};

use crate::common::gguf::{GgufLayout, write_dequantized, write_gguf, write_gguf_typed};
use crate::common::logprobs::max_error_plausible;
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

/// Log-probabilities over PROMPT (see `common::logprobs`).
fn logprobs(path: &Path, dtype: ComputeDtype, tokenizer: Option<&Path>) -> Vec<Vec<f32>> {
    crate::common::logprobs::logprobs(path, dtype, tokenizer, PROMPT)
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

/// Whether this CPU runs genarm's packed kernels (else quantized weights go to candle's).
fn genarm_kernels_run_here() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Every matrix of `m` runs on genarm's kernels where this CPU has them.
fn assert_genarm_kernels(m: &CausalLm, what: &str) {
    if !genarm_kernels_run_here() {
        return;
    }
    for (name, format, kernel) in m.matrix_kernels() {
        assert_eq!(
            kernel, "genarm",
            "{what}: {name} ({format}) runs on {kernel}"
        );
    }
}

#[test]
fn matrices_that_do_not_split_into_256_take_llama_cpps_fallbacks() {
    // hidden 96: rows of 96 are whole 32-value blocks but not K-quant blocks (256), so
    // llama.cpp's quantizer stores Q4_K matrices as Q5_0, Q5_K as Q5_1 and the output layer's
    // Q6_K as Q8_0.
    let models = Models::new();
    let odd = |name: &str, hidden: usize, intermediate: usize| {
        let spec = RandomModelSpec {
            hidden,
            heads: 4,
            kv_heads: 2,
            intermediate,
            ..Default::default()
        };
        sharp_model(&models, name, spec)
    };
    let dir = odd("odd", 96, 192);
    let f32 = logprobs(&dir, ComputeDtype::F32, None);
    for (dtype, formats, fallbacks) in [
        (
            ComputeDtype::Q4K,
            "q5_0+q8_0",
            "q4_k->q5_0 x14, q6_k->q8_0 x1",
        ),
        (
            ComputeDtype::Q5K,
            "q5_1+q8_0",
            "q5_k->q5_1 x14, q6_k->q8_0 x1",
        ),
        (ComputeDtype::Q6K, "q8_0", "q6_k->q8_0 x15"),
        (ComputeDtype::Q4_0, "q4_0+q8_0", "q6_k->q8_0 x1"),
    ] {
        let m = CausalLm::load(&dir, dtype).unwrap();
        assert_eq!(m.weight_formats(), formats, "{dtype:?}");
        assert_eq!(m.fallbacks(), fallbacks, "{dtype:?}");
        assert_genarm_kernels(&m, dtype.name());
        // Quantized (not left f32), within the 4-bit tolerance.
        let e = max_error_plausible(&f32, &logprobs(&dir, dtype, None));
        assert!(e > 1e-5 && e < Q4K_TOLERANCE, "{dtype:?}: {e}");
    }
    // hidden 80, intermediate 144: not even 32 divides the rows, so f16 (llama.cpp's last
    // resort), never f32.
    let dir = odd("odder", 80, 144);
    let m = CausalLm::load(&dir, ComputeDtype::Q4K).unwrap();
    assert_eq!(m.weight_formats(), "f16");
    assert_eq!(m.fallbacks(), "q4_k->f16 x14, q6_k->f16 x1");
}

/// The file types whose every tensor runs on genarm's kernels.
#[derive(Clone, Copy, Debug, PartialEq)]
enum FileType {
    Q4_0,
    Q4_1,
    Q4KM,
    Q5KM,
    Q6K,
    Q8_0,
}

/// The format llama.cpp's quantizer gives one tensor of a Llama file of type `ft` with
/// `layers` layers (`llama_tensor_get_type` in llama.cpp's src/llama-quant.cpp, read for these
/// file types): the file type's format; the output layer Q6_K (Q8_0 in Q8_0 files, or where
/// its rows do not split into the file type's blocks); Q4_K_M and Q5_K_M give Q6_K to
/// `attn_v` and `ffn_down` of the layers `use_more_bits` picks; then a K-quant on rows that
/// are not a multiple of 256 falls back to Q5_0 (Q4_K), Q5_1 (Q5_K) or Q8_0 (Q6_K).
fn llama_cpp_type(ft: FileType, name: &str, cols: usize, layers: usize) -> GgmlDType {
    use GgmlDType as G;
    let base = match ft {
        FileType::Q4_0 => G::Q4_0,
        FileType::Q4_1 => G::Q4_1,
        FileType::Q4KM => G::Q4K,
        FileType::Q5KM => G::Q5K,
        FileType::Q6K => G::Q6K,
        FileType::Q8_0 => G::Q8_0,
    };
    let layer: Option<usize> = name
        .strip_prefix("blk.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|n| n.parse().ok());
    let more_bits = |i: usize| i < layers / 8 || i >= 7 * layers / 8 || (i - layers / 8) % 3 == 2;
    let chosen = if name == "output.weight" {
        if ft == FileType::Q8_0 || !cols.is_multiple_of(base.block_size()) {
            G::Q8_0
        } else {
            G::Q6K
        }
    } else if matches!(ft, FileType::Q4KM | FileType::Q5KM)
        && (name.contains("attn_v") || name.contains("ffn_down"))
        && layer.is_some_and(more_bits)
    {
        G::Q6K
    } else {
        base
    };
    if cols.is_multiple_of(chosen.block_size()) {
        return chosen;
    }
    match chosen {
        G::Q4K => G::Q5_0,
        G::Q5K => G::Q5_1,
        G::Q6K => G::Q8_0,
        other => panic!("llama.cpp refuses {other:?} on rows of {cols}"),
    }
}

/// llama.cpp's file types, written as its quantizer would type each tensor, from a model whose
/// `ffn_down` rows (288) take the K-quants' fallbacks: every tensor runs on genarm's kernels,
/// in the format llama.cpp would store it, and the logits match the same weights dequantized
/// to f32 within what rounding the activations to 8 bits costs.
#[test]
fn llama_cpp_file_types_run_on_genarms_kernels() {
    let models = Models::new();
    let spec = RandomModelSpec {
        intermediate: 288,
        ..spec("llama", 13, false)
    };
    let layers = spec.layers;
    let dir = sharp_model(&models, "llama", spec);
    let tokenizer = dir.join("tokenizer.json");
    let mut seen = std::collections::BTreeSet::new();
    for ft in [
        FileType::Q4_0,
        FileType::Q4_1,
        FileType::Q4KM,
        FileType::Q5KM,
        FileType::Q6K,
        FileType::Q8_0,
    ] {
        let folder = models.path(&format!("{ft:?}"));
        std::fs::create_dir_all(&folder).unwrap();
        let file = folder.join("model.gguf");
        let type_of = |name: &str, t: &candle_core::Tensor| match t.dims() {
            [_, cols] => llama_cpp_type(ft, name, *cols, layers),
            _ => GgmlDType::F32,
        };
        write_gguf_typed(&dir, &file, layout(GgmlDType::F32, "llama"), &[], &type_of);
        let m = CausalLm::load_with(&file, ComputeDtype::F32, Some(&tokenizer)).unwrap();
        for (name, format, kernel) in m.matrix_kernels() {
            let gguf = gguf_name_of(&name);
            let cols = if gguf.contains("ffn_down") { 288 } else { 256 };
            let want = llama_cpp_type(ft, &gguf, cols, layers);
            assert_eq!(format, format_name(want), "{ft:?} {name}");
            if genarm_kernels_run_here() {
                assert_eq!(kernel, "genarm", "{ft:?} {name} ({format})");
            }
            seen.insert(format);
        }
        // The reference: the file's own weights, dequantized to f32.
        let reference = folder.join("dequantized.gguf");
        write_dequantized(&file, &reference);
        let want = logprobs(&reference, ComputeDtype::F32, Some(&tokenizer));
        let got = logprobs(&file, ComputeDtype::F32, Some(&tokenizer));
        // Only the activations differ: rounded to 8 bits per block of 32 or 256 values, the
        // rounding Q8_0 applies to weights, whose error `Q8_TOLERANCE` bounds.
        let e = max_error_plausible(&want, &got);
        eprintln!("{ft:?}: max |Δ log p| against the dequantized weights {e}");
        assert!(e < Q8_TOLERANCE, "{ft:?}: {e}");
        assert!(e > 0.0, "{ft:?}: no activation rounding at all?");
    }
    // Every format genarm packs was in some file.
    let all = [
        "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k",
    ];
    assert_eq!(seen, all.iter().map(|s| s.to_string()).collect());
}

/// Our (Hugging Face) matrix name as llama.cpp names it.
fn gguf_name_of(hf: &str) -> String {
    if hf == "lm_head.weight" {
        return "output.weight".into();
    }
    let renames = [
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ];
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, rest) = rest.split_once('.').unwrap();
    let (_, to) = renames.iter().find(|(f, _)| rest.starts_with(f)).unwrap();
    format!("blk.{layer}.{to}.weight")
}

/// A format as llama.cpp spells it ("q4_k").
fn format_name(format: GgmlDType) -> String {
    let name = format!("{format:?}").to_lowercase();
    match name.strip_suffix('k') {
        Some(stem) if !stem.contains('_') => format!("{stem}_k"),
        _ => name,
    }
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

/// An f16 GGUF run at f16 reads its matrices in place from the file, but for the q/k rows
/// llama.cpp's converter reorders (copied back into our order); at f32 every matrix is a
/// converted copy. Either way the model is its source folder's in f16 (converted from f32 at
/// load, the copy path): the same log-probs.
#[test]
fn an_f16_gguf_at_f16_reads_its_matrices_in_place() {
    let models = Models::new();
    for (arch, tie) in [("llama", false), ("llama", true), ("qwen2", false)] {
        let name = format!("{arch}-{tie}-f16");
        let dir = sharp_model(&models, &name, spec(arch, 7, tie));
        let mut f16 = layout(GgmlDType::F16, arch);
        f16.embedding = GgmlDType::F16;
        let gguf = write(&models, &dir, &format!("{name}-gguf"), f16);
        let tokenizer = dir.join("tokenizer.json");
        let m = CausalLm::load_with(&gguf, ComputeDtype::F16, Some(&tokenizer)).unwrap();
        let all: Vec<String> = m.matrix_kernels().into_iter().map(|(n, ..)| n).collect();
        let reordered = |n: &str| n.contains("q_proj") || n.contains("k_proj");
        let want: Vec<String> = all
            .iter()
            .filter(|n| arch != "llama" || !reordered(n))
            .cloned()
            .collect();
        assert_eq!(m.mapped_matrices(), want, "{name}");
        assert!(want.iter().any(|n| n == "lm_head.weight"), "{name}");
        let wide = CausalLm::load_with(&gguf, ComputeDtype::F32, Some(&tokenizer)).unwrap();
        assert!(wide.mapped_matrices().is_empty(), "{name}");
        let from_gguf = logprobs(&gguf, ComputeDtype::F16, Some(&tokenizer));
        let source = logprobs(&dir, ComputeDtype::F16, None);
        let err = max_error(&source, &from_gguf);
        assert!(
            err < 1e-4,
            "{name}: f16 GGUF differs from its source by {err}"
        );
    }
}

/// A tied model quantized at load looks its tokens up in the blocks its output layer was made
/// from, as a llama.cpp file whose `token_embd` is Q8_0 (and no `output.weight`) does: the two
/// hold the same blocks, so their log-probs agree to float rounding, and both stay within the
/// Q8_0 tolerance of the f32 model.
#[test]
fn tied_q8_0_lookup_reads_the_same_blocks_as_a_q8_0_gguf_embedding() {
    let models = Models::new();
    let dir = sharp_model(&models, "tied", spec("llama", 8, true));
    let mut q8 = layout(GgmlDType::Q8_0, "llama");
    q8.embedding = GgmlDType::Q8_0;
    let gguf = write(&models, &dir, "tied-q8", q8);
    let tokenizer = dir.join("tokenizer.json");
    let from_gguf = logprobs(&gguf, ComputeDtype::F32, Some(&tokenizer));
    let at_load = logprobs(&dir, ComputeDtype::Q8_0, None);
    let f32 = logprobs(&dir, ComputeDtype::F32, None);
    let err = max_error(&at_load, &from_gguf);
    assert!(err < 1e-4, "at load vs Q8_0 GGUF: {err}");
    assert!(max_error_plausible(&f32, &at_load) < Q8_TOLERANCE);
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

    // A tensor type candle cannot read: blk.0.attn_q.weight's type (after its name, rank and
    // two dimensions in the tensor infos) set to 20, ggml's IQ4_NL.
    let mut bytes = bytes.clone();
    let name = b"blk.0.attn_q.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    assert_eq!(bytes[at..at + 4], 2u32.to_le_bytes());
    let type_at = at + 4 + 2 * 8;
    assert_eq!(bytes[type_at..type_at + 4], 8u32.to_le_bytes(), "Q8_0");
    bytes[type_at..type_at + 4].copy_from_slice(&20u32.to_le_bytes());
    let iq4 = models.path("iq4_nl.gguf");
    std::fs::write(&iq4, &bytes).unwrap();
    let out = generate(&iq4, &["--tokenizer", p(&tokenizer)]);
    assert_one_line_error(
        &out,
        &[
            "iq4_nl.gguf",
            "'blk.0.attn_q.weight'",
            "IQ4_NL (type 20)",
            "Q5_K",
        ],
    );

    // An unknown --dtype lists the ones there are.
    let out = generate(&base, &["--dtype", "q3_k"]);
    assert_one_line_error(
        &out,
        &[
            "--dtype",
            "q3_k",
            "q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k",
        ],
    );
}
