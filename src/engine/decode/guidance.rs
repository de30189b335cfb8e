//! The GenARM combination for one position:
//!
//! ```text
//! guided = log_softmax( log_softmax(base) + Σ_i w_i · log_softmax(arm_i) )
//! ```
//!
//! Each model's normaliser is computed once; every number a record needs (base, ARM and guided
//! log-probs of any token, the top alternatives) is derived from those without another pass.

use crate::engine::decode::guide::NextLogits;
use crate::engine::error::{Input, Result};
use crate::engine::kernels::fastmath;
use crate::engine::remote::Candidates;

/// The distributions of one decoding position.
pub struct GuidedStep<'a> {
    base_logits: &'a [f32],
    arm_logits: Vec<&'a [f32]>,
    weights: Vec<f32>,
    base_lse: f32,
    arm_lse: Vec<f32>,
    /// log_softmax of the combined scores over the shared vocabulary.
    guided: Vec<f32>,
    /// The combined scores' log-sum-exp.
    combined_lse: f32,
    /// For a served base: the candidate set the distribution is spread over (every other
    /// token's guided log-prob is minus infinity).
    candidates: Option<Candidates>,
}

impl<'a> GuidedStep<'a> {
    /// `logits[0]` is the base model's, the rest the ARMs' in order; all cut to the shared
    /// vocabulary length. `weights` has one entry per ARM.
    pub fn new(logits: &'a [Vec<f32>], weights: &[f32]) -> Self {
        let vocab = logits.iter().map(Vec::len).min().unwrap_or(0);
        let normalisers: Vec<f32> = logits
            .iter()
            .map(|l| fastmath::log_sum_exp(&l[..vocab]))
            .collect();
        Self::with_normalisers(logits, &normalisers, weights)
    }

    /// [`GuidedStep::new`] for logits whose log-sum-exps are known (`Guide::feed_next`
    /// computes them while the models run); `log_sum_exp[i]` belongs to `logits[i]`.
    pub fn from_next(next: &'a NextLogits, weights: &[f32]) -> Self {
        let mut step = Self::with_normalisers(&next.logits, &next.log_sum_exp, weights);
        step.candidates = next.candidates;
        step
    }

    fn with_normalisers(logits: &'a [Vec<f32>], log_sum_exp: &[f32], weights: &[f32]) -> Self {
        let vocab = logits.iter().map(Vec::len).min().unwrap_or(0);
        let base_logits = &logits[0][..vocab];
        let arm_logits: Vec<&[f32]> = logits[1..].iter().map(|l| &l[..vocab]).collect();
        let base_lse = log_sum_exp[0];
        let arm_lse: Vec<f32> = log_sum_exp[1..].to_vec();

        // combined = log_softmax(base) + Σ w · log_softmax(arm), one pass per model.
        let mut guided: Vec<f32> = base_logits.iter().map(|&b| b - base_lse).collect();
        for ((arm, &lse), &w) in arm_logits.iter().zip(&arm_lse).zip(weights) {
            if w == 0.0 {
                continue;
            }
            for (g, &a) in guided.iter_mut().zip(arm.iter()) {
                *g += w * (a - lse);
            }
        }
        let lse = fastmath::log_sum_exp(&guided);
        for g in guided.iter_mut() {
            *g -= lse;
        }
        Self {
            base_logits,
            arm_logits,
            weights: weights.to_vec(),
            base_lse,
            arm_lse,
            guided,
            combined_lse: lse,
            candidates: None,
        }
    }

    /// An error when the guided distribution is not a distribution: the weighted ARM
    /// log-probabilities overflowed (huge weights or logits), or a NaN came in. `step` is the
    /// response token's index, for the message.
    pub fn check_finite(&self, step: usize) -> Result<()> {
        // Every guided log-probability must be a number a record can carry: -inf from an
        // overflowing weighted term is no more a probability of 0 than NaN is one. The one -inf
        // allowed is a token a served base left out of the candidates (its base row is -inf).
        let is_number = |(g, b): (&f32, &f32)| {
            g.is_finite() || (*b == f32::NEG_INFINITY && *g == f32::NEG_INFINITY)
        };
        if self.combined_lse.is_finite() && self.guided.iter().zip(self.base_logits).all(is_number)
        {
            return Ok(());
        }
        Err(Input::ArmWeight.error(format!(
            ": the guided scores of response token {step} are not finite: the weighted ARM \
             log-probabilities overflow there"
        )))
    }

