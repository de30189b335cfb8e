//! One decoder for the Llama family: RMSNorm, rotary embeddings, grouped-query attention,
//! SwiGLU MLP; Qwen2 adds q/k/v biases, Mistral a sliding window.
//!
//! Written here rather than taken from candle-transformers because guided decoding needs three
//! things those models lack: logits for every position (teacher-forced scoring), a KV cache that
//! can be truncated to any earlier position (branching), and a batch of sequences sharing one
//! position (sweeps).

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Embedding;

use crate::engine::error::{EngineError, Result};
use crate::engine::model::config::{ModelConfig, RopeScaling};
use crate::engine::model::linear::{Linear, QuantPlan};
use crate::engine::model::preflight;
use crate::engine::model::weights::Weights;

mod decode;

/// Per-layer key/value storage with spare capacity, so appending a token does not copy the
/// whole cache and rewinding is just forgetting the tail.
struct KvCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
    len: usize,
}

impl KvCache {
    fn new() -> Self {
        Self {
            keys: None,
            values: None,
            len: 0,
        }
    }

    /// Rows of the batch the buffers hold (0 before the first append).
    fn batch(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dim(0).unwrap_or(0))
    }

    /// Turn a cache of one sequence into `rows` copies of it, so that many continuations of
    /// one prompt can be decoded as a batch.
    fn fork(&mut self, rows: usize) -> Result<()> {
        let (Some(keys), Some(values)) = (&self.keys, &self.values) else {
            return Ok(());
        };
        if keys.dim(0)? != 1 {
            return Err(EngineError::usage(
                "only a cache of one sequence can be forked into a batch",
            ));
        }
        let copy = |t: &Tensor| -> Result<Tensor> {
            let (_, h, capacity, d) = t.dims4()?;
            Ok(t.broadcast_as((rows, h, capacity, d))?.contiguous()?)
        };
        self.keys = Some(copy(keys)?);
        self.values = Some(copy(values)?);
        Ok(())
    }

    /// Append `k`, `v` of shape (batch, kv_heads, t, head_dim); return views of everything held.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = k.dims4()?;
        if self.len == 0 && self.batch() != b {
            // A new sequence with another batch size: start from fresh buffers.
            self.keys = None;
            self.values = None;
        }
        let needed = self.len + t;
        let capacity = self.keys.as_ref().map_or(0, |k| k.dim(2).unwrap_or(0));
        if needed > capacity {
            let new_capacity = needed.max(2 * capacity).max(64);
            let grow = |old: &Option<Tensor>| -> Result<Tensor> {
                let fresh = Tensor::zeros((b, h, new_capacity, d), k.dtype(), k.device())?;
                if let Some(old) = old
                    && self.len > 0
                {
                    fresh.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
                Ok(fresh)
            };
            let (keys, values) = (grow(&self.keys)?, grow(&self.values)?);
            self.keys = Some(keys);
            self.values = Some(values);
        }
        let (keys, values) = match (&self.keys, &self.values) {
            (Some(k), Some(v)) => (k, v),
            _ => unreachable!("cache buffers allocated above"),
        };
        keys.slice_set(&k.contiguous()?, 2, self.len)?;
        values.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((keys.narrow(2, 0, needed)?, values.narrow(2, 0, needed)?))
    }
}

/// A projection with an optional trainable low-rank update (LoRA):
/// y = x·Wᵀ + b + scale · (x·Aᵀ)·Bᵀ, with A (r × in) and B (out × r).
pub struct Proj {
    base: Linear,
    lora: Option<LoraPair>,
}

#[derive(Clone)]
pub struct LoraPair {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
}

impl Proj {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.base.forward(x)?;
        match &self.lora {
            None => Ok(y),
            Some(l) => {
                let update = x.broadcast_matmul(&l.a.t()?)?.broadcast_matmul(&l.b.t()?)?;
                Ok((y + (update * l.scale)?)?)
            }
        }
    }
}

