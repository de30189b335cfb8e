//! `genarm inspect MODEL`: what it reports about a model without loading it.
//!
//! References: the parameter counts transformers reports (`num_parameters()`, recorded in
//! `tests/data/inspect/expected.json` by `scripts/make_inspect_fixtures.py`) and the sum over the
//! safetensors shapes read here with the `safetensors` crate; memory derived by hand from the
//! shapes and llama.cpp's block layouts (`ggml-common.h`, written out below); the formats and
//! kernels the real loader ends up with (`CausalLm::matrix_kernels`); refusals compared with the
//! error `genarm generate` stops at on the same input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::gguf::{GgufLayout, write_gguf, write_gguf_typed, write_gguf_with};
use crate::common::{Models, copy_model, data, edit_json, genarm, one_line_stderr, p};
use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, Value};
use genarm::engine::ComputeDtype;
use genarm::engine::model::causal_lm::CausalLm;
use serde_json::Value as Json;

/// `genarm inspect --json MODEL`: the report and the exit code.
fn inspect(model: &Path) -> (Json, Option<i32>, String) {
    inspect_with(model, &[])
}

fn inspect_with(model: &Path, env: &[(&str, &Path)]) -> (Json, Option<i32>, String) {
    let mut cmd = assert_cmd::Command::cargo_bin("genarm").unwrap();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(["inspect", "--json", p(model)]).output().unwrap();
    report_of(&out)
}

fn report_of(out: &Output) -> (Json, Option<i32>, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    (
        serde_json::from_str(&stdout).unwrap(),
        out.status.code(),
        stderr,
    )
}

fn refusals(report: &Json) -> Vec<String> {
    report["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

/// The error line `genarm generate` stops at for the same model (the loader's own).
fn loader_error(model: &Path) -> String {
    let out = genarm(&[
        "generate",
        "--base",
        p(model),
        "--prompt",
        "hi",
        "--max-new-tokens",
        "1",
    ]);
    let line = one_line_stderr(&out);
    // The loader's line, less the flag that named the model.
    line.trim()
        .strip_prefix("error: --base ")
        .unwrap_or(line.trim())
        .to_string()
}

/// Elements of every tensor of a safetensors file, read with the safetensors crate.
fn safetensors_elements(file: &Path) -> BTreeMap<String, (Vec<usize>, u64)> {
    let bytes = std::fs::read(file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let shape = view.shape().to_vec();
            let n = shape.iter().map(|&d| d as u64).product();
            (name, (shape, n))
        })
        .collect()
}

#[test]
fn parameter_counts_are_the_ones_transformers_reports() {
    let text = std::fs::read_to_string(data("inspect/expected.json")).unwrap();
    let expected: Json = serde_json::from_str(&text).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = expected.as_object().unwrap();
    assert!(cases.len() >= 10);
    for (folder, case) in cases {
        let (report, code, stderr) = inspect(&root.join(folder));
        assert_eq!(code, Some(0), "{folder}: {stderr}");
        assert_eq!(
            report["parameters"], case["num_parameters"],
            "{folder}: {report}"
        );
        assert_eq!(
            report["dimensions"]["tied_embeddings"], case["tie_word_embeddings"],
            "{folder}"
        );
    }
    // And the sum over the stored shapes (a tied model stores its embedding once).
    for name in ["llama_base", "qwen2_base"] {
        let dir = data("parity/models").join(name);
        let sum: u64 = safetensors_elements(&dir.join("model.safetensors"))
            .values()
            .map(|(_, n)| n)
            .sum();
        let (report, _, _) = inspect(&dir);
        assert_eq!(report["parameters"].as_u64(), Some(sum), "{name}");
    }
}

/// llama.cpp's block layouts (`ggml-common.h`): values per block and the bytes of its fields.
fn block(format: &str) -> (u64, u64) {
    match format {
        // d (f16) + 32 int8
        "q8_0" => (32, 2 + 32),
        // d + 16 bytes of nibbles
        "q4_0" => (32, 2 + 16),
        // d, m + nibbles
        "q4_1" => (32, 2 + 2 + 16),
        // d + 4 bytes of high bits + nibbles
        "q5_0" => (32, 2 + 4 + 16),
        // d, m + high bits + nibbles
        "q5_1" => (32, 2 + 2 + 4 + 16),
        // d, dmin + 12 bytes of 6-bit scales + 128 bytes of nibbles
        "q4_k" => (256, 2 + 2 + 12 + 128),
        // d, dmin + scales + 32 bytes of high bits + nibbles
        "q5_k" => (256, 2 + 2 + 12 + 32 + 128),
        // 128 bytes low bits + 64 high bits + 16 int8 scales + d
        "q6_k" => (256, 128 + 64 + 16 + 2),
        "f32" => (1, 4),
        "f16" | "bf16" => (1, 2),
        other => panic!("no layout for {other}"),
    }
}

/// The format llama.cpp's quantizer gives a matrix with rows of `row` values when `asked` is
/// wanted (`llama_tensor_get_type`: K-quants that do not fit fall back), f16 where nothing fits.
fn llama_cpp_format(asked: &str, row: u64) -> &'static str {
    let candidates: &[&str] = match asked {
        "q4_k" => &["q4_k", "q5_0"],
        "q5_k" => &["q5_k", "q5_1"],
        "q6_k" => &["q6_k", "q8_0"],
        "q8_0" => &["q8_0"],
        "q4_0" => &["q4_0"],
        "q4_1" => &["q4_1"],
        "q5_0" => &["q5_0"],
        "q5_1" => &["q5_1"],
        _ => &[],
    };
    candidates
        .iter()
        .find(|f| row.is_multiple_of(block(f).0))
        .copied()
        .unwrap_or("f16")
}

