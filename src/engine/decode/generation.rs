//! Guided generation, one token per step, with rewinding and forced tokens; and teacher-forced
//! scoring of a given response. Both produce the same per-token records.

use std::fmt;

use crate::engine::decode::detok::IncrementalDecoder;
use crate::engine::decode::guidance::GuidedStep;
use crate::engine::decode::guide::{Guide, NextLogits};
use crate::engine::decode::record::TokenRecord;
use crate::engine::decode::sampler::{Sampler, SamplingParams};
use crate::engine::error::{EngineError, Input, Part, Result};

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-sequence id was generated (it is the last record).
    Eos,
    /// `max_new_tokens` were generated.
    MaxTokens,
    /// The next token would not fit in the smallest model's context window.
    ContextLimit,
    /// Stopped by the user.
    Stop,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::MaxTokens => "max_tokens",
            Self::ContextLimit => "context_limit",
            Self::Stop => "stop",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Check that ARM weights are usable numbers.
pub fn validate_weights(names: &[String], weights: &[f32]) -> Result<()> {
    for (name, w) in names.iter().zip(weights) {
        if !w.is_finite() {
            return Err(
                Input::ArmWeight.error(format!(" {name}={w}: weights must be finite numbers"))
            );
        }
    }
    Ok(())
}

/// The state of one generation over a [`Guide`].
pub struct Generation {
    prompt_ids: Vec<u32>,
    generated: Vec<u32>,
    pieces: Vec<String>,
    /// Next-token logits of every model (base first); None once stopped.
    next_logits: Option<NextLogits>,
    decoder: IncrementalDecoder,
    sampler: Sampler,
    max_new_tokens: usize,
    top_alternatives: usize,
    /// ARM names for the records, taken once rather than per token.
    arm_names: Vec<String>,
    stopped: Option<StopReason>,
    /// Keep going past eos ids (benchmarks want a fixed number of steps).
    ignore_eos: bool,
    /// Feeding the last token failed (a served base stopped answering): the token and its
    /// record stand, and the next step reports this error.
    feed_error: Option<EngineError>,
}

impl Generation {
    /// Run the prompt through every model.
    pub fn start(
        guide: &mut Guide,
        prompt_ids: Vec<u32>,
        params: SamplingParams,
        max_new_tokens: usize,
        top_alternatives: usize,
    ) -> Result<Self> {
        params.validate()?;
        check_prompt(guide, &prompt_ids)?;
        guide.truncate(0);
        let logits = guide.feed_next(&prompt_ids)?;
        Ok(Self {
            prompt_ids,
            generated: Vec::new(),
            pieces: Vec::new(),
            next_logits: Some(logits),
            decoder: IncrementalDecoder::new(),
            sampler: Sampler::new(params),
            max_new_tokens,
            top_alternatives,
            arm_names: guide.arm_names(),
            stopped: if max_new_tokens == 0 {
                Some(StopReason::MaxTokens)
            } else {
                None
            },
            ignore_eos: false,
            feed_error: None,
        })
    }

    pub fn set_ignore_eos(&mut self, ignore: bool) {
        self.ignore_eos = ignore;
    }

    pub fn prompt_ids(&self) -> &[u32] {
        &self.prompt_ids
    }

    pub fn generated(&self) -> &[u32] {
        &self.generated
    }

    /// The decoded output so far (the concatenation of the records' texts).
    pub fn text(&self) -> String {
        self.pieces.concat()
    }

    pub fn stopped(&self) -> Option<StopReason> {
        self.stopped
    }

    pub fn stop(&mut self) {
        self.stopped.get_or_insert(StopReason::Stop);
    }

    pub fn sampler_mut(&mut self) -> &mut Sampler {
        &mut self.sampler
    }

