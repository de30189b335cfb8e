//! The GenARM loss: for a preference pair, with the ARM's reward r(x, y) = β · Σ_t log π(y_t | x, y_<t)
//! over response tokens only (prompt masked, no reference model, no length normalisation),
//!
//! ```text
//! loss = −log σ( r(x, y_chosen) − r(x, y_rejected) − γ )
//! ```

use candle_core::{D, DType, Device, Tensor};

use crate::engine::Result;
use crate::engine::model::transformer::Transformer;

/// A tokenized pair: prompt ids and the two responses' ids.
#[derive(Debug, Clone)]
pub struct EncodedPair {
    pub prompt: Vec<u32>,
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
}

impl EncodedPair {
    pub fn tokens(&self) -> usize {
        2 * self.prompt.len() + self.chosen.len() + self.rejected.len()
    }
}

/// Sequences padded on the right to one length, with a mask over the response targets.
pub struct Batch {
    /// (n, t) token ids.
    pub tokens: Tensor,
    /// (n, t − 1): 1 where target t + 1 is a response token.
    pub mask: Tensor,
}

/// Stack `prompt + response` sequences. Right padding needs no attention mask: causal attention
/// never looks forward, and padded targets are masked out.
pub fn make_batch(sequences: &[(&[u32], &[u32])], device: &Device) -> Result<Batch> {
    let t = sequences
        .iter()
        .map(|(p, r)| p.len() + r.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let n = sequences.len();
    let mut ids = vec![0u32; n * t];
    let mut mask = vec![0f32; n * (t - 1)];
    for (row, (prompt, response)) in sequences.iter().enumerate() {
        let seq: Vec<u32> = prompt.iter().chain(response.iter()).copied().collect();
        ids[row * t..row * t + seq.len()].copy_from_slice(&seq);
        // Target at index j (predicting token j + 1) is a response token when j + 1 >= prompt len.
        for j in prompt.len().saturating_sub(1)..seq.len() - 1 {
            mask[row * (t - 1) + j] = 1.0;
        }
    }
    Ok(Batch {
        tokens: Tensor::from_vec(ids, (n, t), device)?,
        mask: Tensor::from_vec(mask, (n, t - 1), device)?,
    })
}

/// Σ log π(response) per sequence, differentiable: shape (n,).
pub fn sequence_logprobs(net: &Transformer, batch: &Batch) -> Result<Tensor> {
    let (_, t) = batch.tokens.dims2()?;
    let logits = net.forward_train(&batch.tokens)?;
    let logits = logits.narrow(1, 0, t - 1)?;
    let logprobs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let targets = batch
        .tokens
        .narrow(1, 1, t - 1)?
        .contiguous()?
        .unsqueeze(2)?;
    let picked = logprobs.gather(&targets, 2)?.squeeze(2)?;
    Ok((picked * &batch.mask)?.sum(1)?)
}

/// Mean GenARM loss over pairs and the fraction whose chosen reward beats the rejected one.
pub fn genarm_loss(
    chosen_logprobs: &Tensor,
    rejected_logprobs: &Tensor,
    beta: f64,
    gamma: f64,
) -> Result<(Tensor, f64)> {
    let margin = (((chosen_logprobs - rejected_logprobs)? * beta)? - gamma)?;
    // −log σ(m) = softplus(−m) = max(−m, 0) + log(1 + e^{−|m|}), stable for any m.
    let neg = margin.neg()?;
    let softplus = (neg.relu()? + (neg.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    let loss = softplus.mean_all()?;
    let wins: Vec<f32> = (chosen_logprobs - rejected_logprobs)?
        .gt(0f64)?
        .to_dtype(DType::F32)?
        .to_vec1()?;
    let accuracy = wins.iter().sum::<f32>() as f64 / wins.len().max(1) as f64;
    Ok((loss, accuracy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_matches_the_formula() {
        let c = Tensor::new(&[-3.0f32, -10.0], &Device::Cpu).unwrap();
        let r = Tensor::new(&[-5.0f32, -4.0], &Device::Cpu).unwrap();
        let (loss, acc) = genarm_loss(&c, &r, 0.5, 0.1).unwrap();
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let expected = (-(sig(0.5 * 2.0 - 0.1)).ln() - (sig(0.5 * -6.0 - 0.1)).ln()) / 2.0;
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        assert_eq!(acc, 0.5);
    }

    #[test]
    fn batch_masks_only_response_targets() {
        let b = make_batch(&[(&[1, 2, 3], &[4, 5]), (&[1], &[6])], &Device::Cpu).unwrap();
        let mask: Vec<Vec<f32>> = b.mask.to_vec2().unwrap();
        // Row 0: targets are tokens 2,3,4,5 → response targets 4 and 5 (indices 2, 3).
        assert_eq!(mask[0], vec![0.0, 0.0, 1.0, 1.0]);
        // Row 1: target 6 at index 0; the rest is padding.
        assert_eq!(mask[1], vec![1.0, 0.0, 0.0, 0.0]);
    }
}
