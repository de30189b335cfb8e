//! Reading a llama.cpp GGUF file as our model: the config from its `llama.*` / `qwen2.*` /
//! `qwen3.*` / `olmo2.*` metadata, its tensors renamed to Hugging Face names, and the q/k row order llama.cpp's
//! converter changes for Llama put back, so the same decoder runs it. Quantized tensors stay
//! quantized (see `linear.rs`); f32/f16/bf16 ones become dense tensors of the compute dtype.
//!
//! This module is about weights and config only. The tokenizer comes from a `tokenizer.json`
//! beside the file or named with `--tokenizer`, else from the file's `tokenizer.ggml.*`
//! metadata: see `gguf_tokenizer.rs` (and `CausalLm::load_gguf` for the order).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use serde_json::json;

use crate::engine::error::{EngineError, Result};
use crate::engine::formats::gguf_header::{self, shown};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::preflight;
use crate::engine::model::weights::Weights;

/// Whether `path` names a GGUF file (rather than a model folder).
pub fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// What a GGUF file holds, in our terms.
pub struct GgufModel {
    pub config: ModelConfig,
    pub weights: Weights,
    /// `tokenizer.ggml.eos_token_id`, when present.
    pub eos_id: Option<u32>,
}

/// The GGUF architectures we run and the Hugging Face class each corresponds to.
const ARCHITECTURES: &[(&str, &str)] = &[
    ("llama", "LlamaForCausalLM"),
    ("qwen2", "Qwen2ForCausalLM"),
    ("qwen3", "Qwen3ForCausalLM"),
    ("olmo2", "Olmo2ForCausalLM"),
];

pub fn load(path: &Path, dtype: DType, device: &Device) -> Result<GgufModel> {
    let (content, header, mut reader) = gguf_header::read(path)?;
    let meta = Meta {
        map: &content.metadata,
        path,
    };
    let arch = meta.string("general.architecture")?;
    let Some((_, hf_class)) = ARCHITECTURES.iter().find(|(a, _)| *a == arch) else {
        let known: Vec<&str> = ARCHITECTURES.iter().map(|(a, _)| *a).collect();
        return Err(EngineError::invalid(
            path,
            format!(
                "unsupported GGUF architecture '{}' (supported: {})",
                shown(&arch),
                known.join(", ")
            ),
        ));
    };
    if content.tensor_infos.contains_key("rope_freqs.weight") {
        return Err(EngineError::invalid(
            path,
            "per-frequency rope factors (rope_freqs, Llama 3.1 style scaling) are not supported in GGUF",
        ));
    }
    let config = meta.config(&arch, hf_class, &content)?;
    // Dense tensors become the compute dtype; quantized ones stay as stored.
    let needed: u64 = header
        .tensors
        .iter()
        .filter(|t| hf_name(&t.name).is_some())
        .map(|t| match t.kind.block {
            1 => t.bytes / (t.kind.block_bytes) * dtype.size_in_bytes() as u64,
            _ => t.bytes,
        })
        .sum();
    preflight::check_memory(path, needed, dtype.as_str())?;

    let mut tensors = HashMap::new();
    let mut quantized = HashMap::new();
    for gguf_name in content.tensor_infos.keys() {
        let Some(name) = hf_name(gguf_name) else {
            continue;
        };
        let q = content
            .tensor(&mut reader, gguf_name, device)
            .map_err(|e| bad(path, &format!("cannot read tensor '{gguf_name}'"), e))?;
        // llama.cpp's converter reorders the rows of Llama's q and k projections so that its
        // rotary kernel can rotate adjacent pairs; ours rotates halves, as transformers does.
        let heads = match (arch.as_str(), name.rsplit('.').nth(1)) {
            ("llama", Some("q_proj")) => Some(config.num_attention_heads),
            ("llama", Some("k_proj")) => Some(config.num_key_value_heads),
            _ => None,
        };
        let order = match heads {
            None => None,
            Some(h) => {
                // Each head's rows come in pairs (found by the fuzzer: fewer rows than heads
                // divided by zero); the decoder checks the exact shape later.
                let rows = q.shape().dims().first().copied().unwrap_or(0);
                if q.shape().rank() != 2 || rows == 0 || rows % (2 * h) != 0 {
                    return Err(EngineError::invalid(
                        path,
                        format!(
                            "tensor '{}' has shape {:?}, not {h} heads of an even number of rows",
                            shown(gguf_name),
                            q.shape().dims()
                        ),
                    ));
                }
                Some(halves_from_pairs(rows, h))
            }
        };
        match q.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                let stored = match q.dtype() {
                    GgmlDType::F32 => DType::F32,
                    GgmlDType::F16 => DType::F16,
                    _ => DType::BF16,
                };
                if let Some(i) = preflight::first_non_finite(&q.data()?, stored) {
                    return Err(preflight::non_finite_error(path, gguf_name, i));
                }
                let mut t = q
                    .dequantize(device)
                    .and_then(|t| t.to_dtype(dtype))
                    .map_err(|e| bad(path, &format!("cannot read tensor '{gguf_name}'"), e))?;
                if let Some(order) = &order {
                    let index = Tensor::new(order.as_slice(), device)?;
                    t = t.index_select(&index, 0)?;
                }
                tensors.insert(name, t);
            }
            _ => {
                let q = match &order {
                    Some(order) => permute_rows(&q, order)?,
                    None => q,
                };
                quantized.insert(name, Arc::new(q));
            }
        }
    }
    let eos_id = content
        .metadata
        .get("tokenizer.ggml.eos_token_id")
        .and_then(|v| v.to_u32().ok());
    Ok(GgufModel {
        config,
        weights: Weights::from_parts(tensors, quantized, dtype, path.to_path_buf()),
        eos_id,
    })
}

