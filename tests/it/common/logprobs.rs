//! Log-probabilities of a loaded model over a prompt, and how far two runs of them differ:
//! how the format tests (quant.rs, families.rs) compare a model with its f32 self.

use std::path::Path;

use genarm::engine::{CausalLm, ComputeDtype};

pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
    logits.iter().map(|x| x - lse).collect()
}

/// Log-probabilities at every position of `prompt` (teacher forcing), then of three decoding
/// steps through the KV cache (the slice path of `decode.rs`).
pub fn logprobs(
    path: &Path,
    dtype: ComputeDtype,
    tokenizer: Option<&Path>,
    prompt: &[u32],
) -> Vec<Vec<f32>> {
    let mut m = CausalLm::load_with(path, dtype, tokenizer)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows: Vec<Vec<f32>> = m
        .score_all(prompt)
        .unwrap()
        .iter()
        .map(|l| log_softmax(l))
        .collect();
    m.feed(prompt).unwrap();
    for t in [3u32, 77, 150] {
        rows.push(log_softmax(&m.feed(&[t]).unwrap()));
    }
    rows
}

/// Largest |Δ log p| at every position over the tokens the reference `a` gives at least
/// 1e-4 probability (quantization error is relative to the logits' size, so it is largest on
/// tokens with log-probs of -50 that no sampler ever picks).
pub fn max_error_plausible(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    let floor = 1e-4f32.ln();
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            x.iter()
                .zip(y)
                .filter(|(p, _)| **p > floor)
                .map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}
