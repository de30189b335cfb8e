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

/// Values of one `--grid NAME=SPEC`: START:STOP:STEP (inclusive) or a comma list.
pub fn parse_grid_values(item: &str) -> Result<(String, Vec<f32>)> {
    let (name, spec) = split_pair("--grid", item)?;
    let bad = || anyhow::anyhow!("--grid {item}: expected NAME=START:STOP:STEP or NAME=W1,W2,...");
    let values: Vec<f32> = if spec.contains(':') {
        let parts: Vec<f32> = spec
            .split(':')
            .map(|p| p.trim().parse().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        let [start, stop, step] = parts[..] else {
            return Err(bad());
        };
        if step.is_nan() || step <= 0.0 || !start.is_finite() || !stop.is_finite() || stop < start {
            bail!("--grid {item}: needs START <= STOP and a positive STEP");
        }
        let n = ((stop - start) / step + 1e-4).floor() as usize + 1;
        if n > 1000 {
            bail!("--grid {item}: {n} values is too many");
        }
        (0..n).map(|i| start + step * i as f32).collect()
    } else {
        spec.split(',')
            .map(|p| p.trim().parse().map_err(|_| bad()))
            .collect::<Result<_>>()?
    };
    if values.iter().any(|v| !v.is_finite()) {
        bail!("--grid {item}: weights must be finite numbers");
    }
    Ok((name.to_string(), values))
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
    let (mut guide, defaults) = load_guide(&args.models)?;
    let names = guide.arm_names();
    let all = settings(&grid, &names, &defaults)?;
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
    let bar = ProgressBar::new((all.len() * prompts.len() * args.samples) as u64);
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
    let responses = all.len() * prompts.len() * args.samples;
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
    crate::train::model::write_atomically(path, bytes).map_err(|e| anyhow::anyhow!("--out {e}"))
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