/// Hand derivation of the weights genarm holds for an untied Llama at `dtype`: the embedding in
/// the compute dtype (f32 for the block formats), norms in f32, every matrix in the `--dtype`'s
/// format (the output layer in q6_k, q8_0 for `--dtype q8_0`, as llama.cpp's file types do).
fn hand_bytes(dir: &Path, dtype: &str) -> (u64, BTreeMap<String, usize>) {
    let tensors = safetensors_elements(&dir.join("model.safetensors"));
    let dense = match dtype {
        "f16" | "bf16" => 2,
        _ => 4,
    };
    let mut total = 0;
    let mut formats = BTreeMap::new();
    for (name, (shape, n)) in &tensors {
        let matrix = shape.len() == 2 && name != "model.embed_tokens.weight";
        if !matrix {
            total += n * if name.contains("norm") { 4 } else { dense };
            continue;
        }
        let format = match dtype {
            "f32" | "f16" | "bf16" => dtype,
            "q8_0" => "q8_0",
            _ if name == "lm_head.weight" => llama_cpp_format("q6_k", shape[1] as u64),
            _ => llama_cpp_format(dtype, shape[1] as u64),
        };
        let (values, bytes) = block(format);
        total += n / values * bytes;
        *formats.entry(format.to_string()).or_default() += 1;
    }
    (total, formats)
}

#[test]
fn memory_at_each_dtype_follows_the_block_layouts() {
    let dir = data("parity/models/llama_base");
    let (report, _, _) = inspect(&dir);
    let rows = report["memory"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["dtype"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"
        ]
    );
    for row in rows {
        let dtype = row["dtype"].as_str().unwrap();
        let (bytes, formats) = hand_bytes(&dir, dtype);
        assert_eq!(row["bytes"].as_u64(), Some(bytes), "{dtype}");
        let counts: BTreeMap<String, usize> = row["matrices"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(f, u)| (f.clone(), u["count"].as_u64().unwrap() as usize))
            .collect();
        assert_eq!(counts, formats, "{dtype}");
    }
    // f32 by hand: 130,240 parameters of 4 bytes.
    assert_eq!(rows[0]["bytes"].as_u64(), Some(130_240 * 4));
}

