//! The `train-arm` loop: GenARM loss, AdamW with warmup and linear decay, gradient
//! accumulation, an eval pass each epoch, atomic checkpoints and resume.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::data::{Dataset, Objective, PreferencePair, read_preferences};
use super::loss::{EncodedPair, genarm_loss, make_batch, sequence_logprobs};
use super::model::{LoraSettings, TrainableModel, save_safetensors, write_atomically};
use super::optim::{AdamW, learning_rate};
use crate::engine::formats::tokenizer::ModelTokenizer;
use crate::engine::{EngineError, Input, Part, Result};

#[derive(Debug, Clone)]
pub struct TrainSettings {
    pub base: PathBuf,
    pub data: PathBuf,
    pub out: PathBuf,
    pub beta: f64,
    pub gamma: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub warmup: usize,
    pub max_length: usize,
    pub seed: u64,
    pub eval_split: f64,
    pub lora: Option<LoraSettings>,
    pub objective: Option<Objective>,
    pub strict: bool,
    pub resume: bool,
    /// Optimiser steps between checkpoints (also written at every epoch end).
    pub save_every: usize,
    /// Show a progress bar (stderr) and print progress lines.
    pub verbose: bool,
    /// End the run after this many optimiser steps, as if interrupted (leaves the checkpoint,
    /// writes no model): how the resume path is tested.
    pub interrupt_after_steps: Option<u64>,
}

/// What a finished run measured.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub pairs_train: usize,
    pub pairs_eval: usize,
    pub skipped_lines: usize,
    pub steps: u64,
    pub first_train_loss: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub eval_loss: Option<f64>,
    pub eval_accuracy: Option<f64>,
    pub tokens_per_second: f64,
    pub seconds: f64,
}

/// Where the run stands, saved with each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Progress {
    epoch: usize,
    /// Next micro-batch within the epoch.
    batch: usize,
    steps: u64,
    /// What the checkpoint was made with; resuming with other settings is refused.
    fingerprint: String,
}

const CHECKPOINT: &str = "checkpoint";

