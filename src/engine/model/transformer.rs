//! One decoder for every supported family: RMSNorm, rotary embeddings, grouped-query
//! attention, a gated MLP. The families differ by switches read from config.json (see
//! `config.rs`): Qwen2 adds q/k/v biases, Mistral a sliding window, Qwen3 and Gemma 3 q/k norms
//! per head, OLMo 2 over the whole projection, Gemma norms around attention and MLP with
//! (1 + w) weights, scaled embeddings, GeGLU and soft-capping, Phi-3 fused projections and
//! LongRoPE, SmolLM3 layers without rotation. A switch that is off is a `None` or a table
//! lookup, so the Llama path does the same work as before.
//!
//! Written here rather than taken from candle-transformers because guided decoding needs three
//! things those models lack: logits for every position (teacher-forced scoring), a KV cache that
//! can be truncated to any earlier position (branching), and a batch of sequences sharing one
//! position (sweeps).

use candle_core::{DType, Device, Tensor};

use crate::engine::error::{EngineError, Result};
use crate::engine::model::config::{Activation, BlockNorms, LayerRope, ModelConfig, QkNorm};
use crate::engine::model::linear::{Linear, QuantPlan};
use crate::engine::model::mapped::MappedMatrix;
use crate::engine::model::preflight;
use crate::engine::model::weights::{self, Weights};

mod decode;
mod lookup;
mod rope;

use lookup::Lookup;
use rope::Rotary;

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
    /// RMSNorm weights of queries and keys (f32), per head or over the projection (`qk_norm`).
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    qk_norm: QkNorm,
    eps: f32,
    /// Multiplier of q·k.
    scale: f64,
    /// Scores become cap·tanh(score / cap).
    softcap: Option<f32>,
    /// q/k/v were split from one `qkv_proj` (Phi-3): LoRA and merging treat them as one.
    fused: bool,
    /// Index of this layer's rotary table in `Transformer::rotaries`; None: no rotation.
    rope: Option<usize>,
    window: Option<usize>,
    cache: KvCache,
}

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    activation: Activation,
}

/// A block's RMSNorm weights (f32, Gemma's 1 + w already added), by where they apply: on the
/// input of attention / the MLP, or on their output before the residual add.
struct Norms {
    attn_in: Option<Tensor>,
    attn_out: Option<Tensor>,
    mlp_in: Option<Tensor>,
    mlp_out: Option<Tensor>,
}

struct Block {
    norms: Norms,
    attention: Attention,
    mlp: Mlp,
}

pub struct Transformer {
    embed_tokens: Lookup,
    /// Embeddings are multiplied by this (Gemma: sqrt(hidden), rounded to the weights' dtype).
    embed_scale: Option<f32>,
    /// The weights' dtype, which the scaled embeddings are rounded to (the lookup table itself
    /// may be f16 or blocks: see `Lookup`).
    embed_dtype: DType,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Linear,
    final_softcap: Option<f32>,
    /// The rotary tables layers refer to: [global] or [global, local] (Gemma 3).
    rotaries: Vec<Rotary>,
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

    /// The names of the matrices read in place from their file (`mapped.rs`).
    pub fn mapped_matrices(&self) -> Vec<String> {
        self.named_matrices()
            .filter(|(_, layer)| layer.is_mapped())
            .map(|(name, _)| name)
            .collect()
    }

