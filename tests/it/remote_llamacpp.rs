//! A served base against a real llama.cpp `llama-server`, built from source by
//! `scripts/llama_server.sh` (cached; about 10 minutes the first time) and started by each test on
//! 127.0.0.1. The served file is `tests/data/remote/qwen3-f32.gguf` (scripts/make_remote_fixtures.py):
//! f32 weights and a byte-level BPE vocabulary, so llama-server's /tokenize, /props and both of its
//! APIs (`/completion`, `/v1/completions`) answer as they do for a real model.
//!
//! The tolerance: llama-server with flash attention off and an f32 KV cache gives genarm's own
//! log-probs of the same file within 3e-6 on this model (measured; with its defaults, flash
//! attention and an f16 cache, about 1e-3, enough to flip near-ties).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{assert_one_line_error, data, genarm, json_lines, p};

const TOLERANCE: f64 = 1e-4;
/// The fixture's vocabulary: K = VOCAB is the whole-vocabulary case.
const VOCAB: &str = "443";
const PROMPT: &str = "Hello world, the cat";

/// The llama-server binary, built once per machine by the project's script.
fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/llama_server.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "scripts/llama_server.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// A llama-server child process on a free port, killed when dropped.
struct LlamaServer {
    child: Child,
    url: String,
}

impl LlamaServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let model = data("remote/qwen3-f32.gguf");
        let child = Command::new(server_binary())
            .args(["-m", p(&model), "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args([
                "-t", "1", "-c", "1024", "-ctk", "f32", "-ctv", "f32", "-fa", "off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        server.wait_until_healthy(port);
        server
    }

    fn wait_until_healthy(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if health(port).is_some_and(|status| status.contains(" 200 ")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("llama-server on port {port} did not become healthy in 60 s");
    }

    /// Send a signal to the server process (`STOP`, `CONT`).
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status line of `GET /health`, if anything answers.
fn health(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.lines().next().map(str::to_string)
}

fn arms() -> [String; 2] {
    [
        format!("a={}", p(&data("parity_families/models/qwen3_arm_a"))),
        format!("b={}", p(&data("parity_families/models/qwen3_arm_b"))),
    ]
}

/// `genarm COMMAND --base BASE --arm X --arm Y`, ARM a at -0.5, greedy, `--json`.
fn run_models(command: &str, base: &str, arm_flags: [&str; 2], extra: &[&str]) -> Output {
    let mut args = vec![
        command,
        "--base",
        base,
        "--arm",
        arm_flags[0],
        "--arm",
        arm_flags[1],
    ];
    args.extend_from_slice(&["--weight", "a=-0.5", "--prompt", PROMPT, "--json"]);
    args.extend_from_slice(extra);
    genarm(&args)
}

fn token_records(out: &Output) -> Vec<Value> {
    json_lines(out)
        .into_iter()
        .filter(|r| r["type"] == "token")
        .collect()
}

/// `genarm COMMAND --base BASE` with both ARMs (a at -0.5, b at 1), greedy, as token records.
fn run(command: &str, base: &str, extra: &[&str]) -> Vec<Value> {
    let [a, b] = arms();
    token_records(&run_models(command, base, [&a, &b], extra))
}

fn assert_same_steps(remote: &[Value], local: &[Value], what: &str) {
    assert!(!remote.is_empty(), "{what}: no tokens");
    assert_eq!(remote.len(), local.len(), "{what}");
    for (i, (r, l)) in remote.iter().zip(local).enumerate() {
        assert_eq!(r["token_id"], l["token_id"], "{what}: token {i}");
        for field in ["base_logprob", "guided_logprob"] {
            let (a, b) = (r[field].as_f64().unwrap(), l[field].as_f64().unwrap());
            assert!(
                (a - b).abs() < TOLERANCE,
                "{what}: token {i} {field}: {a} vs {b}"
            );
        }
        for arm in ["a", "b"] {
            let (a, b) = (&r["arms"][arm]["logprob"], &l["arms"][arm]["logprob"]);
            assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < TOLERANCE);
        }
        assert_eq!(r["candidates"], 443, "{what}: token {i}");
        assert_eq!(r["exact"], true, "{what}: token {i}");
    }
}

#[test]
fn a_whole_vocabulary_k_equals_local_decoding_through_both_apis() {
    let server = LlamaServer::start();
    let tokens = ["--max-new-tokens", "16"];
    let local = run("generate", p(&data("remote/qwen3-f32.gguf")), &tokens);
    let k = ["--max-new-tokens", "16", "--remote-top-k", VOCAB];
    let native = run("generate", &server.url, &k);
    assert_same_steps(&native, &local, "llama.cpp /completion");
    let v1 = format!("{}/v1", server.url);
    let openai = run(
        "generate",
        &v1,
        &[&k[..], &["--remote-api", "openai"]].concat(),
    );
    assert_same_steps(&openai, &local, "OpenAI /v1/completions");

    // Teacher forcing: every response position's log-probs, requested side by side. After
    // "...atatatatatQ" the server's own pick is a byte token, half a character, which
    // llama-server answers without log-probs: genarm asks again with it banned (the log-probs
    // are of the raw logits, so they must still equal local decoding's).
    let response = ["--response", "atatatatatQQ sat on the mat, 42 times"];
    let local = run("score", p(&data("remote/qwen3-f32.gguf")), &response);
    let remote = run(
        "score",
        &server.url,
        &[&response[..], &["--remote-top-k", VOCAB]].concat(),
    );
    assert_same_steps(&remote, &local, "score");
    // llama-server's OpenAI side ignores `echo`: one request per position there too.
    let openai = run(
        "score",
        &v1,
        &[
            &response[..],
            &["--remote-top-k", VOCAB, "--remote-api", "openai"],
        ]
        .concat(),
    );
    assert_same_steps(&openai, &local, "score, OpenAI /v1/completions");
}

#[test]
fn k_20_guides_over_the_union_and_marks_the_inexact_steps() {
    let server = LlamaServer::start();
    let records = run("generate", &server.url, &["--max-new-tokens", "24"]);
    assert_eq!(records.len(), 24);
    let mut inexact = 0;
    for r in &records {
        let count = r["candidates"].as_u64().unwrap();
        // The server's 20 and each of the two ARMs' 20.
        assert!((20..=60).contains(&count), "{r}");
        // Inexact exactly when some ARM candidate is not among the server's 20.
        let exact = r["exact"].as_bool().unwrap();
        assert_eq!(exact, count == 20, "{r}");
        inexact += usize::from(!exact);
    }
    assert!(
        inexact > 0,
        "the ARMs never proposed a token outside the server's top 20"
    );
    // llama-server's OpenAI side ignores vLLM's `logprob_token_ids`: genarm says so once and
    // keeps the bounds.
    let [a, b] = arms();
    let v1 = format!("{}/v1", server.url);
    let extra = ["--max-new-tokens", "8", "--remote-api", "openai"];
    let out = run_models("generate", &v1, [&a, &b], &extra);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&v1) && stderr.contains("logprob_token_ids"),
        "{stderr}"
    );
    let records = token_records(&out);
    assert_eq!(records.len(), 8);
    for r in &records {
        assert_eq!(r["exact"].as_bool().unwrap(), r["candidates"] == 20, "{r}");
    }
}

