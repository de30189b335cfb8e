//! Hostile model files: configs and GGUF headers that lie about sizes, numbers that make a model
//! non-finite, weights holding NaN, infinity or values that overflow. Every case is one line
//! naming the file (or flag), a non-zero exit, no panic, in bounded time and memory, and no token
//! record with `null` in it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Value;
use candle_core::{Device, Tensor};

use crate::common::gguf::{GgufLayout, write_gguf_with};
use crate::common::{Models, assert_one_line_error, copy_model, data, edit_json, genarm, p};

/// `generate` on `base` for a few tokens, in bounded time.
fn generate(base: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "generate",
        "--base",
        p(base),
        "--prompt",
        "Once upon a time",
        "--max-new-tokens",
        "3",
        "--json",
    ];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = genarm(&args);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    out
}

/// A copy of the parity model `llama_base` named `name`.
fn llama_copy(models: &Models, name: &str) -> PathBuf {
    let path = models.path(name);
    copy_model(&data("parity/models/llama_base"), &path);
    path
}

/// Rewrite one tensor of `dir`'s model.safetensors.
fn edit_tensor(dir: &Path, name: &str, edit: impl FnOnce(Vec<f32>) -> Vec<f32>) {
    let file = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let t = &tensors[name];
    let values = edit(t.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    let edited = Tensor::from_vec(values, t.shape(), &Device::Cpu).unwrap();
    tensors.insert(name.to_string(), edited);
    candle_core::safetensors::save(&tensors, &file).unwrap();
}

#[test]
fn config_values_that_cannot_work_are_refused_naming_config_json() {
    let models = Models::new();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &[&str]); 8] = [
        (
            |c| c["num_hidden_layers"] = 1_000_000_000.into(),
            &["num_hidden_layers is 1000000000", "at most"],
        ),
        // Found by the fuzzer: the rotary table was sized from head_dim before any check.
        (
            |c| c["head_dim"] = (1u64 << 62).into(),
            &["head_dim is 4611686018427387904", "up to"],
        ),
        (
            |c| c["num_hidden_layers"] = 0.into(),
            &["holds 2 layers", "num_hidden_layers is 0"],
        ),
        (
            |c| c["num_hidden_layers"] = 3.into(),
            &["holds 2 layers", "num_hidden_layers is 3"],
        ),
        (
            |c| c["rms_norm_eps"] = (-1.0).into(),
            &["rms_norm_eps", "-1"],
        ),
        (
            |c| c["rope_parameters"]["rope_theta"] = 0.0.into(),
            &["rope_theta", "got 0"],
        ),
        (
            |c| {
                c["rope_parameters"] =
                    serde_json::json!({"rope_type": "linear", "rope_theta": 1e4, "factor": 0.0})
            },
            &["rope scaling factor", "got 0"],
        ),
        (
            |c| {
                c["rope_parameters"] = serde_json::json!({
                    "rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0,
                    "low_freq_factor": 4.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 64
                })
            },
            &["high_freq_factor", "low_freq_factor"],
        ),
    ];
    for (i, (edit, needles)) in cases.into_iter().enumerate() {
        let dir = llama_copy(&models, &format!("config{i}"));
        edit_json(&dir.join("config.json"), edit);
        let out = generate(&dir, &[]);
        let line = assert_one_line_error(&out, needles);
        assert!(
            line.contains("config.json") || line.contains("model.safetensors"),
            "{line}"
        );
    }
}

#[test]
fn weights_holding_nan_or_infinity_are_refused_at_load() {
    let models = Models::new();
    for (i, bad) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]
        .into_iter()
        .enumerate()
    {
        let dir = llama_copy(&models, &format!("weights{i}"));
        edit_tensor(&dir, "model.layers.1.mlp.up_proj.weight", |mut v| {
            v[17] = bad;
            v
        });
        let out = generate(&dir, &[]);
        assert_one_line_error(
            &out,
            &[
                "model.safetensors",
                "'model.layers.1.mlp.up_proj.weight'",
                "NaN or infinite",
                "element 17",
            ],
        );
    }
}