struct Attention {
    q_proj: Proj,
    k_proj: Proj,
    v_proj: Proj,
    o_proj: Proj,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    window: Option<usize>,
    cache: KvCache,
}

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

struct Block {
    input_layernorm: Tensor,
    post_attention_layernorm: Tensor,
    attention: Attention,
    mlp: Mlp,
}

/// Rotary frequencies, computed for the positions of each forward call.
struct Rotary {
    inv_freq: Vec<f32>,
}

pub struct Transformer {
    embed_tokens: Embedding,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Linear,
    rotary: Rotary,
    rms_norm_eps: f32,
    /// Number of positions held in every layer's cache.
    position: usize,
    device: Device,
}

impl Transformer {
    /// Every matrix with its Hugging Face name: the projections of each layer, then the
    /// output layer.
    fn named_matrices(&self) -> impl Iterator<Item = (String, &Linear)> {
        let layers = self.blocks.iter().enumerate().flat_map(|(i, b)| {
            let (a, m) = (&b.attention, &b.mlp);
            [
                ("self_attn.q_proj", &a.q_proj.base),
                ("self_attn.k_proj", &a.k_proj.base),
                ("self_attn.v_proj", &a.v_proj.base),
                ("self_attn.o_proj", &a.o_proj.base),
                ("mlp.gate_proj", &m.gate_proj),
                ("mlp.up_proj", &m.up_proj),
                ("mlp.down_proj", &m.down_proj),
            ]
            .map(|(name, layer)| (format!("model.layers.{i}.{name}.weight"), layer))
        });
        layers.chain([("lm_head.weight".to_string(), &self.lm_head)])
    }

    fn matrices(&self) -> impl Iterator<Item = &Linear> {
        self.named_matrices().map(|(_, layer)| layer)
    }

    /// (name, storage format, kernel) of every matrix: which kernels run each one (see
    /// `Linear::kernel_name`).
    pub fn matrix_kernels(&self) -> Vec<(String, String, &'static str)> {
        self.named_matrices()
            .map(|(name, layer)| (name, layer.format_name(), layer.kernel_name()))
            .collect()
    }

