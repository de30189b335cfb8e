//! A base model and its ARMs, advanced together over one shared vocabulary.

use std::time::{Duration, Instant};

use crate::engine::error::{EngineError, Result};
use crate::engine::formats::chat::ChatPrompt;
use crate::engine::model::causal_lm::CausalLm;

/// Every model's next-token logits (base first, cut to the shared vocabulary) with their
/// log-sum-exp, the log-softmax normaliser: computed in the models' parallel tasks, where it
/// costs nothing on the guided step's critical path.
pub struct NextLogits {
    pub logits: Vec<Vec<f32>>,
    pub log_sum_exp: Vec<f32>,
}

pub struct Guide {
    pub base: CausalLm,
    /// (name, model) in the order given by the user.
    pub arms: Vec<(String, CausalLm)>,
    /// Length every model's logits are cut to.
    vocab: usize,
    /// The smallest context window among the models.
    max_context: usize,
    /// How a user's prompt is wrapped before tokenizing ("User: {prompt}\nAssistant:"), for
    /// models trained on a fixed format; None uses the prompt as given.
    pub prompt_template: Option<String>,
    /// `--chat`: the base model's chat template, which then replaces `prompt_template`.
    pub chat: Option<ChatPrompt>,
    /// The compiled template while the playground's chat switch is off, kept with its system
    /// message for when it is turned on again.
    parked_chat: Option<ChatPrompt>,
    /// Wall time spent running the models (side by side) since the last
    /// `take_forward_wall_time`.
    forward_wall: Duration,
}

impl Guide {
    /// Check that the ARMs share the base model's vocabulary and build the guide.
    ///
    /// Vocabulary rule: logits are cut to the smallest embedding size among the models, which is
    /// only allowed where the ids cut off are added tokens (a pad token appended after training,
    /// 32001 vs 32000) or beyond the tokenizer; and the tokenizers must agree on every shared id.
    pub fn new(base: CausalLm, arms: Vec<(String, CausalLm)>) -> Result<Self> {
        let models = std::iter::once(&base).chain(arms.iter().map(|(_, m)| m));
        let vocab = models
            .clone()
            .map(|m| m.config.vocab_size)
            .min()
            .unwrap_or(0);
        let max_context = models
            .map(|m| m.config.max_position_embeddings)
            .min()
            .unwrap_or(0);
        for model in std::iter::once(&base).chain(arms.iter().map(|(_, m)| m)) {
            check_cut_ids_are_added(model, vocab)?;
        }
        for (name, arm) in &arms {
            check_same_tokens(&base, name, arm, vocab)?;
        }
        Ok(Self {
            base,
            arms,
            vocab,
            max_context,
            prompt_template: None,
            chat: None,
            parked_chat: None,
            forward_wall: Duration::ZERO,
        })
    }

    /// Turn the chat template on or off for the prompts that follow (the playground's switch).
    /// On compiles the base model's template (without a system message) unless it was set up
    /// before; a base without a template is an error that names it.
    pub fn set_chat(&mut self, on: bool) -> Result<()> {
        if !on {
            if let Some(chat) = self.chat.take() {
                self.parked_chat = Some(chat);
            }
            return Ok(());
        }
        if self.chat.is_some() {
            return Ok(());
        }
        let chat = match self.parked_chat.take() {
            Some(chat) => chat,
            None => {
                let Some(template) = &self.base.tokenizer.chat_template else {
                    return Err(EngineError::usage(format!(
                        "chat: {} has no chat template in its tokenizer_config.json",
                        self.base.display_name()
                    )));
                };
                ChatPrompt::new(template, None)?
            }
        };
        self.chat = Some(chat);
        Ok(())
    }