pub fn train_arm(s: &TrainSettings) -> Result<TrainReport> {
    validate(s)?;
    let started = Instant::now();
    let checkpoint_dir = s.out.join(CHECKPOINT);
    check_out_folder(s, &checkpoint_dir)?;
    let dataset =
        read_preferences(&s.data, s.objective).map_err(|e| EngineError::io(&s.data, e))?;
    if let (true, Some(bad)) = (s.strict, dataset.bad.first()) {
        return Err(EngineError::bad_input([
            format!("{}:{}: {} (", s.data.display(), bad.line, bad.reason).into(),
            Part::Input(Input::Strict),
            ")".into(),
        ]));
    }
    let mut model = TrainableModel::load(&s.base, s.lora.clone(), s.seed)?;
    let (encoded, too_long) = usable_pairs(s, &dataset, &model)?;
    let (train, eval) = split(encoded, s.eval_split, s.seed);
    let mut optimizer = AdamW::new(&model.vars, s.lr, s.weight_decay)?;
    let fingerprint = fingerprint(s, train.len());
    let mut progress = Progress {
        epoch: 0,
        batch: 0,
        steps: 0,
        fingerprint: fingerprint.clone(),
    };
    if s.resume {
        progress = resume(&checkpoint_dir, &mut model, &mut optimizer, &fingerprint)?;
        if s.verbose {
            eprintln!(
                "resuming at epoch {}, step {}",
                progress.epoch + 1,
                progress.steps
            );
        }
    }
    std::fs::create_dir_all(&s.out).map_err(|e| EngineError::io(&s.out, e))?;

    let batches_per_epoch = train.len().div_ceil(s.batch_size);
    let total_steps = batches_per_epoch.div_ceil(s.grad_accum) as u64 * s.epochs as u64;
    let mut run = Run {
        s,
        model: &model,
        optimizer: &mut optimizer,
        train: &train,
        eval: &eval,
        checkpoint_dir: &checkpoint_dir,
        bar: progress_bar(s.verbose, total_steps, progress.steps),
        device: Device::Cpu,
        batches_per_epoch,
        total_steps,
        tally: Tally::default(),
    };
    while progress.epoch < s.epochs {
        run.epoch(&mut progress)?;
    }
    let Run { bar, tally, .. } = run;
    bar.finish_and_clear();
    model.save(&s.out)?;
    // The finished model supersedes the checkpoint.
    let _ = std::fs::remove_dir_all(&checkpoint_dir);
    let eval_result = evaluate(&model, &eval, s, &Device::Cpu)?;
    Ok(TrainReport {
        pairs_train: train.len(),
        pairs_eval: eval.len(),
        skipped_lines: dataset.bad.len() + too_long,
        steps: progress.steps,
        first_train_loss: tally.first_train_loss.unwrap_or(f64::NAN),
        train_loss: tally.mean_loss(),
        train_accuracy: tally.mean_accuracy(),
        eval_loss: eval_result.map(|e| e.0),
        eval_accuracy: eval_result.map(|e| e.1),
        tokens_per_second: tally.tokens_per_second(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Refuse to write over a folder that holds something, unless resuming from a checkpoint in it.
fn check_out_folder(s: &TrainSettings, checkpoint_dir: &Path) -> Result<()> {
    if !s.resume
        && s.out.exists()
        && std::fs::read_dir(&s.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(EngineError::bad_input([
            Part::Input(Input::TrainingOutput),
            format!(" {}: folder exists and is not empty (use ", s.out.display()).into(),
            Part::Input(Input::Resume),
            " to continue a run there)".into(),
        ]));
    }
    let has_checkpoint = checkpoint_dir.is_dir()
        || checkpoint_dir
            .with_file_name(format!("{CHECKPOINT}.old"))
            .is_dir();
    if s.resume && !has_checkpoint {
        return Err(no_checkpoint(&s.out));
    }
    Ok(())
}

/// The pairs that fit the model, with the number dropped for length, emptiness or ids outside
/// the vocabulary; an error if none is left. Verbose runs list what was skipped.
fn usable_pairs(
    s: &TrainSettings,
    dataset: &Dataset,
    model: &TrainableModel,
) -> Result<(Vec<EncodedPair>, usize)> {
    let (encoded, too_long) = encode_pairs(
        &model.tokenizer,
        &dataset.pairs,
        s.max_length,
        model.config.vocab_size,
    );
    if encoded.is_empty() {
        let first = dataset
            .bad
            .first()
            .map(|b| format!("; line {}: {}", b.line, b.reason))
            .unwrap_or_default();
        return Err(Input::TrainingData.error(format!(
            " {}: no usable preference pairs ({} lines skipped{first})",
            s.data.display(),
            dataset.bad.len() + too_long
        )));
    }
    if s.verbose {
        for bad in &dataset.bad {
            eprintln!("skipping {}:{}: {}", s.data.display(), bad.line, bad.reason);
        }
        if too_long > 0 {
            eprintln!(
                "skipping {too_long} pairs (prompt too long for --max-length, an empty response, \
                 or ids outside the vocabulary)"
            );
        }
    }
    Ok((encoded, too_long))
}

/// A bar of optimiser steps on stderr, hidden unless verbose.
pub(super) fn progress_bar(verbose: bool, total_steps: u64, done: u64) -> ProgressBar {
    let bar = if verbose {
        ProgressBar::new(total_steps)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} [{elapsed}<{eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(done);
    bar
}

/// What the loop has measured: tokens since the start, the first batch's loss, and the sums
/// over the current epoch's batches (the last epoch's make the report).
struct Tally {
    tokens_seen: usize,
    first_train_loss: Option<f64>,
    epoch_loss: f64,
    epoch_accuracy: f64,
    epoch_batches: usize,
    train_started: Instant,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            tokens_seen: 0,
            first_train_loss: None,
            epoch_loss: 0.0,
            epoch_accuracy: 0.0,
            epoch_batches: 0,
            train_started: Instant::now(),
        }
    }
}

impl Tally {
    fn add_batch(&mut self, loss: f64, accuracy: f64, tokens: usize) {
        self.first_train_loss.get_or_insert(loss);
        self.epoch_loss += loss;
        self.epoch_accuracy += accuracy;
        self.epoch_batches += 1;
        self.tokens_seen += tokens;
    }

    fn mean_loss(&self) -> f64 {
        self.epoch_loss / self.epoch_batches.max(1) as f64
    }

    fn mean_accuracy(&self) -> f64 {
        self.epoch_accuracy / self.epoch_batches.max(1) as f64
    }

    fn tokens_per_second(&self) -> f64 {
        self.tokens_seen as f64 / self.train_started.elapsed().as_secs_f64().max(1e-9)
    }

    fn new_epoch(&mut self) {
        (self.epoch_loss, self.epoch_accuracy, self.epoch_batches) = (0.0, 0.0, 0);
    }
}

/// One training run's loop: everything an epoch, a micro-batch and an optimiser step need.
struct Run<'a> {
    s: &'a TrainSettings,
    model: &'a TrainableModel,
    optimizer: &'a mut AdamW,
    train: &'a [EncodedPair],
    eval: &'a [EncodedPair],
    checkpoint_dir: &'a Path,
    bar: ProgressBar,
    device: Device,
    batches_per_epoch: usize,
    total_steps: u64,
    tally: Tally,
}

impl Run<'_> {
    /// The rest of epoch `progress.epoch` from micro-batch `progress.batch`, then its eval pass
    /// and checkpoint.
    fn epoch(&mut self, progress: &mut Progress) -> Result<()> {
        let s = self.s;
        let order = epoch_order(self.train.len(), s.seed, progress.epoch);
        let mut grads: Vec<Option<Tensor>> = vec![None; self.model.vars.len()];
        let mut in_accum = 0;
        while progress.batch < self.batches_per_epoch {
            let start = progress.batch * s.batch_size;
            let batch = &order[start..(start + s.batch_size).min(order.len())];
            self.micro_batch(batch, &mut grads)?;
            in_accum += 1;
            progress.batch += 1;
            if in_accum == s.grad_accum || progress.batch == self.batches_per_epoch {
                self.step(progress, &mut grads)?;
                in_accum = 0;
            }
        }
        progress.epoch += 1;
        progress.batch = 0;
        let eval_result = evaluate(self.model, self.eval, s, &self.device)?;
        if s.verbose {
            let tally = &self.tally;
            self.bar.suspend(|| {
                let eval_text = match eval_result {
                    Some((l, a)) => format!(", eval loss {l:.4} acc {a:.3}"),
                    None => String::new(),
                };
                eprintln!(
                    "epoch {}/{}: train loss {:.4} acc {:.3}{}",
                    progress.epoch,
                    s.epochs,
                    tally.mean_loss(),
                    tally.mean_accuracy(),
                    eval_text
                );
            });
        }
        save_checkpoint(self.checkpoint_dir, self.model, self.optimizer, progress)?;
        if progress.epoch < s.epochs {
            self.tally.new_epoch();
        }
        Ok(())
    }

    /// Forward and backward over the pairs at `batch` (indices into the training pairs), adding
    /// the gradients, scaled for accumulation, into `grads`.
    fn micro_batch(&mut self, batch: &[usize], grads: &mut [Option<Tensor>]) -> Result<()> {
        let s = self.s;
        let pairs: Vec<&EncodedPair> = batch.iter().map(|&i| &self.train[i]).collect();
        let (loss, accuracy) = pair_loss(self.model, &pairs, s.beta, s.gamma, &self.device)?;
        let scaled = (&loss / s.grad_accum as f64)?;
        let step_grads = scaled.backward()?;
        for (slot, (_, var)) in grads.iter_mut().zip(&self.model.vars) {
            if let Some(g) = step_grads.get(var.as_tensor()) {
                *slot = Some(match slot.take() {
                    Some(sum) => (sum + g)?,
                    None => g.clone(),
                });
            }
        }
        let tokens = pairs.iter().map(|p| p.tokens()).sum::<usize>();
        self.tally
            .add_batch(loss.to_scalar::<f32>()? as f64, accuracy, tokens);
        Ok(())
    }

    /// One optimiser step with the accumulated gradients (then cleared), the bar moved on, and
    /// a checkpoint every `save_every` steps.
    fn step(&mut self, progress: &mut Progress, grads: &mut [Option<Tensor>]) -> Result<()> {
        let s = self.s;
        self.optimizer.lr = learning_rate(s.lr, s.warmup as u64, progress.steps, self.total_steps);
        self.optimizer.step(&self.model.vars, grads)?;
        grads.iter_mut().for_each(|g| *g = None);
        progress.steps += 1;
        self.bar.set_position(progress.steps);
        self.bar.set_message(format!(
            "loss {:.4} acc {:.2} {:.0} tok/s",
            self.tally.epoch_loss / self.tally.epoch_batches as f64,
            self.tally.epoch_accuracy / self.tally.epoch_batches as f64,
            self.tally.tokens_per_second()
        ));
        if s.save_every > 0 && progress.steps.is_multiple_of(s.save_every as u64) {
            save_checkpoint(self.checkpoint_dir, self.model, self.optimizer, progress)?;
        }
        if s.interrupt_after_steps == Some(progress.steps) {
            return Err(EngineError::usage(format!(
                "interrupted after {} steps",
                progress.steps
            )));
        }
        Ok(())
    }
}

fn validate(s: &TrainSettings) -> Result<()> {
    let positive = [
        (Input::Epochs, s.epochs),
        (Input::BatchSize, s.batch_size),
        (Input::GradAccum, s.grad_accum),
        (Input::MaxLength, s.max_length),
    ];
    for (input, value) in positive {
        if value == 0 {
            return Err(input.error(" must be at least 1"));
        }
    }
    let finite = [
        (Input::Beta, s.beta),
        (Input::Gamma, s.gamma),
        (Input::LearningRate, s.lr),
    ];
    for (input, value) in finite {
        if !value.is_finite() {
            return Err(input.error(format!(" must be a finite number, got {value}")));
        }
    }
    if s.beta <= 0.0 || s.lr <= 0.0 {
        return Err(EngineError::bad_input([
            Part::Input(Input::Beta),
            " and ".into(),
            Part::Input(Input::LearningRate),
            " must be positive".into(),
        ]));
    }
    if !(0.0..1.0).contains(&s.eval_split) {
        return Err(Input::EvalSplit.error(format!(" must be in [0, 1), got {}", s.eval_split)));
    }
    if let Some(l) = &s.lora
        && (!l.alpha.is_finite() || l.alpha <= 0.0)
    {
        return Err(Input::LoraAlpha.error(" must be a positive number"));
    }
    Ok(())
}

/// Tokenize pairs; responses are cut so the longer sequence fits `max_length`. Pairs whose
/// prompt alone leaves no room, or with ids the model lacks, are dropped (and counted).
fn encode_pairs(
    tokenizer: &ModelTokenizer,
    pairs: &[PreferencePair],
    max_length: usize,
    vocab: usize,
) -> (Vec<EncodedPair>, usize) {
    let mut out = Vec::with_capacity(pairs.len());
    let mut dropped = 0;
    for pair in pairs {
        let encoded = (|| -> Result<EncodedPair> {
            Ok(EncodedPair {
                prompt: tokenizer.encode_prompt(&pair.prompt)?,
                chosen: tokenizer.encode_response(&pair.chosen)?,
                rejected: tokenizer.encode_response(&pair.rejected)?,
            })
        })();
        let Ok(mut e) = encoded else {
            dropped += 1;
            continue;
        };
        if e.prompt.len() + 1 >= max_length || e.chosen.is_empty() || e.rejected.is_empty() {
            dropped += 1;
            continue;
        }
        let room = max_length - e.prompt.len();
        e.chosen.truncate(room);
        e.rejected.truncate(room);
        let all = e.prompt.iter().chain(&e.chosen).chain(&e.rejected);
        if all.into_iter().any(|&t| t as usize >= vocab) {
            dropped += 1;
            continue;
        }
        out.push(e);
    }
    (out, dropped)
}

/// A seeded split: the held-out part is the same for a given seed whatever the run.
fn split(
    mut pairs: Vec<EncodedPair>,
    eval_split: f64,
    seed: u64,
) -> (Vec<EncodedPair>, Vec<EncodedPair>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_E7A1);
    pairs.shuffle(&mut rng);
    let n_eval = ((pairs.len() as f64) * eval_split).round() as usize;
    let n_eval = n_eval.min(pairs.len().saturating_sub(1));
    let eval = pairs.split_off(pairs.len() - n_eval);
    (pairs, eval)
}

fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(epoch as u64 * 0x9E37_79B9));
    order.shuffle(&mut rng);
    order
}