    /// Choose the next token (or take `forced`) under `weights`, record it and feed it.
    pub fn step(
        &mut self,
        guide: &mut Guide,
        weights: &[f32],
        forced: Option<u32>,
    ) -> Result<TokenRecord> {
        if let Some(reason) = self.stopped {
            return Err(EngineError::usage(format!(
                "generation has ended ({reason})"
            )));
        }
        if let Some(t) = forced.filter(|&t| t as usize >= guide.vocab()) {
            return Err(EngineError::usage(format!(
                "token {t} is outside the shared vocabulary of {} tokens",
                guide.vocab()
            )));
        }
        if let Some(error) = self.feed_error.take() {
            return Err(error);
        }
        let Some(mut logits) = self.next_logits.take() else {
            return Err(EngineError::usage("generation has no pending step"));
        };
        // A served base's greedy choice that its top K cannot settle is asked again with a
        // larger K (`--remote-exact-greedy`); each pass narrows what the bound hides.
        if forced.is_none() && self.sampler.is_greedy() {
            settle_greedy(guide, 0, &mut logits, weights, self.generated.len())?;
        }
        let step = GuidedStep::from_next(&logits, weights);
        step.check_finite(self.generated.len())?;
        let token = match forced {
            Some(t) => t,
            None => self.sampler.pick(step.guided()),
        };
        let tokenizer = guide.base.tokenizer();
        let before = self.decoder.clone();
        let mut text = self.decoder.step(tokenizer, token)?;
        let index = self.generated.len();
        self.generated.push(token);
        let position = self.prompt_ids.len() + self.generated.len();
        self.stopped = if !self.ignore_eos && guide.base.eos_ids().contains(&token) {
            Some(StopReason::Eos)
        } else if self.generated.len() >= self.max_new_tokens {
            Some(StopReason::MaxTokens)
        } else if position >= guide.max_context() {
            Some(StopReason::ContextLimit)
        } else {
            None
        };
        if self.stopped.is_some() {
            // The last token: release text held back for an unfinished character.
            text += &self.decoder.finish(tokenizer)?;
        }
        let record = TokenRecord::build(
            &step,
            &self.arm_names,
            index,
            token,
            text.clone(),
            &before,
            tokenizer,
            self.top_alternatives,
        )?;
        self.pieces.push(text);
        if self.stopped.is_none() {
            match guide.feed_next(&[token]) {
                Ok(next) => self.next_logits = Some(next),
                Err(error) => self.feed_error = Some(error),
            }
        }
        Ok(record)
    }

    /// Keep the first `keep` generated tokens and continue from there: the KV caches rewind, and
    /// the next step sees exactly what a fresh run on that prefix would.
    pub fn rewind(&mut self, guide: &mut Guide, keep: usize) -> Result<()> {
        let keep = keep.min(self.generated.len());
        if keep == self.generated.len() && self.stopped.is_some_and(|r| r != StopReason::Stop) {
            // Nothing to regrow: an eos, token limit or full context still ends it.
            return Ok(());
        }
        self.generated.truncate(keep);
        let tokenizer = guide.base.tokenizer();
        // Replaying re-derives the pieces: the last one may have included text released at the
        // end of generation, which now belongs to later tokens.
        let (decoder, pieces) = IncrementalDecoder::replay(tokenizer, &self.generated)?;
        self.decoder = decoder;
        self.pieces = pieces;
        // Re-run the last kept token to recover the logits that follow it.
        let kept_total = self.prompt_ids.len() + keep;
        let last = *self
            .generated
            .last()
            .or(self.prompt_ids.last())
            .ok_or_else(|| EngineError::usage("nothing to rewind to"))?;
        guide.truncate(kept_total - 1);
        self.next_logits = Some(guide.feed_next(&[last])?);
        self.feed_error = None;
        self.stopped = None;
        Ok(())
    }
}

/// Refuse a prompt that is empty, leaves no room to generate, or has ids outside the vocabulary.
pub(crate) fn check_prompt(guide: &Guide, prompt_ids: &[u32]) -> Result<()> {
    if prompt_ids.is_empty() {
        return Err(Input::Prompt.error(": the prompt has no tokens"));
    }
    if prompt_ids.len() >= guide.max_context() {
        return Err(Input::Prompt.error(format!(
            ": {} tokens do not fit the context of {} tokens (max_position_embeddings), \
             leaving no room to generate",
            prompt_ids.len(),
            guide.max_context()
        )));
    }
    check_in_vocabulary(Input::Prompt, prompt_ids, guide.vocab())
}