#[test]
fn formats_and_kernels_are_the_ones_the_loader_picks() {
    for (model, dtype) in [
        ("parity/models/llama_base", "q4_k"),
        ("parity/models/llama_base", "q4_0"),
        ("parity/models/qwen2_base", "q6_k"),
        ("parity/models/qwen2_base", "f16"),
        // Fused q/k/v and gate/up matrices, split into layers by the loader.
        ("parity_families/models/phi3_base", "q4_0"),
        ("parity_families/gguf/phi3/phi3.gguf", "q8_0"),
        ("parity_families/gguf/qwen3.gguf", "q5_k"),
    ] {
        let dir = data(model);
        let (report, _, _) = inspect(&dir);
        let row = memory_row(&report, dtype);
        let lm = CausalLm::load(&dir, dtype.parse::<ComputeDtype>().unwrap()).unwrap();
        let mut loaded: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (_, format, kernel) in lm.matrix_kernels() {
            let entry = loaded.entry(format).or_insert((0, kernel.to_string()));
            entry.0 += 1;
        }
        let predicted: BTreeMap<String, (usize, String)> = row["matrices"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(f, u)| {
                let count = u["count"].as_u64().unwrap() as usize;
                (
                    f.clone(),
                    (count, u["kernel"].as_str().unwrap().to_string()),
                )
            })
            .collect();
        assert_eq!(predicted, loaded, "{model} at {dtype}");
    }
}

fn layout(matrices: GgmlDType, embedding: GgmlDType, arch: &'static str) -> GgufLayout {
    GgufLayout {
        matrices,
        embedding,
        arch,
        llama_cpp_order: true,
    }
}

/// Bytes of a GGUF's tensors by llama.cpp's layouts, from the shapes candle reads back.
fn gguf_hand_bytes(file: &Path) -> u64 {
    let mut reader = std::io::BufReader::new(std::fs::File::open(file).unwrap());
    let content = Content::read(&mut reader).unwrap();
    content
        .tensor_infos
        .values()
        .map(|info| {
            let name = format!("{:?}", info.ggml_dtype).to_lowercase();
            let name = match name.as_str() {
                "q4k" => "q4_k".to_string(),
                "q5k" => "q5_k".to_string(),
                "q6k" => "q6_k".to_string(),
                _ => name,
            };
            let (values, bytes) = block(&name);
            info.shape.elem_count() as u64 / values * bytes
        })
        .sum()
}

