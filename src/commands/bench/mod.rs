//! `genarm bench`: prompt-processing and decoding speed, base-only and guided, each model's
//! forward time per token, and the guidance overhead
//! (guided step time − time the forwards took) / guided step time. The models run side by
//! side, so "time the forwards took" is the wall time of that part of the step, less than the
//! sum of the per-model times.
//!
//! With `--dtypes f32,q8_0,...` the same models are loaded once per weight format and the
//! formats compared side by side. Every run (base-only and guided, every format) is interleaved
//! with the others and medians reported, because the machines this runs on are noisy.
//!
//! A served base (`--base URL`) adds the split of its request time and a bare greedy loop over
//! the same server (`remote`).

mod remote;

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::cli::BenchArgs;
use crate::cli::model_flags::{self, load_guide, parse_dtype};
use crate::engine::{Generation, Guide, SamplingParams};
use remote::{RemoteRun, RemoteSummary};

struct Run {
    prefill: Duration,
    decode: Duration,
    /// Forward time per model (base first) during decoding.
    forward: Vec<Duration>,
    /// Wall time of the forwards (the models run side by side).
    forward_wall: Duration,
    tokens: usize,
    /// A served base's request time, split.
    remote: Option<RemoteRun>,
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
    guide.take_forward_wall_time();
    guide.take_remote_times();
    let started = Instant::now();
    let mut tokens = 0;
    while generation.stopped().is_none() {
        generation.step(guide, weights, None)?;
        tokens += 1;
    }
    let decode = started.elapsed();
    let remote = guide
        .take_remote_times()
        .map(|times| RemoteRun { times, tokens });
    Ok(Run {
        prefill,
        decode,
        forward: guide.take_forward_times(),
        forward_wall: guide.take_forward_wall_time(),
        tokens,
        remote,
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

/// One weight format's models and its measurements.
struct Subject {
    dtype: String,
    guide: Guide,
    weights: Vec<f32>,
    base_runs: Vec<Run>,
    guided_runs: Vec<Run>,
    /// A served base: the bare greedy loop's time per token, one per repeat.
    bare_steps: Vec<Duration>,
}

impl Subject {
    /// One base-only and one guided run.
    fn measure(&mut self, prompt: &[u32], decode_tokens: usize) -> Result<()> {
        let arms = std::mem::take(&mut self.guide.arms);
        let base = one_run(&mut self.guide, prompt, decode_tokens, &[]);
        self.guide.arms = arms;
        self.base_runs.push(base?);
        let guided = one_run(&mut self.guide, prompt, decode_tokens, &self.weights)?;
        self.guided_runs.push(guided);
        if self.guide.base.remote().is_some() {
            let bare = remote::bare_greedy_step(&mut self.guide, prompt, decode_tokens)?;
            self.bare_steps.push(bare);
        }
        Ok(())
    }
}

/// Medians of one format's runs.
struct Summary {
    base_pp: f64,
    base_tg: f64,
    guided_pp: f64,
    guided_tg: f64,
    /// Forward ms per decoded token, per model (base first), in guided runs.
    forward: Vec<f64>,
    guided_step_ms: f64,
    overhead: f64,
    /// The ARMs' summed forward ms per token and the guidance's (step less the forwards' wall).
    arms_ms: f64,
    guidance_ms: f64,
    remote: Option<RemoteSummary>,
}

fn summarize(s: &Subject, prompt_tokens: usize) -> Summary {
    let rate = |runs: &[Run], f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let pp = |r: &Run| prompt_tokens as f64 / r.prefill.as_secs_f64();
    let tg = |r: &Run| r.tokens as f64 / r.decode.as_secs_f64();
    let step_ms = |r: &Run| r.decode.as_secs_f64() * 1e3 / r.tokens as f64;
    let overhead =
        |r: &Run| (r.decode.as_secs_f64() - r.forward_wall.as_secs_f64()) / r.decode.as_secs_f64();
    let models = s.guide.arms.len() + 1;
    let remote_runs: Option<Vec<RemoteRun>> = s.guided_runs.iter().map(|r| r.remote).collect();
    let forward = (0..models)
        .map(|m| {
            rate(&s.guided_runs, &|r| {
                r.forward[m].as_secs_f64() * 1e3 / r.tokens as f64
            })
        })
        .collect();
    Summary {
        base_pp: rate(&s.base_runs, &pp),
        base_tg: rate(&s.base_runs, &tg),
        guided_pp: rate(&s.guided_runs, &pp),
        guided_tg: rate(&s.guided_runs, &tg),
        forward,
        guided_step_ms: rate(&s.guided_runs, &step_ms),
        overhead: rate(&s.guided_runs, &overhead),
        arms_ms: rate(&s.guided_runs, &|r| {
            r.forward[1..]
                .iter()
                .map(Duration::as_secs_f64)
                .sum::<f64>()
                * 1e3
                / r.tokens as f64
        }),
        guidance_ms: rate(&s.guided_runs, &|r| {
            (r.decode.as_secs_f64() - r.forward_wall.as_secs_f64()) * 1e3 / r.tokens as f64
        }),
        remote: remote_runs.map(|runs| RemoteSummary::new(&runs, &s.bare_steps)),
    }
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.repeats == 0 || args.decode_tokens < 2 || args.prompt_tokens == 0 {
        bail!("--repeats and --prompt-tokens must be at least 1, --decode-tokens at least 2");
    }
    let mut subjects = load_subjects(args)?;
    let loaded = Memory::now();
    let first = &subjects[0].guide;
    let (vocab, max_context, names) = (first.vocab(), first.max_context(), first.arm_names());
    if args.prompt_tokens + args.decode_tokens > max_context {
        bail!(
            "--prompt-tokens + --decode-tokens = {} exceeds the context of {} tokens",
            args.prompt_tokens + args.decode_tokens,
            max_context
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let prompt: Vec<u32> = (0..args.prompt_tokens)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect();

    // Warm-up (allocations, caches, repacked weights), then interleaved measurements.
    for s in &mut subjects {
        one_run(&mut s.guide, &prompt[..prompt.len().min(8)], 2, &s.weights)?;
    }
    for _ in 0..args.repeats {
        for s in &mut subjects {
            s.measure(&prompt, args.decode_tokens)?;
        }
    }
    let about = About {
        base_label: model_flags::base_label(&args.models),
        model_names: std::iter::once("base".to_string())
            .chain(names.clone())
            .collect(),
        names,
        vocab,
        threads: candle_core::utils::get_num_threads(),
        loaded,
        end: Memory::now(),
    };
    let summaries: Vec<Summary> = subjects
        .iter()
        .map(|s| summarize(s, args.prompt_tokens))
        .collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        write_json(&mut out, args, &about, &subjects, &summaries)
    } else {
        write_table(&mut out, args, &about, &subjects, &summaries)
    }
}

/// The models loaded once per weight format (`--dtypes`, else `--dtype`).
fn load_subjects(args: &BenchArgs) -> Result<Vec<Subject>> {
    let dtypes: Vec<String> = if args.dtypes.is_empty() {
        vec![args.models.dtype.clone()]
    } else {
        args.dtypes.iter().map(|d| d.trim().to_string()).collect()
    };
    for d in &dtypes {
        parse_dtype(d).map_err(|e| anyhow::anyhow!("--dtypes {d}: {e}"))?;
    }
    let mut subjects = Vec::with_capacity(dtypes.len());
    for dtype in dtypes {
        let mut models = args.models.clone();
        models.dtype = dtype.clone();
        let (guide, weights) = load_guide(&models)?;
        subjects.push(Subject {
            dtype,
            guide,
            weights,
            base_runs: Vec::new(),
            guided_runs: Vec::new(),
            bare_steps: Vec::new(),
        });
    }
    Ok(subjects)
}

/// What every report row shares: the models and the machine.
struct About {
    base_label: String,
    /// The ARMs' names.
    names: Vec<String>,
    /// "base", then the ARMs' names.
    model_names: Vec<String>,
    vocab: usize,
    threads: usize,
    /// The process's memory once every model is loaded, and after the runs.
    loaded: Memory,
    end: Memory,
}

/// Resident memory of this process in MiB (Linux's /proc/self/status; None elsewhere): `rss`
/// now (VmRSS), the part of it that is `file` pages (RssFile: weights read in place from their
/// files, and the program's own code), and the `peak` so far (VmHWM). All models of every
/// `--dtypes` row count together.
#[derive(Clone, Copy)]
struct Memory {
    rss: Option<f64>,
    file: Option<f64>,
    peak: Option<f64>,
}

impl Memory {
    fn now() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |key: &str| {
            let line = status.lines().find(|l| l.starts_with(key))?;
            let kib: f64 = line[key.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kib / 1024.0)
        };
        Self {
            rss: field("VmRSS:"),
            file: field("RssFile:"),
            peak: field("VmHWM:"),
        }
    }

    /// "rss after load 212 MiB (file pages 120 MiB), peak at load 260 MiB, peak 270 MiB", or
    /// "unknown".
    fn describe(loaded: Self, end: Self) -> String {
        match (loaded.rss, loaded.peak, end.peak) {
            (Some(rss), Some(load_peak), Some(peak)) => format!(
                "rss after load {rss:.0} MiB (file pages {:.0} MiB), peak at load {load_peak:.0} MiB, peak {peak:.0} MiB",
                loaded.file.unwrap_or(0.0)
            ),
            _ => "unknown".to_string(),
        }
    }
}

/// One JSON object per weight format.
fn write_json(
    out: &mut impl Write,
    args: &BenchArgs,
    about: &About,
    subjects: &[Subject],
    summaries: &[Summary],
) -> Result<()> {
    for (s, m) in subjects.iter().zip(summaries) {
        let forward_map: serde_json::Map<String, serde_json::Value> = about
            .model_names
            .iter()
            .zip(&m.forward)
            .map(|(n, f)| (n.clone(), json!(f)))
            .collect();
        let report = json!({
            "base": about.base_label, "arms": about.names,
            "dtype": s.dtype, "threads": about.threads, "vocab": about.vocab,
            "weight_formats": by_model(&about.model_names, s.guide.weight_formats()),
            "fallbacks": by_model(&about.model_names, s.guide.fallbacks()),
            "prompt_tokens": args.prompt_tokens, "decode_tokens": args.decode_tokens,
            "repeats": args.repeats,
            "base_only": {"prompt_tokens_per_second": m.base_pp,
                          "decode_tokens_per_second": m.base_tg},
            "guided": {"prompt_tokens_per_second": m.guided_pp,
                       "decode_tokens_per_second": m.guided_tg},
            "forward_ms_per_token": forward_map,
            "guided_step_ms": m.guided_step_ms,
            "guidance_overhead": m.overhead,
            "remote": m.remote.as_ref()
                .map(|r| r.json(m.guided_step_ms, m.arms_ms, m.guidance_ms)),
            "memory_mib": {"after_load": about.loaded.rss, "load_peak": about.loaded.peak,
                           "file_pages_after_load": about.loaded.file,
                           "peak": about.end.peak},
        });
        writeln!(out, "{report}")?;
    }
    Ok(())
}

/// The human-readable table: one row per weight format, then what each format stores.
fn write_table(
    out: &mut impl Write,
    args: &BenchArgs,
    about: &About,
    subjects: &[Subject],
    summaries: &[Summary],
) -> Result<()> {
    writeln!(
        out,
        "genarm bench: base {} + {} ARM(s) [{}], vocab {}, {} threads, median of {}",
        about.base_label,
        about.names.len(),
        about.names.join(", "),
        about.vocab,
        about.threads,
        args.repeats
    )?;
    writeln!(
        out,
        "{:<6} {:>22} {:>22} {:>22}  forward ms/token (guided)",
        "dtype",
        format!("prompt ({}) t/s", args.prompt_tokens),
        format!("decode ({}) t/s", args.decode_tokens),
        "guided step",
    )?;
    writeln!(
        out,
        "{:<6} {:>10} {:>11} {:>10} {:>11} {:>10} {:>11}",
        "", "base-only", "guided", "base-only", "guided", "ms", "overhead"
    )?;
    for (s, m) in subjects.iter().zip(summaries) {
        write!(
            out,
            "{:<6} {:>10.1} {:>11.1} {:>10.1} {:>11.1} {:>10.3} {:>10.2}%  ",
            s.dtype,
            m.base_pp,
            m.guided_pp,
            m.base_tg,
            m.guided_tg,
            m.guided_step_ms,
            m.overhead * 100.0
        )?;
        let per_model: Vec<String> = about
            .model_names
            .iter()
            .zip(&m.forward)
            .map(|(n, f)| format!("{n} {f:.2}"))
            .collect();
        writeln!(out, "{}", per_model.join(", "))?;
        if let Some(r) = &m.remote {
            writeln!(
                out,
                "{}",
                r.line(m.guided_step_ms, m.arms_ms, m.guidance_ms)
            )?;
        }
    }
    // What each --dtypes row really stores: a GGUF file keeps its own formats, and q4_k keeps
    // the output layer in q6_k.
    for s in subjects {
        let weights: Vec<String> = about
            .model_names
            .iter()
            .zip(s.guide.weight_formats())
            .zip(s.guide.fallbacks())
            .map(|((n, f), fell)| match fell.is_empty() {
                true => format!("{n} {f}"),
                false => format!("{n} {f} (fallbacks {fell})"),
            })
            .collect();
        writeln!(out, "formats of {}: {}", s.dtype, weights.join(", "))?;
    }
    writeln!(
        out,
        "memory (all rows' models): {}",
        Memory::describe(about.loaded, about.end)
    )?;
    Ok(())
}

/// {model name: its value}, for the JSON report.
fn by_model(model_names: &[String], values: Vec<String>) -> serde_json::Value {
    model_names
        .iter()
        .zip(values)
        .map(|(n, f)| (n.clone(), json!(f)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}
