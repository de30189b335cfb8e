//! A base model and its ARMs, advanced together over one shared vocabulary.

use std::time::{Duration, Instant};

use crate::engine::decode::arm::{Arm, Forward};
use crate::engine::decode::base::Base;
use crate::engine::error::{EngineError, Result};
use crate::engine::formats::chat::ChatPrompt;
use crate::engine::formats::tokenizer::ModelTokenizer;
use crate::engine::kernels::fastmath::log_sum_exp;
use crate::engine::model::causal_lm::CausalLm;
use crate::engine::remote::protocol::TopList;
use crate::engine::remote::{Candidates, RemoteBase, RemoteTimes, Served, candidates};

/// Every model's next-token logits (base first, cut to the shared vocabulary) with their
/// log-sum-exp, the log-softmax normaliser: computed in the models' parallel tasks, where it
/// costs nothing on the guided step's critical path. A served base's row holds log-probs
/// (normaliser 0) over its candidates and minus infinity elsewhere.
#[derive(Clone)]
pub struct NextLogits {
    pub logits: Vec<Vec<f32>>,
    pub log_sum_exp: Vec<f32>,
    /// How the candidates were formed, for a served base.
    pub candidates: Option<Candidates>,
    /// What a served base's row was built from.
    pub served: Option<Served>,
}

pub struct Guide {
    pub base: Base,
    /// (name, model) in the order given by the user.
    pub arms: Vec<(String, Arm)>,
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
    pub fn new(base: impl Into<Base>, arms: Vec<(String, CausalLm)>) -> Result<Self> {
        let arms = arms.into_iter().map(|(n, m)| (n, Arm::Local(m))).collect();
        Self::with_arms(base, arms)
    }