#[test]
fn exact_greedy_widens_k_until_every_choice_is_local_decodings() {
    let server = LlamaServer::start();
    // ARM b at weight 4 often prefers tokens outside the server's top 2: with K = 2 alone their
    // base log-prob is only a bound, and the choice drifts from local decoding.
    let steer = ["--max-new-tokens", "24", "--weight", "b=4"];
    let ids = |records: &[Value]| -> Vec<u64> {
        records
            .iter()
            .map(|r| r["token_id"].as_u64().unwrap())
            .collect()
    };
    let local = ids(&run("generate", p(&data("remote/qwen3-f32.gguf")), &steer));
    let k2 = [&steer[..], &["--remote-top-k", "2"]].concat();
    let bounded = ids(&run("generate", &server.url, &k2));
    assert_ne!(
        bounded, local,
        "K = 2 should drift here, or this test shows nothing"
    );
    let widened = run(
        "generate",
        &server.url,
        &[&k2[..], &["--remote-exact-greedy"]].concat(),
    );
    assert_eq!(ids(&widened), local);
    // Widened only where needed: some steps kept K = 2's few candidates.
    let counts: Vec<u64> = widened
        .iter()
        .map(|r| r["candidates"].as_u64().unwrap())
        .collect();
    assert!(counts.iter().any(|&c| c <= 6), "{counts:?}");
    assert!(counts.iter().any(|&c| c > 6), "{counts:?}");
}

