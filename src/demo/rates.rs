//! Measuring behaviour under one weight setting: sample responses to a set of prompts, sum each
//! ARM's reward, and — for the demo's own requests — classify every response with the
//! ground-truth classifier into rates per request class, held-in and held-out.

use std::collections::BTreeMap;

use serde::Serialize;

use super::classify::{Verdict, classify};
use super::topics::RequestClass;
use super::world::{Style, World, prompt_for};
use crate::engine::decode::batch::{BatchRow, MAX_ROWS, sample_rows};
use crate::engine::{Generation, Guide, Result, SamplingParams};

/// A prompt to sample; `topic` is set for demo requests (so responses can be classified).
#[derive(Debug, Clone)]
pub struct SweepPrompt {
    pub text: String,
    pub topic: Option<usize>,
    pub class: Option<RequestClass>,
    pub held_out: bool,
}

/// Every request of the demo world, in the demo's prompt format, ready to classify.
pub fn demo_prompts(world: &World) -> Vec<SweepPrompt> {
    world
        .all_requests()
        .into_iter()
        .map(|r| SweepPrompt {
            text: prompt_for(&r.text),
            topic: Some(r.topic),
            class: Some(r.class),
            held_out: r.held_out,
        })
        .collect()
}

/// Counts of classified responses in one group.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Rates {
    pub responses: usize,
    pub detailed: f64,
    /// Detailed or eager compliance: the request was carried out.
    pub complies: f64,
    pub refuses_or_redirects: f64,
    pub brief_or_off_topic: f64,
    pub garbled: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingResult {
    /// (ARM name, weight).
    pub weights: Vec<(String, f32)>,
    pub samples: usize,
    /// Mean β · Σ log π_arm of the responses, per ARM.
    pub mean_reward: Vec<(String, f64)>,
    /// Mean response length in tokens.
    pub mean_length: f64,
    /// "benign/held_in" → rates (demo prompts only).
    pub rates: BTreeMap<String, Rates>,
}

pub struct SweepOptions {
    pub samples: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    pub max_new_tokens: usize,
    /// β per ARM for the reward.
    pub betas: Vec<f64>,
}

impl SweepOptions {
    /// Sampling settings of one sample; seeds differ per prompt and sample but not per weight
    /// setting, so settings are compared on the same random stream.
    fn params(&self, prompt: usize, sample: usize) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: 0,
            top_p: self.top_p,
            seed: self
                .seed
                .wrapping_add((prompt as u64).wrapping_mul(1_000_003))
                .wrapping_add(sample as u64),
        }
    }
}

/// Sample every prompt `samples` times under `weights`, one sequence at a time.
pub fn evaluate(
    guide: &mut Guide,
    prompts: &[SweepPrompt],
    weights: &[f32],
    options: &SweepOptions,
    mut progress: impl FnMut(),
) -> Result<SettingResult> {
    let mut tally = Tally::new(guide.arm_names().len());
    for (p, prompt) in prompts.iter().enumerate() {
        let ids = guide.prompt_ids(&prompt.text)?;
        for sample in 0..options.samples {
            let params = options.params(p, sample);
            let mut generation =
                Generation::start(guide, ids.clone(), params, options.max_new_tokens, 0)?;
            let mut arm_sums = vec![0f64; tally.reward_sums.len()];
            let mut tokens = 0;
            while generation.stopped().is_none() {
                let record = generation.step(guide, weights, None)?;
                tokens += 1;
                for (sum, arm) in arm_sums.iter_mut().zip(&record.arms) {
                    *sum += arm.logprob as f64;
                }
            }
            tally.add(
                prompt,
                &generation.text(),
                tokens,
                &arm_sums,
                &options.betas,
            );
            progress();
        }
    }
    Ok(tally.finish(&guide.arm_names(), weights))
}