#[test]
fn a_gguf_file_reports_its_stored_formats_and_sizes() {
    let models = Models::new();
    let dir = data("parity/models/llama_base");
    let folder = models.path("gguf");
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("model.gguf");
    // Attention in q4_0, the MLP in q8_0, the embedding in f16, norms in f32.
    let type_of = |name: &str, t: &candle_core::Tensor| match (name, t.rank()) {
        ("token_embd.weight", _) => GgmlDType::F16,
        (n, 2) if n.contains("attn") => GgmlDType::Q4_0,
        (_, 2) => GgmlDType::Q8_0,
        _ => GgmlDType::F32,
    };
    write_gguf_typed(
        &dir,
        &file,
        layout(GgmlDType::Q8_0, GgmlDType::F16, "llama"),
        &[],
        &type_of,
    );
    // A tokenizer.json beside the file is the one genarm uses.
    std::fs::copy(dir.join("tokenizer.json"), folder.join("tokenizer.json")).unwrap();
    let (report, code, stderr) = inspect(&file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report["format"], "gguf");
    assert_eq!(report["family"], "llama");
    assert_eq!(report["parameters"], 130_240);
    assert!(
        report["tokenizer"]["source"]
            .as_str()
            .unwrap()
            .contains("tokenizer.json")
    );
    let kinds: BTreeMap<String, Json> = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kind"].as_str().unwrap().to_string(), k["stored"].clone()))
        .collect();
    assert_eq!(kinds["attn_q"], serde_json::json!({"q4_0": 2}));
    assert_eq!(kinds["attn_o"], serde_json::json!({"q4_0": 2}));
    assert_eq!(kinds["mlp_down"], serde_json::json!({"q8_0": 2}));
    assert_eq!(kinds["lm_head"], serde_json::json!({"q8_0": 1}));
    assert_eq!(kinds["embeddings"], serde_json::json!({"f16": 1}));
    assert_eq!(kinds["norms"], serde_json::json!({"f32": 5}));
    let rows = report["memory"].as_array().unwrap();
    assert_eq!(rows[0]["dtype"], "as stored");
    assert_eq!(rows[0]["bytes"].as_u64(), Some(gguf_hand_bytes(&file)));
    // At --dtype f32 the stored blocks stay; the f16 embedding becomes f32 (439 x 64 x 4).
    let f32_row = rows.iter().find(|r| r["dtype"] == "f32").unwrap();
    let blocks = 4 * (64 * 64) / 32 * 18 // q and o: 64 x 64, 2 layers, q4_0
        + 4 * (32 * 64) / 32 * 18 // k and v: 32 x 64, 2 layers, q4_0
        + 6 * (128 * 64) / 32 * 34 // gate, up, down: 128 x 64 values, 2 layers, q8_0
        + 439 * 64 / 32 * 34; // lm_head, q8_0
    assert_eq!(
        f32_row["bytes"].as_u64(),
        Some(blocks + 28_096 * 4 + 320 * 4)
    );
}

#[test]
fn refusals_are_the_loaders_lines_and_the_rest_is_still_shown() {
    let models = Models::new();
    let base = data("parity/models/llama_base");
    // Unknown architecture in config.json.
    let arch = models.path("arch");
    copy_model(&base, &arch);
    edit_json(&arch.join("config.json"), |c| {
        c["architectures"] = serde_json::json!(["GPTBigCodeForCausalLM"]);
    });
    // A config whose layer count the weights do not hold.
    let layers = models.path("layers");
    copy_model(&base, &layers);
    edit_json(&layers.join("config.json"), |c| {
        c["num_hidden_layers"] = 3.into()
    });
    // No tokenizer.
    let untokenized = models.path("untokenized");
    copy_model(&base, &untokenized);
    std::fs::remove_file(untokenized.join("tokenizer.json")).unwrap();
    for (dir, needle) in [
        (&arch, "GPTBigCodeForCausalLM"),
        (&layers, "num_hidden_layers is 3"),
        (&untokenized, "no tokenizer.json or tokenizer.model"),
    ] {
        let (report, code, stderr) = inspect(dir);
        assert_eq!(code, Some(1), "{}", dir.display());
        assert!(
            stderr.contains("genarm would refuse this model"),
            "{stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1);
        let listed = refusals(&report);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(listed[0].contains(needle), "{listed:?}");
        assert_eq!(listed[0], loader_error(dir));
        // Everything else is still read.
        assert_eq!(report["parameters"], 130_240);
    }
}

#[test]
fn a_truncated_weight_file_still_inspects_without_reading_the_weights() {
    let models = Models::new();
    let dir = models.path("cut");
    copy_model(&data("parity/models/llama_base"), &dir);
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    // Keep the header and a tenth of the data: the shapes are all there, the values are not.
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    std::fs::write(&file, &bytes[..header + (bytes.len() - header) / 10]).unwrap();
    let (report, code, _) = inspect(&dir);
    assert_eq!(code, Some(1));
    assert_eq!(report["parameters"], 130_240);
    assert_eq!(report["memory"][0]["bytes"].as_u64(), Some(130_240 * 4));
    let listed = refusals(&report);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains("model.safetensors"), "{listed:?}");
    assert_eq!(listed[0], loader_error(&dir));

    // A file of garbage: one line naming it.
    std::fs::write(&file, b"not a safetensors file at all").unwrap();
    let (report, code, _) = inspect(&dir);
    assert_eq!(code, Some(1));
    let listed = refusals(&report);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].contains(&file.display().to_string()),
        "{listed:?}"
    );
    assert_eq!(listed[0], loader_error(&dir));
}