/// Loss and reward accuracy of a batch of pairs (chosen and rejected in one forward pass).
pub fn pair_loss(
    model: &TrainableModel,
    pairs: &[&EncodedPair],
    beta: f64,
    gamma: f64,
    device: &Device,
) -> Result<(Tensor, f64)> {
    let mut sequences: Vec<(&[u32], &[u32])> = pairs
        .iter()
        .map(|p| (&p.prompt[..], &p.chosen[..]))
        .collect();
    sequences.extend(pairs.iter().map(|p| (&p.prompt[..], &p.rejected[..])));
    let batch = make_batch(&sequences, device)?;
    let logprobs = sequence_logprobs(&model.net, &batch)?;
    let n = pairs.len();
    genarm_loss(
        &logprobs.narrow(0, 0, n)?,
        &logprobs.narrow(0, n, n)?,
        beta,
        gamma,
    )
}

/// Mean loss and accuracy over the held-out pairs (no gradients kept).
fn evaluate(
    model: &TrainableModel,
    eval: &[EncodedPair],
    s: &TrainSettings,
    device: &Device,
) -> Result<Option<(f64, f64)>> {
    if eval.is_empty() {
        return Ok(None);
    }
    let (mut loss, mut acc, mut n) = (0.0, 0.0, 0.0);
    for chunk in eval.chunks(s.batch_size) {
        let pairs: Vec<&EncodedPair> = chunk.iter().collect();
        let (l, a) = pair_loss(model, &pairs, s.beta, s.gamma, device)?;
        let w = chunk.len() as f64;
        loss += l.to_scalar::<f32>()? as f64 * w;
        acc += a * w;
        n += w;
    }
    Ok(Some((loss / n, acc / n)))
}