    /// The token ids every model sees for a user's prompt: the one place a prompt is formed.
    /// With a chat template the rendered text carries its own special tokens and none are
    /// added; otherwise the prompt template is applied and the tokenizer adds BOS where its
    /// config says so.
    pub fn prompt_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        let tokenizer = &self.base.tokenizer;
        match &self.chat {
            Some(chat) => tokenizer.encode_chat(&chat.render(prompt)?),
            None => tokenizer.encode_prompt(&self.format_prompt(prompt)),
        }
    }

    /// The text the model sees for a user's prompt: the template with `{prompt}` filled in.
    /// A prompt that already starts with the template's opening is left as it is.
    pub fn format_prompt(&self, prompt: &str) -> String {
        match &self.prompt_template {
            Some(template) => {
                let opening = template.split("{prompt}").next().unwrap_or_default();
                if !opening.is_empty() && prompt.starts_with(opening) {
                    prompt.to_string()
                } else {
                    template.replace("{prompt}", prompt)
                }
            }
            None => prompt.to_string(),
        }
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    pub fn max_context(&self) -> usize {
        self.max_context
    }

    /// Each model's weight formats (`CausalLm::weight_formats`), the base's first.
    pub fn weight_formats(&self) -> Vec<String> {
        std::iter::once(&self.base)
            .chain(self.arms.iter().map(|(_, m)| m))
            .map(|m| m.weight_formats())
            .collect()
    }

    /// Each model's fallback formats taken at load (`CausalLm::fallbacks`), the base's first.
    pub fn fallbacks(&self) -> Vec<String> {
        std::iter::once(&self.base)
            .chain(self.arms.iter().map(|(_, m)| m))
            .map(|m| m.fallbacks())
            .collect()
    }

    pub fn arm_names(&self) -> Vec<String> {
        self.arms.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Tokens held in the caches (all models move together).
    pub fn position(&self) -> usize {
        self.base.position()
    }

    pub fn truncate(&mut self, position: usize) {
        self.base.truncate(position);
        for (_, arm) in &mut self.arms {
            arm.truncate(position);
        }
    }

    /// Feed `ids` to every model; return each model's next-token logits (base first), cut to
    /// the shared vocabulary.
    pub fn feed(&mut self, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
        Ok(self.feed_next(ids)?.logits)
    }

    /// [`Guide::feed`] with each model's log-sum-exp.
    pub fn feed_next(&mut self, ids: &[u32]) -> Result<NextLogits> {
        let vocab = self.vocab;
        let (logits, log_sum_exp) = self
            .each_model(|model| {
                let mut logits = model.feed(ids)?;
                logits.truncate(vocab);
                let lse = crate::engine::kernels::fastmath::log_sum_exp(&logits);
                Ok((logits, lse))
            })?
            .into_iter()
            .unzip();
        Ok(NextLogits {
            logits,
            log_sum_exp,
        })
    }

    /// Copy every model's cached prompt into `rows` rows; see [`Guide::feed_rows`].
    pub fn fork(&mut self, rows: usize) -> Result<()> {
        self.models_mut().try_for_each(|m| m.fork(rows))
    }

    /// Feed one token per row of forked caches: next-token logits as `[row][model]`, the shape
    /// [`Guide::feed`] gives for one sequence.
    pub fn feed_rows(&mut self, tokens: &[u32]) -> Result<Vec<Vec<Vec<f32>>>> {
        let vocab = self.vocab;
        let per_model = self.each_model(|model| model.feed_rows(tokens))?;
        let mut rows: Vec<Vec<Vec<f32>>> =
            vec![Vec::with_capacity(1 + self.arms.len()); tokens.len()];
        for logits_by_row in per_model {
            for (row, mut logits) in rows.iter_mut().zip(logits_by_row) {
                logits.truncate(vocab);
                row.push(logits);
            }
        }
        Ok(rows)
    }

    /// Teacher-forced logits over `ids` for every model (one forward each): `[model][position]`.
    pub fn score_all(&mut self, ids: &[u32]) -> Result<Vec<Vec<Vec<f32>>>> {
        let vocab = self.vocab;
        self.each_model(|model| {
            let mut rows = model.score_all(ids)?;
            rows.iter_mut().for_each(|r| r.truncate(vocab));
            Ok(rows)
        })
    }

    /// Forward time of each model (base first) since the last call. The models run side by
    /// side, so these overlap: their sum exceeds the wall time ([`Guide::take_forward_wall_time`]).
    pub fn take_forward_times(&mut self) -> Vec<Duration> {
        self.models_mut().map(|m| m.take_forward_time()).collect()
    }

    /// Wall time spent running the models since the last call.
    pub fn take_forward_wall_time(&mut self) -> Duration {
        std::mem::take(&mut self.forward_wall)
    }

    /// `f` on every model, results base first. The models run side by side on rayon's pool,
    /// and their products split further wherever a thread is free: one model's forward is a
    /// chain of products too small to keep two threads busy without waiting for each other at
    /// every one, while three models in flight leave no thread waiting.
    fn each_model<T: Send>(
        &mut self,
        f: impl Fn(&mut CausalLm) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        use rayon::prelude::*;
        let started = Instant::now();
        let mut models: Vec<&mut CausalLm> = self.models_mut().collect();
        let out = rayon::scope(|_| models.par_iter_mut().map(|m| f(m)).collect());
        self.forward_wall += started.elapsed();
        out
    }

    fn models_mut(&mut self) -> impl Iterator<Item = &mut CausalLm> {
        std::iter::once(&mut self.base).chain(self.arms.iter_mut().map(|(_, m)| m))
    }
}

fn check_cut_ids_are_added(model: &CausalLm, vocab: usize) -> Result<()> {
    let size = model.config.vocab_size;
    let known = model.tokenizer.len.min(size);
    for id in vocab..known {
        if !model.tokenizer.is_added(id as u32) {
            return Err(EngineError::invalid(
                &model.dir,
                format!(
                    "vocabulary of {size} tokens is larger than the shared {vocab}, and id {id} \
                     ('{}') is a regular token, not an added one: the models do not share a tokenizer",
                    model.tokenizer.token_text(id as u32)
                ),
            ));
        }
    }
    Ok(())
}

fn check_same_tokens(base: &CausalLm, name: &str, arm: &CausalLm, vocab: usize) -> Result<()> {
    let shared = vocab.min(base.tokenizer.len).min(arm.tokenizer.len);
    if shared < vocab.min(base.tokenizer.len.max(arm.tokenizer.len)) {
        return Err(EngineError::usage(format!(
            "ARM '{name}' ({}) and base ({}) have different tokenizers: {} vs {} tokens",
            arm.dir.display(),
            base.dir.display(),
            arm.tokenizer.len,
            base.tokenizer.len
        )));
    }
    for id in 0..shared as u32 {
        let (b, a) = (base.tokenizer.token_text(id), arm.tokenizer.token_text(id));
        if a != b {
            return Err(EngineError::usage(format!(
                "ARM '{name}' ({}) and base ({}) have different tokenizers: id {id} is '{a}' in the ARM but '{b}' in the base",
                arm.dir.display(),
                base.dir.display()
            )));
        }
    }
    Ok(())
}
