//! Reading a llama.cpp GGUF file as our model: the config from its `<arch>.*` metadata, its
//! tensors renamed to Hugging Face names, and the q/k row order llama.cpp's converter changes
//! for Llama (and SmolLM3) put back, so the same decoder runs it. Quantized tensors stay
//! quantized (see `linear.rs`); f32/f16/bf16 ones become dense tensors of the compute dtype.
//!
//! What llama.cpp does not read from the file but hard-codes per architecture (its
//! `src/models/<arch>.cpp`), the config supplies the same way (see `FamilyDefaults`): Gemma 2's
//! and Gemma 3's attention scale and sliding-window layer pattern, SmolLM3's no-rope interval,
//! Phi-3 without its sliding window. The converter stores Gemma's norm weights as 1 + w, and
//! Phi-3's LongRoPE factors as tensors.
//!
//! This module is about weights and config only. The tokenizer comes from a `tokenizer.json`
//! beside the file or named with `--tokenizer`, else from the file's `tokenizer.ggml.*`
//! metadata: see `gguf_tokenizer.rs` (and `CausalLm::load_gguf` for the order).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use serde_json::json;

use crate::engine::error::{EngineError, Result};
use crate::engine::formats::gguf_header::{self, shown};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::mapped::{FileMap, MappedMatrix};
use crate::engine::model::preflight;
use crate::engine::model::weights::{LazyTensor, Stored, Weights};

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
    ("gemma2", "Gemma2ForCausalLM"),
    ("gemma3", "Gemma3ForCausalLM"),
    ("smollm3", "SmolLM3ForCausalLM"),
    ("phi3", "Phi3ForCausalLM"),
];

/// The architectures whose q/k rows llama.cpp's converter interleaves (its `LlamaModel`
/// subclasses): rotary pairs adjacent instead of in halves.
const PERMUTED_QK: &[&str] = &["llama", "smollm3"];

pub fn load(path: &Path, dtype: DType, device: &Device) -> Result<GgufModel> {
    let (content, header, mut reader) = gguf_header::read(path)?;
    let (arch, config) = read_config(path, &content, &mut reader, device)?;
    // Dense tensors become the compute dtype; quantized ones stay as stored.
    let needed: u64 = header
        .tensors
        .iter()
        .filter(|t| hf_name(&arch, &t.name).is_some())
        .map(|t| match t.kind.block {
            1 => t.bytes / (t.kind.block_bytes) * dtype.size_in_bytes() as u64,
            _ => t.bytes,
        })
        .sum();
    preflight::check_memory(path, needed, dtype.as_str())?;

    // Every tensor is read when its layer is built (see `Weights`): one source copy at a time.
    let eos_id = content
        .metadata
        .get("tokenizer.ggml.eos_token_id")
        .and_then(|v| v.to_u32().ok());
    let content = Arc::new(content);
    let reader = Arc::new(Mutex::new(reader));
    // Where the file cannot be mapped (a 32-bit address space), its tensors are copied.
    let file_map = FileMap::open(path).ok();
    let mut lazy = HashMap::new();
    for (gguf_name, info) in &content.tensor_infos {
        let Some(name) = hf_name(&arch, gguf_name) else {
            continue;
        };
        let shape = info.shape.dims().to_vec();
        let order = qk_row_order(path, &arch, &config, &name, gguf_name, &shape)?;
        let quantized = !matches!(
            info.ggml_dtype,
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16
        );
        let source = TensorSource {
            path: path.to_path_buf(),
            content: content.clone(),
            reader: reader.clone(),
            gguf_name: gguf_name.clone(),
            order,
            device: device.clone(),
        };
        let map = match (&source.order, &file_map) {
            (None, Some(file_map)) => matrix_in_place(file_map, &content, gguf_name, info),
            _ => None,
        };
        let read = Box::new(move || source.read());
        lazy.insert(
            name,
            LazyTensor {
                shape,
                quantized,
                read,
                // GGUF tensors are read whole; their rows are blocks, not values.
                rows: None,
                map,
            },
        );
    }
    Ok(GgufModel {
        config,
        weights: Weights::from_lazy(lazy, dtype, path.to_path_buf()),
        eos_id,
    })
}