    pub fn vocab_len(&self) -> usize {
        self.guided.len()
    }

    pub fn base_logprob(&self, token: u32) -> f32 {
        self.base_logits[token as usize] - self.base_lse
    }

    pub fn arm_logprob(&self, arm: usize, token: u32) -> f32 {
        self.arm_logits[arm][token as usize] - self.arm_lse[arm]
    }

    pub fn weight(&self, arm: usize) -> f32 {
        self.weights[arm]
    }

    pub fn guided_logprob(&self, token: u32) -> f32 {
        self.guided[token as usize]
    }

    /// The guided log-probabilities of the whole vocabulary, for the sampler.
    pub fn guided(&self) -> &[f32] {
        &self.guided
    }

    /// The `k` most likely tokens under guidance, most likely first (candidates only, for a
    /// served base).
    pub fn top(&self, k: usize) -> Vec<u32> {
        fastmath::top_k(&self.guided, k.min(self.guided.len()))
            .into_iter()
            .filter(|&i| self.guided[i] > f32::NEG_INFINITY)
            .map(|i| i as u32)
            .collect()
    }

    /// How a served base's candidates were formed; None for a local base.
    pub fn candidates(&self) -> Option<Candidates> {
        self.candidates
    }

    /// Rank (0 = most likely) of `token` under the base model alone and under guidance.
    pub fn ranks(&self, token: u32) -> (usize, usize) {
        let t = token as usize;
        let rank = |v: &[f32]| v.iter().filter(|&&x| x > v[t]).count();
        (rank(self.base_logits), rank(&self.guided))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_softmax(v: &[f32]) -> Vec<f64> {
        let m = v.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let lse = m + v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        v.iter().map(|&x| x as f64 - lse).collect()
    }

    #[test]
    fn matches_the_formula_computed_in_f64() {
        let base = vec![1.0, 2.0, 0.5, -1.0, 3.0];
        let arm1 = vec![0.0, -1.0, 2.0, 0.3, 1.0];
        // An ARM with one extra (added-token) logit is cut to the shared length.
        let arm2 = vec![2.0, 0.0, 0.0, 1.0, -2.0, 9.0];
        let weights = [1.5, -0.5];
        let logits = vec![base.clone(), arm1.clone(), arm2.clone()];
        let step = GuidedStep::new(&logits, &weights);
        assert_eq!(step.vocab_len(), 5);
        let (lb, l1, l2) = (
            log_softmax(&base),
            log_softmax(&arm1),
            log_softmax(&arm2[..5]),
        );
        let combined: Vec<f32> = (0..5)
            .map(|i| (lb[i] + 1.5 * l1[i] - 0.5 * l2[i]) as f32)
            .collect();
        let expected = log_softmax(&combined);
        for t in 0..5u32 {
            let i = t as usize;
            assert!((step.guided_logprob(t) as f64 - expected[i]).abs() < 1e-5);
            assert!((step.base_logprob(t) as f64 - lb[i]).abs() < 1e-5);
            assert!((step.arm_logprob(1, t) as f64 - l2[i]).abs() < 1e-5);
        }
        let mut order: Vec<u32> = (0..5).collect();
        order.sort_by(|&a, &b| expected[b as usize].total_cmp(&expected[a as usize]));
        assert_eq!(step.top(3), order[..3].to_vec());
        let (_, guided_rank) = step.ranks(order[0]);
        assert_eq!(guided_rank, 0);
    }

    #[test]
    fn zero_weights_give_the_base_distribution() {
        let logits = vec![vec![0.1, 0.7, -0.3], vec![5.0, -5.0, 0.0]];
        let step = GuidedStep::new(&logits, &[0.0]);
        for t in 0..3 {
            assert!((step.guided_logprob(t) - step.base_logprob(t)).abs() < 1e-6);
        }
    }

    #[test]
    fn an_overflowing_combination_is_an_error_not_a_nan() {
        // The ARM's log-probs span 6e38: its weighted log-probs are +inf for one token and
        // -inf for the other, so the combined normaliser is inf - inf.
        let logits = vec![vec![0.0, 0.0], vec![3e38, -3e38]];
        let step = GuidedStep::new(&logits, &[-2.0]);
        let err = step.check_finite(4).unwrap_err().to_string();
        assert!(err.contains("response token 4"), "{err}");
        assert!(GuidedStep::new(&logits, &[0.0]).check_finite(0).is_ok());
    }
}