/// Our (Hugging Face) name for a llama.cpp tensor name; None for tensors we do not use.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, param) = rest.rsplit_once('.')?;
    let ours = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        // Qwen3 and OLMo 2: q/k norms; OLMo 2's norms after attention and the MLP.
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "post_attention_norm" => "post_attention_layernorm",
        "post_ffw_norm" => "post_feedforward_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{ours}.{param}"))
}

/// Row order that undoes llama.cpp's q/k permutation: within each head of `d` rows, the
/// converter stores Hugging Face row `j·d/2 + i` at row `2i + j`, so our row `r` is read from
/// there.
fn halves_from_pairs(rows: usize, heads: usize) -> Vec<u32> {
    let d = rows / heads.max(1);
    let half = d / 2;
    (0..rows)
        .map(|r| {
            let (head, within) = (r / d, r % d);
            let (j, i) = (within / half, within % half);
            (head * d + 2 * i + j) as u32
        })
        .collect()
}

/// A quantized matrix with its rows reordered: rows are whole blocks, so this moves bytes.
fn permute_rows(q: &QTensor, order: &[u32]) -> Result<QTensor> {
    let (rows, _) = q.shape().dims2()?;
    let data = q.data()?;
    let row_bytes = data.len() / rows;
    let mut out = Vec::with_capacity(data.len());
    for &src in order {
        let start = src as usize * row_bytes;
        out.extend_from_slice(&data[start..start + row_bytes]);
    }
    let storage = QStorage::from_data(Cow::Owned(out), &q.device(), q.dtype())?;
    Ok(QTensor::new(storage, q.shape().clone())?)
}

fn bad(path: &Path, what: &str, e: candle_core::Error) -> EngineError {
    let text = e.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("unreadable")
        .trim()
        .to_string();
    EngineError::invalid(path, format!("{what}: {first}"))
}

struct Meta<'a> {
    map: &'a HashMap<String, Value>,
    path: &'a Path,
}