/// The architecture and the config of the GGUF file `path` whose header `content` was read:
/// its metadata and tensor list only (and Phi-3's small rope factor tensors), no weights.
/// `genarm inspect` reads a file this far.
pub fn read_config<R: std::io::Seek + std::io::Read>(
    path: &Path,
    content: &Content,
    reader: &mut R,
    device: &Device,
) -> Result<(String, ModelConfig)> {
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
    let rope_factors = read_rope_factors(path, content, reader, device)?;
    let config = meta.config(&arch, hf_class, content, rope_factors)?;
    Ok((arch, config))
}

/// The f32, f16 or bf16 matrix `gguf_name` in place in the mapped file (see `mapped.rs`),
/// where it can be read so; None for other tensors.
fn matrix_in_place(
    map: &Arc<FileMap>,
    content: &Content,
    gguf_name: &str,
    info: &TensorInfo,
) -> Option<MappedMatrix> {
    let dtype = match info.ggml_dtype {
        GgmlDType::F32 => DType::F32,
        GgmlDType::F16 => DType::F16,
        GgmlDType::BF16 => DType::BF16,
        _ => return None,
    };
    let &[rows, cols] = info.shape.dims() else {
        return None;
    };
    let offset = content.tensor_data_offset.checked_add(info.offset)?;
    MappedMatrix::new(
        map,
        gguf_name,
        usize::try_from(offset).ok()?,
        rows,
        cols,
        dtype,
    )
}

/// One tensor of a GGUF file, read on request (`Weights`): the file's reader is shared by all.
struct TensorSource {
    path: PathBuf,
    content: Arc<Content>,
    reader: Arc<Mutex<BufReader<File>>>,
    gguf_name: String,
    /// Our row order where llama.cpp's converter reordered the rows (`qk_row_order`).
    order: Option<Vec<u32>>,
    device: Device,
}

impl TensorSource {
    fn read(&self) -> Result<Stored> {
        let (path, gguf_name) = (&self.path, &self.gguf_name);
        let cannot = |e| bad(path, &format!("cannot read tensor '{gguf_name}'"), e);
        let q = {
            let mut reader = self
                .reader
                .lock()
                .map_err(|_| EngineError::invalid(path, "reader poisoned by an earlier panic"))?;
            self.content
                .tensor(&mut *reader, gguf_name, &self.device)
                .map_err(cannot)?
        };
        let stored = match q.dtype() {
            GgmlDType::F32 => DType::F32,
            GgmlDType::F16 => DType::F16,
            GgmlDType::BF16 => DType::BF16,
            _ => {
                return Ok(Stored::Quantized(match &self.order {
                    Some(order) => permute_rows(&q, order)?,
                    None => q,
                }));
            }
        };
        if let Some(i) = preflight::first_non_finite(&q.data()?, stored) {
            return Err(preflight::non_finite_error(path, gguf_name, i));
        }
        let mut t = match stored {
            // candle's dequantize would widen half tensors to f32 (twice their bytes, for the
            // moment of the copy): their bytes are taken as they are.
            DType::F16 => half_tensor(&q, half::f16::from_le_bytes, &self.device)?,
            DType::BF16 => half_tensor(&q, half::bf16::from_le_bytes, &self.device)?,
            _ => q.dequantize(&self.device).map_err(cannot)?,
        };
        if let Some(order) = &self.order {
            let index = Tensor::new(order.as_slice(), &self.device)?;
            t = t.index_select(&index, 0)?;
        }
        Ok(Stored::Dense(t))
    }
}

/// A stored f16 or bf16 tensor as a dense tensor of the same dtype (little-endian values).
fn half_tensor<T: candle_core::WithDType>(
    q: &QTensor,
    from_le: fn([u8; 2]) -> T,
    device: &Device,
) -> Result<Tensor> {
    let data = q.data()?;
    let values: Vec<T> = data
        .chunks_exact(2)
        .map(|b| from_le([b[0], b[1]]))
        .collect();
    Ok(Tensor::from_vec(values, q.shape().dims(), device)?)
}

/// Whether llama.cpp's converter reordered the rows of tensor `name` (our name) in a file of
/// architecture `arch`: Llama's q and k projections, which are then copied into our order at
/// load rather than read in place.
pub fn rows_reordered(arch: &str, name: &str) -> bool {
    PERMUTED_QK.contains(&arch) && matches!(name.rsplit('.').nth(1), Some("q_proj" | "k_proj"))
}