    /// Bytes of weights read in place from their files: the mapped matrices and lookup
    /// table, each map counted once (a tied embedding and its output layer read the same).
    pub fn bytes_in_place(&self) -> usize {
        let mapped = self.matrices().filter_map(Linear::mapped);
        let mut seen = std::collections::HashSet::new();
        mapped
            .chain(self.embed_tokens.mapped())
            .filter(|m| seen.insert(m.start()))
            .map(MappedMatrix::size)
            .sum()
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
        let h = cfg.hidden_size;
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            blocks.push(load_block(cfg, w, plan, i)?);
            // Each layer's converted-from copies are freed by now; without handing them back
            // they added ~60 MiB to a 135M model's load peak (see `return_freed_memory`).
            weights::return_freed_memory();
        }
        // The output layer may get its own format (llama.cpp's Q4_K_M keeps it at Q6_K).
        let head = plan.map(|p| p.lm_head);
        let embed_shape = [cfg.vocab_size, h];
        let (lm_head, table) = if cfg.tie_word_embeddings {
            // Tied: the output layer gets a (quantized) copy, and the lookup reads its rows out
            // of the packed tiles where there are some (the blocks they were made from are
            // then dropped: one copy of the matrix), else the blocks or the dense table.
            w.tied_output("model.embed_tokens", &embed_shape, head)?
        } else {
            let table = w.lookup_table("model.embed_tokens.weight", &embed_shape)?;
            (w.linear("lm_head", cfg.vocab_size, h, false, head)?, table)
        };
        let embed_scale = if cfg.scale_embeddings {
            // transformers multiplies in the weights' dtype by sqrt(hidden) cast to it.
            let scale = Tensor::new(&[(h as f32).sqrt()], device)?
                .to_dtype(w.dtype())?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            scale.first().copied()
        } else {
            None
        };
        let mut rotaries = vec![Rotary::new(
            cfg.rope_theta,
            &cfg.rope_scaling,
            cfg.rotary_dim(),
        )];
        if let Some(local) = &cfg.local_rope {
            rotaries.push(Rotary::new(local.theta, &local.scaling, cfg.rotary_dim()));
        }
        // After the shape checks: the tables' sizes come from head_dim.
        let embed_tokens = match lm_head.packed() {
            Some(packed) if cfg.tie_word_embeddings => Lookup::from_packed(packed)?,
            _ => Lookup::new(table)?,
        };
        for rotary in &rotaries {
            for freqs in rotary.frequencies() {
                preflight::check_rope_table(freqs)
                    .map_err(|msg| EngineError::invalid(&w.source, msg))?;
            }
        }
        Ok(Self {
            embed_dtype: w.dtype(),
            embed_tokens,
            embed_scale,
            blocks,
            norm: norm_weight(cfg, w, "model.norm.weight", h)?,
            lm_head,
            final_softcap: cfg.final_logit_softcapping,
            rotaries,
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

    /// Embeddings (batch, t, hidden) of `tokens`, f32.
    fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        let x = self.embed_tokens.forward(tokens)?;
        let dtype = self.embed_dtype;
        let x = x.to_dtype(DType::F32)?;
        Ok(match self.embed_scale {
            None => x,
            // The product is rounded to the weights' dtype, as transformers computes it there.
            Some(scale) => (x * f64::from(scale))?
                .to_dtype(dtype)?
                .to_dtype(DType::F32)?,
        })
    }

    /// Logits (f32) from final hidden states, soft-capped where the family does.
    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let logits = self.lm_head.forward(hidden)?.to_dtype(DType::F32)?;
        softcap(logits, self.final_softcap)
    }

    /// `forward_hidden` through candle's ops: prompts, big batches, and the reference the
    /// slice path of `decode.rs` is tested against.
    fn forward_hidden_candle(&mut self, tokens: &Tensor) -> Result<Tensor> {
        let (_b, t) = tokens.dims2()?;
        let offset = self.position;
        let tables = self
            .rotaries
            .iter()
            .map(|r| r.cos_sin(offset, t, &self.device))
            .collect::<Result<Vec<_>>>()?;
        let mut x = self.embed(tokens)?;
        let mut masks = MaskCache::new(t, offset, &self.device);
        let eps = self.rms_norm_eps;
        for block in &mut self.blocks {
            let attention = &mut block.attention;
            x = block.norms.residual(&block.mlp, x, eps, false, |n| {
                attention.forward(n, &tables, &mut masks)
            })?;
        }
        self.position += t;
        Ok(candle_nn::ops::rms_norm(&x, &self.norm, eps)?)
    }