fn fingerprint(s: &TrainSettings, pairs: usize) -> String {
    let lora = s
        .lora
        .as_ref()
        .map(|l| format!("lora r{} a{}", l.rank, l.alpha))
        .unwrap_or("full".into());
    format!(
        "base={} data={} pairs={pairs} batch={} accum={} epochs={} seed={} {lora}",
        s.base.display(),
        s.data.display(),
        s.batch_size,
        s.grad_accum,
        s.epochs,
        s.seed
    )
}

/// Write the checkpoint to a fresh folder, then swap it in, so a crash leaves the previous one.
fn save_checkpoint(
    dir: &Path,
    model: &TrainableModel,
    optimizer: &AdamW,
    progress: &Progress,
) -> Result<()> {
    let fresh = dir.with_file_name(format!("{CHECKPOINT}.new"));
    let old = dir.with_file_name(format!("{CHECKPOINT}.old"));
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).map_err(|e| EngineError::io(&fresh, e))?;
    save_safetensors(&model.var_tensors(), &fresh.join("trainable.safetensors"))?;
    save_safetensors(
        &optimizer.state(&model.vars),
        &fresh.join("optimizer.safetensors"),
    )?;
    let state = serde_json::to_string_pretty(progress).unwrap_or_default();
    write_atomically(&fresh.join("progress.json"), state.as_bytes())?;
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| EngineError::io(dir, e))?;
    }
    std::fs::rename(&fresh, dir).map_err(|e| EngineError::io(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Resuming was asked for but `out` holds no checkpoint.
fn no_checkpoint(out: &Path) -> EngineError {
    Input::Resume.error(format!(": no checkpoint in {}", out.display()))
}

fn resume(
    dir: &Path,
    model: &mut TrainableModel,
    optimizer: &mut AdamW,
    fingerprint: &str,
) -> Result<Progress> {
    // A crash between the two renames leaves only the previous checkpoint, under .old.
    let old = dir.with_file_name(format!("{CHECKPOINT}.old"));
    let dir = if dir.is_dir() { dir.to_path_buf() } else { old };
    if !dir.is_dir() {
        return Err(no_checkpoint(dir.parent().unwrap_or(Path::new(""))));
    }
    let progress_path = dir.join("progress.json");
    let text =
        std::fs::read_to_string(&progress_path).map_err(|e| EngineError::io(&progress_path, e))?;
    let progress: Progress = serde_json::from_str(&text)
        .map_err(|e| EngineError::invalid(&progress_path, format!("unreadable checkpoint: {e}")))?;
    if progress.fingerprint != fingerprint {
        return Err(Input::Resume.error(format!(
            ": the checkpoint was made with other settings ({}); now: {fingerprint}",
            progress.fingerprint
        )));
    }
    let load = |name: &str| -> Result<HashMap<String, Tensor>> {
        let path = dir.join(name);
        candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| EngineError::invalid(&path, format!("unreadable checkpoint: {e}")))
    };
    model.set_vars(&load("trainable.safetensors")?, &dir)?;
    optimizer.load_state(&model.vars, &load("optimizer.safetensors")?, progress.steps);
    Ok(progress)
}
