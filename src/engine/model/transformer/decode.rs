//! One decoding step for a few sequences (one new token each) on plain f32 slices.
//!
//! A step is a chain of about fifty small operations per layer. Through candle each one
//! allocates a tensor and dispatches an op, which for one token costs as much as the
//! arithmetic; here the same computation runs as loops over slices, and the products go to
//! the kernels `Linear::forward_rows` picks (the same ones `forward` uses). The KV cache is
//! the one the candle path fills, so a prompt prefilled through candle continues here; the
//! test `slice_decoding_matches_candles_ops` in `transformer.rs` checks that both paths give
//! the same hidden states.

use std::borrow::Cow;

use candle_core::{CpuStorage, Layout, Storage, Tensor};

use super::{Attention, Mlp, Transformer};
use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::gemv;
use crate::engine::model::config::Activation;
use crate::engine::model::linear::Linear;

/// At most this many sequences go through the slice path; larger batches (sweeps) gain more
/// from candle's gemm, which reuses each weight tile across rows.
pub(super) const MAX_ROWS: usize = 8;

impl Transformer {
    /// Whether [`Transformer::decode_rows`] can run a step for `rows` sequences: few rows, CPU,
    /// and no trainable LoRA update (training keeps candle's differentiable path).
    pub(super) fn can_decode_rows(&self, rows: usize) -> bool {
        rows <= MAX_ROWS
            && self.device.is_cpu()
            && self.blocks.iter().all(|b| {
                let a = &b.attention;
                [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj]
                    .iter()
                    .all(|p| p.lora.is_none())
            })
    }

    /// Feed one token per sequence at the current position; the final hidden states, one row
    /// of `hidden_size` per sequence, after the last norm.
    pub(super) fn decode_rows(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let rows = tokens.len();
        let ids = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let mut x = self.embed(&ids)?.flatten_all()?.to_vec1::<f32>()?;
        let position = self.position;
        let tables: Vec<(Vec<f32>, Vec<f32>)> =
            self.rotaries.iter().map(|r| r.angles(position)).collect();
        let eps = self.rms_norm_eps;
        for block in &mut self.blocks {
            let norms = &block.norms;
            let normed = maybe_norm(&x, norms.attn_in.as_ref(), eps)?;
            let attn = block
                .attention
                .decode_rows(&normed, rows, position, &tables)?;
            add_into(&mut x, &maybe_norm(&attn, norms.attn_out.as_ref(), eps)?);
            let normed = maybe_norm(&x, norms.mlp_in.as_ref(), eps)?;
            let out = block.mlp.decode_rows(&normed, rows)?;
            add_into(&mut x, &maybe_norm(&out, norms.mlp_out.as_ref(), eps)?);
        }
        self.position += 1;
        rms_norm(&x, &self.norm, eps)
    }
}

impl Attention {
    fn decode_rows(
        &mut self,
        x: &[f32],
        rows: usize,
        position: usize,
        tables: &[(Vec<f32>, Vec<f32>)],
    ) -> Result<Vec<f32>> {
        let d = self.head_dim;
        let (heads, kv_heads) = (self.num_heads, self.num_kv_heads);
        let projections = [&self.q_proj.base, &self.k_proj.base, &self.v_proj.base];
        let [mut q, mut k, v]: [Vec<f32>; 3] = Linear::forward_rows_shared(&projections, x, rows)?
            .try_into()
            .map_err(|_| {
                EngineError::usage("q/k/v projections gave the wrong number of outputs")
            })?;
        // A norm weight of head_dim normalizes each head, one of the whole width each row.
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = rms_norm(&q, qn, self.eps)?;
            k = rms_norm(&k, kn, self.eps)?;
        }
        // Rows are (sequence, head, d) already: one position per sequence.
        if let Some((cos, sin)) = self.rope.and_then(|i| tables.get(i)) {
            let rotary = 2 * cos.len();
            q.chunks_exact_mut(d)
                .for_each(|h| rotate(&mut h[..rotary], cos, sin));
            k.chunks_exact_mut(d)
                .for_each(|h| rotate(&mut h[..rotary], cos, sin));
        }
        let shape = (rows, kv_heads, 1, d);
        let k = Tensor::from_vec(k, shape, &candle_core::Device::Cpu)?;
        let v = Tensor::from_vec(v, shape, &candle_core::Device::Cpu)?;
        let (keys, values) = self.cache.append(&k, &v)?;
        let total = keys.dim(2)?;
        // Keys this position sees: all before it, or the last `window` with a sliding window.
        let first = self.window.map_or(0, |w| (position + 1).saturating_sub(w));
        let mut out = vec![0f32; rows * heads * d];
        let (key_storage, key_layout) = keys.storage_and_layout();
        let (value_storage, value_layout) = values.storage_and_layout();
        let keys = CacheView::new(&key_storage, key_layout)?;
        let values = CacheView::new(&value_storage, value_layout)?;
        let scale = self.scale as f32;
        let group = heads / kv_heads;
        let mut scores = vec![0f32; total];
        for r in 0..rows {
            for h in 0..heads {
                let g = h / group;
                let query = &q[(r * heads + h) * d..][..d];
                let visible = &mut scores[first..total];
                for (j, s) in (first..total).zip(visible.iter_mut()) {
                    *s = gemv::dot(query, keys.vector(r, g, j, d)) * scale;
                }
                if let Some(cap) = self.softcap {
                    visible
                        .iter_mut()
                        .for_each(|s| *s = (*s / cap).tanh() * cap);
                }
                softmax_in_place(visible);
                let o = &mut out[(r * heads + h) * d..][..d];
                for (j, &p) in (first..total).zip(visible.iter()) {
                    gemv::add_scaled(o, p, values.vector(r, g, j, d));
                }
            }
        }
        self.o_proj.base.forward_rows(&out, rows)
    }
}