#[test]
fn gguf_refusals_unknown_architecture_pre_tokenizer_and_quant_type() {
    let models = Models::new();
    let base = data("parity/models/llama_base");
    std::fs::create_dir_all(models.path("g")).unwrap();
    // An architecture genarm does not run: listed, the tensors still counted.
    let unknown = models.path("g/unknown.gguf");
    write_gguf(
        &base,
        &unknown,
        layout(GgmlDType::Q8_0, GgmlDType::F32, "gpt5"),
    );
    std::fs::copy(base.join("tokenizer.json"), models.path("g/tokenizer.json")).unwrap();
    let (report, code, _) = inspect(&unknown);
    assert_eq!(code, Some(1));
    let listed = refusals(&report);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains("unsupported GGUF architecture 'gpt5'"));
    assert_eq!(report["architecture"], "gpt5");
    assert_eq!(report["parameters"], 130_240);

    // A byte-level tokenizer whose pre-tokenizer genarm does not know.
    std::fs::create_dir_all(models.path("p")).unwrap();
    let pre = models.path("p/pre.gguf");
    let tokens: Vec<Value> = ["t", "1", "t1"]
        .into_iter()
        .map(str::to_string)
        .chain((3..439).map(|i| format!("x{i}")))
        .map(Value::String)
        .collect();
    let extra = vec![
        (
            "tokenizer.ggml.model".to_string(),
            Value::String("gpt2".into()),
        ),
        (
            "tokenizer.ggml.pre".to_string(),
            Value::String("kimi-k2".into()),
        ),
        ("tokenizer.ggml.tokens".to_string(), Value::Array(tokens)),
        (
            "tokenizer.ggml.merges".to_string(),
            Value::Array(vec![Value::String("t 1".into())]),
        ),
    ];
    write_gguf_with(
        &base,
        &pre,
        layout(GgmlDType::Q8_0, GgmlDType::F32, "llama"),
        &extra,
    );
    let (report, code, _) = inspect(&pre);
    assert_eq!(code, Some(1));
    assert_eq!(report["tokenizer"]["gguf_pre"], "kimi-k2");
    assert_eq!(report["tokenizer"]["pre_known"], false);
    let listed = refusals(&report);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].contains("tokenizer.ggml.pre = 'kimi-k2'"),
        "{listed:?}"
    );
    assert!(listed[0].contains("--tokenizer FILE"), "{listed:?}");
    assert_eq!(listed[0], loader_error(&pre));
    assert_eq!(report["family"], "llama");

    // A file cut short in its data: the loader's line, and the header still described.
    let cut = models.path("g/cut.gguf");
    let bytes = std::fs::read(&unknown).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let (report, code, _) = inspect(&cut);
    assert_eq!(code, Some(1));
    let listed = refusals(&report);
    assert!(
        listed[0].contains("runs past the end of the file"),
        "{listed:?}"
    );
    assert!(listed[0].starts_with(p(&cut)), "{listed:?}");
    assert_eq!(report["parameters"], 130_240);

    // A tensor of a type genarm cannot compute with (IQ2_XXS, ggml type 16): the header is
    // refused, the line names the file and the tensor.
    let iq = models.path("g/iq.gguf");
    let mut bytes = std::fs::read(&unknown).unwrap();
    set_tensor_type(&mut bytes, "output_norm.weight", 16);
    std::fs::write(&iq, bytes).unwrap();
    let (report, code, _) = inspect(&iq);
    assert_eq!(code, Some(1));
    let listed = refusals(&report);
    assert!(!listed.is_empty());
    assert!(listed[0].contains(&iq.display().to_string()), "{listed:?}");
    assert!(listed[0].contains("IQ2_XXS"), "{listed:?}");
}

