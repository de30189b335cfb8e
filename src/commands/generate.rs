//! `genarm generate`: one prompt, guided decoding, text or JSON records on stdout.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use crate::cli::GenerateArgs;
use crate::cli::model_flags::{base_label, load_guide};
use crate::engine::{Generation, SamplingParams, StopReason};

pub fn run(args: &GenerateArgs) -> Result<()> {
    let params = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
    };
    params.validate()?;
    let (mut guide, weights) = load_guide(&args.models)?;
    let prompt_ids = guide.prompt_ids(&args.prompt)?;
    let names = guide.arm_names();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    let mut generation = Generation::start(
        &mut guide,
        prompt_ids.clone(),
        params,
        args.max_new_tokens,
        args.top_alternatives,
    )?;
    if args.json {
        let weight_map: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(&weights)
            .map(|(n, w)| (n.clone(), json!(w)))
            .collect();
        let start = json!({
            "type": "start", "prompt": args.prompt, "prompt_token_ids": prompt_ids,
            "base": base_label(&args.models), "arms": names,
            "weights": weight_map, "temperature": params.temperature, "top_k": params.top_k,
            "top_p": params.top_p, "seed": params.seed,
        });
        writeln!(out, "{start}")?;
    }
    let started = Instant::now();
    while generation.stopped().is_none() {
        let record = match generation.step(&mut guide, &weights, None) {
            Ok(record) => record,
            Err(e) => {
                // The tokens already made stay on stdout; the end record says why it stopped.
                let e = anyhow::Error::from(e);
                if args.json {
                    let end = json!({
                        "type": "end", "reason": "error", "text": generation.text(),
                        "generated_tokens": generation.generated().len(),
                        "error": crate::cli_errors::one_line(&e),
                    });
                    writeln!(out, "{end}")?;
                } else {
                    writeln!(out)?;
                }
                return Err(e);
            }
        };
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&record)?)?;
        } else {
            write!(out, "{}", record.text)?;
            out.flush()?;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = generation.generated().len();
    let reason = generation.stopped().unwrap_or(StopReason::Stop);
    if args.json {
        let end = json!({
            "type": "end", "reason": reason.as_str(), "text": generation.text(),
            "generated_tokens": n,
            "tokens_per_second": if elapsed > 0.0 { n as f64 / elapsed } else { 0.0 },
        });
        writeln!(out, "{end}")?;
    } else {
        writeln!(out)?;
    }
    Ok(())
}
