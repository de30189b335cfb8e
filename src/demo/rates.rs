//! Measuring behaviour under one weight setting: sample responses to a set of prompts, sum each
//! ARM's reward, and — for the demo's own requests — classify every response with the
//! ground-truth classifier into rates per request class, held-in and held-out.

use std::collections::BTreeMap;

use serde::Serialize;

use super::classify::{Verdict, classify};
use super::world::{RequestClass, Style, World, prompt_for};
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

/// Sample every prompt `samples` times under `weights`. Seeds differ per prompt and sample but
/// not per setting, so settings are compared on the same random stream.
pub fn evaluate(
    guide: &mut Guide,
    prompts: &[SweepPrompt],
    weights: &[f32],
    options: &SweepOptions,
    mut progress: impl FnMut(),
) -> Result<SettingResult> {
    let names = guide.arm_names();
    let mut reward_sums = vec![0f64; names.len()];
    let mut length_sum = 0usize;
    let mut counts: BTreeMap<String, (usize, [usize; 5])> = BTreeMap::new();
    let mut n = 0usize;
    for (p, prompt) in prompts.iter().enumerate() {
        let ids = guide
            .base
            .tokenizer
            .encode_prompt(&guide.format_prompt(&prompt.text))?;
        for sample in 0..options.samples {
            let params = SamplingParams {
                temperature: options.temperature,
                top_k: 0,
                top_p: options.top_p,
                seed: options.seed.wrapping_add((p * 1_000_003 + sample) as u64),
            };
            let mut generation =
                Generation::start(guide, ids.clone(), params, options.max_new_tokens, 0)?;
            let mut arm_sums = vec![0f64; names.len()];
            let mut tokens = 0;
            while generation.stopped().is_none() {
                let record = generation.step(guide, weights, None)?;
                tokens += 1;
                for (sum, arm) in arm_sums.iter_mut().zip(&record.arms) {
                    *sum += arm.logprob as f64;
                }
            }
            for (i, sum) in arm_sums.iter().enumerate() {
                reward_sums[i] += options.betas.get(i).copied().unwrap_or(1.0) * sum;
            }
            length_sum += tokens;
            n += 1;
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
                let entry = counts.entry(group).or_default();
                entry.0 += 1;
                let bucket = match classify(topic, &generation.text()) {
                    Verdict::Style(Style::Detailed) => 0,
                    Verdict::Style(Style::Comply) => 1,
                    Verdict::Style(Style::Refusal | Style::Redirect) => 2,
                    Verdict::Style(Style::Brief | Style::OffTopic) => 3,
                    Verdict::Garbled => 4,
                };
                entry.1[bucket] += 1;
            }
            progress();
        }
    }
    let rates = counts
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
    Ok(SettingResult {
        weights: names.iter().cloned().zip(weights.iter().copied()).collect(),
        samples: n,
        mean_reward: names
            .iter()
            .cloned()
            .zip(reward_sums.iter().map(|s| s / n.max(1) as f64))
            .collect(),
        mean_length: length_sum as f64 / n.max(1) as f64,
        rates,
    })
}