    /// Logits (batch, vocab) of the last position after feeding `tokens`.
    pub fn forward_last(&mut self, tokens: &Tensor) -> Result<Tensor> {
        let hidden = self.forward_hidden(tokens)?;
        let t = hidden.dim(1)?;
        let last = hidden.narrow(1, t - 1, 1)?.squeeze(1)?;
        self.logits(&last)
    }

    /// Logits (batch, t, vocab) of every position after feeding `tokens`.
    pub fn forward_all(&mut self, tokens: &Tensor) -> Result<Tensor> {
        let hidden = self.forward_hidden(tokens)?;
        self.logits(&hidden)
    }
}

/// The projections LoRA may adapt, by their Hugging Face module names.
pub const LORA_TARGETS: &[&str] = &["q_proj", "k_proj", "v_proj", "o_proj"];

impl Transformer {
    /// Logits (batch, t, vocab) for whole sequences, through ops that all have a backward pass
    /// (so gradients reach every weight); the values equal `forward_all`'s. No cache is used.
    pub fn forward_train(&self, tokens: &Tensor) -> Result<Tensor> {
        let (_b, t) = tokens.dims2()?;
        let tables = self
            .rotaries
            .iter()
            .map(|r| r.cos_sin(0, t, &self.device))
            .collect::<Result<Vec<_>>>()?;
        let eps = self.rms_norm_eps;
        let mut masks = MaskCache::new(t, 0, &self.device);
        let mut x = self.embed(tokens)?;
        for block in &self.blocks {
            x = block.norms.residual(&block.mlp, x, eps, true, |n| {
                block.attention.forward_train(n, &tables, &mut masks)
            })?;
        }
        let x = candle_nn::ops::rms_norm_slow(&x, &self.norm, eps)?;
        let logits = self.lm_head.forward(&x)?;
        softcap(logits, self.final_softcap)
    }

