//! Rotary position embeddings: the frequency tables of every scaling the families use
//! (linear, Llama 3, Phi-3's LongRoPE), and their application to the first `rotary_dim`
//! dimensions of each head (all of them except in partial-rotary Phi models).

use candle_core::{Device, Tensor};

use crate::engine::error::Result;
use crate::engine::model::config::RopeScaling;

/// Rotary frequencies, computed for the positions of each forward call.
pub(super) struct Rotary {
    inv_freq: Vec<f32>,
    /// LongRoPE: the frequencies used once the sequence is longer than the given length.
    long: Option<(Vec<f32>, usize)>,
    /// cos and sin are multiplied by this (LongRoPE's attention factor; 1 otherwise).
    attention_factor: f32,
}

impl Rotary {
    pub(super) fn new(theta: f32, scaling: &RopeScaling, rotary_dim: usize) -> Self {
        let dim = rotary_dim;
        let base: Vec<f32> = (0..dim)
            .step_by(2)
            .map(|i| theta.powf(i as f32 / dim as f32))
            .collect();
        let mut inv_freq: Vec<f32> = base.iter().map(|b| 1.0 / b).collect();
        let mut long = None;
        let mut attention_factor = 1.0;
        match scaling {
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
            RopeScaling::LongRope {
                short_factor,
                long_factor,
                original_max_position_embeddings,
                attention_factor: factor,
            } => {
                // transformers: 1 / (ext_factor * base^(i/d)), both in f32.
                let scaled = |ext: &[f32]| -> Vec<f32> {
                    base.iter().zip(ext).map(|(b, e)| 1.0 / (e * b)).collect()
                };
                inv_freq = scaled(short_factor);
                long = Some((scaled(long_factor), *original_max_position_embeddings));
                attention_factor = *factor;
            }
        }
        Self {
            inv_freq,
            long,
            attention_factor,
        }
    }

    /// Every frequency table it may use (LongRoPE has two), for the load-time checks.
    pub(super) fn frequencies(&self) -> Vec<&[f32]> {
        let mut all = vec![self.inv_freq.as_slice()];
        if let Some((long, _)) = &self.long {
            all.push(long);
        }
        all
    }

    /// The frequencies for a call whose last position is `seq_len - 1`: LongRoPE switches to
    /// its long factors past the original context, per call, as transformers does.
    fn freqs(&self, seq_len: usize) -> &[f32] {
        match &self.long {
            Some((long, original)) if seq_len > *original => long,
            _ => &self.inv_freq,
        }
    }

    /// cos and sin (rotary_dim / 2 each) of the angles at `position`, for a step whose
    /// sequence ends there.
    pub(super) fn angles(&self, position: usize) -> (Vec<f32>, Vec<f32>) {
        self.angles_with(self.freqs(position + 1), position)
    }

    fn angles_with(&self, freqs: &[f32], position: usize) -> (Vec<f32>, Vec<f32>) {
        let factor = self.attention_factor;
        freqs
            .iter()
            .map(|&f| {
                let angle = position as f32 * f;
                (angle.cos() * factor, angle.sin() * factor)
            })
            .unzip()
    }

    /// cos and sin tables (t, rotary_dim / 2) for positions offset..offset + t.
    pub(super) fn cos_sin(
        &self,
        offset: usize,
        t: usize,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let freqs = self.freqs(offset + t);
        let half = freqs.len();
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for p in offset..offset + t {
            let (c, s) = self.angles_with(freqs, p);
            cos.extend(c);
            sin.extend(s);
        }
        let cos = Tensor::from_vec(cos, (t, half), device)?;
        let sin = Tensor::from_vec(sin, (t, half), device)?;
        Ok((cos, sin))
    }
}

/// Rotate `x` (batch, heads, t, head_dim) by the tables: its first 2·cos.dim(1) dimensions,
/// Hugging Face's layout (element i pairs with i + rotary_dim/2); the rest pass through.
pub(super) fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor, slow: bool) -> Result<Tensor> {
    // The fused rope kernel has no backward; the composed one gives identical values.
    let rope = |x: &Tensor| -> Result<Tensor> {
        Ok(if slow {
            candle_nn::rotary_emb::rope_slow(x, cos, sin)?
        } else {
            candle_nn::rotary_emb::rope(x, cos, sin)?
        })
    };
    let d = x.dim(3)?;
    let rotary = 2 * cos.dim(1)?;
    if rotary == d {
        return rope(x);
    }
    let head = rope(&x.narrow(3, 0, rotary)?.contiguous()?)?;
    let tail = x.narrow(3, rotary, d - rotary)?;
    Ok(Tensor::cat(&[head, tail], 3)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LongRoPE as transformers' `longrope_frequency_update` does it: the short factors while the
    /// sequence a call reaches fits the original context, the long ones beyond, for every
    /// position of that call; cos and sin times the attention factor. With rotary_dim 2 the one
    /// frequency is 1 / factor.
    #[test]
    fn longrope_switches_factors_past_the_original_context() {
        let scaling = RopeScaling::LongRope {
            short_factor: vec![1.0],
            long_factor: vec![2.0],
            original_max_position_embeddings: 4,
            attention_factor: 1.5,
        };
        let rotary = Rotary::new(100.0, &scaling, 2);
        // Position 3 ends a sequence of 4: short factor, angle 3.
        assert_eq!(
            rotary.angles(3),
            (vec![3f32.cos() * 1.5], vec![3f32.sin() * 1.5])
        );
        // Position 4 ends a sequence of 5: long factor, angle 4 / 2.
        assert_eq!(
            rotary.angles(4),
            (vec![2f32.cos() * 1.5], vec![2f32.sin() * 1.5])
        );
        // A call over positions 0..5 uses the long factor at every position, position 3 too.
        let (cos, _) = rotary.cos_sin(0, 5, &Device::Cpu).unwrap();
        let cos: Vec<Vec<f32>> = cos.to_vec2().unwrap();
        assert_eq!(cos[3], vec![1.5f32.cos() * 1.5]);
    }
}