    /// [`Guide::new`] with ARMs that may be served ([`Arm::Remote`]): those were checked
    /// against the tokenizer genarm encodes with when they were reached.
    pub fn with_arms(base: impl Into<Base>, arms: Vec<(String, Arm)>) -> Result<Self> {
        let base = base.into();
        let vocab = arms
            .iter()
            .map(|(_, m)| m.vocab_size())
            .fold(base.vocab_size(), usize::min);
        let max_context = arms
            .iter()
            .map(|(_, m)| m.max_context())
            .fold(base.max_context(), usize::min);
        let base_source = match &base {
            Base::Local(model) => model.dir.display().to_string(),
            Base::Remote(remote) => remote.url.clone(),
        };
        check_cut_ids_are_added(base.tokenizer(), base.vocab_size(), &base_source, vocab)?;
        let local = arms.iter().filter_map(|(n, m)| Some((n, m.local()?)));
        for (_, arm) in local.clone() {
            let source = arm.dir.display().to_string();
            check_cut_ids_are_added(&arm.tokenizer, arm.config.vocab_size, &source, vocab)?;
        }
        for (name, arm) in local {
            check_same_tokens(base.tokenizer(), &base_source, name, arm, vocab)?;
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
                let Some(template) = &self.base.tokenizer().chat_template else {
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
        let tokenizer = self.base.tokenizer();
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
        std::iter::once(self.base.weight_formats())
            .chain(self.arms.iter().map(|(_, m)| m.weight_formats()))
            .collect()
    }

    /// Each model's fallback formats taken at load (`CausalLm::fallbacks`), the base's first.
    pub fn fallbacks(&self) -> Vec<String> {
        std::iter::once(self.base.fallbacks())
            .chain(self.arms.iter().map(|(_, m)| m.fallbacks()))
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
        match &mut self.base {
            Base::Local(model) => model.truncate(position),
            Base::Remote(remote) => remote.truncate(position),
        }
        for (_, arm) in &mut self.arms {
            arm.truncate(position);
        }
    }

    /// Feed `ids` to every model: each model's next-token logits with their log-sum-exp. A
    /// served base's request runs while the ARMs compute.
    pub fn feed_next(&mut self, ids: &[u32]) -> Result<NextLogits> {
        let vocab = self.vocab;
        let arm_step = |model: &mut dyn Forward| {
            let mut logits = model.feed(ids)?;
            logits.truncate(vocab);
            let lse = log_sum_exp(&logits);
            Ok((logits, lse))
        };
        if let Base::Remote(remote) = &mut self.base {
            let (top, arms) = beside_arms(
                remote,
                &mut self.arms,
                &mut self.forward_wall,
                |r| r.feed(ids),
                arm_step,
            );
            let (logits, log_sum_exp) = arms?.into_iter().unzip();
            let mut next = [self.with_remote_row(top?, logits, log_sum_exp, self.top_k())];
            self.fill_bounds(&mut next, Prefixes::Rows)?;
            let [next] = next;
            return Ok(next);
        }
        let (logits, log_sum_exp) = self.each_model(arm_step)?.into_iter().unzip();
        Ok(NextLogits {
            logits,
            log_sum_exp,
            candidates: None,
            served: None,
        })
    }

    /// Copy every model's cached prompt into `rows` rows; see [`Guide::feed_rows`].
    pub fn fork(&mut self, rows: usize) -> Result<()> {
        if let Base::Remote(remote) = &mut self.base {
            remote.fork(rows);
        }
        self.models_mut().try_for_each(|m| m.fork(rows))
    }

    /// Feed one token per row of forked caches: next-token logits per row, as
    /// [`Guide::feed_next`] gives them for one sequence.
    pub fn feed_rows(&mut self, tokens: &[u32]) -> Result<Vec<NextLogits>> {
        let vocab = self.vocab;
        let arm_rows = |model: &mut dyn Forward| model.feed_rows(tokens);
        let (tops, per_model) = match &mut self.base {
            Base::Remote(remote) => {
                let (tops, arms) = beside_arms(
                    remote,
                    &mut self.arms,
                    &mut self.forward_wall,
                    |r| r.feed_rows(tokens),
                    arm_rows,
                );
                (Some(tops?), arms?)
            }
            Base::Local(_) => (None, self.each_model(arm_rows)?),
        };
        let mut rows: Vec<Vec<Vec<f32>>> = vec![Vec::with_capacity(per_model.len()); tokens.len()];
        for logits_by_row in per_model {
            for (row, mut logits) in rows.iter_mut().zip(logits_by_row) {
                logits.truncate(vocab);
                row.push(logits);
            }
        }
        let mut nexts = self.assemble(rows, tops);
        self.fill_bounds(&mut nexts, Prefixes::Rows)?;
        Ok(nexts)
    }

    /// Teacher forcing over `ids` (run from empty caches): for each position `p` in
    /// `first..ids.len() - 1`, every model's logits predicting `ids[p + 1]`.
    pub fn score_all(&mut self, ids: &[u32], first: usize) -> Result<Vec<NextLogits>> {
        let vocab = self.vocab;
        let last = ids.len().saturating_sub(1);
        let arm_rows = |model: &mut dyn Forward| model.score_range(ids, first..last);
        let (tops, per_model) = match &mut self.base {
            Base::Remote(remote) => {
                let (tops, arms) = beside_arms(
                    remote,
                    &mut self.arms,
                    &mut self.forward_wall,
                    |r| r.score_positions(ids, first..last),
                    arm_rows,
                );
                (Some(tops?), arms?)
            }
            Base::Local(_) => (None, self.each_model(arm_rows)?),
        };
        // [model][position] to [position][model].
        let mut positions: Vec<Vec<Vec<f32>>> =
            vec![Vec::with_capacity(per_model.len()); last.saturating_sub(first)];
        for rows in per_model {
            for (position, mut logits) in positions.iter_mut().zip(rows) {
                logits.truncate(vocab);
                position.push(logits);
            }
        }
        let mut nexts = self.assemble(positions, tops);
        self.fill_bounds(&mut nexts, Prefixes::Scored { ids, first })?;
        Ok(nexts)
    }

    /// Forward time of each model (base first) since the last call. The models run side by
    /// side, so these overlap: their sum exceeds the wall time ([`Guide::take_forward_wall_time`]).
    /// A served base's is the time spent waiting on the server.
    pub fn take_forward_times(&mut self) -> Vec<Duration> {
        std::iter::once(self.base.take_time())
            .chain(self.arms.iter_mut().map(|(_, m)| m.take_forward_time()))
            .collect()
    }

    /// A served base's request time split into server, transport and JSON since the last
    /// call; None for a local base.
    pub fn take_remote_times(&self) -> Option<RemoteTimes> {
        self.base.remote().map(RemoteBase::take_times)
    }

    /// Wall time spent running the models since the last call.
    pub fn take_forward_wall_time(&mut self) -> Duration {
        std::mem::take(&mut self.forward_wall)
    }

    /// Rows of logits (every model's, a served base's missing) with their normalisers; a served
    /// base's row is built from its top list and the ARMs' rows.
    fn assemble(&self, rows: Vec<Vec<Vec<f32>>>, tops: Option<Vec<TopList>>) -> Vec<NextLogits> {
        match tops {
            Some(tops) => rows
                .into_iter()
                .zip(tops)
                .map(|(logits, top)| {
                    let lse = logits.iter().map(|l| log_sum_exp(l)).collect();
                    self.with_remote_row(top, logits, lse, self.top_k())
                })
                .collect(),
            None => rows
                .into_iter()
                .map(|logits| NextLogits {
                    log_sum_exp: logits.iter().map(|l| log_sum_exp(l)).collect(),
                    logits,
                    candidates: None,
                    served: None,
                })
                .collect(),
        }
    }

    /// The served base's K (0 for a local base).
    fn top_k(&self) -> usize {
        self.base.remote().map_or(0, |r| r.top_k)
    }

    /// The ARMs' logits with the served base's candidate row put in front (log-probs already:
    /// normaliser 0), the ARMs' candidates their top `k`.
    fn with_remote_row(
        &self,
        top: TopList,
        arm_logits: Vec<Vec<f32>>,
        arm_lse: Vec<f32>,
        k: usize,
    ) -> NextLogits {
        let arm_rows: Vec<&[f32]> = arm_logits.iter().map(Vec::as_slice).collect();
        let (row, candidates, served) = candidates::base_row(&top, &arm_rows, k, self.vocab);
        NextLogits {
            logits: std::iter::once(row).chain(arm_logits).collect(),
            log_sum_exp: std::iter::once(0.0).chain(arm_lse).collect(),
            candidates: Some(candidates),
            served: Some(served),
        }
    }

    /// A served base that gives exact log-probs of named tokens (vLLM's `logprob_token_ids`,
    /// [`RemoteBase::exact_candidates`]) is asked for those of every candidate holding a bound,
    /// one second request per row, side by side. `prefixes` says which sequence `nexts[i]`
    /// continues.
    fn fill_bounds(&mut self, nexts: &mut [NextLogits], prefixes: Prefixes) -> Result<()> {
        let Base::Remote(remote) = &self.base else {
            return Ok(());
        };
        if !remote.exact_candidates {
            return Ok(());
        }
        let prefix = |i: usize| match prefixes {
            Prefixes::Rows => remote.row(i),
            Prefixes::Row(row) => remote.row(row),
            Prefixes::Scored { ids, first } => &ids[..=first + i],
        };
        let asking: Vec<usize> = (0..nexts.len())
            .filter(|&i| {
                nexts[i]
                    .served
                    .as_ref()
                    .is_some_and(|s| !s.bounded.is_empty())
            })
            .collect();
        if asking.is_empty() {
            return Ok(());
        }
        let asks: Vec<(&[u32], &[u32])> = asking
            .iter()
            .filter_map(|&i| Some((prefix(i), nexts[i].served.as_ref()?.bounded.as_slice())))
            .collect();
        let started = Instant::now();
        let answers = remote.candidate_logprobs(&asks);
        self.forward_wall += started.elapsed();
        for (i, exact) in asking.into_iter().zip(answers?) {
            let next = &mut nexts[i];
            if let (Some(candidates), Some(served)) = (&mut next.candidates, &mut next.served) {
                candidates::fill_bounds(&mut next.logits[0], candidates, served, &exact);
            }
        }
        Ok(())
    }

    /// Whether greedy steps may be asked again ([`Guide::widen_for_greedy`]): a served base
    /// with `--remote-exact-greedy`.
    pub fn widens_greedy(&self) -> bool {
        self.base.remote().is_some_and(|r| r.exact_greedy)
    }

    /// `--remote-exact-greedy`: `next` (the pending step of row `row`, 0 for the single
    /// sequence) asked again with 8 times the K, up to the server's vocabulary, when the greedy
    /// choice `chosen` is not settled by its candidates ([`candidates::settles_greedy`]); None
    /// when it is settled, or cannot be widened (a local base, the option off, the whole
    /// vocabulary asked already).
    pub fn widen_for_greedy(
        &mut self,
        row: usize,
        next: &NextLogits,
        weights: &[f32],
        chosen: u32,
    ) -> Result<Option<NextLogits>> {
        let (Base::Remote(remote), Some(served)) = (&self.base, &next.served) else {
            return Ok(None);
        };
        let k = served
            .k
            .saturating_mul(8)
            .min(remote.vocab_size().max(self.vocab));
        if !remote.exact_greedy || k <= served.k {
            return Ok(None);
        }
        let arm_rows: Vec<&[f32]> = next.logits[1..].iter().map(Vec::as_slice).collect();
        let settled = candidates::settles_greedy(
            &next.logits[0],
            served,
            &arm_rows,
            &next.log_sum_exp[1..],
            weights,
            chosen as usize,
        );
        if settled {
            return Ok(None);
        }
        let started = Instant::now();
        let top = remote.widen(row, k);
        self.forward_wall += started.elapsed();
        let arm_logits = next.logits[1..].to_vec();
        let arm_lse = next.log_sum_exp[1..].to_vec();
        let mut widened = [self.with_remote_row(top?, arm_logits, arm_lse, k)];
        self.fill_bounds(&mut widened, Prefixes::Row(row))?;
        let [widened] = widened;
        Ok(Some(widened))
    }

    /// `f` on every local model, results base first. The models run side by side on rayon's
    /// pool, and their products split further wherever a thread is free: one model's forward
    /// is a chain of products too small to keep two threads busy without waiting for each
    /// other at every one, while three models in flight leave no thread waiting.
    fn each_model<T: Send>(
        &mut self,
        f: impl Fn(&mut dyn Forward) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        let started = Instant::now();
        let mut models: Vec<&mut dyn Forward> = self.models_mut().collect();
        let out = run_side_by_side(&mut models, f);
        self.forward_wall += started.elapsed();
        out
    }

    /// The models the guide runs side by side: a local base, then the ARMs.
    fn models_mut(&mut self) -> impl Iterator<Item = &mut dyn Forward> {
        let base = match &mut self.base {
            Base::Local(model) => Some(model as &mut dyn Forward),
            Base::Remote(_) => None,
        };
        let arms = self.arms.iter_mut().map(|(_, m)| m as &mut dyn Forward);
        base.into_iter().chain(arms)
    }
}

/// Which sequence each of a step's rows continues, for [`Guide::fill_bounds`].
#[derive(Clone, Copy)]
enum Prefixes<'a> {
    /// Row `i` continues the served base's row `i` (a single sequence is row 0).
    Rows,
    /// One row continuing the served base's row `.0`.
    Row(usize),
    /// Row `i` continues `ids[..=first + i]` (teacher forcing).
    Scored { ids: &'a [u32], first: usize },
}

impl From<CausalLm> for Base {
    fn from(model: CausalLm) -> Self {
        Base::Local(model)
    }
}

impl From<RemoteBase> for Base {
    fn from(remote: RemoteBase) -> Self {
        Base::Remote(remote)
    }
}

fn run_side_by_side<T: Send>(
    models: &mut [&mut dyn Forward],
    f: impl Fn(&mut dyn Forward) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    use rayon::prelude::*;
    rayon::scope(|_| models.par_iter_mut().map(|m| f(&mut **m)).collect())
}

/// The served base's `request` on a thread of its own while the ARMs run `arm_step` on rayon's
/// pool: the step costs the slower of the two, not their sum.
fn beside_arms<R: Send, T: Send>(
    remote: &mut RemoteBase,
    arms: &mut [(String, Arm)],
    wall: &mut Duration,
    request: impl FnOnce(&mut RemoteBase) -> Result<R> + Send,
    arm_step: impl Fn(&mut dyn Forward) -> Result<T> + Sync,
) -> (Result<R>, Result<Vec<T>>) {
    let started = Instant::now();
    let url = remote.url.clone();
    let out = std::thread::scope(|scope| {
        let served = scope.spawn(|| request(remote));
        let mut models: Vec<&mut dyn Forward> = arms
            .iter_mut()
            .map(|(_, m)| m as &mut dyn Forward)
            .collect();
        let local = run_side_by_side(&mut models, arm_step);
        let served = served
            .join()
            .unwrap_or_else(|_| Err(EngineError::remote(&url, "the request thread failed")));
        (served, local)
    });
    *wall += started.elapsed();
    out
}

/// Ids at or past the shared `vocab` that `tokenizer` (of a model with `size` embeddings, from
/// `source`) knows must all be added tokens.
fn check_cut_ids_are_added(
    tokenizer: &ModelTokenizer,
    size: usize,
    source: &str,
    vocab: usize,
) -> Result<()> {
    let known = tokenizer.len.min(size);
    for id in vocab..known {
        if !tokenizer.is_added(id as u32) {
            return Err(EngineError::invalid(
                std::path::Path::new(source),
                format!(
                    "vocabulary of {size} tokens is larger than the shared {vocab}, and id \
                 {id} ('{}') is a regular token, not an added one: the models do not share a \
                 tokenizer",
                    tokenizer.token_text(id as u32)
                ),
            ));
        }
    }
    Ok(())
}

fn check_same_tokens(
    base: &ModelTokenizer,
    base_source: &str,
    name: &str,
    arm: &CausalLm,
    vocab: usize,
) -> Result<()> {
    let shared = vocab.min(base.len).min(arm.tokenizer.len);
    if shared < vocab.min(base.len.max(arm.tokenizer.len)) {
        return Err(EngineError::usage(format!(
            "ARM '{name}' ({}) and base ({base_source}) have different tokenizers: {} vs {} tokens",
            arm.dir.display(),
            arm.tokenizer.len,
            base.len
        )));
    }
    for id in 0..shared as u32 {
        let (b, a) = (base.token_text(id), arm.tokenizer.token_text(id));
        if a != b {
            return Err(EngineError::usage(format!(
                "ARM '{name}' ({}) and base ({base_source}) have different tokenizers: id {id} is '{a}' in the ARM but '{b}' in the base",
                arm.dir.display(),
            )));
        }
    }
    Ok(())
}
