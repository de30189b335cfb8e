//! Choosing the next token from the guided distribution: greedy, or seeded sampling after
//! temperature, top-k and top-p (in that order, as transformers applies its warpers).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine::error::{Input, Result};
use crate::engine::kernels::fastmath;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 means no top-k filter.
    pub top_k: usize,
    /// 1 means no nucleus filter.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Check the values a user typed, naming the input at fault.
    pub fn validate(&self) -> Result<()> {
        let usable = self.temperature == 0.0 || (1.0 / self.temperature).is_finite();
        if !self.temperature.is_finite() || self.temperature < 0.0 || !usable {
            return Err(Input::Temperature.error(format!(
                " must be a finite number >= 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Input::TopP.error(format!(" must be in (0, 1], got {}", self.top_p)));
        }
        Ok(())
    }
}

/// A seeded chooser. ChaCha8 is portable, so a seed gives the same stream on every platform.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
    scratch: Vec<f32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        Self {
            params,
            rng: ChaCha8Rng::seed_from_u64(params.seed),
            scratch: Vec::new(),
        }
    }

    pub fn params(&self) -> SamplingParams {
        self.params
    }

    /// Change temperature/top-k/top-p without restarting the random stream.
    pub fn set_params(&mut self, params: SamplingParams) {
        if params.seed != self.params.seed {
            self.rng = ChaCha8Rng::seed_from_u64(params.seed);
        }
        self.params = params;
    }

    /// Pick a token from guided log-probabilities.
    /// Whether `pick` takes the most likely token (temperature 0).
    pub fn is_greedy(&self) -> bool {
        self.params.temperature == 0.0
    }

    pub fn pick(&mut self, guided_logprobs: &[f32]) -> u32 {
        let p = self.params;
        if p.temperature == 0.0 {
            return fastmath::argmax(guided_logprobs) as u32;
        }
        let inv_t = 1.0 / p.temperature;
        let max = fastmath::max(guided_logprobs);
        let use_k = p.top_k > 0 && p.top_k < guided_logprobs.len();
        if !use_k && p.top_p >= 1.0 {
            // Full distribution: walk the vocabulary in index order, no sorting needed.
            let scaled: Vec<f32> = guided_logprobs.iter().map(|&v| v * inv_t).collect();
            fastmath::exp_shifted_into(&scaled, max * inv_t, &mut self.scratch);
            let total: f64 = self.scratch.iter().map(|&w| w as f64).sum();
            return walk(
                &mut self.rng,
                self.scratch.iter().copied().enumerate(),
                total,
            );
        }
        // Candidates in descending order, then the nucleus cut. Top-p is measured against the
        // mass that survives top-k, or against the whole vocabulary without top-k.
        let (candidates, full_total) = if use_k {
            (top_k_with_ties(guided_logprobs, p.top_k), None)
        } else {
            let (c, t) = self.nucleus_candidates(guided_logprobs, inv_t, max);
            (c, Some(t))
        };
        let weights: Vec<f32> = candidates
            .iter()
            .map(|&i| ((guided_logprobs[i] - max) * inv_t).exp())
            .collect();
        let total: f64 = full_total.unwrap_or_else(|| weights.iter().map(|&w| w as f64).sum());
        let mut kept = candidates.len();
        if p.top_p < 1.0 {
            let mut cumulative = 0f64;
            for (n, &w) in weights.iter().enumerate() {
                cumulative += w as f64 / total;
                if cumulative >= p.top_p as f64 {
                    kept = n + 1;
                    break;
                }
            }
        }
        let kept_total: f64 = weights[..kept].iter().map(|&w| w as f64).sum();
        walk(
            &mut self.rng,
            candidates[..kept]
                .iter()
                .copied()
                .zip(weights[..kept].iter().copied()),
            kept_total,
        )
    }

    /// The smallest descending prefix of the vocabulary that can hold a `top_p` nucleus, found
    /// by growing a partial selection instead of sorting everything.
    /// Returns the candidates and the whole vocabulary's unnormalised mass.
    fn nucleus_candidates(&mut self, logprobs: &[f32], inv_t: f32, max: f32) -> (Vec<usize>, f64) {
        let total = fastmath::sum_exp_shifted(
            &logprobs.iter().map(|&v| v * inv_t).collect::<Vec<_>>(),
            max * inv_t,
        );
        let mut k = 64.min(logprobs.len());
        loop {
            let top = fastmath::top_k(logprobs, k);
            let mass: f64 = top
                .iter()
                .map(|&i| (((logprobs[i] - max) * inv_t) as f64).exp())
                .sum::<f64>()
                / total;
            if mass >= self.params.top_p as f64 || k == logprobs.len() {
                return (top, total);
            }
            k = (k * 4).min(logprobs.len());
        }
    }
}

/// The `k` best tokens plus any tied with the k-th, as transformers' top-k keeps every token
/// scoring at least the k-th value.
fn top_k_with_ties(values: &[f32], k: usize) -> Vec<usize> {
    let mut top = fastmath::top_k(values, k);
    if let Some(&last) = top.last() {
        let threshold = values[last];
        let extra: Vec<usize> = values
            .iter()
            .enumerate()
            .filter(|&(i, &v)| v == threshold && !top.contains(&i))
            .map(|(i, _)| i)
            .collect();
        top.extend(extra);
    }
    top
}

