//! `train-lm`: pretrain a small Llama-architecture causal LM from a corpus, next-token
//! cross-entropy on packed windows, written in the Hugging Face layout.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{D, Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tempfile::TempDir;

use super::corpus::read_documents;
use super::model::TrainableModel;
use super::optim::{AdamW, learning_rate};
use super::trainer::progress_bar;
use crate::engine::formats::tokenizer::ModelTokenizer;
use crate::engine::model::transformer::Transformer;
use crate::engine::{EngineError, Result};
use crate::synthetic::{RandomModelSpec, write_random_model};

#[derive(Debug, Clone)]
pub struct LmSettings {
    pub corpus: PathBuf,
    /// A folder with tokenizer.json and tokenizer_config.json (e.g. from `train-tokenizer`).
    pub tokenizer: PathBuf,
    pub out: PathBuf,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub context: usize,
    pub tie_embeddings: bool,
    pub seq_len: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    pub warmup: usize,
    pub seed: u64,
    pub eval_split: f64,
    pub verbose: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LmReport {
    pub parameters: usize,
    pub documents: usize,
    pub train_tokens: usize,
    pub steps: u64,
    pub first_loss: f64,
    pub train_loss: f64,
    pub eval_loss: Option<f64>,
    pub tokens_per_second: f64,
    pub seconds: f64,
}

pub fn train_lm(s: &LmSettings) -> Result<LmReport> {
    validate(s)?;
    let started = Instant::now();
    let tokenizer = ModelTokenizer::load(&s.tokenizer)?;
    let corpus = Windows::read(s, &tokenizer)?;
    let (train, eval) = (&corpus.train, &corpus.eval);
    // Kept until the model is saved: the trained folder copies its config from there.
    let (_staging, model) = random_start(s, &tokenizer)?;
    let parameters = model
        .vars
        .iter()
        .map(|(_, v)| v.as_tensor().elem_count())
        .sum();
    let mut optimizer = AdamW::new(&model.vars, s.lr, s.weight_decay)?;
    let steps_per_epoch = train.len().div_ceil(s.batch_size) as u64;
    let total = steps_per_epoch * s.epochs as u64;
    let bar = progress_bar(s.verbose, total, 0);
    let device = Device::Cpu;
    let (mut steps, mut tokens, mut first_loss, mut last_epoch_loss) = (0u64, 0usize, None, 0.0);
    let train_started = Instant::now();
    for epoch in 0..s.epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            s.seed.wrapping_add(epoch as u64 + 1),
        ));
        let (mut epoch_loss, mut batches) = (0.0, 0);
        for chunk in order.chunks(s.batch_size) {
            let windows: Vec<&[u32]> = chunk.iter().map(|&i| &train[i][..]).collect();
            let loss = window_loss(&model.net, &windows, &device)?;
            let grads = loss.backward()?;
            let g: Vec<Option<Tensor>> = model
                .vars
                .iter()
                .map(|(_, v)| grads.get(v.as_tensor()).cloned())
                .collect();
            optimizer.lr = learning_rate(s.lr, s.warmup as u64, steps, total);
            optimizer.step(&model.vars, &g)?;
            steps += 1;
            let value = loss.to_scalar::<f32>()? as f64;
            first_loss.get_or_insert(value);
            epoch_loss += value;
            batches += 1;
            tokens += windows.len() * s.seq_len;
            bar.set_position(steps);
            bar.set_message(format!(
                "loss {:.3} {:.0} tok/s",
                epoch_loss / batches as f64,
                tokens as f64 / train_started.elapsed().as_secs_f64().max(1e-9)
            ));
        }
        last_epoch_loss = epoch_loss / batches.max(1) as f64;
        if s.verbose {
            bar.suspend(|| {
                eprintln!(
                    "epoch {}/{}: train loss {last_epoch_loss:.4}",
                    epoch + 1,
                    s.epochs
                )
            });
        }
    }
    bar.finish_and_clear();
    let eval_loss = mean_eval_loss(&model.net, eval, s.batch_size, &device)?;
    model.save(&s.out)?;
    Ok(LmReport {
        parameters,
        documents: corpus.train_documents,
        train_tokens: train.len() * s.seq_len,
        steps,
        first_loss: first_loss.unwrap_or(f64::NAN),
        train_loss: last_epoch_loss,
        eval_loss,
        tokens_per_second: tokens as f64 / train_started.elapsed().as_secs_f64().max(1e-9),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The settings' ranges, and an output folder that is absent or empty.
fn validate(s: &LmSettings) -> Result<()> {
    if s.seq_len < 2 || s.seq_len > s.context {
        return Err(EngineError::usage(format!(
            "--seq-len must be between 2 and --context ({}), got {}",
            s.context, s.seq_len
        )));
    }
    if s.batch_size == 0 || s.epochs == 0 || !(0.0..1.0).contains(&s.eval_split) {
        return Err(EngineError::usage(
            "--batch-size and --epochs must be at least 1, --eval-split in [0, 1)",
        ));
    }
    if s.out.exists()
        && std::fs::read_dir(&s.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(EngineError::usage(format!(
            "--out {}: folder exists and is not empty",
            s.out.display()
        )));
    }
    Ok(())
}

/// The corpus tokenized into training windows of `seq_len + 1` tokens, split by document into
/// training and held-out windows.
struct Windows {
    train: Vec<Vec<u32>>,
    eval: Vec<Vec<u32>>,
    train_documents: usize,
}

impl Windows {
    /// Read `s.corpus`, shuffle its documents (seeded), hold out `eval_split` of them, and cut
    /// each part's token stream (documents ended by eos) into windows; an error if no training
    /// window is left.
    fn read(s: &LmSettings, tokenizer: &ModelTokenizer) -> Result<Self> {
        let eos = *tokenizer.eos_ids.first().ok_or_else(|| {
            EngineError::invalid(&s.tokenizer, "the tokenizer config names no eos_token")
        })?;
        let mut documents = read_documents(&s.corpus)?;
        documents.shuffle(&mut ChaCha8Rng::seed_from_u64(s.seed));
        let n_eval = ((documents.len() as f64) * s.eval_split).round() as usize;
        let (eval_docs, train_docs) =
            documents.split_at(n_eval.min(documents.len().saturating_sub(1)));
        let pack = |docs: &[String]| -> Result<Vec<Vec<u32>>> {
            let mut stream = Vec::new();
            for doc in docs {
                stream.extend(tokenizer.encode_prompt(doc)?);
                stream.push(eos);
            }
            // Windows of seq_len + 1 tokens: inputs are the first seq_len, targets the last.
            Ok(stream
                .chunks_exact(s.seq_len + 1)
                .map(<[u32]>::to_vec)
                .collect())
        };
        let train = pack(train_docs)?;
        let eval = pack(eval_docs)?;
        if train.is_empty() {
            return Err(EngineError::usage(format!(
                "--corpus {}: fewer than --seq-len + 1 = {} tokens to train on",
                s.corpus.display(),
                s.seq_len + 1
            )));
        }
        Ok(Self {
            train,
            eval,
            train_documents: train_docs.len(),
        })
    }
}

/// A randomly initialised model in the real layout, in a temporary folder (returned with it),
/// opened for training.
fn random_start(s: &LmSettings, tokenizer: &ModelTokenizer) -> Result<(TempDir, TrainableModel)> {
    let staging =
        tempfile::tempdir().map_err(|e| EngineError::usage(format!("temporary folder: {e}")))?;
    let init_dir = staging.path().join("init");
    let spec = RandomModelSpec {
        arch: "llama".into(),
        vocab: tokenizer.len,
        hidden: s.hidden,
        layers: s.layers,
        heads: s.heads,
        kv_heads: s.kv_heads,
        intermediate: s.intermediate,
        context: s.context,
        seed: s.seed,
        for_training: true,
        tie_embeddings: s.tie_embeddings,
        tokenizer_dir: Some(s.tokenizer.clone()),
    };
    write_random_model(&init_dir, &spec).map_err(|e| EngineError::usage(format!("{e:#}")))?;
    let model = TrainableModel::load(&init_dir, None, s.seed)?;
    Ok((staging, model))
}

/// Mean loss per window over the held-out windows, in batches; None when there are none.
fn mean_eval_loss(
    net: &Transformer,
    eval: &[Vec<u32>],
    batch_size: usize,
    device: &Device,
) -> Result<Option<f64>> {
    if eval.is_empty() {
        return Ok(None);
    }
    let mut total_loss = 0.0;
    for chunk in eval.chunks(batch_size) {
        let windows: Vec<&[u32]> = chunk.iter().map(|w| &w[..]).collect();
        total_loss +=
            window_loss(net, &windows, device)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    Ok(Some(total_loss / eval.len() as f64))
}

/// Mean next-token cross-entropy over windows of equal length.
fn window_loss(net: &Transformer, windows: &[&[u32]], device: &Device) -> Result<Tensor> {
    let n = windows.len();
    let t = windows[0].len() - 1;
    let flat: Vec<u32> = windows.iter().flat_map(|w| w.iter().copied()).collect();
    let all = Tensor::from_vec(flat, (n, t + 1), device)?;
    let inputs = all.narrow(1, 0, t)?;
    let targets = all.narrow(1, 1, t)?.contiguous()?;
    let logits = net.forward_train(&inputs)?;
    let logprobs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let picked = logprobs.gather(&targets.unsqueeze(2)?, 2)?;
    Ok(picked.mean_all()?.neg()?)
}
