//! `genarm score`: teacher-forced per-token scoring of a given response.

use std::io::Write;

use anyhow::{Result, bail};
use serde_json::json;

use crate::cli::ScoreArgs;
use crate::cli::model_flags::{base_label, load_guide, split_pair};
use crate::engine::score;

/// Parse `--beta B` (all ARMs) and `--beta NAME=B`.
pub fn parse_betas(raw: &[String], names: &[String]) -> Result<Vec<Option<f64>>> {
    let mut betas = vec![None; names.len()];
    for item in raw {
        let (target, value) = match item.contains('=') {
            true => {
                let (n, v) = split_pair("--beta", item)?;
                (Some(n), v)
            }
            false => (None, item.as_str()),
        };
        let b: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|b: &f64| b.is_finite())
            .ok_or_else(|| anyhow::anyhow!("--beta {item}: '{value}' is not a finite number"))?;
        match target {
            None => betas.iter_mut().for_each(|x| *x = Some(b)),
            Some(name) => match names.iter().position(|n| n == name) {
                Some(i) => betas[i] = Some(b),
                None => bail!("--beta {item}: no ARM named '{name}'"),
            },
        }
    }
    Ok(betas)
}

pub fn run(args: &ScoreArgs) -> Result<()> {
    let (mut guide, weights) = load_guide(&args.models)?;
    let names = guide.arm_names();
    let betas = parse_betas(&args.betas, &names)?;
    let prompt_ids = guide.prompt_ids(&args.prompt)?;
    let response_ids = guide.base.tokenizer().encode_response(&args.response)?;
    let (records, sums) = score(
        &mut guide,
        &prompt_ids,
        &response_ids,
        &weights,
        args.top_alternatives,
    )?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut arm_sums = serde_json::Map::new();
    let mut rewards = serde_json::Map::new();
    for ((name, sum), beta) in names.iter().zip(&sums.arm_logprobs).zip(&betas) {
        arm_sums.insert(name.clone(), json!(sum));
        if let Some(b) = beta {
            rewards.insert(name.clone(), json!(b * sum));
        }
    }
    if args.json {
        let weight_map: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(&weights)
            .map(|(n, w)| (n.clone(), json!(w)))
            .collect();
        let start = json!({
            "type": "start", "prompt": args.prompt, "prompt_token_ids": prompt_ids,
            "response": args.response, "response_token_ids": response_ids,
            "base": base_label(&args.models), "arms": names, "weights": weight_map,
        });
        writeln!(out, "{start}")?;
        for record in &records {
            writeln!(out, "{}", serde_json::to_string(record)?)?;
        }
        let mut end = json!({
            "type": "end", "reason": "scored",
            "text": records.iter().map(|r| r.text.as_str()).collect::<String>(),
            "scored_tokens": records.len(),
            "base_logprob_sum": sums.base_logprob,
            "arm_logprob_sums": arm_sums,
            "guided_logprob_sum": sums.guided_logprob,
        });
        if !rewards.is_empty() {
            end["rewards"] = serde_json::Value::Object(rewards);
        }
        writeln!(out, "{end}")?;
        return Ok(());
    }
    // A readable table: one row per token.
    write!(out, "{:>5}  {:<16} {:>9}", "#", "token", "base")?;
    for name in &names {
        write!(out, " {:>10}", truncate(name, 10))?;
    }
    writeln!(out, " {:>9}", "guided")?;
    for r in &records {
        write!(
            out,
            "{:>5}  {:<16} {:>9.4}",
            r.index,
            shown(&r.text),
            r.base_logprob
        )?;
        for arm in &r.arms {
            write!(out, " {:>10.4}", arm.logprob)?;
        }
        writeln!(out, " {:>9.4}", r.guided_logprob)?;
    }
    writeln!(out, "tokens: {}", records.len())?;
    writeln!(out, "base log-likelihood: {:.4}", sums.base_logprob)?;
    for (i, name) in names.iter().enumerate() {
        write!(out, "ARM {name}: Σ log π = {:.4}", sums.arm_logprobs[i])?;
        if let Some(b) = betas[i] {
            write!(out, ", reward (β={b}) = {:.4}", b * sums.arm_logprobs[i])?;
        }
        writeln!(out)?;
    }
    writeln!(out, "guided log-likelihood: {:.4}", sums.guided_logprob)?;
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A token's text with whitespace made visible, for the table.
fn shown(text: &str) -> String {
    let visible: String = text
        .chars()
        .map(|c| match c {
            ' ' => '␣',
            '\n' => '↵',
            '\t' => '⇥',
            c => c,
        })
        .collect();
    format!("{:?}", truncate(&visible, 14))
}
