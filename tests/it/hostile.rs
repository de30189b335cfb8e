//! Hostile input: absurd counts, outputs that cannot be written, files made to break the
//! readers. Every case: one clear line naming the flag or file, a non-zero exit, no panic, and
//! bounded time and memory (each runs in seconds; none allocates what it was told to).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Models, assert_one_line_error, genarm, p};

/// The mode a plain `File::create` gets here: what every file genarm writes should have.
fn ordinary_file_mode(dir: &Path) -> u32 {
    let probe = dir.join(".mode-probe");
    std::fs::File::create(&probe).unwrap();
    let mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    std::fs::remove_file(probe).unwrap();
    mode
}

/// Every file under `dir` has the ordinary mode (and every folder the ordinary folder mode).
fn assert_ordinary_modes(dir: &Path) {
    let file_mode = ordinary_file_mode(dir.parent().unwrap());
    let plain = dir.parent().unwrap().join(".dir-probe");
    std::fs::create_dir(&plain).unwrap();
    let dir_mode = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
    std::fs::remove_dir(&plain).unwrap();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, dir_mode, "{}: mode {mode:o}", d.display());
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, file_mode, "{}: mode {mode:o}", path.display());
            }
        }
    }
}

fn demo_sweep(extra: &[&str]) -> std::process::Output {
    let mut args = vec!["sweep", "--max-new-tokens", "2"];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = genarm(&args);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "sweep {extra:?} took {:?}",
        started.elapsed()
    );
    out
}

#[test]
fn absurd_sweep_sizes_are_refused_before_any_work() {
    for samples in ["1000000000", "10000000", "18446744073709551615"] {
        let out = demo_sweep(&["--samples", samples]);
        assert_one_line_error(&out, &["--samples", "responses"]);
    }
    // A step too small for f32 is still a step, and far too many values.
    let out = demo_sweep(&["--grid", "helpful=0:1:1e-300"]);
    assert_one_line_error(
        &out,
        &["--grid helpful=0:1:1e-300", "more than 1000 values"],
    );
    // Axes within bounds whose product is not.
    let out = demo_sweep(&[
        "--grid",
        "helpful=0:999:1",
        "--grid",
        "harmless=0:999:1",
        "--samples",
        "200",
    ]);
    assert_one_line_error(&out, &["--samples 200", "(1000000)"]);
}

#[test]
fn sweep_outputs_are_checked_before_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/folder/out.csv");
    let out = demo_sweep(&["--out", p(&missing)]);
    let line = assert_one_line_error(&out, &["--out", "no/such/folder", "does not exist"]);
    assert!(!line.contains(".genarm-"), "no temporary name: {line}");
    let out = demo_sweep(&["--out", p(dir.path())]);
    assert_one_line_error(&out, &["--out", "is a folder"]);
    let out = demo_sweep(&["--plot", p(&missing)]);
    assert_one_line_error(&out, &["--plot", "does not exist"]);
}

#[test]
fn sweep_results_are_written_with_the_ordinary_mode() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir(&results).unwrap();
    let csv = results.join("sweep.csv");
    let out = demo_sweep(&[
        "--out",
        p(&csv),
        "--grid",
        "helpful=0,1",
        "--samples",
        "1",
        "--prompts",
        &write_prompts(dir.path()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(csv.is_file() && csv.with_extension("json").is_file());
    assert_ordinary_modes(&results);
}

fn write_prompts(dir: &Path) -> String {
    let path = dir.join("prompts.txt");
    std::fs::write(&path, "How do I bake bread?\n").unwrap();
    p(&path).to_string()
}

#[test]
fn generated_model_folders_have_the_ordinary_modes() {
    let models = Models::new();
    let out = models.path("random");
    let run = genarm(&["random-model", "--out", p(&out)]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_ordinary_modes(&out);
}

#[test]
fn an_absurd_lora_rank_is_refused_before_sizing_the_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pairs.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"Q\", \"chosen\": \"a b\", \"rejected\": \"c\"}\n".repeat(4),
    )
    .unwrap();
    let base = crate::common::data("parity/models/llama_base");
    let out = genarm(&[
        "train-arm",
        "--base",
        p(&base),
        "--data",
        p(&data),
        "--out",
        p(&dir.path().join("arm")),
        "--lora-rank",
        "1000000000",
    ]);
    // llama_base: hidden 64, 4 heads and 2 KV heads of 16: the k/v projections have 32 rows.
    assert_one_line_error(&out, &["--lora-rank 1000000000", "exceeds 32"]);
    assert!(!dir.path().join("arm").exists());
}