/// Refuse ids the models have no embedding for (a tokenizer larger than config.json's
/// vocab_size), naming the input whose text produced them.
fn check_in_vocabulary(input: Input, ids: &[u32], vocab: usize) -> Result<()> {
    match ids.iter().find(|&&t| t as usize >= vocab) {
        Some(bad) => Err(input.error(format!(
            ": token {bad} is outside the models' shared vocabulary of {vocab} tokens"
        ))),
        None => Ok(()),
    }
}

/// Sums of a teacher-forced scoring.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreSums {
    pub base_logprob: f64,
    /// Σ log π_arm over the response, per ARM in order.
    pub arm_logprobs: Vec<f64>,
    pub guided_logprob: f64,
}

/// Score `response_ids` after `prompt_ids` with one forward pass per model.
pub fn score(
    guide: &mut Guide,
    prompt_ids: &[u32],
    response_ids: &[u32],
    weights: &[f32],
    top_alternatives: usize,
) -> Result<(Vec<TokenRecord>, ScoreSums)> {
    if prompt_ids.is_empty() {
        return Err(Input::Prompt
            .error(": the prompt has no tokens (scoring needs at least one token of context)"));
    }
    if response_ids.is_empty() {
        return Err(Input::Response.error(": the response has no tokens"));
    }
    let total = prompt_ids.len() + response_ids.len();
    if total > guide.max_context() {
        return Err(EngineError::bad_input([
            Part::Input(Input::Prompt),
            " and ".into(),
            Part::Input(Input::Response),
            format!(
                ": {total} tokens exceed the context of {} tokens",
                guide.max_context()
            )
            .into(),
        ]));
    }
    check_in_vocabulary(Input::Prompt, prompt_ids, guide.vocab())?;
    check_in_vocabulary(Input::Response, response_ids, guide.vocab())?;
    let ids: Vec<u32> = prompt_ids.iter().chain(response_ids).copied().collect();
    // Position p's logits predict ids[p + 1]: the response starts at the prompt's last.
    let rows = guide.score_all(&ids, prompt_ids.len() - 1)?;
    let names = guide.arm_names();
    let tokenizer = guide.base.tokenizer();
    let mut decoder = IncrementalDecoder::new();
    let mut records = Vec::with_capacity(response_ids.len());
    let mut sums = ScoreSums {
        base_logprob: 0.0,
        arm_logprobs: vec![0.0; names.len()],
        guided_logprob: 0.0,
    };
    for ((j, &token), next) in response_ids.iter().enumerate().zip(&rows) {
        let step = GuidedStep::from_next(next, weights);
        step.check_finite(j)?;
        let before = decoder.clone();
        let mut text = decoder.step(tokenizer, token)?;
        if j + 1 == response_ids.len() {
            text += &decoder.finish(tokenizer)?;
        }
        let record = TokenRecord::build(
            &step,
            &names,
            j,
            token,
            text,
            &before,
            tokenizer,
            top_alternatives,
        )?;
        sums.base_logprob += record.base_logprob as f64;
        for (sum, arm) in sums.arm_logprobs.iter_mut().zip(&record.arms) {
            *sum += arm.logprob as f64;
        }
        sums.guided_logprob += record.guided_logprob as f64;
        records.push(record);
    }
    Ok((records, sums))
}

/// A greedy step of row `row` over a served base, asked again with a larger K until its top
/// K settles the choice (`--remote-exact-greedy`, [`Guide::widen_for_greedy`]); each pass
/// narrows what the bound hides; `logits` is replaced by the settled step. `index` is the
/// step's, for messages.
pub(crate) fn settle_greedy(
    guide: &mut Guide,
    row: usize,
    logits: &mut NextLogits,
    weights: &[f32],
    index: usize,
) -> Result<()> {
    if !guide.widens_greedy() {
        return Ok(());
    }
    loop {
        let step = GuidedStep::from_next(logits, weights);
        step.check_finite(index)?;
        let chosen = crate::engine::kernels::fastmath::argmax(step.guided());
        match guide.widen_for_greedy(row, logits, weights, chosen as u32)? {
            Some(widened) => *logits = widened,
            None => return Ok(()),
        }
    }
}
