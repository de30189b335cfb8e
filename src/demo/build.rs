//! `genarm demo rebuild`: corpus → tokenizer → base → helpful ARM → harmless ARM, with the
//! project's own training commands, into `assets/demo/` (base/, helpful/, harmless/).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::world::{Objective, World};
use crate::engine::{EngineError, Result};
use crate::train::lm::{LmSettings, train_lm};
use crate::train::model::TOKENIZER_FILES;
use crate::train::tokenizer::{EOS, train_tokenizer};
use crate::train::{TrainSettings, train_arm};

#[derive(Debug, Clone)]
pub struct RebuildSettings {
    pub out: PathBuf,
    pub seed: u64,
    /// Documents in the base model's corpus.
    pub corpus_documents: usize,
    pub vocab_size: usize,
    pub base_epochs: usize,
    pub helpful_epochs: usize,
    pub harmless_epochs: usize,
    /// Keep the base already in `out` and retrain only the ARMs on it (the base's training is
    /// deterministic, so this gives what a full rebuild would, minutes sooner).
    pub reuse_base: bool,
    /// Preference pairs drawn per request and objective.
    pub pairs_per_request: usize,
    pub verbose: bool,
}

impl Default for RebuildSettings {
    fn default() -> Self {
        Self {
            out: PathBuf::from("assets/demo"),
            seed: 0,
            corpus_documents: 6000,
            vocab_size: 768,
            base_epochs: 8,
            helpful_epochs: HELPFUL_EPOCHS,
            harmless_epochs: HARMLESS_EPOCHS,
            reuse_base: false,
            pairs_per_request: 6,
            verbose: true,
        }
    }
}

/// What each stage took, in seconds.
#[derive(Debug, Clone, Default)]
pub struct RebuildTimes {
    pub stages: Vec<(&'static str, f64)>,
}

/// ARM epochs, chosen by measured rates (docs/training.md, "The demo models"): one helpful epoch left the
/// helpful weight too weak to outvote the harmless ARM on benign requests at (1, 1); the
/// harmless ARM needs more passes over its indifference pairs than the helpful ARM over its
/// ordered ones.
pub const HELPFUL_EPOCHS: usize = 2;
pub const HARMLESS_EPOCHS: usize = 4;

pub fn rebuild(s: &RebuildSettings) -> Result<RebuildTimes> {
    let reused_base = match s.reuse_base {
        true => {
            let shipped = s.out.join("base");
            if !shipped.join("model.safetensors").is_file() {
                return Err(EngineError::usage(format!(
                    "--reuse-base: {} has no base model to reuse",
                    shipped.display()
                )));
            }
            Some(shipped)
        }
        false => None,
    };
    let world = World::new(s.seed);
    let work =
        tempfile::tempdir().map_err(|e| EngineError::usage(format!("temporary folder: {e}")))?;
    let w = work.path();
    let mut times = RebuildTimes::default();
    let mut stage = |name: &'static str, started: Instant, detail: String| {
        let secs = started.elapsed().as_secs_f64();
        if s.verbose {
            eprintln!("[{secs:7.1} s] {name}: {detail}");
        }
        times.stages.push((name, secs));
    };

    let t = Instant::now();
    let corpus = export_data(&world, s, w)?;
    let corpus_path = w.join("corpus.jsonl");
    stage(
        "corpus",
        t,
        format!("{} documents and the preference pairs", corpus.len()),
    );

    let base = if let Some(shipped) = reused_base {
        shipped
    } else {
        train_base(s, &corpus, &corpus_path, w, &mut stage)?
    };

    for (name, objective) in [
        ("helpful", Objective::Helpful),
        ("harmless", Objective::Harmless),
    ] {
        let t = Instant::now();
        let pairs = world.preference_pairs(objective, s.pairs_per_request);
        let data = w.join(format!("{name}.jsonl"));
        let out = w.join(name);
        let report = train_arm(&TrainSettings {
            base: base.clone(),
            data,
            out: out.clone(),
            // A gentle fit: with Adam, the GenARM loss keeps pushing rejected responses down long
            // after it has separated the pair, and a larger learning rate or more epochs turns
            // the ARM into a poor language model whose guidance garbles the text.
            beta: 1.0,
            gamma: 0.0,
            lr: 1e-4,
            weight_decay: 0.0,
            epochs: match objective {
                Objective::Helpful => s.helpful_epochs,
                Objective::Harmless => s.harmless_epochs,
            },
            batch_size: 8,
            grad_accum: 1,
            warmup: 10,
            max_length: 128,
            seed: s.seed,
            eval_split: 0.1,
            lora: None,
            objective: None,
            strict: true,
            resume: false,
            save_every: 0,
            verbose: s.verbose,
            interrupt_after_steps: None,
        })?;
        stage(
            if name == "helpful" {
                "helpful ARM"
            } else {
                "harmless ARM"
            },
            t,
            format!(
                "{} pairs, held-out reward accuracy {:.3}",
                pairs.len(),
                report.eval_accuracy.unwrap_or(f64::NAN)
            ),
        );
    }

