//! Many guided samples of one prompt decoded together: each model runs the prompt once, its
//! cache is copied into one row per sample, and every step feeds all rows' tokens in a single
//! forward. On a CPU a decoding step is bound by reading the weights, so a forward of a few
//! dozen rows costs little more than a forward of one: a sweep over a grid of weight settings
//! (and samples) gets most of its rows for free.
//!
//! Each row samples exactly as [`Generation`](super::Generation) would with the same weights and
//! seed (same guided distribution, same random stream, same stop rules); only the batched
//! matrix products may round differently in the last bits.

use crate::engine::decode::detok::IncrementalDecoder;
use crate::engine::decode::generation::{StopReason, check_prompt, settle_greedy};
use crate::engine::decode::guidance::GuidedStep;
use crate::engine::decode::guide::{Guide, NextLogits};
use crate::engine::decode::sampler::{Sampler, SamplingParams};
use crate::engine::error::Result;

/// The most rows decoded in one batch; beyond this the work is bound by arithmetic, not by
/// reading weights, and batching gains nothing more.
pub const MAX_ROWS: usize = 64;

/// One sample to draw: the ARM weights it is guided by and its sampling settings.
#[derive(Debug, Clone)]
pub struct BatchRow {
    pub weights: Vec<f32>,
    pub params: SamplingParams,
}

/// What one row produced.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSample {
    pub tokens: Vec<u32>,
    pub text: String,
    /// Σ log π_arm of the sampled tokens, per ARM in order.
    pub arm_logprobs: Vec<f64>,
    pub stop: StopReason,
}

struct RowState {
    sampler: Sampler,
    tokens: Vec<u32>,
    arm_logprobs: Vec<f64>,
    stop: Option<StopReason>,
}

/// Sample every row's continuation of `prompt_ids`, at most `max_new_tokens` each, in batches
/// of at most [`MAX_ROWS`] rows.
pub fn sample_rows(
    guide: &mut Guide,
    prompt_ids: &[u32],
    rows: &[BatchRow],
    max_new_tokens: usize,
) -> Result<Vec<BatchSample>> {
    let samples = sample_rows_until(guide, prompt_ids, rows, max_new_tokens, &|| false)?;
    Ok(samples.unwrap_or_default())
}

/// [`sample_rows`] that asks `stop` before every decoding step and gives up (None) when it
/// says so: the playground's frontier sweep can be cancelled this way.
pub fn sample_rows_until(
    guide: &mut Guide,
    prompt_ids: &[u32],
    rows: &[BatchRow],
    max_new_tokens: usize,
    stop: &dyn Fn() -> bool,
) -> Result<Option<Vec<BatchSample>>> {
    check_prompt(guide, prompt_ids)?;
    for row in rows {
        row.params.validate()?;
    }
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(MAX_ROWS) {
        match sample_chunk(guide, prompt_ids, chunk, max_new_tokens, stop)? {
            Some(samples) => out.extend(samples),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

fn sample_chunk(
    guide: &mut Guide,
    prompt_ids: &[u32],
    rows: &[BatchRow],
    max_new_tokens: usize,
    stop: &dyn Fn() -> bool,
) -> Result<Option<Vec<BatchSample>>> {
    let arms = guide.arm_names().len();
    let mut states: Vec<RowState> = rows
        .iter()
        .map(|row| RowState {
            sampler: Sampler::new(row.params),
            tokens: Vec::new(),
            arm_logprobs: vec![0.0; arms],
            stop: (max_new_tokens == 0).then_some(StopReason::MaxTokens),
        })
        .collect();
    guide.truncate(0);
    let prompt_logits = guide.feed_next(prompt_ids)?;
    let mut logits: Vec<NextLogits> = vec![prompt_logits; rows.len()];
    guide.fork(rows.len())?;
    // A finished row keeps being fed (its last token) so the batch stays in lockstep; its
    // results are ignored.
    let mut next: Vec<u32> = vec![0; rows.len()];
    while states.iter().any(|s| s.stop.is_none()) {
        if stop() {
            guide.truncate(0);
            return Ok(None);
        }
        for (index, ((state, row), (row_logits, next))) in states
            .iter_mut()
            .zip(rows)
            .zip(logits.iter_mut().zip(next.iter_mut()))
            .enumerate()
        {
            if state.stop.is_some() {
                continue;
            }
            if state.sampler.is_greedy() {
                settle_greedy(guide, index, row_logits, &row.weights, state.tokens.len())?;
            }
            let step = GuidedStep::from_next(row_logits, &row.weights);
            step.check_finite(state.tokens.len())?;
            let token = state.sampler.pick(step.guided());
            for (arm, sum) in state.arm_logprobs.iter_mut().enumerate() {
                *sum += step.arm_logprob(arm, token) as f64;
            }
            state.tokens.push(token);
            *next = token;
            let position = prompt_ids.len() + state.tokens.len();
            state.stop = if guide.base.eos_ids().contains(&token) {
                Some(StopReason::Eos)
            } else if state.tokens.len() >= max_new_tokens {
                Some(StopReason::MaxTokens)
            } else if position >= guide.max_context() {
                Some(StopReason::ContextLimit)
            } else {
                None
            };
        }
        if states.iter().all(|s| s.stop.is_some()) {
            break;
        }
        logits = guide.feed_rows(&next)?;
    }
    guide.truncate(0);
    let tokenizer = guide.base.tokenizer();
    let samples = states
        .into_iter()
        .map(|state| {
            let (mut decoder, pieces) = IncrementalDecoder::replay(tokenizer, &state.tokens)?;
            let text = pieces.concat() + &decoder.finish(tokenizer)?;
            Ok(BatchSample {
                text,
                tokens: state.tokens,
                arm_logprobs: state.arm_logprobs,
                stop: state.stop.unwrap_or(StopReason::MaxTokens),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Some(samples))
}