#[test]
fn exact_greedy_settles_every_row_of_a_batched_sweep() {
    let server = LlamaServer::start();
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts.txt");
    std::fs::write(&prompts, format!("{PROMPT}\n")).unwrap();
    let [a, b] = arms();
    // The rows' mean ARM rewards: Σ log π_arm over each row's greedy tokens.
    let sweep = |base: &str, extra: &[&str]| -> Vec<f64> {
        let out_csv = dir.path().join("sweep.csv");
        let mut args = vec![
            "sweep",
            "--base",
            base,
            "--arm",
            &a,
            "--arm",
            &b,
            "--weight",
            "a=-0.5",
            "--grid",
            "b=0,2,4",
            "--temperature",
            "0",
            "--max-new-tokens",
            "24",
            "--prompts",
            p(&prompts),
            "--out",
            p(&out_csv),
        ];
        args.extend_from_slice(extra);
        let out = genarm(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value =
            serde_json::from_slice(&std::fs::read(out_csv.with_extension("json")).unwrap())
                .unwrap();
        json.as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row["mean_reward"].as_array().unwrap().clone())
            .map(|pair| pair[1].as_f64().unwrap())
            .collect()
    };
    let close = |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(x, y)| (x - y).abs() < 1e-3);
    let local = sweep(p(&data("remote/qwen3-f32.gguf")), &[]);
    let bounded = sweep(&server.url, &["--remote-top-k", "2"]);
    assert!(
        !close(&bounded, &local),
        "K = 2 should drift here: {bounded:?}"
    );
    let settled = sweep(
        &server.url,
        &["--remote-top-k", "2", "--remote-exact-greedy"],
    );
    assert!(close(&settled, &local), "{settled:?} vs {local:?}");
}

/// Run `generate` for many tokens, call `interrupt` once the first token record is out, and
/// return every record the run wrote and whether it exited successfully.
fn interrupted_run(url: &str, extra: &[&str], interrupt: impl FnOnce()) -> (Vec<Value>, bool) {
    let [a, b] = arms();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("genarm"))
        .args([
            "generate", "--base", url, "--arm", &a, "--arm", &b, "--prompt", PROMPT,
        ])
        .args(["--max-new-tokens", "200", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut records = Vec::new();
    let mut interrupt = Some(interrupt);
    for line in lines.by_ref() {
        let record: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let first_token = record["type"] == "token";
        records.push(record);
        if first_token && let Some(interrupt) = interrupt.take() {
            interrupt();
        }
    }
    (records, child.wait().unwrap().success())
}

fn assert_ended_by_the_server(records: &[Value], succeeded: bool, url: &str, why: &str) {
    assert!(!succeeded, "the run should fail");
    let tokens = records.iter().filter(|r| r["type"] == "token").count();
    assert!((1..200).contains(&tokens), "{tokens} tokens");
    let end = records.last().unwrap();
    assert_eq!(end["type"], "end", "{end}");
    assert_eq!(end["reason"], "error", "{end}");
    assert_eq!(end["generated_tokens"], tokens, "{end}");
    let error = end["error"].as_str().unwrap();
    assert!(error.contains(url) && error.contains(why), "{error}");
}

#[test]
fn a_server_killed_mid_run_ends_the_run_with_the_tokens_made() {
    let mut server = LlamaServer::start();
    let url = server.url.clone();
    let (records, succeeded) = interrupted_run(&url, &[], || {
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    });
    assert_ended_by_the_server(&records, succeeded, &url, "nothing is listening");
}

#[test]
fn a_server_that_stops_answering_mid_run_times_out() {
    let server = LlamaServer::start();
    let (records, succeeded) = interrupted_run(&server.url, &["--remote-timeout", "1"], || {
        server.signal("STOP");
    });
    server.signal("CONT");
    assert_ended_by_the_server(&records, succeeded, &server.url, "did not answer in time");
}

#[test]
fn a_tokenizer_that_splits_differently_from_the_server_is_refused() {
    let server = LlamaServer::start();
    let [a, _] = arms();
    let other = data("parity_families/gguf/gemma2/tokenizer.json");
    let out = genarm(&[
        "generate",
        "--base",
        &server.url,
        "--arm",
        &a,
        "--tokenizer",
        p(&other),
        "--prompt",
        PROMPT,
    ]);
    assert_one_line_error(&out, &[&server.url, "tokenize differently", "--tokenizer"]);
}

/// `genarm COMMAND --base BASE --arm s=SERVED_ARM --arm a=qwen3_arm_a`, greedy, as token
/// records: the served ARM steers at 1, the local one at -0.5.
fn run_with_arm(command: &str, base: &str, served_arm: &str, extra: &[&str]) -> Vec<Value> {
    let [a, _] = arms();
    let s = format!("s={served_arm}");
    let out = run_models(command, base, [&s, &a], extra);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    token_records(&out)
}

fn assert_same_ids_and_logprobs(got: &[Value], want: &[Value], what: &str) {
    assert!(!want.is_empty(), "{what}: no tokens");
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g["token_id"], w["token_id"], "{what}: token {i}");
        let values = |r: &Value| {
            [
                r["base_logprob"].as_f64().unwrap(),
                r["guided_logprob"].as_f64().unwrap(),
                r["arms"]["s"]["logprob"].as_f64().unwrap(),
                r["arms"]["a"]["logprob"].as_f64().unwrap(),
            ]
        };
        for (x, y) in values(g).iter().zip(values(w)) {
            assert!((x - y).abs() < TOLERANCE, "{what}: token {i}: {g} vs {w}");
        }
    }
}

