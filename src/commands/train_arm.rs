//! `genarm train-arm`: fit an ARM to preference pairs and write a loadable model folder.

use anyhow::Result;

use crate::cli::TrainArmArgs;
use crate::engine::model::transformer::LORA_TARGETS;
use crate::train::model::LoraSettings;
use crate::train::{TrainSettings, train_arm};

pub fn run(args: &TrainArmArgs) -> Result<()> {
    let objective = match &args.objective {
        Some(o) => Some(
            o.parse()
                .map_err(|e: String| anyhow::anyhow!("--objective: {e}"))?,
        ),
        None => None,
    };
    let lora = (args.lora_rank > 0).then(|| LoraSettings {
        rank: args.lora_rank,
        alpha: args.lora_alpha,
        targets: LORA_TARGETS.iter().map(|t| t.to_string()).collect(),
    });
    let settings = TrainSettings {
        base: args.base.clone(),
        data: args.data.clone(),
        out: args.out.clone(),
        beta: args.beta,
        gamma: args.gamma,
        lr: args.lr,
        weight_decay: args.weight_decay,
        epochs: args.epochs,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        warmup: args.warmup,
        max_length: args.max_length,
        seed: args.seed,
        eval_split: args.eval_split,
        lora,
        objective,
        strict: args.strict,
        resume: args.resume,
        save_every: args.save_every,
        verbose: !args.json,
        interrupt_after_steps: None,
    };
    let report = train_arm(&settings)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "trained {} steps on {} pairs ({} held out, {} lines skipped) in {:.1} s, {:.0} tokens/s",
        report.steps,
        report.pairs_train,
        report.pairs_eval,
        report.skipped_lines,
        report.seconds,
        report.tokens_per_second
    );
    println!(
        "train loss {:.4} (first batch {:.4}), reward accuracy {:.3}",
        report.train_loss, report.first_train_loss, report.train_accuracy
    );
    if let (Some(l), Some(a)) = (report.eval_loss, report.eval_accuracy) {
        println!("held-out loss {l:.4}, reward accuracy {a:.3}");
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