/// Patch the type of the 1-D tensor `name` in a GGUF file's tensor infos: after the name come
/// the dimension count (u32), one dimension (u64) and the type (u32).
fn set_tensor_type(bytes: &mut [u8], name: &str, ty: u32) {
    let at = bytes
        .windows(name.len())
        .position(|w| w == name.as_bytes())
        .unwrap();
    let type_at = at + name.len() + 4 + 8;
    assert_eq!(
        &bytes[at + name.len()..at + name.len() + 4],
        &1u32.to_le_bytes()
    );
    bytes[type_at..type_at + 4].copy_from_slice(&ty.to_le_bytes());
}

#[test]
fn sentencepiece_folders_and_chat_template_sources() {
    let (report, code, stderr) = inspect(&data("sentencepiece/arm_llama"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        report["tokenizer"]["source"]
            .as_str()
            .unwrap()
            .starts_with("tokenizer.model")
    );
    assert_eq!(report["tokenizer"]["vocab"], 600);
    assert_eq!(report["chat_template"], Json::Null);
    // The metadata tokenizer of a GGUF and its template.
    let (report, _, _) = inspect(&data("gguf_tokenizers/qwen2.gguf"));
    assert_eq!(report["tokenizer"]["source"], "GGUF metadata");
    assert_eq!(report["tokenizer"]["gguf_pre"], "qwen2");
    assert_eq!(report["tokenizer"]["pre_known"], true);
    assert_eq!(report["chat_template"], "GGUF metadata");
    // A folder's template in tokenizer_config.json, then in chat_template.jinja.
    let models = Models::new();
    let dir = models.path("chat");
    copy_model(&data("parity/models/llama_base"), &dir);
    edit_json(&dir.join("tokenizer_config.json"), |c| {
        c["chat_template"] = "{{ messages[0]['content'] }}".into();
    });
    let (report, _, _) = inspect(&dir);
    assert_eq!(report["chat_template"], "tokenizer_config.json");
    edit_json(&dir.join("tokenizer_config.json"), |c| {
        c.as_object_mut().unwrap().remove("chat_template");
    });
    std::fs::write(
        dir.join("chat_template.jinja"),
        "{{ messages[0]['content'] }}",
    )
    .unwrap();
    let (report, _, _) = inspect(&dir);
    assert_eq!(report["chat_template"], "chat_template.jinja");
}

#[test]
fn hub_ids_are_read_from_the_local_cache_only() {
    let cache = tempfile::tempdir().unwrap();
    let hub = cache.path().join("hub");
    let hash = "cccccccccccccccccccccccccccccccccccccccc";
    let repo = hub.join("models--org--tiny");
    let snapshot: PathBuf = repo.join("snapshots").join(hash);
    copy_model(&data("parity/models/qwen2_base"), &snapshot);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), hash).unwrap();
    let env = [("HF_HUB_CACHE", hub.as_path())];
    let (report, code, stderr) = inspect_with(Path::new("org/tiny"), &env);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report["hub_id"], "org/tiny");
    assert_eq!(report["parameters"], 102_656);
    // An id not in the cache: one line, nothing downloaded.
    let out = assert_cmd::Command::cargo_bin("genarm")
        .unwrap()
        .env("HF_HUB_CACHE", &hub)
        .args(["inspect", "org/absent"])
        .output()
        .unwrap();
    let line = one_line_stderr(&out);
    assert!(
        line.contains("org/absent: not in the Hugging Face cache"),
        "{line}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_text_report_names_each_section() {
    let out = genarm(&["inspect", p(&data("parity/models/qwen2_base"))]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "architecture Qwen2ForCausalLM, run as qwen2",
        "parameters   102,656",
        "tokenizer    tokenizer.json, 443 ids",
        "embeddings tied",
        "q4_k",
        "genarm would load this model.",
        "read in place: mapped from the file",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn a_peft_adapter_folder_is_inspected_through_its_base() {
    let models = Models::new();
    let dir = models.path("adapter");
    std::fs::create_dir_all(&dir).unwrap();
    let base = data("parity/models/llama_base");
    let config = serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
        "target_modules": ["q_proj"], "base_model_name_or_path": p(&base)});
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
    let (report, code, stderr) = inspect(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report["format"], "adapter");
    assert_eq!(report["base_model"].as_str(), Some(p(&base)));
    assert_eq!(report["parameters"], 130_240);
    assert_eq!(report["tokenizer"]["vocab"], 439);
    // A base that is not there: the adapter's own line, listed.
    let config = serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
        "base_model_name_or_path": "/nonexistent/base"});
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
    let (report, code, _) = inspect(&dir);
    assert_eq!(code, Some(1));
    let listed = refusals(&report);
    assert!(
        listed.iter().any(|l| l.contains("adapter_config.json")),
        "{listed:?}"
    );
}

