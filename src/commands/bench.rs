//! `genarm bench`: prompt-processing and decoding speed, base-only and guided, each model's
//! forward time per token, and the guidance overhead
//! (guided step time − Σ forward times) / guided step time.
//!
//! Base-only and guided runs are interleaved and medians reported, because the machines this
//! runs on are noisy.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::models::load_guide;
use crate::cli::BenchArgs;
use crate::engine::{Generation, Guide, SamplingParams};

struct Run {
    prefill: Duration,
    decode: Duration,
    /// Forward time per model (base first) during decoding.
    forward: Vec<Duration>,
    tokens: usize,
}

fn one_run(
    guide: &mut Guide,
    prompt: &[u32],
    decode_tokens: usize,
    weights: &[f32],
) -> Result<Run> {
    let started = Instant::now();
    let mut generation = Generation::start(
        guide,
        prompt.to_vec(),
        SamplingParams::default(),
        decode_tokens,
        5,
    )?;
    generation.set_ignore_eos(true);
    let prefill = started.elapsed();
    guide.take_forward_times();
    let started = Instant::now();
    let mut tokens = 0;
    while generation.stopped().is_none() {
        generation.step(guide, weights, None)?;
        tokens += 1;
    }
    let decode = started.elapsed();
    Ok(Run {
        prefill,
        decode,
        forward: guide.take_forward_times(),
        tokens,
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.repeats == 0 || args.decode_tokens < 2 || args.prompt_tokens == 0 {
        bail!("--repeats and --prompt-tokens must be at least 1, --decode-tokens at least 2");
    }
    let (mut guide, weights) = load_guide(&args.models)?;
    if args.prompt_tokens + args.decode_tokens > guide.max_context() {
        bail!(
            "--prompt-tokens + --decode-tokens = {} exceeds the context of {} tokens",
            args.prompt_tokens + args.decode_tokens,
            guide.max_context()
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let prompt: Vec<u32> = (0..args.prompt_tokens)
        .map(|_| rng.random_range(0..guide.vocab() as u32))
        .collect();
    let names = guide.arm_names();

    // Warm-up (allocations, caches), then interleaved measurements.
    one_run(&mut guide, &prompt[..prompt.len().min(8)], 2, &weights)?;
    let mut base_runs = Vec::new();
    let mut guided_runs = Vec::new();
    for _ in 0..args.repeats {
        let arms = std::mem::take(&mut guide.arms);
        base_runs.push(one_run(&mut guide, &prompt, args.decode_tokens, &[])?);
        guide.arms = arms;
        guided_runs.push(one_run(&mut guide, &prompt, args.decode_tokens, &weights)?);
    }

    let rate = |runs: &[Run], f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let pp = |r: &Run| args.prompt_tokens as f64 / r.prefill.as_secs_f64();
    let tg = |r: &Run| r.tokens as f64 / r.decode.as_secs_f64();
    let step_ms = |r: &Run| r.decode.as_secs_f64() * 1e3 / r.tokens as f64;
    let forward_ms = |r: &Run, m: usize| r.forward[m].as_secs_f64() * 1e3 / r.tokens as f64;
    let overhead = |r: &Run| {
        let fwd: f64 = r.forward.iter().map(Duration::as_secs_f64).sum();
        (r.decode.as_secs_f64() - fwd) / r.decode.as_secs_f64()
    };
    let model_names: Vec<String> = std::iter::once("base".to_string())
        .chain(names.clone())
        .collect();
    let forward: Vec<f64> = (0..model_names.len())
        .map(|m| rate(&guided_runs, &|r| forward_ms(r, m)))
        .collect();
    let guided_step = rate(&guided_runs, &step_ms);
    let overhead_fraction = rate(&guided_runs, &overhead);
    let threads = candle_core::utils::get_num_threads();

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let forward_map: serde_json::Map<String, serde_json::Value> = model_names
            .iter()
            .zip(&forward)
            .map(|(n, f)| (n.clone(), json!(f)))
            .collect();
        let report = json!({
            "base": super::models::base_label(&args.models), "arms": names,
            "dtype": args.models.dtype, "threads": threads, "vocab": guide.vocab(),
            "prompt_tokens": args.prompt_tokens, "decode_tokens": args.decode_tokens,
            "repeats": args.repeats,
            "base_only": {"prompt_tokens_per_second": rate(&base_runs, &pp),
                          "decode_tokens_per_second": rate(&base_runs, &tg)},
            "guided": {"prompt_tokens_per_second": rate(&guided_runs, &pp),
                       "decode_tokens_per_second": rate(&guided_runs, &tg)},
            "forward_ms_per_token": forward_map,
            "guided_step_ms": guided_step,
            "guidance_overhead": overhead_fraction,
        });
        writeln!(out, "{report}")?;
        return Ok(());
    }
    writeln!(
        out,
        "genarm bench: base {} + {} ARM(s) [{}], dtype {}, vocab {}, {} threads, median of {}",
        super::models::base_label(&args.models),
        names.len(),
        names.join(", "),
        args.models.dtype,
        guide.vocab(),
        threads,
        args.repeats
    )?;
    writeln!(out, "{:<28} {:>14} {:>14}", "", "base-only", "guided")?;
    writeln!(
        out,
        "{:<28} {:>10.1} t/s {:>10.1} t/s",
        format!("prompt ({} tokens)", args.prompt_tokens),
        rate(&base_runs, &pp),
        rate(&guided_runs, &pp)
    )?;
    writeln!(
        out,
        "{:<28} {:>10.1} t/s {:>10.1} t/s",
        format!("decode ({} tokens)", args.decode_tokens),
        rate(&base_runs, &tg),
        rate(&guided_runs, &tg)
    )?;
    write!(out, "forward per token (guided):")?;
    for (name, f) in model_names.iter().zip(&forward) {
        write!(out, " {name} {f:.3} ms")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "guided step {guided_step:.3} ms; guidance overhead {:.2}% of the step",
        overhead_fraction * 100.0
    )?;
    Ok(())
}
