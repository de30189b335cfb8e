//! `genarm sweep`: a grid of ARM weights × prompts × samples → a table per weight setting.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::demo::DEMO_SEED;
use super::score::parse_betas;
use crate::cli::SweepArgs;
use crate::cli::model_flags::{load_guide, split_pair};
use crate::demo::rates::{
    SettingResult, SweepOptions, SweepPrompt, demo_prompts, evaluate, evaluate_grid,
};
use crate::demo::world::World;
use crate::engine::SamplingParams;

/// Most values one `--grid` axis may have.
const MAX_GRID_VALUES: usize = 1000;

/// Most responses one sweep may ask for (settings × prompts × samples): at the demo's speed
/// of some hundreds a second, days of work. Results are tallied batch by batch, so memory does
/// not grow with it; the cap is there to turn a typo into an error instead of a run for ever.
const MAX_RESPONSES: u64 = 100_000_000;

/// Values of one `--grid NAME=SPEC`: START:STOP:STEP (inclusive) or a comma list.
pub fn parse_grid_values(item: &str) -> Result<(String, Vec<f32>)> {
    let (name, spec) = split_pair("--grid", item)?;
    let bad = || anyhow::anyhow!("--grid {item}: expected NAME=START:STOP:STEP or NAME=W1,W2,...");
    let values: Vec<f32> = if spec.contains(':') {
        // f64, so that a tiny STEP is tiny rather than 0.
        let parts: Vec<f64> = spec
            .split(':')
            .map(|p| p.trim().parse().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        let [start, stop, step] = parts[..] else {
            return Err(bad());
        };
        if step.is_nan() || step <= 0.0 || !start.is_finite() || !stop.is_finite() || stop < start {
            bail!("--grid {item}: needs START <= STOP and a positive STEP");
        }
        let steps = ((stop - start) / step + 1e-4).floor();
        if steps >= MAX_GRID_VALUES as f64 {
            bail!("--grid {item}: more than {MAX_GRID_VALUES} values; use a larger STEP");
        }
        let n = steps as usize + 1;
        (0..n).map(|i| (start + step * i as f64) as f32).collect()
    } else {
        let values: Vec<f32> = spec
            .split(',')
            .map(|p| p.trim().parse().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        if values.len() > MAX_GRID_VALUES {
            bail!("--grid {item}: more than {MAX_GRID_VALUES} values");
        }
        values
    };
    if values.iter().any(|v| !v.is_finite()) {
        bail!("--grid {item}: weights must be finite numbers");
    }
    Ok((name.to_string(), values))
}

/// How many responses the sweep draws, checked against [`MAX_RESPONSES`] before anything is
/// built (the grid's settings included).
fn count_responses(grid: &[(String, Vec<f32>)], prompts: usize, samples: usize) -> Result<u64> {
    let settings = grid
        .iter()
        .try_fold(1u64, |n, (_, values)| n.checked_mul(values.len() as u64));
    settings
        .and_then(|n| n.checked_mul(prompts as u64))
        .and_then(|n| n.checked_mul(samples as u64))
        .filter(|&n| n <= MAX_RESPONSES)
        .ok_or_else(|| {
            let settings = settings.map_or_else(|| "too many".to_string(), |n| n.to_string());
            anyhow::anyhow!(
                "--samples {samples} × --grid settings ({settings}) × prompts ({prompts}) is more than {MAX_RESPONSES} responses"
            )
        })
}

/// Every combination of the grid, as full weight vectors over `names`.
fn settings(
    grid: &[(String, Vec<f32>)],
    names: &[String],
    defaults: &[f32],
) -> Result<Vec<Vec<f32>>> {
    let mut all = vec![defaults.to_vec()];
    for (name, values) in grid {
        let Some(i) = names.iter().position(|n| n == name) else {
            bail!(
                "--grid {name}=...: no ARM named '{name}' (ARMs are: {})",
                names.join(", ")
            );
        };
        all = all
            .into_iter()
            .flat_map(|w| {
                values.iter().map(move |&v| {
                    let mut w = w.clone();
                    w[i] = v;
                    w
                })
            })
            .collect();
    }
    Ok(all)
}

fn read_prompts(path: Option<&Path>) -> Result<Vec<SweepPrompt>> {
    let Some(path) = path else {
        return Ok(demo_prompts(&World::new(DEMO_SEED)));
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--prompts {}", path.display()))?;
    let prompts: Vec<SweepPrompt> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| SweepPrompt {
            text: l.replace("\\n", "\n"),
            topic: None,
            class: None,
            held_out: false,
        })
        .collect();
    if prompts.is_empty() {
        bail!("--prompts {}: no prompts in the file", path.display());
    }
    Ok(prompts)
}

pub fn run(args: &SweepArgs) -> Result<()> {
    SamplingParams {
        temperature: args.temperature,
        top_k: 0,
        top_p: args.top_p,
        seed: args.seed,
    }
    .validate()?;
    if args.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let grid: Vec<(String, Vec<f32>)> = args
        .grid
        .iter()
        .map(|g| parse_grid_values(g))
        .collect::<Result<_>>()?;
    let prompts = read_prompts(args.prompts.as_deref())?;
    let responses = count_responses(&grid, prompts.len(), args.samples)?;
    // Where the results go is checked before the models load and the sweep runs.
    crate::output::check_file_target(&args.out, "--out")?;
    crate::output::check_file_target(&args.out.with_extension("json"), "--out")?;
    if let Some(plot) = &args.plot {
        crate::output::check_file_target(plot, "--plot")?;
    }
    let (mut guide, defaults) = load_guide(&args.models)?;
    let names = guide.arm_names();
    let all = settings(&grid, &names, &defaults)?;
    if let Some(plot) = &args.plot
        && names.len() < 2
    {
        bail!("--plot {}: the frontier needs two ARMs", plot.display());
    }
    let betas: Vec<f64> = parse_betas(&args.betas, &names)?
        .into_iter()
        .map(|b| b.unwrap_or(1.0))
        .collect();
    let options = SweepOptions {
        samples: args.samples,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        max_new_tokens: args.max_new_tokens,
        betas,
    };
    let bar = ProgressBar::new(responses);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} responses [{elapsed}<{eta}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let results = if args.unbatched {
        let mut results = Vec::with_capacity(all.len());
        for weights in &all {
            bar.set_message(format!("{weights:?}"));
            results.push(evaluate(&mut guide, &prompts, weights, &options, || {
                bar.inc(1)
            })?);
        }
        results
    } else {
        evaluate_grid(&mut guide, &prompts, &all, &options, |n| bar.inc(n as u64))?
    };
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    write_outputs(&args.out, &results)?;
    if let Some(plot) = &args.plot {
        draw_frontier(plot, &results)?;
    }
    print_table(&results)?;
    eprintln!(
        "{responses} responses in {seconds:.1} s ({:.1} responses/s, {})",
        responses as f64 / seconds.max(1e-9),
        if args.unbatched {
            "unbatched"
        } else {
            "batched"
        }
    );
    Ok(())
}

/// Scatter of the first ARM's mean reward against the second's, one labelled point per setting:
/// the multi-objective frontier at a glance.
fn draw_frontier(path: &Path, results: &[SettingResult]) -> Result<()> {
    use plotters::prelude::*;
    let Some(first) = results.first() else {
        return Ok(());
    };
    if first.mean_reward.len() < 2 {
        bail!("--plot {}: the frontier needs two ARMs", path.display());
    }
    let (x_name, y_name) = (&first.mean_reward[0].0, &first.mean_reward[1].0);
    let points: Vec<(f64, f64, String)> = results
        .iter()
        .map(|r| {
            let label = r
                .weights
                .iter()
                .map(|(_, w)| format!("{w}"))
                .collect::<Vec<_>>()
                .join(",");
            (r.mean_reward[0].1, r.mean_reward[1].1, format!("({label})"))
        })
        .collect();
    let range = |values: Vec<f64>| {
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let pad = ((hi - lo) * 0.1).max(0.1);
        (lo - pad)..(hi + pad)
    };
    let xs = range(points.iter().map(|p| p.0).collect());
    let ys = range(points.iter().map(|p| p.1).collect());
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("--plot {}: {e}", path.display());
    {
        let root = SVGBackend::new(&tmp, (720, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("mean reward: {x_name} vs {y_name}"),
                ("sans-serif", 20),
            )
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(xs, ys)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(format!("{x_name} reward (β · Σ log π)"))
            .y_desc(format!("{y_name} reward (β · Σ log π)"))
            .draw()
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(points.iter().map(|(x, y, label)| {
                EmptyElement::at((*x, *y))
                    + Circle::new((0, 0), 4, BLUE.filled())
                    + Text::new(label.clone(), (6, -12), ("sans-serif", 13))
            }))
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| fail(&e))?;
    Ok(())
}

fn csv_header(results: &[SettingResult]) -> Vec<String> {
    let mut header: Vec<String> = Vec::new();
    if let Some(first) = results.first() {
        header.extend(first.weights.iter().map(|(n, _)| format!("w_{n}")));
        header.extend(first.mean_reward.iter().map(|(n, _)| format!("reward_{n}")));
        header.push("mean_length".into());
        for group in first.rates.keys() {
            for rate in ["detailed", "complies", "refuses_or_redirects", "garbled"] {
                header.push(format!("{group}/{rate}"));
            }
        }
    }
    header
}

fn write_outputs(out: &Path, results: &[SettingResult]) -> Result<()> {
    let mut csv = csv_header(results).join(",") + "\n";
    for r in results {
        let mut row: Vec<String> = r.weights.iter().map(|(_, w)| format!("{w}")).collect();
        row.extend(r.mean_reward.iter().map(|(_, v)| format!("{v:.4}")));
        row.push(format!("{:.2}", r.mean_length));
        for rates in r.rates.values() {
            for v in [
                rates.detailed,
                rates.complies,
                rates.refuses_or_redirects,
                rates.garbled,
            ] {
                row.push(format!("{v:.3}"));
            }
        }
        csv += &(row.join(",") + "\n");
    }
    write_atomically(out, csv.as_bytes())?;
    let json = serde_json::to_string_pretty(results)?;
    write_atomically(&out.with_extension("json"), json.as_bytes())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::output::write_file(path, bytes)
        .map_err(|e| anyhow::anyhow!("--out {}: {e}", path.display()))
}

fn print_table(results: &[SettingResult]) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for r in results {
        let weights: Vec<String> = r.weights.iter().map(|(n, w)| format!("{n}={w}")).collect();
        let rewards: Vec<String> = r
            .mean_reward
            .iter()
            .map(|(n, v)| format!("{n} {v:.2}"))
            .collect();
        writeln!(
            out,
            "[{}] reward: {}; length {:.1}",
            weights.join(" "),
            rewards.join(", "),
            r.mean_length
        )?;
        for (group, rates) in &r.rates {
            writeln!(
                out,
                "    {group:<18} n={:<4} detailed {:>5.1}%  complies {:>5.1}%  refuses/redirects {:>5.1}%  garbled {:>5.1}%",
                rates.responses,
                rates.detailed * 100.0,
                rates.complies * 100.0,
                rates.refuses_or_redirects * 100.0,
                rates.garbled * 100.0
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_specs() {
        assert_eq!(
            parse_grid_values("h=0:2:0.5").unwrap().1,
            vec![0.0, 0.5, 1.0, 1.5, 2.0]
        );
        assert_eq!(
            parse_grid_values("h=-1,0,2.5").unwrap().1,
            vec![-1.0, 0.0, 2.5]
        );
        for bad in ["h=2:0:1", "h=0:1:0", "h=a,b", "h", "h=0:1"] {
            assert!(
                parse_grid_values(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("--grid"),
                "{bad}"
            );
        }
        let names = vec!["a".to_string(), "b".to_string()];
        let grid = vec![
            ("a".to_string(), vec![0.0, 1.0]),
            ("b".to_string(), vec![2.0, 3.0]),
        ];
        let all = settings(&grid, &names, &[1.0, 1.0]).unwrap();
        assert_eq!(
            all,
            vec![
                vec![0.0, 2.0],
                vec![0.0, 3.0],
                vec![1.0, 2.0],
                vec![1.0, 3.0]
            ]
        );
        assert!(settings(&[("c".into(), vec![1.0])], &names, &[1.0, 1.0]).is_err());
    }
}
