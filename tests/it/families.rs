//! The model families beyond Llama/Qwen2/Mistral (Qwen3, Gemma 2, Gemma 3, Phi-3, OLMo 2,
//! SmolLM3) in every `--dtype`, and their config errors. Exactness against transformers is
//! `parity::model_families_match_transformers`; here each family is widened eightfold (hidden
//! 256, so every matrix splits into Q4_K blocks) with seeded random weights and compared with
//! itself in f32, with the closeness `quant.rs` defines. And train-arm's LoRA on each family.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::common::logprobs::{log_softmax, max_error_plausible};
use crate::common::{Models, assert_one_line_error, copy_model, data, edit_json, genarm, p};
use candle_core::{Device, Tensor};
use genarm::engine::model::transformer::LORA_TARGETS;
use genarm::engine::{CausalLm, ComputeDtype};
use genarm::train::loss::{EncodedPair, make_batch, sequence_logprobs};
use genarm::train::model::{LoraSettings, TrainableModel};
use genarm::train::optim::AdamW;
use genarm::train::trainer::pair_loss;
use serde_json::{Value, json};

const FAMILIES: &[&str] = &["qwen3", "gemma2", "gemma3", "phi3", "olmo2", "smollm3"];

/// Every dimension but the vocabulary grows by this: the fixtures' 32/64/8 become 256/512/64.
const WIDEN: usize = 8;
const LAYERS: usize = 2;