/// The row order that undoes llama.cpp's q/k permutation for tensor `name` (our name) of shape
/// `shape`, None for the tensors it leaves alone. llama.cpp's converter reorders the rows of
/// Llama's q and k projections so that its rotary kernel can rotate adjacent pairs; ours
/// rotates halves, as transformers does.
fn qk_row_order(
    path: &Path,
    arch: &str,
    config: &ModelConfig,
    name: &str,
    gguf_name: &str,
    shape: &[usize],
) -> Result<Option<Vec<u32>>> {
    if !rows_reordered(arch, name) {
        return Ok(None);
    }
    let heads = match name.rsplit('.').nth(1) {
        Some("q_proj") => config.num_attention_heads,
        _ => config.num_key_value_heads,
    };
    // Each head's rows come in pairs (found by the fuzzer: fewer rows than heads divided by
    // zero); the decoder checks the exact shape later.
    let rows = shape.first().copied().unwrap_or(0);
    if shape.len() != 2 || rows == 0 || rows % (2 * heads) != 0 {
        return Err(EngineError::invalid(
            path,
            format!(
                "tensor '{}' has shape {shape:?}, not {heads} heads of an even number of rows",
                shown(gguf_name),
            ),
        ));
    }
    Ok(Some(halves_from_pairs(rows, heads)))
}
/// Our (Hugging Face) name for a llama.cpp tensor name of architecture `arch`; None for
/// tensors we do not use.
pub fn hf_name(arch: &str, gguf: &str) -> Option<String> {
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
    let gemma = matches!(arch, "gemma2" | "gemma3");
    let ours = match module {
        "attn_norm" => "input_layernorm",
        // Gemma's norm before the MLP; the others' second (and only other) pre-norm.
        "ffn_norm" if gemma => "pre_feedforward_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        // Phi-3: q/k/v in one matrix, and gate and up in one (`ffn_up`, twice as many rows).
        "attn_qkv" => "self_attn.qkv_proj",
        "ffn_up" if arch == "phi3" => "mlp.gate_up_proj",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        // Qwen3, Gemma 3 and OLMo 2: q/k norms; Gemma's and OLMo 2's norms after attention
        // and the MLP.
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
    fn config(
        &self,
        arch: &str,
        hf_class: &str,
        content: &Content,
        rope_factors: Option<RopeFactors>,
    ) -> Result<ModelConfig> {
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
        self.family_config(arch, &mut cfg, rope_factors)?;
        let mut config =
            ModelConfig::from_json(&cfg).map_err(|msg| EngineError::invalid(self.path, msg))?;
        if matches!(arch, "gemma2" | "gemma3") {
            // The converter stored every Gemma norm weight as 1 + w already.
            config.norm_weight_offset = 0.0;
        }
        Ok(config)
    }

    /// What llama.cpp's `src/models/<arch>.cpp` hard-codes or derives for an architecture
    /// rather than reading it from the file, written as the config.json keys transformers
    /// reads, so that the file runs here as it runs in llama.cpp.
    fn family_config(
        &self,
        arch: &str,
        cfg: &mut serde_json::Value,
        rope_factors: Option<RopeFactors>,
    ) -> Result<()> {
        let key = |k: &str| format!("{arch}.{k}");
        let number = |name: &str| cfg[name].as_u64().unwrap_or(0);
        let (hidden, heads, head_dim) = (
            number("hidden_size"),
            number("num_attention_heads"),
            number("head_dim"),
        );
        let layers = number("num_hidden_layers");
        if layers > crate::engine::model::config::MAX_LAYERS as u64 {
            // The config refuses the count in one line; no per-layer lists of that size first.
            return Ok(());
        }
        match arch {
            "gemma2" | "gemma3" => {
                // llama.cpp scales queries by 1/sqrt(head_dim), except in the 27B sizes
                // (46 and 62 layers), where it uses hidden / heads (Gemma's own rule).
                let big = (arch == "gemma2" && layers == 46) || (arch == "gemma3" && layers == 62);
                cfg["query_pre_attn_scalar"] =
                    json!(if big { hidden / heads.max(1) } else { head_dim });
                self.gemma_layers(arch, cfg, layers)?;
                let final_cap = self.opt_f32(&key("final_logit_softcapping"))?;
                if arch == "gemma2" {
                    let attn_cap = self.opt_f32(&key("attn_logit_softcapping"))?;
                    cfg["attn_logit_softcapping"] = json!(attn_cap.unwrap_or(50.0));
                    cfg["final_logit_softcapping"] = json!(final_cap.unwrap_or(30.0));
                } else {
                    cfg["final_logit_softcapping"] = json!(final_cap);
                }
            }
            // Rope left out on every 4th layer; no sliding window.
            "smollm3" => {
                cfg["no_rope_layer_interval"] = json!(4);
                cfg["use_sliding_window"] = json!(false);
            }
            "phi3" => {
                // llama.cpp runs Phi-3 without its sliding window.
                cfg["sliding_window"] = serde_json::Value::Null;
                let mut rope = json!({"rope_type": "default", "rope_theta": cfg["rope_theta"]});
                if let Some(dims) = self.opt_u64(&key("rope.dimension_count")) {
                    rope["partial_rotary_factor"] = json!(dims as f64 / head_dim.max(1) as f64);
                }
                if let Some(f) = rope_factors {
                    rope["rope_type"] = json!("longrope");
                    rope["short_factor"] = json!(f.short);
                    rope["long_factor"] = json!(f.long);
                    let original = self.u64(&key("rope.scaling.original_context_length"))?;
                    rope["original_max_position_embeddings"] = json!(original);
                    if let Some(a) = self.opt_f32(&key("rope.scaling.attn_factor"))? {
                        rope["attention_factor"] = json!(a);
                    }
                }
                cfg["rope_parameters"] = rope;
            }
            _ => {}
        }
        Ok(())
    }

    /// Gemma's sliding-window layers as llama.cpp derives them: the window from the file (Gemma
    /// 2: 4096 when absent; Gemma 3: none when absent or 0), the layers from the file's
    /// `attention.sliding_window_pattern` (a list of flags, or n: all but every n-th layer),
    /// else every 2nd (Gemma 2) or 6th (Gemma 3) layer global; Gemma 3's local rope base
    /// from `rope.freq_base_swa`, else 10000.
    fn gemma_layers(&self, arch: &str, cfg: &mut serde_json::Value, layers: u64) -> Result<()> {
        let key = |k: &str| format!("{arch}.{k}");
        let window = self.opt_u64(&key("attention.sliding_window"));
        let (window, pattern) = match arch {
            "gemma2" => (Some(window.unwrap_or(4096)), 2),
            _ => (window.filter(|&w| w > 0), 6),
        };
        let sliding = match window {
            None => vec![false; layers as usize],
            Some(w) => {
                cfg["sliding_window"] = json!(w);
                self.swa_layers(&key("attention.sliding_window_pattern"), pattern, layers)?
            }
        };
        let types: Vec<&str> = sliding
            .iter()
            .map(|&s| {
                if s {
                    "sliding_attention"
                } else {
                    "full_attention"
                }
            })
            .collect();
        cfg["layer_types"] = json!(types);
        let local_theta = self.opt_f32(&key("rope.freq_base_swa"))?;
        if arch == "gemma2" {
            // Gemma 2 has one rope for all layers; a file with another local base is not one
            // transformers could have written.
            if local_theta.is_some_and(|t| Some(f64::from(t)) != cfg["rope_theta"].as_f64()) {
                return Err(EngineError::invalid(
                    self.path,
                    format!(
                        "GGUF '{}' differs from the rope base: not supported for Gemma 2",
                        key("rope.freq_base_swa")
                    ),
                ));
            }
            return Ok(());
        }
        let mut global = json!({"rope_type": "default", "rope_theta": cfg["rope_theta"]});
        if let Some(factor) = cfg["rope_scaling"]["factor"].as_f64() {
            global =
                json!({"rope_type": "linear", "factor": factor, "rope_theta": cfg["rope_theta"]});
        }
        cfg["rope_parameters"] = json!({
            "full_attention": global,
            "sliding_attention": {"rope_type": "default", "rope_theta": local_theta.unwrap_or(10_000.0)},
        });
        Ok(())
    }

    /// Which of `layers` layers slide: the flags stored under `key`, or the pattern number
    /// stored there (else `default`) as llama.cpp's `set_swa_pattern` reads it: layer i
    /// slides unless i % n == n - 1 (n = 0: every layer slides).
    fn swa_layers(&self, key: &str, default: u64, layers: u64) -> Result<Vec<bool>> {
        let bad = || {
            EngineError::invalid(
                self.path,
                format!("GGUF '{key}' must be a number or one flag per layer"),
            )
        };
        let n = match self.map.get(key) {
            None => default,
            Some(Value::Array(flags)) => {
                if flags.len() as u64 != layers {
                    return Err(bad());
                }
                return flags
                    .iter()
                    .map(|f| match f {
                        Value::Bool(b) => Ok(*b),
                        _ => Err(bad()),
                    })
                    .collect();
            }
            Some(v) => v.to_u64().map_err(|_| bad())?,
        };
        Ok((0..layers).map(|i| n == 0 || i % n < n - 1).collect())
    }
}

/// Phi-3's LongRoPE factors, which the converter stores as tensors.
struct RopeFactors {
    short: Vec<f32>,
    long: Vec<f32>,
}

/// The `rope_factors_short` / `rope_factors_long` tensors, when the file has both.
fn read_rope_factors<R: std::io::Seek + std::io::Read>(
    path: &Path,
    content: &Content,
    reader: &mut R,
    device: &Device,
) -> Result<Option<RopeFactors>> {
    let names = ["rope_factors_short.weight", "rope_factors_long.weight"];
    let present: Vec<bool> = names
        .iter()
        .map(|n| content.tensor_infos.contains_key(*n))
        .collect();
    match present.as_slice() {
        [false, false] => return Ok(None),
        [true, true] => {}
        _ => {
            return Err(EngineError::invalid(
                path,
                "GGUF has one of rope_factors_short / rope_factors_long but not the other",
            ));
        }
    }
    let mut read = |name: &str| -> Result<Vec<f32>> {
        content
            .tensor(reader, name, device)
            .and_then(|q| q.dequantize(device))
            .and_then(|t| t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>())
            .map_err(|e| bad(path, &format!("cannot read tensor '{name}'"), e))
    };
    Ok(Some(RopeFactors {
        short: read(names[0])?,
        long: read(names[1])?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_names_map_to_hugging_face_names() {
        assert_eq!(
            hf_name("llama", "blk.3.attn_output.weight").as_deref(),
            Some("model.layers.3.self_attn.o_proj.weight")
        );
        assert_eq!(
            hf_name("llama", "blk.0.attn_q.bias").as_deref(),
            Some("model.layers.0.self_attn.q_proj.bias")
        );
        assert_eq!(
            hf_name("llama", "output.weight").as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(hf_name("llama", "rope_freqs.weight"), None);
        // The norm before the MLP is Gemma's pre_feedforward_layernorm, Llama's
        // post_attention_layernorm (llama.cpp's post_attention_norm is Gemma's).
        assert_eq!(
            hf_name("gemma2", "blk.1.ffn_norm.weight").as_deref(),
            Some("model.layers.1.pre_feedforward_layernorm.weight")
        );
        assert_eq!(
            hf_name("gemma3", "blk.1.post_attention_norm.weight").as_deref(),
            Some("model.layers.1.post_attention_layernorm.weight")
        );
        assert_eq!(
            hf_name("llama", "blk.1.ffn_norm.weight").as_deref(),
            Some("model.layers.1.post_attention_layernorm.weight")
        );
        assert_eq!(
            hf_name("phi3", "blk.0.ffn_up.weight").as_deref(),
            Some("model.layers.0.mlp.gate_up_proj.weight")
        );
        assert_eq!(
            hf_name("llama", "blk.0.ffn_up.weight").as_deref(),
            Some("model.layers.0.mlp.up_proj.weight")
        );
        assert_eq!(hf_name("phi3", "rope_factors_long.weight"), None);
    }

    #[test]
    fn row_order_undoes_the_pair_interleaving() {
        // One head of 4 rows: llama.cpp stores HF rows [0, 1, 2, 3] as [0, 2, 1, 3].
        assert_eq!(halves_from_pairs(4, 1), vec![0, 2, 1, 3]);
        // Two heads of 4: each head separately.
        assert_eq!(halves_from_pairs(8, 2), vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }
}