#[test]
fn weights_that_overflow_stop_the_run_naming_the_model_and_position() {
    let models = Models::new();
    let dir = llama_copy(&models, "overflow");
    // Token 5's output row all 3e38: its logit is a sum of 64 terms of about 3e38 each, which
    // overflows f32 (largest finite 3.4e38) whatever the hidden state.
    edit_tensor(&dir, "lm_head.weight", |mut v| {
        v[5 * 64..6 * 64].iter_mut().for_each(|x| *x = 3e38);
        v
    });
    let out = generate(&dir, &[]);
    let line = assert_one_line_error(&out, &["overflow", "not finite", "at position"]);
    assert!(line.contains("overflow"), "{line}");
}

#[test]
fn guidance_that_overflows_stops_the_run_naming_the_weight() {
    let arm = data("parity/models/llama_arm_helpful");
    let base = data("parity/models/llama_base");
    let out = generate(
        &base,
        &[
            "--arm",
            &format!("helpful={}", p(&arm)),
            "--weight",
            "helpful=3e38",
        ],
    );
    // The error is one line; stdout holds the start record and an end record saying why,
    // and nothing carries a null.
    let stderr = crate::common::one_line_stderr(&out);
    for needle in [
        "--weight",
        "guided scores of response token 0",
        "not finite",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in {stderr:?}");
    }
    let records: Vec<serde_json::Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    let end = &records[1];
    assert_eq!(end["type"], "end");
    assert_eq!(end["reason"], "error");
    assert_eq!(end["generated_tokens"], 0);
    assert!(end["error"].as_str().unwrap().contains("--weight"), "{end}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("null"));
}

#[test]
fn weights_beyond_this_machines_memory_are_refused_before_reading_them() {
    let models = Models::new();
    let dir = llama_copy(&models, "huge");
    // A safetensors file whose one tensor is 1 TB of f32, most of it a hole in a sparse file:
    // nothing is read or allocated if genarm checks before loading.
    let elements: u64 = 250_000_000_000;
    let header = serde_json::json!({
        "model.embed_tokens.weight": {
            "dtype": "F32",
            "shape": [250_000_000u64, 1000],
            "data_offsets": [0, elements * 4],
        }
    })
    .to_string();
    let file = dir.join("model.safetensors");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    let header_end = bytes.len() as u64;
    std::fs::write(&file, bytes).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(header_end + elements * 4)
        .unwrap();
    let out = generate(&dir, &[]);
    assert_one_line_error(
        &out,
        &["huge", "need 1000.0 GB in memory as f32", "available"],
    );
}

/// The parity llama as a GGUF file (tokenizer.json beside it), with `extra` metadata.
fn llama_gguf(models: &Models, name: &str, extra: &[(String, Value)]) -> PathBuf {
    gguf_of(models, &data("parity/models/llama_base"), name, extra)
}

/// The model folder `source` as an f32 GGUF file in its own folder `name`, with its
/// tokenizer.json beside it and `extra` metadata.
fn gguf_of(models: &Models, source: &Path, name: &str, extra: &[(String, Value)]) -> PathBuf {
    let folder = models.path(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(source.join("tokenizer.json"), folder.join("tokenizer.json")).unwrap();
    let file = folder.join("model.gguf");
    let layout = GgufLayout {
        matrices: GgmlDType::F32,
        embedding: GgmlDType::F32,
        arch: "llama",
        llama_cpp_order: true,
    };
    write_gguf_with(source, &file, layout, extra);
    file
}

/// Change the info of tensor `name` in a GGUF file: its dimensions, type and offset.
fn patch_tensor_info(file: &Path, name: &str, patch: impl FnOnce(&mut [u64], &mut u32, &mut u64)) {
    let mut bytes = std::fs::read(file).unwrap();
    // A tensor info is: name length (u64), name, n_dims (u32), dims (u64 each), type, offset.
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap()
        + needle.len();
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let dims_at = at + 4;
    let mut dims: Vec<u64> = (0..n_dims)
        .map(|i| {
            u64::from_le_bytes(
                bytes[dims_at + 8 * i..dims_at + 8 * i + 8]
                    .try_into()
                    .unwrap(),
            )
        })
        .collect();
    let kind_at = dims_at + 8 * n_dims;
    let mut kind = u32::from_le_bytes(bytes[kind_at..kind_at + 4].try_into().unwrap());
    let mut offset = u64::from_le_bytes(bytes[kind_at + 4..kind_at + 12].try_into().unwrap());
    patch(&mut dims, &mut kind, &mut offset);
    for (i, d) in dims.iter().enumerate() {
        bytes[dims_at + 8 * i..dims_at + 8 * i + 8].copy_from_slice(&d.to_le_bytes());
    }
    bytes[kind_at..kind_at + 4].copy_from_slice(&kind.to_le_bytes());
    bytes[kind_at + 4..kind_at + 12].copy_from_slice(&offset.to_le_bytes());
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn gguf_files_that_lie_are_refused_naming_the_file() {
    let models = Models::new();
    // The file as written runs.
    let good = llama_gguf(&models, "good", &[]);
    let out = generate(&good, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    type Case = (&'static str, Vec<(String, Value)>, &'static [&'static str]);
    let cases: Vec<Case> = vec![
        (
            "alignment0",
            vec![("general.alignment".into(), Value::U32(0))],
            &["general.alignment' is 0", "power of two"],
        ),
        (
            "layers",
            vec![("llama.block_count".into(), Value::U32(1_000_000_000))],
            &["num_hidden_layers is 1000000000"],
        ),
        (
            "nan_rope",
            vec![("llama.rope.freq_base".into(), Value::F32(f32::NAN))],
            &["llama.rope.freq_base' is NaN", "finite"],
        ),
        (
            "control",
            vec![(
                "general.architecture".into(),
                Value::String("ll\u{1b}[2Jama".into()),
            )],
            &["unsupported GGUF architecture 'll\\u{1b}[2Jama'"],
        ),
    ];
    for (name, extra, needles) in cases {
        let file = llama_gguf(&models, name, &extra);
        let out = generate(&file, &[]);
        let line = assert_one_line_error(&out, needles);
        assert!(line.contains("model.gguf"), "{line}");
        assert!(!line.contains('\u{1b}'), "raw escape: {line:?}");
    }

    let misaligned = llama_gguf(&models, "misaligned", &[]);
    patch_tensor_info(&misaligned, "blk.0.ffn_up.weight", |_, _, o| *o += 4);
    let out = generate(&misaligned, &[]);
    assert_one_line_error(&out, &["model.gguf", "'blk.0.ffn_up.weight'", "alignment"]);

    let int32 = llama_gguf(&models, "int32", &[]);
    patch_tensor_info(&int32, "blk.1.attn_v.weight", |_, k, _| *k = 26);
    let out = generate(&int32, &[]);
    assert_one_line_error(&out, &["model.gguf", "'blk.1.attn_v.weight'", "I32"]);

    let past_end = llama_gguf(&models, "past_end", &[]);
    patch_tensor_info(&past_end, "output.weight", |_, _, o| *o += 1 << 40);
    let out = generate(&past_end, &[]);
    assert_one_line_error(&out, &["model.gguf", "'output.weight'", "past the end"]);

    // Found by the fuzzer: a q projection of one row (4 heads) divided by zero when its rows
    // were put back in Hugging Face order.
    let one_row = llama_gguf(&models, "one_row", &[]);
    patch_tensor_info(&one_row, "blk.0.attn_q.weight", |dims, _, _| dims[1] = 1);
    let out = generate(&one_row, &[]);
    assert_one_line_error(&out, &["model.gguf", "'blk.0.attn_q.weight'", "4 heads"]);
}

#[test]
fn gguf_weights_holding_nan_are_refused() {
    let models = Models::new();
    let nan = llama_copy(&models, "nan-source");
    edit_tensor(&nan, "model.norm.weight", |mut v| {
        v[3] = f32::NAN;
        v
    });
    let file = gguf_of(&models, &nan, "nan-gguf", &[]);
    let out = generate(&file, &[]);
    assert_one_line_error(&out, &["model.gguf", "'output_norm.weight'", "element 3"]);
}

#[test]
fn a_tokenizer_that_panics_on_every_text_is_refused_at_load() {
    // Found by the fuzzer: a post-processor template naming a special token that the template
    // does not define makes the tokenizers crate panic on every encode.
    let models = Models::new();
    let dir = llama_copy(&models, "template");
    edit_json(&dir.join("tokenizer.json"), |t| {
        t["post_processor"] = serde_json::json!({
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<zz>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}}
            ],
            "pair": [
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}}
            ],
            "special_tokens": {}
        });
    });
    let out = generate(&dir, &[]);
    assert_one_line_error(&out, &["tokenizer.json", "inconsistent"]);
}