/// Deterministic uniform numbers in [-1, 1) (a 64-bit LCG; quality is not the point).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// The fixture `<family>_base` widened eightfold and cut to its first two layers (as quant.rs's
/// models, whose errors its tolerances were set on): the same config.json with every size
/// times 8 (Phi-3's LongRoPE factor lists repeated to the new rotary width) and random weights
/// of the same names, each shape widened except the vocabulary.
fn widened(models: &Models, family: &str, name: &str) -> PathBuf {
    let src = data("parity_families")
        .join("models")
        .join(format!("{family}_base"));
    let dir = models.path(name);
    copy_model(&src, &dir);
    edit_json(&dir.join("config.json"), |c| {
        c["num_hidden_layers"] = json!(LAYERS);
        for key in ["layer_types", "no_rope_layers"] {
            if let Some(list) = c[key].as_array_mut() {
                list.truncate(LAYERS);
            }
        }
        for key in [
            "hidden_size",
            "intermediate_size",
            "head_dim",
            "query_pre_attn_scalar",
        ] {
            if let Some(n) = c[key].as_u64() {
                c[key] = json!(n as usize * WIDEN);
            }
        }
        let rope = &mut c["rope_parameters"];
        for key in ["short_factor", "long_factor"] {
            if let Some(list) = rope[key].as_array() {
                let longer: Vec<Value> = list
                    .iter()
                    .flat_map(|x| std::iter::repeat_n(x.clone(), WIDEN))
                    .collect();
                rope[key] = Value::Array(longer);
            }
        }
    });
    let file = dir.join("model.safetensors");
    let source = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let vocab = source["model.embed_tokens.weight"].dims()[0];
    let mut rng = Lcg(7 + family.len() as u64);
    let kept = |name: &str| {
        name.strip_prefix("model.layers.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|i| i.parse::<usize>().ok())
            .is_none_or(|i| i < LAYERS)
    };
    let mut names: Vec<&String> = source.keys().filter(|n| kept(n)).collect();
    names.sort();
    let mut out = HashMap::new();
    for name in names {
        let dims: Vec<usize> = source[name]
            .dims()
            .iter()
            .map(|&d| if d == vocab { d } else { d * WIDEN })
            .collect();
        let n: usize = dims.iter().product();
        // Norms near 1 (Gemma's 1 + w near 2, so that its post-norms outweigh the
        // sqrt(hidden)-scaled embedding in the residual stream), matrices scaled so a projection
        // keeps unit-size activations, embeddings small enough that a tied output layer gives
        // logits of a few units (larger ones let one token take all).
        let fan_in = *dims.last().unwrap() as f32;
        let (offset, scale) = if name.contains("norm") {
            (1.0, 0.1)
        } else if name.contains("embed_tokens") {
            (0.0, 0.2)
        } else {
            (0.0, (3.0 / fan_in).sqrt())
        };
        let values: Vec<f32> = (0..n).map(|_| offset + scale * rng.next()).collect();
        out.insert(
            name.clone(),
            Tensor::from_vec(values, dims, &Device::Cpu).unwrap(),
        );
    }
    candle_core::safetensors::save(&out, &file).unwrap();
    dir
}

const PROMPT: &[u32] = &[
    1, 17, 42, 99, 7, 250, 13, 64, 5, 180, 33, 21, 8, 90, 11, 300,
];

/// Log-probabilities over PROMPT (see `common::logprobs`).
fn logprobs(path: &Path, dtype: ComputeDtype) -> Vec<Vec<f32>> {
    crate::common::logprobs::logprobs(path, dtype, None, PROMPT)
}

/// The tolerances of quant.rs: bf16 0.2, Q8_0 0.2, Q4_K 0.8 (f16 keeps more mantissa than
/// bf16, so bf16's bound holds for it too).
const TOLERANCES: &[(ComputeDtype, f32)] = &[
    (ComputeDtype::F16, 0.2),
    (ComputeDtype::Bf16, 0.2),
    (ComputeDtype::Q8_0, 0.2),
    (ComputeDtype::Q4K, 0.8),
];

/// How much more a family may lose to a dtype than the Llama twin of the same construction.
/// Gemma 3's logits spread widest (no soft-capping, a tied output layer over sqrt(hidden)-scaled
/// embeddings): 3.3 times the twin's Q4_K error, the most seen; every other family <= 1.7.
/// A real fault is far beyond: Q8_0 of Phi-3's split qkv_proj read from the wrong rows was 32
/// times the twin's error.
const TWIN_FACTOR: f32 = 4.0;

/// |Δ log p| against f32 for each dtype of TOLERANCES.
fn dtype_errors(dir: &Path, family: &str) -> Vec<f32> {
    let reference = logprobs(dir, ComputeDtype::F32);
    TOLERANCES
        .iter()
        .map(|&(dtype, _)| {
            let e = max_error_plausible(&reference, &logprobs(dir, dtype));
            eprintln!("{family} {}: max |Δ log p| {e}", dtype.name());
            e
        })
        .collect()
}

/// Each family in f16, bf16, Q8_0 and Q4_K stays within quant.rs's tolerance of its own f32
/// logits, or, where the random widened model is more sensitive than quant.rs's (Q4_K loses up
/// to 1.4 even for Llama here), within TWIN_FACTOR times what its Llama twin loses: the Qwen3
/// model read as Llama (the same weights but the q/k norms).
#[test]
fn every_family_decodes_in_every_dtype_close_to_f32() {
    let models = Models::new();
    let twin = widened(&models, "qwen3", "llama_twin");
    edit_json(&twin.join("config.json"), |c| {
        c["architectures"] = json!(["LlamaForCausalLM"]);
        c["model_type"] = json!("llama");
    });
    let twin_errors = dtype_errors(&twin, "llama twin");
    let mut failures = Vec::new();
    for family in FAMILIES {
        let dir = widened(&models, family, &format!("{family}_wide"));
        let errors = dtype_errors(&dir, family);
        for (i, &(dtype, tolerance)) in TOLERANCES.iter().enumerate() {
            let (e, bound) = (errors[i], tolerance.max(TWIN_FACTOR * twin_errors[i]));
            // Within bounds, and the weights really were rounded or quantized.
            if !(e < bound && e > 1e-6) {
                failures.push(format!("{family} {}: {e} (bound {bound})", dtype.name()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// A change made to a fixture's config.json.
type ConfigEdit = fn(&mut Value);

#[test]
fn a_family_config_missing_a_field_names_the_file_and_the_field() {
    let models = Models::new();
    let src = data("parity_families").join("models");
    let cases: &[(&str, &str, ConfigEdit)] = &[
        ("phi3_base", "original_max_position_embeddings", |c| {
            c["rope_parameters"]
                .as_object_mut()
                .unwrap()
                .remove("original_max_position_embeddings");
            c.as_object_mut()
                .unwrap()
                .remove("original_max_position_embeddings");
        }),
        ("phi3_base", "long_factor", |c| {
            c["rope_parameters"]["long_factor"] = json!([1.0, 2.0, 3.0]);
        }),
        ("smollm3_base", "no_rope_layers", |c| {
            c["no_rope_layers"] = json!([1, 0]);
        }),
        ("gemma2_base", "layer_types", |c| {
            c["layer_types"] = json!(["sliding_attention", "local"]);
        }),
        ("gemma3_base", "hidden_size", |c| {
            c.as_object_mut().unwrap().remove("hidden_size");
        }),
    ];
    for (i, (model, field, edit)) in cases.iter().enumerate() {
        let dir = models.path(&format!("bad{i}"));
        copy_model(&src.join(model), &dir);
        edit_json(&dir.join("config.json"), edit);
        let out = genarm(&[
            "score",
            "--base",
            p(&dir),
            "--prompt",
            "Hi",
            "--response",
            " there",
        ]);
        assert_one_line_error(&out, &["config.json", field]);
    }
}

/// Projections whose sizes disagree with the config (head_dim x heads against q_proj's rows)
/// are refused naming the tensor, not computed with.
#[test]
fn head_dim_that_does_not_match_the_projections_is_refused() {
    let models = Models::new();
    let dir = models.path("qwen3_bad_head_dim");
    copy_model(
        &data("parity_families").join("models").join("qwen3_base"),
        &dir,
    );
    edit_json(&dir.join("config.json"), |c| c["head_dim"] = json!(16));
    let out = genarm(&[
        "score",
        "--base",
        p(&dir),
        "--prompt",
        "Hi",
        "--response",
        " there",
    ]);
    assert_one_line_error(&out, &["q_proj", "shape"]);
}

fn lora() -> LoraSettings {
    LoraSettings {
        rank: 4,
        alpha: 8.0,
        targets: LORA_TARGETS.iter().map(|t| t.to_string()).collect(),
    }
}

/// Log-prob of `ids[from..]` given what precedes, from a loaded model.
fn sequence_logprob(dir: &Path, ids: &[u32], from: usize) -> f32 {
    let mut m = CausalLm::load(dir, ComputeDtype::F32).unwrap();
    let rows = m.score_all(ids).unwrap();
    (from..ids.len())
        .map(|j| log_softmax(&rows[j - 1])[ids[j] as usize])
        .sum()
}

/// train-arm's LoRA on every family: one optimizer step lowers the GenARM loss, and the saved
/// ARM (merged weights, and the PEFT adapter alone over its base) reloads through the engine
/// with the trained log-probs. Phi-3's q/k/v train as one `qkv_proj` module, as PEFT names it.
#[test]
fn one_lora_step_on_each_family_lowers_the_loss_and_reloads() {
    let models = Models::new();
    let pairs = [
        EncodedPair {
            prompt: vec![5, 80, 81],
            chosen: vec![12, 13, 14],
            rejected: vec![50, 51, 52],
        },
        EncodedPair {
            prompt: vec![90, 91],
            chosen: vec![20, 22, 24],
            rejected: vec![60, 61],
        },
    ];
    let refs: Vec<&EncodedPair> = pairs.iter().collect();
    let seq: (&[u32], &[u32]) = (&[5, 80, 81], &[12, 40, 13, 7]);
    let ids: Vec<u32> = seq.0.iter().chain(seq.1).copied().collect();
    for family in FAMILIES {
        let base = data("parity_families")
            .join("models")
            .join(format!("{family}_base"));
        let model = TrainableModel::load(&base, Some(lora()), 0).unwrap();
        let mut opt = AdamW::new(&model.vars, 1e-2, 0.0).unwrap();
        let loss = |m: &TrainableModel| pair_loss(m, &refs, 0.5, 0.0, &Device::Cpu).unwrap().0;
        let before = loss(&model);
        let grads = before.backward().unwrap();
        let g: Vec<Option<Tensor>> = model
            .vars
            .iter()
            .map(|(_, v)| grads.get(v.as_tensor()).cloned())
            .collect();
        assert!(
            g.iter().all(Option::is_some),
            "{family}: a LoRA matrix got no gradient"
        );
        opt.step(&model.vars, &g).unwrap();
        let (before, after) = (
            before.to_scalar::<f32>().unwrap(),
            loss(&model).to_scalar::<f32>().unwrap(),
        );
        eprintln!("{family}: loss {before} -> {after}");
        assert!(after < before - 1e-4, "{family}: {before} -> {after}");

        let batch = make_batch(&[seq], &Device::Cpu).unwrap();
        let trained = sequence_logprobs(&model.net, &batch)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        let out = models.path(&format!("{family}_arm"));
        model.save(&out).unwrap();
        let merged = sequence_logprob(&out, &ids, seq.0.len());
        assert!(
            (merged - trained).abs() < 1e-4,
            "{family}: {merged} vs {trained}"
        );
        let adapter_only = models.path(&format!("{family}_adapter"));
        std::fs::create_dir_all(&adapter_only).unwrap();
        for f in ["adapter_config.json", "adapter_model.safetensors"] {
            std::fs::copy(out.join(f), adapter_only.join(f)).unwrap();
        }
        let from_adapter = sequence_logprob(&adapter_only, &ids, seq.0.len());
        assert!(
            (from_adapter - trained).abs() < 1e-4,
            "{family}: {from_adapter} vs {trained}"
        );
    }
}

/// GGUF files written by llama.cpp's own converter from the Qwen3 and OLMo 2 fixtures
/// (scripts/make_gguf_families.py, f16 weights, norms in f32) read as the same model as their
/// source folder read in f16: the same log-probs at every position and decoding step, hence
/// the same greedy ids. A wrong name mapping (a missing q/k norm, OLMo 2's post-norms read as
/// pre-norms) fails to load or changes every row.
///
/// The converter writes no sliding window for Qwen3 (llama.cpp runs Qwen3 without one), so
/// that file is the fixture without its window (8 positions, on layers 2-3): the two agree on
/// the first 8 positions, where the window hides nothing.
#[test]
fn llama_cpp_gguf_files_of_qwen3_and_olmo2_match_their_source_folders() {
    let root = data("parity_families");
    for (family, rows) in [("qwen3", 8), ("olmo2", usize::MAX)] {
        let gguf = root.join("gguf").join(format!("{family}.gguf"));
        let folder = root.join("models").join(format!("{family}_base"));
        let (mut a, mut b) = (
            logprobs(&gguf, ComputeDtype::F16),
            logprobs(&folder, ComputeDtype::F16),
        );
        a.truncate(rows);
        b.truncate(rows);
        let argmax = |rows: &[Vec<f32>]| -> Vec<usize> {
            rows.iter()
                .map(|r| (0..r.len()).fold(0, |best, i| if r[i] > r[best] { i } else { best }))
                .collect()
        };
        assert_eq!(argmax(&a), argmax(&b), "{family}: greedy ids");
        let worst = a
            .iter()
            .zip(&b)
            .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
            .fold(0f32, f32::max);
        eprintln!("{family}: GGUF vs folder max |Δ log p| {worst}");
        assert!(worst < 1e-4, "{family}: {worst}");
    }
}

/// Gemma 2, Gemma 3, SmolLM3 and Phi-3 GGUF files written by llama.cpp's own converter (f32)
/// from models shaped as llama.cpp assumes (scripts/make_gguf_families.py): the folder and its
/// GGUF each generate and score as transformers did with the family's two ARMs (same ids,
/// log-probs within 1e-4). The converter leaves out what llama.cpp hard-codes (Gemma's
/// attention scale and layer pattern, SmolLM3's no-rope interval) and stores Gemma's norms as
/// 1 + w and Phi-3's LongRoPE factors as tensors: a loader that misses one of them changes
/// every log-prob (the Gemma 3 model has 6 layers, so its pattern of 6 shows; the prompts are
/// longer than the windows and than Phi-3's original context).
#[test]
fn llama_cpp_gguf_files_of_gemma_smollm3_and_phi3_match_transformers() {
    let dir = data("parity_families");
    let all = crate::parity::cases(&dir.join("gguf"));
    let mut seen = Vec::new();
    for case in &all {
        let family = case["name"].as_str().unwrap().trim_end_matches("_gguf");
        seen.push(family.to_string());
        crate::parity::run_case(&dir, case);
        let mut from_gguf = case.clone();
        from_gguf["base"] = json!(format!("../gguf/{family}/{family}.gguf"));
        crate::parity::run_case(&dir, &from_gguf);
    }
    assert_eq!(seen, ["gemma2", "gemma3", "smollm3", "phi3"]);
}

/// `random-model --arch` makes every family in the layout transformers saves (fused Phi-3
/// matrices, Gemma's four norms, OLMo 2's whole-projection q/k norms...): the folder loads as
/// that family (a missing or misnamed tensor is a load error) and guides generation as base and
/// ARM.
#[test]
fn random_model_makes_every_family() {
    let models = Models::new();
    let classes = [
        ("qwen3", "Qwen3ForCausalLM"),
        ("gemma2", "Gemma2ForCausalLM"),
        ("gemma3", "Gemma3ForCausalLM"),
        ("phi3", "Phi3ForCausalLM"),
        ("olmo2", "Olmo2ForCausalLM"),
        ("smollm3", "SmolLM3ForCausalLM"),
    ];
    for (arch, class) in classes {
        let make = |name: &str, seed: &str| {
            let out = models.path(&format!("{arch}_{name}"));
            let run = genarm(&[
                "random-model",
                "--out",
                p(&out),
                "--arch",
                arch,
                "--vocab",
                "64",
                "--hidden",
                "32",
                "--layers",
                "2",
                "--heads",
                "4",
                "--kv-heads",
                "2",
                "--intermediate",
                "64",
                "--seed",
                seed,
            ]);
            assert!(
                run.status.success(),
                "{arch}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            out
        };
        let (base, arm) = (make("base", "1"), make("arm", "2"));
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(base.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["architectures"][0], class, "{arch}");
        CausalLm::load(&base, ComputeDtype::F32).unwrap_or_else(|e| panic!("{arch}: {e}"));
        let arm_flag = format!("a={}", p(&arm));
        let out = genarm(&[
            "generate",
            "--base",
            p(&base),
            "--arm",
            &arm_flag,
            "--weight",
            "a=0.5",
            "--prompt",
            "w5 w6 w7",
            "--max-new-tokens",
            "4",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = genarm(&[
        "random-model",
        "--out",
        p(&models.path("x")),
        "--arch",
        "gpt2",
    ]);
    assert_one_line_error(&out, &["--arch", "gpt2", "gemma3"]);
}