impl Mlp {
    fn decode_rows(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let projections = [&self.gate_proj, &self.up_proj];
        let [mut gate, up]: [Vec<f32>; 2] = Linear::forward_rows_shared(&projections, x, rows)?
            .try_into()
            .map_err(|_| {
                EngineError::usage("gate/up projections gave the wrong number of outputs")
            })?;
        match self.activation {
            Activation::Silu => gate
                .iter_mut()
                .zip(&up)
                .for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u),
            Activation::GeluTanh => gate
                .iter_mut()
                .zip(&up)
                .for_each(|(g, u)| *g = gelu_tanh(*g) * u),
        }
        self.down_proj.forward_rows(&gate, rows)
    }
}

/// A (batch, kv_heads, positions, head_dim) view into a KV cache buffer, by its strides.
struct CacheView<'a> {
    data: &'a [f32],
    start: usize,
    strides: [usize; 3],
}

impl<'a> CacheView<'a> {
    /// The cache's f32 buffer (activations, hence the cache, are f32 on the CPU).
    fn new(storage: &'a Storage, layout: &Layout) -> Result<Self> {
        let Storage::Cpu(CpuStorage::F32(data)) = storage else {
            return Err(EngineError::usage("KV cache is not f32 on the CPU"));
        };
        let stride = layout.stride();
        if stride.len() != 4 || stride[3] != 1 {
            return Err(EngineError::usage("KV cache rows are not contiguous"));
        }
        Ok(Self {
            data,
            start: layout.start_offset(),
            strides: [stride[0], stride[1], stride[2]],
        })
    }

    /// The `d` values of sequence `r`, KV head `g`, position `j`.
    fn vector(&self, r: usize, g: usize, j: usize, d: usize) -> &'a [f32] {
        let at = self.start + r * self.strides[0] + g * self.strides[1] + j * self.strides[2];
        &self.data[at..at + d]
    }
}

/// RMSNorm of each row of `x` (rows of the weight's length).
fn rms_norm(x: &[f32], weight: &Tensor, eps: f32) -> Result<Vec<f32>> {
    let w = weight.to_vec1::<f32>()?;
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(w.len()) {
        let mean_square = row.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        let inv = 1.0 / (mean_square + eps).sqrt();
        out.extend(row.iter().zip(&w).map(|(v, w)| v * inv * w));
    }
    Ok(out)
}

/// RMSNorm of each row where a weight is given, `x` itself otherwise.
fn maybe_norm<'a>(x: &'a [f32], weight: Option<&Tensor>, eps: f32) -> Result<Cow<'a, [f32]>> {
    Ok(match weight {
        Some(w) => Cow::Owned(rms_norm(x, w, eps)?),
        None => Cow::Borrowed(x),
    })
}

/// GELU, tanh approximation (PyTorch's `approximate="tanh"`).
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// Rotary embedding of one head, Hugging Face's layout: element i pairs with i + d/2.
fn rotate(head: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = head.len() / 2;
    let (a, b) = head.split_at_mut(half);
    for i in 0..half {
        let (x1, x2) = (a[i], b[i]);
        a[i] = x1 * cos[i] - x2 * sin[i];
        b[i] = x2 * cos[i] + x1 * sin[i];
    }
}

fn softmax_in_place(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    v.iter_mut().for_each(|x| *x /= sum);
}

fn add_into(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}
