//! Writing a model folder as llama.cpp's converter would (names, q/k permutation for Llama,
//! metadata), with candle's GGUF writer, so the tests can check that genarm reads it back.

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

/// How the test GGUF stores each tensor.
#[derive(Clone, Copy)]
pub struct GgufLayout {
    /// Format of the 2-D projection and output matrices.
    pub matrices: GgmlDType,
    /// Format of the token embedding.
    pub embedding: GgmlDType,
    /// The `general.architecture` to write ("llama", "qwen2", or something unsupported).
    pub arch: &'static str,
    /// Apply llama.cpp's q/k row permutation to Llama-family models (false only to check
    /// that a file without it is told apart).
    pub llama_cpp_order: bool,
}

/// llama.cpp's `permute`: per head, rows (2, d/2) become (d/2, 2), so that rotary pairs are
/// adjacent. Written with tensor reshapes, independently of genarm's byte-level inverse.
fn llama_cpp_permute(w: &Tensor, heads: usize) -> Tensor {
    let (rows, cols) = w.dims2().unwrap();
    w.reshape((heads, 2, rows / heads / 2, cols))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((rows, cols))
        .unwrap()
}

fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, rest) = rest.split_once('.').unwrap();
    let renames = [
        ("input_layernorm.", "attn_norm."),
        ("post_attention_layernorm.", "ffn_norm."),
        ("self_attn.q_proj.", "attn_q."),
        ("self_attn.k_proj.", "attn_k."),
        ("self_attn.v_proj.", "attn_v."),
        ("self_attn.o_proj.", "attn_output."),
        ("mlp.gate_proj.", "ffn_gate."),
        ("mlp.up_proj.", "ffn_up."),
        ("mlp.down_proj.", "ffn_down."),
    ];
    let (from, to) = renames.iter().find(|(f, _)| rest.starts_with(f)).unwrap();
    format!("blk.{layer}.{to}{}", &rest[from.len()..])
}

/// Convert the model folder `dir` (config.json + model.safetensors) to the GGUF file `out`.
pub fn write_gguf(dir: &Path, out: &Path, layout: GgufLayout) {
    write_gguf_with(dir, out, layout, &[]);
}

/// [`write_gguf`] with more metadata (`tokenizer.ggml.*`, say); a key given here replaces the
/// one `write_gguf` would write.
pub fn write_gguf_with(dir: &Path, out: &Path, layout: GgufLayout, extra: &[(String, Value)]) {
    let type_of = |gguf: &str, t: &Tensor| match (gguf, t.rank()) {
        ("token_embd.weight", _) => layout.embedding,
        (_, 2) => layout.matrices,
        _ => GgmlDType::F32,
    };
    write_gguf_typed(dir, out, layout, extra, &type_of);
}

/// [`write_gguf_with`] with each tensor's format chosen by `type_of(gguf name, tensor)` (the
/// tensor as written: q/k rows already permuted) instead of the layout's two formats.
pub fn write_gguf_typed(
    dir: &Path,
    out: &Path,
    layout: GgufLayout,
    extra: &[(String, Value)],
    type_of: &dyn Fn(&str, &Tensor) -> GgmlDType,
) {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let get = |k: &str| config[k].as_u64().unwrap() as u32;
    let heads = get("num_attention_heads") as usize;
    let kv_heads = get("num_key_value_heads") as usize;
    let permute = layout.llama_cpp_order
        && matches!(
            config["architectures"][0].as_str(),
            Some("LlamaForCausalLM" | "MistralForCausalLM")
        );
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut named: Vec<(String, QTensor)> = Vec::new();
    for (hf, t) in &tensors {
        let mut t = t.clone();
        if permute && hf.ends_with("q_proj.weight") {
            t = llama_cpp_permute(&t, heads);
        }
        if permute && hf.ends_with("k_proj.weight") {
            t = llama_cpp_permute(&t, kv_heads);
        }
        let name = gguf_name(hf);
        let format = type_of(&name, &t);
        named.push((name, QTensor::quantize(&t, format).unwrap()));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let arch = layout.arch;
    let key = |k: &str| format!("{arch}.{k}");
    let theta = config["rope_parameters"]["rope_theta"]
        .as_f64()
        .unwrap_or(10_000.0) as f32;
    let metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (
            key("context_length"),
            Value::U32(get("max_position_embeddings")),
        ),
        (key("embedding_length"), Value::U32(get("hidden_size"))),
        (key("block_count"), Value::U32(get("num_hidden_layers"))),
        (
            key("feed_forward_length"),
            Value::U32(get("intermediate_size")),
        ),
        (key("attention.head_count"), Value::U32(heads as u32)),
        (key("attention.head_count_kv"), Value::U32(kv_heads as u32)),
        (
            key("attention.layer_norm_rms_epsilon"),
            Value::F32(config["rms_norm_eps"].as_f64().unwrap() as f32),
        ),
        (key("rope.freq_base"), Value::F32(theta)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
    ];
    let mut metadata: Vec<(String, Value)> = metadata
        .into_iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .collect();
    metadata.extend(extra.iter().cloned());
    let meta_refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(out).unwrap();
    gguf_file::write(&mut file, &meta_refs, &tensor_refs).unwrap();
}

/// Copy the GGUF file `from` to `to` with every tensor dequantized to f32 (metadata as is):
/// the same weights, for a reference run without quantized kernels.
pub fn write_dequantized(from: &Path, to: &Path) {
    let mut reader = std::io::BufReader::new(std::fs::File::open(from).unwrap());
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let tensors: Vec<(String, QTensor)> = names
        .into_iter()
        .map(|name| {
            let q = content.tensor(&mut reader, name, &Device::Cpu).unwrap();
            let dense = q.dequantize(&Device::Cpu).unwrap();
            (
                name.clone(),
                QTensor::quantize(&dense, GgmlDType::F32).unwrap(),
            )
        })
        .collect();
    let mut metadata: Vec<(&String, &Value)> = content.metadata.iter().collect();
    metadata.sort_by(|a, b| a.0.cmp(b.0));
    let meta_refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(to).unwrap();
    gguf_file::write(&mut file, &meta_refs, &tensor_refs).unwrap();
}
