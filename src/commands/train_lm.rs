//! `genarm train-lm` and `genarm train-tokenizer`: a toy base model from a corpus.

use anyhow::Result;

use crate::cli::{TrainLmArgs, TrainTokenizerArgs};
use crate::train::corpus::read_documents;
use crate::train::lm::{LmSettings, train_lm};
use crate::train::tokenizer::train_tokenizer;

pub fn run_tokenizer(args: &TrainTokenizerArgs) -> Result<()> {
    let documents = read_documents(&args.corpus).map_err(|e| anyhow::anyhow!("--corpus {e}"))?;
    let size = train_tokenizer(&documents, args.vocab_size, args.min_frequency, &args.out)?;
    println!(
        "trained a {size}-token byte-level BPE tokenizer on {} documents; wrote {}",
        documents.len(),
        args.out.display()
    );
    Ok(())
}

pub fn run(args: &TrainLmArgs) -> Result<()> {
    let settings = LmSettings {
        corpus: args.corpus.clone(),
        tokenizer: args.tokenizer.clone(),
        out: args.out.clone(),
        hidden: args.hidden,
        layers: args.layers,
        heads: args.heads,
        kv_heads: args.kv_heads,
        intermediate: args.intermediate,
        context: args.context,
        tie_embeddings: args.tie_embeddings,
        seq_len: args.seq_len,
        batch_size: args.batch_size,
        lr: args.lr,
        weight_decay: args.weight_decay,
        epochs: args.epochs,
        warmup: args.warmup,
        seed: args.seed,
        eval_split: args.eval_split,
        verbose: !args.json,
    };
    let report = train_lm(&settings)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "trained {} parameters for {} steps on {} tokens in {:.1} s ({:.0} tokens/s)",
        report.parameters,
        report.steps,
        report.train_tokens,
        report.seconds,
        report.tokens_per_second
    );
    print!("loss {:.3} → {:.3}", report.first_loss, report.train_loss);
    if let Some(eval) = report.eval_loss {
        print!(", held-out {eval:.3} (perplexity {:.1})", eval.exp());
    }
    println!("\nwrote {}", args.out.display());
    Ok(())
}