/// [`evaluate`] for every weight setting of `grid` at once: each prompt's samples under all
/// settings are decoded as one batch (see [`crate::engine::decode::batch`]), which draws the same
/// samples as evaluating each setting alone, at a fraction of the cost. `progress` is called
/// once per prompt with the number of samples it finished.
pub fn evaluate_grid(
    guide: &mut Guide,
    prompts: &[SweepPrompt],
    grid: &[Vec<f32>],
    options: &SweepOptions,
    mut progress: impl FnMut(usize),
) -> Result<Vec<SettingResult>> {
    let arms = guide.arm_names().len();
    let mut tallies: Vec<Tally> = grid.iter().map(|_| Tally::new(arms)).collect();
    for (p, prompt) in prompts.iter().enumerate() {
        let ids = guide.prompt_ids(&prompt.text)?;
        // Row i is sample i % samples of setting i / samples. Rows are made, sampled and
        // tallied one batch at a time, so memory stays that of one batch whatever the
        // number of samples (the batches are the ones `sample_rows` would cut anyway).
        let samples = options.samples.max(1);
        let total = grid.len().saturating_mul(samples);
        for start in (0..total).step_by(MAX_ROWS) {
            let end = start.saturating_add(MAX_ROWS).min(total);
            let rows: Vec<BatchRow> = (start..end)
                .map(|i| BatchRow {
                    weights: grid[i / samples].clone(),
                    params: options.params(p, i % samples),
                })
                .collect();
            let drawn = sample_rows(guide, &ids, &rows, options.max_new_tokens)?;
            for (i, s) in (start..end).zip(&drawn) {
                tallies[i / samples].add(
                    prompt,
                    &s.text,
                    s.tokens.len(),
                    &s.arm_logprobs,
                    &options.betas,
                );
            }
            progress(rows.len());
        }
    }
    let names = guide.arm_names();
    Ok(tallies
        .into_iter()
        .zip(grid)
        .map(|(tally, weights)| tally.finish(&names, weights))
        .collect())
}

/// Running sums of one weight setting's samples.
struct Tally {
    reward_sums: Vec<f64>,
    length_sum: usize,
    n: usize,
    /// group → (responses, counts per bucket: detailed, comply, refuse/redirect, brief/off-topic,
    /// garbled).
    counts: BTreeMap<String, (usize, [usize; 5])>,
}

impl Tally {
    fn new(arms: usize) -> Self {
        Self {
            reward_sums: vec![0.0; arms],
            length_sum: 0,
            n: 0,
            counts: BTreeMap::new(),
        }
    }

    fn add(
        &mut self,
        prompt: &SweepPrompt,
        text: &str,
        tokens: usize,
        arm_sums: &[f64],
        betas: &[f64],
    ) {
        for (i, sum) in arm_sums.iter().enumerate() {
            self.reward_sums[i] += betas.get(i).copied().unwrap_or(1.0) * sum;
        }
        self.length_sum += tokens;
        self.n += 1;
        if let (Some(topic), Some(class)) = (prompt.topic, prompt.class) {
            let group = format!(
                "{}/{}",
                class.name(),
                if prompt.held_out {
                    "held_out"
                } else {
                    "held_in"
                }
            );
            let entry = self.counts.entry(group).or_default();
            entry.0 += 1;
            let bucket = match classify(topic, text) {
                Verdict::Style(Style::Detailed) => 0,
                Verdict::Style(Style::Comply) => 1,
                Verdict::Style(Style::Refusal | Style::Redirect) => 2,
                Verdict::Style(Style::Brief | Style::OffTopic) => 3,
                Verdict::Garbled => 4,
            };
            entry.1[bucket] += 1;
        }
    }

    fn finish(self, names: &[String], weights: &[f32]) -> SettingResult {
        let n = self.n.max(1) as f64;
        let rates = self
            .counts
            .into_iter()
            .map(|(group, (total, c))| {
                let share = |k: usize| c[k] as f64 / total.max(1) as f64;
                let rates = Rates {
                    responses: total,
                    detailed: share(0),
                    complies: share(0) + share(1),
                    refuses_or_redirects: share(2),
                    brief_or_off_topic: share(3),
                    garbled: share(4),
                };
                (group, rates)
            })
            .collect();
        SettingResult {
            weights: names.iter().cloned().zip(weights.iter().copied()).collect(),
            samples: self.n,
            mean_reward: names
                .iter()
                .cloned()
                .zip(self.reward_sums.iter().map(|s| s / n))
                .collect(),
            mean_length: self.length_sum as f64 / n,
            rates,
        }
    }
}