    let t = Instant::now();
    let built: &[&str] = if s.reuse_base {
        &["helpful", "harmless"]
    } else {
        &["base", "helpful", "harmless"]
    };
    for name in built {
        install(&w.join(name), &s.out.join(name))?;
    }
    stage("install", t, format!("{}", s.out.display()));
    Ok(times)
}

/// Tokenizer and base model from the corpus, into `work/base`.
fn train_base(
    s: &RebuildSettings,
    corpus: &[String],
    corpus_path: &Path,
    work: &Path,
    stage: &mut impl FnMut(&'static str, Instant, String),
) -> Result<PathBuf> {
    let t = Instant::now();
    let tokenizer_dir = work.join("tokenizer");
    let size = train_tokenizer(corpus, s.vocab_size, 2, &tokenizer_dir)?;
    stage("tokenizer", t, format!("byte-level BPE, {size} tokens"));

    let t = Instant::now();
    let base = work.join("base");
    let report = train_lm(&LmSettings {
        corpus: corpus_path.to_path_buf(),
        tokenizer: tokenizer_dir,
        out: base.clone(),
        hidden: 128,
        layers: 4,
        heads: 4,
        kv_heads: 2,
        intermediate: 384,
        context: 256,
        tie_embeddings: true,
        seq_len: 128,
        batch_size: 16,
        lr: 3e-3,
        weight_decay: 0.0,
        epochs: s.base_epochs,
        warmup: 20,
        seed: s.seed,
        eval_split: 0.02,
        verbose: s.verbose,
    })?;
    stage(
        "base",
        t,
        format!(
            "{} parameters, loss {:.3} → {:.3}, held-out {:.3}",
            report.parameters,
            report.first_loss,
            report.train_loss,
            report.eval_loss.unwrap_or(f64::NAN)
        ),
    );

    Ok(base)
}

/// Write the world's corpus and both preference sets as JSONL into `dir`; return the corpus.
pub fn export_data(world: &World, s: &RebuildSettings, dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let corpus = world.base_corpus(s.corpus_documents);
    write_jsonl(
        &dir.join("corpus.jsonl"),
        corpus.iter().map(|d| serde_json::json!({ "text": d })),
    )?;
    for (name, objective) in [
        ("helpful", Objective::Helpful),
        ("harmless", Objective::Harmless),
    ] {
        let pairs = world.preference_pairs(objective, s.pairs_per_request);
        // The response ends with EOS so the ARM also has a say in when to stop.
        write_jsonl(
            &dir.join(format!("{name}.jsonl")),
            pairs.iter().map(|p| {
                serde_json::json!({"prompt": p.prompt, "chosen": format!("{}{EOS}", p.chosen),
                                   "rejected": format!("{}{EOS}", p.rejected)})
            }),
        )?;
    }
    Ok(corpus)
}

fn write_jsonl(path: &Path, rows: impl Iterator<Item = serde_json::Value>) -> Result<()> {
    let text: Vec<String> = rows.map(|r| r.to_string()).collect();
    std::fs::write(path, text.join("\n")).map_err(|e| EngineError::io(path, e))
}

/// Replace `to` with the model files of `from` (a staged copy renamed into place).
fn install(from: &Path, to: &Path) -> Result<()> {
    let parent = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| EngineError::io(parent, e))?;
    let staged = parent.join(format!(
        ".{}.new",
        to.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&staged);
    std::fs::create_dir_all(&staged).map_err(|e| EngineError::io(&staged, e))?;
    for name in MODEL_FILES {
        let file = from.join(name);
        if file.is_file() {
            std::fs::copy(&file, staged.join(name)).map_err(|e| EngineError::io(&file, e))?;
        }
    }
    if to.exists() {
        std::fs::remove_dir_all(to).map_err(|e| EngineError::io(to, e))?;
    }
    std::fs::rename(&staged, to).map_err(|e| EngineError::io(to, e))
}

/// The files a shipped demo model consists of.
pub const MODEL_FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    TOKENIZER_FILES[0],
    TOKENIZER_FILES[1],
    TOKENIZER_FILES[2],
    TOKENIZER_FILES[3],
];