    /// The storage formats of the matrices (projections and output layer), each once, in the
    /// order met: "f32", or "q4_k+q6_k" for a GGUF Q4_K_M file.
    pub fn weight_formats(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        for layer in self.matrices() {
            let name = layer.format_name();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names.join("+")
    }

    /// The matrices quantized at load to another format than `--dtype` asked for (their rows
    /// do not split into its blocks; llama.cpp's fallbacks), counted per pair in the order met:
    /// "q4_k->q5_0 x180, q6_k->q8_0 x1"; empty when there are none.
    pub fn fallbacks(&self) -> String {
        let mut counts: Vec<((String, String), usize)> = Vec::new();
        for pair in self.matrices().filter_map(Linear::fallback) {
            match counts.iter_mut().find(|(p, _)| *p == pair) {
                Some((_, n)) => *n += 1,
                None => counts.push((pair, 1)),
            }
        }
        counts
            .iter()
            .map(|((asked, stored), n)| format!("{asked}->{stored} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A model with the dense weights of `w` (training, and decoding in f32/f16/bf16).
    pub fn load(cfg: &ModelConfig, w: &Weights, device: &Device) -> Result<Self> {
        Self::load_with(cfg, w, device, None)
    }

    /// A model whose projections (and output layer) are quantized at load as `plan` says;
    /// weights already quantized on disk (GGUF) stay as they are either way.
    ///
    /// Only the weights keep the format of `w` (or take a block format): activations, norms, rotary tables
    /// and the KV cache are f32 in every format. Decoding reads weights, so their bytes set
    /// the speed; the element-wise ops are cheap in f32 but slow in candle's f16/bf16 (converted
    /// per element in software), and f32 keeps their rounding out of the results.
    pub fn load_with(
        cfg: &ModelConfig,
        w: &Weights,
        device: &Device,
        plan: Option<QuantPlan>,
    ) -> Result<Self> {
        preflight::check_layers(cfg, w.all_names(), &w.source)?;
        let body = plan.map(|p| p.projections);
        let proj = |name: &str, out_dim: usize, in_dim: usize, bias: bool| -> Result<Proj> {
            Ok(Proj {
                base: w.linear(name, out_dim, in_dim, bias, body)?,
                lora: None,
            })
        };
        let linear = |name: &str, out_dim: usize, in_dim: usize, bias: bool| {
            w.linear(name, out_dim, in_dim, bias, body)
        };
        let h = cfg.hidden_size;
        let q_dim = cfg.num_attention_heads * cfg.head_dim;
        let kv_dim = cfg.num_key_value_heads * cfg.head_dim;
        let embed = w.get("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let ab = cfg.attention_bias;
            let attention = Attention {
                q_proj: proj(&format!("{p}.self_attn.q_proj"), q_dim, h, ab)?,
                k_proj: proj(&format!("{p}.self_attn.k_proj"), kv_dim, h, ab)?,
                v_proj: proj(&format!("{p}.self_attn.v_proj"), kv_dim, h, ab)?,
                // Qwen2 has biases on q/k/v only; Llama's `attention_bias` covers o_proj too.
                o_proj: proj(
                    &format!("{p}.self_attn.o_proj"),
                    h,
                    q_dim,
                    ab && cfg.architecture != crate::engine::model::config::Architecture::Qwen2,
                )?,
                num_heads: cfg.num_attention_heads,
                num_kv_heads: cfg.num_key_value_heads,
                head_dim: cfg.head_dim,
                window: cfg.layer_window(i),
                cache: KvCache::new(),
            };
            let mb = cfg.mlp_bias;
            let ffn = cfg.intermediate_size;
            let mlp = Mlp {
                gate_proj: linear(&format!("{p}.mlp.gate_proj"), ffn, h, mb)?,
                up_proj: linear(&format!("{p}.mlp.up_proj"), ffn, h, mb)?,
                down_proj: linear(&format!("{p}.mlp.down_proj"), h, ffn, mb)?,
            };
            blocks.push(Block {
                input_layernorm: w
                    .get(&format!("{p}.input_layernorm.weight"), &[h])?
                    .to_dtype(DType::F32)?,
                post_attention_layernorm: w
                    .get(&format!("{p}.post_attention_layernorm.weight"), &[h])?
                    .to_dtype(DType::F32)?,
                attention,
                mlp,
            });
        }
        // The output layer may get its own format (llama.cpp's Q4_K_M keeps it at Q6_K).
        let head = plan.map(|p| p.lm_head);
        let lm_head = if cfg.tie_word_embeddings {
            // Tied: the lookup table stays dense, the output layer gets a (quantized) copy.
            w.linear_from("model.embed_tokens", &embed, head)?
        } else {
            w.linear("lm_head", cfg.vocab_size, h, false, head)?
        };
        // After the shape checks: the table's size comes from head_dim.
        let rotary = Rotary::new(cfg);
        preflight::check_rope_table(&rotary.inv_freq)
            .map_err(|msg| EngineError::invalid(&w.source, msg))?;
        Ok(Self {
            embed_tokens: Embedding::new(embed, h),
            blocks,
            norm: w.get("model.norm.weight", &[h])?.to_dtype(DType::F32)?,
            lm_head,
            rotary,
            rms_norm_eps: cfg.rms_norm_eps as f32,
            position: 0,
            device: device.clone(),
        })
    }

    /// Positions held in the cache: the next token fed goes to this position.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Forget every cached position from `position` on. Continuing afterwards gives exactly the
    /// logits of a fresh run on the kept prefix.
    pub fn truncate(&mut self, position: usize) {
        let position = position.min(self.position);
        for block in &mut self.blocks {
            block.attention.cache.len = position;
        }
        self.position = position;
    }

    /// Copy the cached sequence (batch 1) into `rows` identical rows: the following forwards
    /// take `rows` tokens per position, one per row.
    pub fn fork(&mut self, rows: usize) -> Result<()> {
        for block in &mut self.blocks {
            block.attention.cache.fork(rows)?;
        }
        Ok(())
    }

    /// Run `tokens` (batch, t) at the current position, extend the cache, and return the final
    /// hidden states (batch, t, hidden).
    ///
    /// The whole call runs on one of rayon's workers, so the parallel products inside it split
    /// their work with the other workers directly; called from outside the pool, every product
    /// would hand its work to the pool and put the caller to sleep until it is done.
    pub fn forward_hidden(&mut self, tokens: &Tensor) -> Result<Tensor> {
        rayon::scope(|_| {
            let (b, t) = tokens.dims2()?;
            if t == 1 && self.can_decode_rows(b) {
                let ids = tokens.flatten_all()?.to_vec1::<u32>()?;
                let hidden = self.decode_rows(&ids)?;
                let width = hidden.len() / b.max(1);
                return Ok(Tensor::from_vec(hidden, (b, 1, width), &self.device)?);
            }
            self.forward_hidden_candle(tokens)
        })
    }

    /// `forward_hidden` through candle's ops: prompts, big batches, and the reference the
    /// slice path of `decode.rs` is tested against.
    fn forward_hidden_candle(&mut self, tokens: &Tensor) -> Result<Tensor> {
        let (_b, t) = tokens.dims2()?;
        let offset = self.position;
        let (cos, sin) = self.rotary.cos_sin(offset, t, &self.device)?;
        let mut x = self.embed_tokens.forward(tokens)?.to_dtype(DType::F32)?;
        let mut masks = MaskCache::new(t, offset, &self.device);
        for block in &mut self.blocks {
            let residual = &x;
            let normed = candle_nn::ops::rms_norm(&x, &block.input_layernorm, self.rms_norm_eps)?;
            let attn = block.attention.forward(&normed, &cos, &sin, &mut masks)?;
            let x1 = (residual + attn)?;
            let normed =
                candle_nn::ops::rms_norm(&x1, &block.post_attention_layernorm, self.rms_norm_eps)?;
            let mlp = block.mlp.forward(&normed)?;
            x = (x1 + mlp)?;
        }
        self.position += t;
        Ok(candle_nn::ops::rms_norm(&x, &self.norm, self.rms_norm_eps)?)
    }

    /// Logits (batch, vocab) of the last position after feeding `tokens`.
    pub fn forward_last(&mut self, tokens: &Tensor) -> Result<Tensor> {
        let hidden = self.forward_hidden(tokens)?;
        let t = hidden.dim(1)?;
        let last = hidden.narrow(1, t - 1, 1)?.squeeze(1)?;
        Ok(self.lm_head.forward(&last)?.to_dtype(DType::F32)?)
    }

    /// Logits (batch, t, vocab) of every position after feeding `tokens`.
    pub fn forward_all(&mut self, tokens: &Tensor) -> Result<Tensor> {
        let hidden = self.forward_hidden(tokens)?;
        Ok(self.lm_head.forward(&hidden)?.to_dtype(DType::F32)?)
    }
}

/// The projections LoRA may adapt, by their Hugging Face module names.
pub const LORA_TARGETS: &[&str] = &["q_proj", "k_proj", "v_proj", "o_proj"];

impl Transformer {
    /// Logits (batch, t, vocab) for whole sequences, through ops that all have a backward pass
    /// (so gradients reach every weight); the values equal `forward_all`'s. No cache is used.
    pub fn forward_train(&self, tokens: &Tensor) -> Result<Tensor> {
        let (_b, t) = tokens.dims2()?;
        let (cos, sin) = self.rotary.cos_sin(0, t, &self.device)?;
        let eps = self.rms_norm_eps;
        let mut masks = MaskCache::new(t, 0, &self.device);
        let mut x = self.embed_tokens.forward(tokens)?.to_dtype(DType::F32)?;
        for block in &self.blocks {
            let normed = candle_nn::ops::rms_norm_slow(&x, &block.input_layernorm, eps)?;
            let attn = block
                .attention
                .forward_train(&normed, &cos, &sin, &mut masks)?;
            let x1 = (x + attn)?;
            let normed = candle_nn::ops::rms_norm_slow(&x1, &block.post_attention_layernorm, eps)?;
            x = (&x1 + block.mlp.forward(&normed)?)?;
        }
        let x = candle_nn::ops::rms_norm_slow(&x, &self.norm, eps)?;
        self.lm_head.forward(&x)
    }

    /// Give the attention projections named in `targets` a LoRA update, `a`/`b` taken from
    /// `make(name, out_dim, in_dim)`; names are PEFT's module paths ("model.layers.0.self_attn.q_proj").
    pub fn attach_lora(
        &mut self,
        targets: &[String],
        scale: f64,
        mut make: impl FnMut(&str, usize, usize) -> Result<(Tensor, Tensor)>,
    ) -> Result<()> {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let a = &mut block.attention;
            for (name, proj) in [
                ("q_proj", &mut a.q_proj),
                ("k_proj", &mut a.k_proj),
                ("v_proj", &mut a.v_proj),
                ("o_proj", &mut a.o_proj),
            ] {
                if !targets.iter().any(|t| t == name) {
                    continue;
                }
                let (out_dim, in_dim) = proj.base.dims()?;
                let module = format!("model.layers.{i}.self_attn.{name}");
                let (lora_a, lora_b) = make(&module, out_dim, in_dim)?;
                proj.lora = Some(LoraPair {
                    a: lora_a,
                    b: lora_b,
                    scale,
                });
            }
        }
        Ok(())
    }

    /// `W + scale·B·A` for every projection with a LoRA update, by weight name.
    pub fn merged_lora_weights(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            let a = &block.attention;
            for (name, proj) in [
                ("q_proj", &a.q_proj),
                ("k_proj", &a.k_proj),
                ("v_proj", &a.v_proj),
                ("o_proj", &a.o_proj),
            ] {
                if let Some(l) = &proj.lora {
                    let delta = (l.b.matmul(&l.a)? * l.scale)?;
                    let base = proj.base.dense("merging a LoRA update")?;
                    let merged = (base + delta)?.detach();
                    out.push((format!("model.layers.{i}.self_attn.{name}.weight"), merged));
                }
            }
        }
        Ok(out)
    }
}

impl Rotary {
    fn new(cfg: &ModelConfig) -> Self {
        let dim = cfg.head_dim;
        let base = cfg.rope_theta;
        let mut inv_freq: Vec<f32> = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
            .collect();
        match cfg.rope_scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => inv_freq.iter_mut().for_each(|f| *f /= factor),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old_len,
            } => {
                let low_freq_wavelen = old_len / low_freq_factor;
                let high_freq_wavelen = old_len / high_freq_factor;
                for f in inv_freq.iter_mut() {
                    let wavelen = 2.0 * std::f32::consts::PI / *f;
                    if wavelen > low_freq_wavelen {
                        *f /= factor;
                    } else if wavelen >= high_freq_wavelen {
                        let smooth = (old_len / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        *f = (1.0 - smooth) * *f / factor + smooth * *f;
                    }
                }
            }
        }
        Self { inv_freq }
    }

    /// cos and sin (head_dim / 2 each) of the angles at `position`.
    fn angles(&self, position: usize) -> (Vec<f32>, Vec<f32>) {
        self.inv_freq
            .iter()
            .map(|&f| {
                let angle = position as f32 * f;
                (angle.cos(), angle.sin())
            })
            .unzip()
    }

    /// cos and sin tables (t, head_dim / 2) for positions offset..offset + t.
    fn cos_sin(&self, offset: usize, t: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for p in offset..offset + t {
            let (c, s) = self.angles(p);
            cos.extend(c);
            sin.extend(s);
        }
        let cos = Tensor::from_vec(cos, (t, half), device)?;
        let sin = Tensor::from_vec(sin, (t, half), device)?;
        Ok((cos, sin))
    }
}

impl Attention {
    /// Queries, keys and values (batch, heads, t, head_dim) with rotary embeddings applied.
    fn project(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, slow: bool) -> Result<[Tensor; 3]> {
        let (b, t, _) = x.dims3()?;
        let d = self.head_dim;
        let heads = |proj: &Proj, n: usize| -> Result<Tensor> {
            Ok(proj
                .forward(x)?
                .reshape((b, t, n, d))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        // The fused rope kernel has no backward; the composed one gives identical values.
        let rope = |x: &Tensor| -> Result<Tensor> {
            Ok(if slow {
                candle_nn::rotary_emb::rope_slow(x, cos, sin)?
            } else {
                candle_nn::rotary_emb::rope(x, cos, sin)?
            })
        };
        let q = rope(&heads(&self.q_proj, self.num_heads)?)?;
        let k = rope(&heads(&self.k_proj, self.num_kv_heads)?)?;
        let v = heads(&self.v_proj, self.num_kv_heads)?;
        Ok([q, k, v])
    }

    fn forward(
        &mut self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        masks: &mut MaskCache,
    ) -> Result<Tensor> {
        let [q, k, v] = self.project(x, cos, sin, false)?;
        let (keys, values) = self.cache.append(&k, &v)?;
        let mask = masks.get(self.window)?;
        self.attend(&q, &keys, &values, mask.as_ref(), false)
    }

    /// The differentiable path for training: no cache, composed ops only.
    fn forward_train(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        masks: &mut MaskCache,
    ) -> Result<Tensor> {
        let [q, k, v] = self.project(x, cos, sin, true)?;
        let mask = masks.get(self.window)?;
        self.attend(&q, &k, &v, mask.as_ref(), true)
    }

    fn attend(
        &self,
        q: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        mask: Option<&Tensor>,
        slow: bool,
    ) -> Result<Tensor> {
        let (b, h, t, d) = q.dims4()?;
        let kv = self.num_kv_heads;
        let total = keys.dim(2)?;
        // Grouped-query attention without copying keys: the n_rep query heads that share a KV
        // head are folded into the row dimension, (b, kv, n_rep * t, d) · (b, kv, d, total).
        let n_rep = h / kv;
        let q = q.reshape((b, kv, n_rep * t, d))?;
        let scale = 1.0 / (d as f64).sqrt();
        let scores = (q.matmul(&keys.t()?)? * scale)?.to_dtype(DType::F32)?;
        let scores = match mask {
            Some(mask) => scores
                .reshape((b, kv, n_rep, t, total))?
                .broadcast_add(mask)?
                .reshape((b, kv, n_rep * t, total))?,
            None => scores,
        };
        let probs = if slow {
            candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let out = probs
            .to_dtype(values.dtype())?
            .matmul(values)?
            .reshape((b, h, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, h * d))?;
        self.o_proj.forward(&out)
    }
}

/// The attention masks of one forward call, built once and shared by every layer with the same
/// window (a long prompt's mask is large).
struct MaskCache {
    t: usize,
    offset: usize,
    device: Device,
    built: Vec<(Option<usize>, Option<Tensor>)>,
}

impl MaskCache {
    fn new(t: usize, offset: usize, device: &Device) -> Self {
        Self {
            t,
            offset,
            device: device.clone(),
            built: Vec::new(),
        }
    }

    fn get(&mut self, window: Option<usize>) -> Result<Option<Tensor>> {
        if let Some((_, mask)) = self.built.iter().find(|(w, _)| *w == window) {
            return Ok(mask.clone());
        }
        let total = self.offset + self.t;
        let mask = attention_mask(self.t, self.offset, total, window, &self.device)?;
        self.built.push((window, mask.clone()));
        Ok(mask)
    }
}

/// Additive mask (t, total): query i sits at position offset + i and sees key j when
/// j <= offset + i and, with a window, offset + i - j < window. None when nothing is masked.
fn attention_mask(
    t: usize,
    offset: usize,
    total: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let window_bites = window.is_some_and(|w| offset + t > w);
    if t == 1 && !window_bites {
        return Ok(None);
    }
    let mut mask = vec![0f32; t * total];
    for i in 0..t {
        let q_pos = offset + i;
        for j in 0..total {
            let future = j > q_pos;
            let too_old = window.is_some_and(|w| q_pos - j.min(q_pos) >= w);
            if future || too_old {
                mask[i * total + j] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Some(Tensor::from_vec(mask, (t, total), device)?))
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate_proj.forward(x)?)?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&(gate * up)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture model of the test data, loaded twice (one per path).
    fn fixture(name: &str) -> Transformer {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/parity/models")
            .join(name);
        let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
        let w = Weights::load(&dir, DType::F32, &Device::Cpu).unwrap();
        Transformer::load(&cfg, &w, &Device::Cpu).unwrap()
    }

    /// The slice path of `decode.rs` and candle's ops give the same hidden states step after
    /// step, from a prompt prefilled by candle, for one sequence and a forked batch of three:
    /// Mistral (window 8, one KV head for four query heads, so the window bites after 8
    /// positions) and Qwen2 (q/k/v biases).
    #[test]
    fn slice_decoding_matches_candles_ops() {
        for name in ["mistral_base", "qwen2_base", "llama_base"] {
            for rows in [1, 3] {
                let (mut fast, mut slow) = (fixture(name), fixture(name));
                let prompt = Tensor::new(&[[5u32, 17, 42, 7, 99]], &Device::Cpu).unwrap();
                for net in [&mut fast, &mut slow] {
                    net.forward_hidden(&prompt).unwrap();
                    net.fork(rows).unwrap();
                }
                for step in 0..12u32 {
                    let ids: Vec<u32> = (0..rows as u32).map(|r| 3 + 11 * r + 7 * step).collect();
                    assert!(fast.can_decode_rows(rows));
                    let a = fast.decode_rows(&ids).unwrap();
                    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
                        .unwrap()
                        .unsqueeze(1)
                        .unwrap();
                    let b = slow.forward_hidden_candle(&input).unwrap();
                    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    assert_eq!(a.len(), b.len());
                    let diff = a
                        .iter()
                        .zip(&b)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0f32, f32::max);
                    assert!(diff < 1e-4, "{name}, {rows} rows, step {step}: {diff}");
                }
                assert_eq!(fast.position(), slow.position());
            }
        }
    }

    #[test]
    fn causal_mask_hides_the_future_only() {
        let m = attention_mask(3, 0, 3, None, &Device::Cpu)
            .unwrap()
            .unwrap();
        let m: Vec<Vec<f32>> = m.to_vec2().unwrap();
        assert_eq!(m[0][0], 0.0);
        assert!(m[0][1].is_infinite());
        assert_eq!(m[2][0], 0.0);
        assert_eq!(m[2][2], 0.0);
    }

    #[test]
    fn window_hides_keys_older_than_the_window() {
        // One query at position 5 with window 2 sees positions 4 and 5 only.
        let m = attention_mask(1, 5, 6, Some(2), &Device::Cpu)
            .unwrap()
            .unwrap();
        let m: Vec<Vec<f32>> = m.to_vec2().unwrap();
        let visible: Vec<usize> = (0..6).filter(|&j| m[0][j] == 0.0).collect();
        assert_eq!(visible, vec![4, 5]);
        assert!(
            attention_mask(1, 5, 6, None, &Device::Cpu)
                .unwrap()
                .is_none()
        );
    }
}