impl Meta<'_> {
    fn missing(&self, key: &str) -> EngineError {
        EngineError::invalid(self.path, format!("GGUF metadata has no '{key}'"))
    }

    fn string(&self, key: &str) -> Result<String> {
        let v = self.map.get(key).ok_or_else(|| self.missing(key))?;
        v.to_string()
            .cloned()
            .map_err(|_| EngineError::invalid(self.path, format!("GGUF '{key}' is not a string")))
    }

    fn opt_u64(&self, key: &str) -> Option<u64> {
        self.map.get(key).and_then(|v| v.to_u64().ok())
    }

    fn u64(&self, key: &str) -> Result<u64> {
        self.opt_u64(key).ok_or_else(|| self.missing(key))
    }

    /// A float value; a NaN or infinity is refused here, because JSON (the config it becomes)
    /// cannot hold one and would silently read it as missing.
    fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.map.get(key).and_then(|v| v.to_f32().ok()) {
            Some(v) if !v.is_finite() => Err(EngineError::invalid(
                self.path,
                format!("GGUF '{key}' is {v}; it must be a finite number"),
            )),
            v => Ok(v),
        }
    }

    /// The config.json transformers would have written for this model, read by the same code
    /// as a model folder's.
    fn config(&self, arch: &str, hf_class: &str, content: &Content) -> Result<ModelConfig> {
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = self.u64(&key("embedding_length"))?;
        let heads = self.u64(&key("attention.head_count"))?;
        let embed = content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| {
                EngineError::invalid(self.path, "GGUF has no tensor 'token_embd.weight'")
            })?;
        let vocab = self
            .opt_u64(&key("vocab_size"))
            .unwrap_or(embed.shape.dims()[0] as u64);
        let mut cfg = json!({
            "architectures": [hf_class],
            "vocab_size": vocab,
            "hidden_size": hidden,
            "intermediate_size": self.u64(&key("feed_forward_length"))?,
            "num_hidden_layers": self.u64(&key("block_count"))?,
            "num_attention_heads": heads,
            "num_key_value_heads": self.opt_u64(&key("attention.head_count_kv")).unwrap_or(heads),
            "head_dim": self.opt_u64(&key("attention.key_length")).unwrap_or(hidden / heads.max(1)),
            "rms_norm_eps": self.opt_f32(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5),
            "rope_theta": self.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            "tie_word_embeddings": !content.tensor_infos.contains_key("output.weight"),
            "attention_bias": content.tensor_infos.contains_key("blk.0.attn_q.bias"),
        });
        if let Some(context) = self.opt_u64(&key("context_length")) {
            cfg["max_position_embeddings"] = json!(context);
        }
        match self
            .map
            .get(&key("rope.scaling.type"))
            .and_then(|v| v.to_string().ok())
        {
            None => {}
            Some(t) if t == "none" => {}
            Some(t) if t == "linear" => {
                let factor = self.opt_f32(&key("rope.scaling.factor"))?.unwrap_or(1.0);
                cfg["rope_scaling"] = json!({"rope_type": "linear", "factor": factor});
            }
            Some(other) => {
                return Err(EngineError::invalid(
                    self.path,
                    format!("unsupported GGUF rope scaling '{}'", shown(other)),
                ));
            }
        }
        ModelConfig::from_json(&cfg).map_err(|msg| EngineError::invalid(self.path, msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_names_map_to_hugging_face_names() {
        assert_eq!(
            hf_name("blk.3.attn_output.weight").as_deref(),
            Some("model.layers.3.self_attn.o_proj.weight")
        );
        assert_eq!(
            hf_name("blk.0.attn_q.bias").as_deref(),
            Some("model.layers.0.self_attn.q_proj.bias")
        );
        assert_eq!(hf_name("output.weight").as_deref(), Some("lm_head.weight"));
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn row_order_undoes_the_pair_interleaving() {
        // One head of 4 rows: llama.cpp stores HF rows [0, 1, 2, 3] as [0, 2, 1, 3].
        assert_eq!(halves_from_pairs(4, 1), vec![0, 2, 1, 3]);
        // Two heads of 4: each head separately.
        assert_eq!(halves_from_pairs(8, 2), vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }
}