/// A tied model quantized at load: the output layer gets its own q8_0 copy, packed in genarm's
/// tiles, and the lookup reads its rows out of those tiles rather than an f32 table
/// (transformer/lookup.rs), so the embedding is held once, as q8_0, where untied Llama holds
/// it in f32.
#[test]
fn a_tied_model_quantized_at_load_looks_up_its_output_blocks() {
    let dir = data("parity/models/qwen2_base");
    let (report, _, _) = inspect(&dir);
    let at = |dtype: &str| {
        report["memory"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dtype"] == dtype)
            .unwrap()["bytes"]
            .as_u64()
            .unwrap()
    };
    let tensors = safetensors_elements(&dir.join("model.safetensors"));
    let (shape, n) = &tensors["model.embed_tokens.weight"];
    assert_eq!(shape[1] % 32, 0, "rows split into q8_0 blocks");
    let q8_0 = n / 32 * 34;
    // hand_bytes counts the embedding once, in f32, and no output layer.
    assert_eq!(at("q8_0"), hand_bytes(&dir, "q8_0").0 - n * 4 + q8_0);
    // In f32 the output layer shares the lookup's table.
    assert_eq!(at("f32"), hand_bytes(&dir, "f32").0);
}

/// The bytes `inspect` says are read in place at a `--dtype` (mapped from the file, shared
/// between processes) are the ones the loader maps (`CausalLm::bytes_in_place`): all dense
/// weights stored in the compute dtype, but a GGUF's reordered Llama q/k rows, a pickle's, a
/// misaligned file's and a base merged with an adapter; an untied embedding's lookup table at a
/// block `--dtype` too.
#[test]
fn bytes_read_in_place_are_the_ones_the_loader_maps() {
    let models = Models::new();
    let llama = data("parity/models/llama_base");
    // An f16 GGUF of Llama, written in llama.cpp's q/k order.
    let f16_gguf = models.path("f16/model.gguf");
    std::fs::create_dir_all(models.path("f16")).unwrap();
    write_gguf(
        &llama,
        &f16_gguf,
        layout(GgmlDType::F16, GgmlDType::F16, "llama"),
    );
    std::fs::copy(
        llama.join("tokenizer.json"),
        models.path("f16/tokenizer.json"),
    )
    .unwrap();
    // The same folder with two bytes more header: every f32 starts off its alignment.
    let misaligned = models.path("misaligned");
    copy_model(&llama, &misaligned);
    let file = misaligned.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut shifted = ((len + 2) as u64).to_le_bytes().to_vec();
    shifted.extend(&bytes[8..8 + len]);
    shifted.extend(b"  ");
    shifted.extend(&bytes[8 + len..]);
    std::fs::write(&file, shifted).unwrap();
    // A LoRA adapter on q_proj of the base.
    let adapter = models.path("adapter");
    std::fs::create_dir_all(&adapter).unwrap();
    let config = serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
        "target_modules": ["q_proj"], "base_model_name_or_path": p(&llama)});
    std::fs::write(adapter.join("adapter_config.json"), config.to_string()).unwrap();
    let key = "base_model.model.model.layers.0.self_attn.q_proj";
    let lora = std::collections::HashMap::from([
        (
            format!("{key}.lora_A.weight"),
            candle_core::Tensor::ones((2, 64), candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap(),
        ),
        (
            format!("{key}.lora_B.weight"),
            candle_core::Tensor::ones((64, 2), candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap(),
        ),
    ]);
    candle_core::safetensors::save(&lora, adapter.join("adapter_model.safetensors")).unwrap();

    let cases: [(PathBuf, &[&str]); 11] = [
        (llama.clone(), &["f32", "f16", "q8_0"]),
        (data("parity/models/qwen2_base"), &["f32", "q8_0"]),
        (data("parity/models/llama_base_bf16"), &["bf16", "f32"]),
        (data("parity/models/llama_base_bin"), &["f32"]),
        (data("parity_families/models/phi3_base"), &["f32", "q4_0"]),
        (
            data("parity_families/gguf/phi3/phi3.gguf"),
            &["f32", "q8_0"],
        ),
        (data("parity_families/gguf/smollm3/smollm3.gguf"), &["f32"]),
        (data("parity_families/gguf/qwen3.gguf"), &["f32"]),
        (f16_gguf.clone(), &["f16", "f32"]),
        (misaligned.clone(), &["f32"]),
        (adapter.clone(), &["f32"]),
    ];
    let mut said = BTreeMap::new();
    for (model, dtypes) in cases {
        let (report, code, stderr) = inspect(&model);
        assert_eq!(code, Some(0), "{}: {stderr}", model.display());
        for &dtype in dtypes {
            let row = memory_row(&report, dtype);
            let predicted = row["in_place_bytes"].as_u64().unwrap();
            let lm = CausalLm::load(&model, dtype.parse::<ComputeDtype>().unwrap()).unwrap();
            let mapped = lm.bytes_in_place() as u64;
            assert_eq!(predicted, mapped, "{} at {dtype}", model.display());
            assert!(predicted <= row["bytes"].as_u64().unwrap());
            said.insert((model.clone(), dtype), predicted);
        }
    }
    // The cases above cover both outcomes: what is mapped and what is not.
    let at = |m: &Path, d: &'static str| said[&(m.to_path_buf(), d)];
    let dense = hand_bytes(&llama, "f32").0;
    let norms = 64 * 4 * (2 * 2 + 1);
    assert_eq!(
        at(&llama, "f32"),
        dense - norms,
        "every matrix of the f32 folder"
    );
    assert_eq!(at(&llama, "f16"), 0, "converted at load");
    assert_eq!(
        at(&llama, "q8_0"),
        439 * 64 * 4,
        "the untied embedding's table"
    );
    assert_eq!(at(&data("parity/models/llama_base_bin"), "f32"), 0);
    assert_eq!(at(&misaligned, "f32"), 0);
    assert_eq!(at(&adapter, "f32"), 0);
    // Half of the f32 matrices' bytes, less the reordered q (64 x 64) and k (32 x 64) rows of
    // each of the 2 layers.
    let qk = 2 * (64 * 64 + 32 * 64) * 2;
    assert_eq!(at(&f16_gguf, "f16"), (dense - norms) / 2 - qk);
    assert_eq!(at(&f16_gguf, "f32"), 0);
}

/// The report's memory row for one `--dtype`.
fn memory_row(report: &Json, dtype: &str) -> Json {
    report["memory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dtype"] == dtype)
        .unwrap_or_else(|| panic!("no memory row for {dtype}"))
        .clone()
}