/// Draw from `items` (index, unnormalised weight) with one uniform number.
fn walk(rng: &mut ChaCha8Rng, items: impl Iterator<Item = (usize, f32)>, total: f64) -> u32 {
    let target = rng.random::<f64>() * total;
    let mut cumulative = 0f64;
    let mut last = 0;
    for (i, w) in items {
        cumulative += w as f64;
        if w > 0.0 {
            last = i;
            if cumulative > target {
                return i as u32;
            }
        }
    }
    last as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::error::EngineError;

    fn logprobs(probs: &[f64]) -> Vec<f32> {
        probs.iter().map(|p| p.ln() as f32).collect()
    }

    fn frequencies(params: SamplingParams, lp: &[f32], draws: usize) -> Vec<f64> {
        let mut sampler = Sampler::new(params);
        let mut counts = vec![0usize; lp.len()];
        for _ in 0..draws {
            counts[sampler.pick(lp) as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn greedy_takes_the_argmax() {
        let lp = logprobs(&[0.1, 0.6, 0.3]);
        assert_eq!(Sampler::new(SamplingParams::default()).pick(&lp), 1);
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let lp = logprobs(&[0.1, 0.6, 0.3]);
        let params = SamplingParams {
            temperature: 1.0,
            seed: 7,
            ..Default::default()
        };
        let f = frequencies(params, &lp, 20_000);
        for (got, want) in f.iter().zip([0.1, 0.6, 0.3]) {
            assert!((got - want).abs() < 0.02, "{f:?}");
        }
    }

    #[test]
    fn temperature_sharpens() {
        // At T = 0.5 probabilities go as p^2: 0.01, 0.36, 0.09 normalised.
        let lp = logprobs(&[0.1, 0.6, 0.3]);
        let params = SamplingParams {
            temperature: 0.5,
            seed: 3,
            ..Default::default()
        };
        let f = frequencies(params, &lp, 20_000);
        let z = 0.01 + 0.36 + 0.09;
        assert!((f[1] - 0.36 / z).abs() < 0.02, "{f:?}");
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        let lp = logprobs(&[0.05, 0.5, 0.3, 0.15]);
        let k2 = SamplingParams {
            temperature: 1.0,
            top_k: 2,
            seed: 1,
            ..Default::default()
        };
        let f = frequencies(k2, &lp, 5000);
        assert_eq!(f[0] + f[3], 0.0);
        assert!((f[1] - 0.5 / 0.8).abs() < 0.03, "{f:?}");
        // top-p 0.7: 0.5 alone is not enough, 0.5 + 0.3 is.
        let p = SamplingParams {
            temperature: 1.0,
            top_p: 0.7,
            seed: 1,
            ..Default::default()
        };
        let f = frequencies(p, &lp, 5000);
        assert_eq!(f[0] + f[3], 0.0);
        assert!(f[2] > 0.3, "{f:?}");
    }

    #[test]
    fn top_p_is_measured_against_the_whole_vocabulary() {
        // One token of 0.3, 63 sharing 0.3, 936 sharing 0.4: a 0.5 nucleus needs the first token
        // and about 43 of the next group, not just two tokens.
        let mut probs = vec![0.3];
        probs.extend(std::iter::repeat_n(0.3 / 63.0, 63));
        probs.extend(std::iter::repeat_n(0.4 / 936.0, 936));
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 0.5,
            seed: 5,
            ..Default::default()
        };
        let f = frequencies(params, &logprobs(&probs), 4000);
        let distinct = f.iter().filter(|&&x| x > 0.0).count();
        assert!(
            distinct > 20 && distinct <= 64,
            "{distinct} distinct tokens"
        );
    }

    #[test]
    fn top_k_keeps_tokens_tied_with_the_kth() {
        let lp = vec![-1.0, -2.0, -2.0, -2.0, -5.0];
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 2,
            seed: 2,
            ..Default::default()
        };
        let f = frequencies(params, &lp, 4000);
        assert!(f[1] > 0.0 && f[2] > 0.0 && f[3] > 0.0, "{f:?}");
        assert_eq!(f[4], 0.0);
    }

    #[test]
    fn same_seed_same_tokens_other_seed_differs() {
        let lp: Vec<f32> = logprobs(&[0.2; 5]);
        let params = SamplingParams {
            temperature: 1.0,
            seed: 42,
            ..Default::default()
        };
        let a: Vec<u32> = (0..50)
            .scan(Sampler::new(params), |s, _| Some(s.pick(&lp)))
            .collect();
        let b: Vec<u32> = (0..50)
            .scan(Sampler::new(params), |s, _| Some(s.pick(&lp)))
            .collect();
        let other = SamplingParams { seed: 43, ..params };
        let c: Vec<u32> = (0..50)
            .scan(Sampler::new(other), |s, _| Some(s.pick(&lp)))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bad_parameters_name_their_input() {
        let named = |params: SamplingParams| match params.validate() {
            Err(EngineError::BadInput(message)) => message.inputs().collect::<Vec<_>>(),
            other => panic!("expected a bad input, got {other:?}"),
        };
        let bad_p = SamplingParams {
            top_p: 1.5,
            ..Default::default()
        };
        assert_eq!(named(bad_p), [Input::TopP]);
        assert_eq!(
            bad_p.validate().unwrap_err().to_string(),
            "top-p must be in (0, 1], got 1.5"
        );
        let bad_t = SamplingParams {
            temperature: f32::NAN,
            ..Default::default()
        };
        assert_eq!(named(bad_t), [Input::Temperature]);
    }
}