    /// Give the attention projections named in `targets` a LoRA update, `a`/`b` taken from
    /// `make(name, out_dim, in_dim)`; names are PEFT's module paths ("model.layers.0.self_attn.q_proj").
    /// A model with a fused `qkv_proj` (Phi-3) takes "qkv_proj" as one module, as PEFT sees it:
    /// one A shared by q, k and v, and B cut into their row ranges.
    pub fn attach_lora(
        &mut self,
        targets: &[String],
        scale: f64,
        mut make: impl FnMut(&str, usize, usize) -> Result<(Tensor, Tensor)>,
    ) -> Result<()> {
        let wanted = |name: &str| targets.iter().any(|t| t == name);
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let a = &mut block.attention;
            let fused = a.fused;
            if fused && wanted("qkv_proj") {
                let in_dim = a.q_proj.base.dims()?.1;
                let module = format!("model.layers.{i}.self_attn.qkv_proj");
                let parts = [&mut a.q_proj, &mut a.k_proj, &mut a.v_proj];
                let rows = parts
                    .iter()
                    .map(|p| Ok(p.base.dims()?.0))
                    .collect::<Result<Vec<usize>>>()?;
                let (lora_a, lora_b) = make(&module, rows.iter().sum(), in_dim)?;
                let mut start = 0;
                for (proj, n) in parts.into_iter().zip(rows) {
                    proj.lora = Some(LoraPair {
                        a: lora_a.clone(),
                        b: lora_b.narrow(0, start, n)?,
                        scale,
                    });
                    start += n;
                }
            }
            for (name, proj) in [
                ("q_proj", &mut a.q_proj),
                ("k_proj", &mut a.k_proj),
                ("v_proj", &mut a.v_proj),
                ("o_proj", &mut a.o_proj),
            ] {
                if !wanted(name) || (fused && name != "o_proj") {
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

    /// `W + scale·B·A` for every projection with a LoRA update, by weight name (a fused
    /// `qkv_proj` whole, its three parts stacked again).
    pub fn merged_lora_weights(&self) -> Result<Vec<(String, Tensor)>> {
        let merged = |proj: &Proj| -> Result<Option<Tensor>> {
            let Some(l) = &proj.lora else {
                return Ok(None);
            };
            let delta = (l.b.matmul(&l.a)? * l.scale)?;
            let base = proj.base.dense("merging a LoRA update")?;
            Ok(Some((base + delta)?.detach()))
        };
        let mut out = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            let a = &block.attention;
            let p = format!("model.layers.{i}.self_attn");
            let mut named = vec![("o_proj", &a.o_proj)];
            if a.fused {
                let parts = [&a.q_proj, &a.k_proj, &a.v_proj]
                    .map(&merged)
                    .into_iter()
                    .collect::<Result<Option<Vec<Tensor>>>>()?;
                if let Some(parts) = parts {
                    out.push((format!("{p}.qkv_proj.weight"), Tensor::cat(&parts, 0)?));
                }
            } else {
                named.extend([
                    ("q_proj", &a.q_proj),
                    ("k_proj", &a.k_proj),
                    ("v_proj", &a.v_proj),
                ]);
            }
            for (name, proj) in named {
                if let Some(w) = merged(proj)? {
                    out.push((format!("{p}.{name}.weight"), w));
                }
            }
        }
        Ok(out)
    }
}

/// An RMSNorm weight as f32, with Gemma's 1 + w folded in.
fn norm_weight(cfg: &ModelConfig, w: &Weights, name: &str, len: usize) -> Result<Tensor> {
    let weight = w.get(name, &[len])?.to_dtype(DType::F32)?;
    Ok(if cfg.norm_weight_offset == 0.0 {
        weight
    } else {
        (weight + f64::from(cfg.norm_weight_offset))?
    })
}

/// Layer `i`: its projections (split from fused ones for Phi-3), norms and switches.
fn load_block(cfg: &ModelConfig, w: &Weights, plan: Option<QuantPlan>, i: usize) -> Result<Block> {
    let body = plan.map(|p| p.projections);
    let p = format!("model.layers.{i}");
    let h = cfg.hidden_size;
    let d = cfg.head_dim;
    let q_dim = cfg.num_attention_heads * d;
    let kv_dim = cfg.num_key_value_heads * d;
    let ffn = cfg.intermediate_size;
    let proj = |base: Linear| Proj { base, lora: None };
    let ab = cfg.attention_bias;
    let [q_proj, k_proj, v_proj] = if cfg.fused_projections {
        let fused = format!("{p}.self_attn.qkv_proj");
        let total = q_dim + 2 * kv_dim;
        [(0, q_dim), (q_dim, kv_dim), (q_dim + kv_dim, kv_dim)]
            .map(|(start, rows)| w.linear_part(&fused, start, rows, total, h, body))
    } else {
        [("q_proj", q_dim), ("k_proj", kv_dim), ("v_proj", kv_dim)]
            .map(|(name, rows)| w.linear(&format!("{p}.self_attn.{name}"), rows, h, ab, body))
    };
    let (gate_proj, up_proj) = if cfg.fused_projections {
        let fused = format!("{p}.mlp.gate_up_proj");
        (
            w.linear_part(&fused, 0, ffn, 2 * ffn, h, body)?,
            w.linear_part(&fused, ffn, ffn, 2 * ffn, h, body)?,
        )
    } else {
        let mb = cfg.mlp_bias;
        (
            w.linear(&format!("{p}.mlp.gate_proj"), ffn, h, mb, body)?,
            w.linear(&format!("{p}.mlp.up_proj"), ffn, h, mb, body)?,
        )
    };
    let (q_norm_len, k_norm_len) = match cfg.qk_norm {
        QkNorm::None => (0, 0),
        QkNorm::PerHead => (d, d),
        QkNorm::Whole => (q_dim, kv_dim),
    };
    let optional_norm = |name: &str, len: usize| -> Result<Option<Tensor>> {
        if len == 0 {
            return Ok(None);
        }
        norm_weight(cfg, w, &format!("{p}.{name}.weight"), len).map(Some)
    };
    let attention = Attention {
        q_proj: proj(q_proj?),
        k_proj: proj(k_proj?),
        v_proj: proj(v_proj?),
        o_proj: proj(w.linear(
            &format!("{p}.self_attn.o_proj"),
            h,
            q_dim,
            cfg.o_proj_bias,
            body,
        )?),
        num_heads: cfg.num_attention_heads,
        num_kv_heads: cfg.num_key_value_heads,
        head_dim: d,
        q_norm: optional_norm("self_attn.q_norm", q_norm_len)?,
        k_norm: optional_norm("self_attn.k_norm", k_norm_len)?,
        qk_norm: cfg.qk_norm,
        eps: cfg.rms_norm_eps as f32,
        scale: cfg.attention_scale,
        softcap: cfg.attn_logit_softcapping,
        fused: cfg.fused_projections,
        rope: match cfg.layer_rope(i) {
            LayerRope::Global => Some(0),
            LayerRope::Local => Some(1),
            LayerRope::Off => None,
        },
        window: cfg.layer_window(i),
        cache: KvCache::new(),
    };
    let mlp = Mlp {
        gate_proj,
        up_proj,
        down_proj: w.linear(&format!("{p}.mlp.down_proj"), h, ffn, cfg.mlp_bias, body)?,
        activation: cfg.activation,
    };
    // Which of the four norm slots a family fills, and the name transformers gives each.
    let names: [Option<&str>; 4] = match cfg.block_norms {
        BlockNorms::Pre => [
            Some("input_layernorm"),
            None,
            Some("post_attention_layernorm"),
            None,
        ],
        BlockNorms::Sandwich => [
            Some("input_layernorm"),
            Some("post_attention_layernorm"),
            Some("pre_feedforward_layernorm"),
            Some("post_feedforward_layernorm"),
        ],
        BlockNorms::Post => [
            None,
            Some("post_attention_layernorm"),
            None,
            Some("post_feedforward_layernorm"),
        ],
    };
    let [attn_in, attn_out, mlp_in, mlp_out] =
        names.map(|name| name.map_or(Ok(None), |n| optional_norm(n, h)));
    Ok(Block {
        norms: Norms {
            attn_in: attn_in?,
            attn_out: attn_out?,
            mlp_in: mlp_in?,
            mlp_out: mlp_out?,
        },
        attention,
        mlp,
    })
}

/// cap·tanh(x / cap) where a cap is set; x as it is otherwise.
fn softcap(x: Tensor, cap: Option<f32>) -> Result<Tensor> {
    Ok(match cap {
        None => x,
        Some(c) => ((x / f64::from(c))?.tanh()? * f64::from(c))?,
    })
}

/// RMSNorm over the last dimension when a weight is given; `x` itself otherwise. `slow` takes
/// the composed op, which has a backward pass.
fn maybe_norm(x: &Tensor, weight: Option<&Tensor>, eps: f32, slow: bool) -> Result<Tensor> {
    Ok(match weight {
        None => x.clone(),
        Some(w) if slow => candle_nn::ops::rms_norm_slow(x, w, eps)?,
        Some(w) => candle_nn::ops::rms_norm(&x.contiguous()?, w, eps)?,
    })
}

impl Norms {
    /// One block around `x`: x + attention(norm(x)) (normed again on its output where the
    /// family does), then the same for the MLP.
    fn residual(
        &self,
        mlp: &Mlp,
        x: Tensor,
        eps: f32,
        slow: bool,
        attend: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let attn = attend(&maybe_norm(&x, self.attn_in.as_ref(), eps, slow)?)?;
        let x = (x + maybe_norm(&attn, self.attn_out.as_ref(), eps, slow)?)?;
        let out = mlp.forward(&maybe_norm(&x, self.mlp_in.as_ref(), eps, slow)?)?;
        Ok((&x + maybe_norm(&out, self.mlp_out.as_ref(), eps, slow)?)?)
    }
}

impl Attention {
    /// Queries, keys and values (batch, heads, t, head_dim): q/k normed where the family does,
    /// then rotated with this layer's table of `tables` (if any).
    fn project(&self, x: &Tensor, tables: &[(Tensor, Tensor)], slow: bool) -> Result<[Tensor; 3]> {
        let (b, t, _) = x.dims3()?;
        let d = self.head_dim;
        let eps = self.eps;
        let (whole, per_head) = match self.qk_norm {
            QkNorm::Whole => (true, false),
            QkNorm::PerHead => (false, true),
            QkNorm::None => (false, false),
        };
        let heads = |proj: &Proj, n: usize, norm: Option<&Tensor>| -> Result<Tensor> {
            let y = proj.forward(x)?;
            let y = maybe_norm(&y, norm.filter(|_| whole), eps, slow)?;
            let y = y.reshape((b, t, n, d))?;
            let y = maybe_norm(&y, norm.filter(|_| per_head), eps, slow)?;
            Ok(y.transpose(1, 2)?.contiguous()?)
        };
        let q = heads(&self.q_proj, self.num_heads, self.q_norm.as_ref())?;
        let k = heads(&self.k_proj, self.num_kv_heads, self.k_norm.as_ref())?;
        let v = heads(&self.v_proj, self.num_kv_heads, None)?;
        let Some(table) = self.rope.and_then(|i| tables.get(i)) else {
            return Ok([q, k, v]);
        };
        let (cos, sin) = table;
        Ok([
            rope::apply(&q, cos, sin, slow)?,
            rope::apply(&k, cos, sin, slow)?,
            v,
        ])
    }

    fn forward(
        &mut self,
        x: &Tensor,
        tables: &[(Tensor, Tensor)],
        masks: &mut MaskCache,
    ) -> Result<Tensor> {
        let [q, k, v] = self.project(x, tables, false)?;
        let (keys, values) = self.cache.append(&k, &v)?;
        let mask = masks.get(self.window)?;
        self.attend(&q, &keys, &values, mask.as_ref(), false)
    }

    /// The differentiable path for training: no cache, composed ops only.
    fn forward_train(
        &self,
        x: &Tensor,
        tables: &[(Tensor, Tensor)],
        masks: &mut MaskCache,
    ) -> Result<Tensor> {
        let [q, k, v] = self.project(x, tables, true)?;
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
        let scores = (q.matmul(&keys.t()?)? * self.scale)?.to_dtype(DType::F32)?;
        let scores = softcap(scores, self.softcap)?;
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
        let gate = self.gate_proj.forward(x)?;
        let gate = match self.activation {
            Activation::Silu => candle_nn::ops::silu(&gate)?,
            // candle's `gelu` is the tanh approximation, as gelu_pytorch_tanh.
            Activation::GeluTanh => gate.gelu()?,
        };
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&(gate * up)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture model of the test data (tests/data/parity or parity_families).
    fn fixture(name: &str) -> Transformer {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let dir = ["parity", "parity_families"]
            .iter()
            .map(|set| data.join(set).join("models").join(name))
            .find(|dir| dir.is_dir())
            .unwrap();
        let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
        let w = Weights::load(&dir, DType::F32, &Device::Cpu).unwrap();
        Transformer::load(&cfg, &w, &Device::Cpu).unwrap()
    }

    /// The slice path of `decode.rs` and candle's ops give the same hidden states step after
    /// step, from a prompt prefilled by candle, for one sequence and a forked batch of three:
    /// Mistral (window 8, one KV head for four query heads, so the window bites after 8
    /// positions) and Qwen2 (q/k/v biases), and every other family's switches.
    #[test]
    fn slice_decoding_matches_candles_ops() {
        let families = [
            "qwen3_base",
            "gemma2_base",
            "gemma3_base",
            "phi3_base",
            "olmo2_base",
            "smollm3_base",
        ];
        for name in ["mistral_base", "qwen2_base", "llama_base"]
            .into_iter()
            .chain(families)
        {
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