#[test]
fn a_served_arm_with_the_whole_vocabulary_equals_the_same_arm_run_here() {
    // The served file doubles as an ARM: its own log-softmax steers the base.
    let server = LlamaServer::start();
    let file = data("remote/qwen3-f32.gguf");
    let tokens = ["--max-new-tokens", "12"];
    let local = run_with_arm("generate", p(&file), p(&file), &tokens);
    let k = ["--max-new-tokens", "12", "--remote-top-k", VOCAB];
    let served = run_with_arm("generate", p(&file), &server.url, &k);
    assert_same_ids_and_logprobs(&served, &local, "local base, served ARM");
    // Base and ARM both served (the same server answers both), and scoring through both.
    let both = run_with_arm("generate", &server.url, &server.url, &k);
    assert_same_ids_and_logprobs(&both, &local, "served base and ARM");
    let response = ["--response", " sat on the mat, 42 times"];
    let local = run_with_arm("score", p(&file), p(&file), &response);
    let served = run_with_arm(
        "score",
        p(&file),
        &server.url,
        &[&response[..], &["--remote-top-k", VOCAB]].concat(),
    );
    assert_same_ids_and_logprobs(&served, &local, "score with a served ARM");
}

#[test]
fn a_served_arm_with_a_small_k_keeps_its_top_tokens_and_shares_out_the_rest() {
    let server = LlamaServer::start();
    let file = data("remote/qwen3-f32.gguf");
    let tokens = ["--max-new-tokens", "12", "--top-alternatives", "443"];
    let local = run_with_arm("generate", p(&file), p(&file), &tokens);
    let k5 = [&tokens[..], &["--remote-top-k", "5"]].concat();
    let served = run_with_arm("generate", p(&file), &server.url, &k5);
    // The first step sees the same prompt: compare the ARM's log-prob of every token there.
    let arm_logprobs = |record: &Value| -> Vec<(u64, f64)> {
        let mut all: Vec<(u64, f64)> = record["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["token_id"].as_u64().unwrap(),
                    t["arms"]["s"].as_f64().unwrap(),
                )
            })
            .collect();
        all.sort_by_key(|&(id, _)| id);
        all
    };
    let exact = arm_logprobs(&local[0]);
    let completed = arm_logprobs(&served[0]);
    assert_eq!(exact.len(), 443);
    let mut ranked: Vec<f64> = exact.iter().map(|&(_, lp)| lp).collect();
    ranked.sort_by(|a, b| b.total_cmp(a));
    let fifth = ranked[4];
    let kept_mass: f64 = ranked[..5].iter().map(|lp| lp.exp()).sum();
    let share = ((1.0 - kept_mass) / 438.0).ln();
    for ((id, want), (_, got)) in exact.iter().zip(&completed) {
        let expected = if *want >= fifth { *want } else { share };
        assert!(
            (got - expected).abs() < TOLERANCE,
            "token {id}: {got}, expected {expected} (exact {want})"
        );
    }
}

#[test]
fn a_served_arm_that_tokenizes_differently_is_refused_naming_it() {
    let server = LlamaServer::start();
    let gemma = data("parity_families/models/gemma2_base");
    let s = format!("s={}", server.url);
    let out = genarm(&[
        "generate",
        "--base",
        p(&gemma),
        "--arm",
        &s,
        "--prompt",
        PROMPT,
    ]);
    assert_one_line_error(&out, &["--arm s", &server.url]);
}

#[test]
fn chat_renders_with_the_servers_chat_template() {
    // The fixture's local tokenizers have no chat template; llama-server's /props gives its
    // own (ChatML where the file has none), and --chat renders with it.
    let server = LlamaServer::start();
    let [a, _] = arms();
    let start = |extra: &[&str]| -> Value {
        let mut args = vec![
            "generate",
            "--base",
            &server.url,
            "--arm",
            &a,
            "--prompt",
            PROMPT,
            "--max-new-tokens",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        json_lines(&genarm(&args)).remove(0)
    };
    let chat = start(&["--chat"]);
    let chatml = start(&[
        "--prompt-template",
        "<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n",
    ]);
    assert_eq!(chat["type"], "start");
    assert_eq!(chat["prompt_token_ids"], chatml["prompt_token_ids"]);
    let plain = start(&[]);
    assert_ne!(chat["prompt_token_ids"], plain["prompt_token_ids"]);
}
