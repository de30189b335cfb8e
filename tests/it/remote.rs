//! A served base (`--base URL`) driven through a server the test starts on 127.0.0.1. The
//! server speaks llama.cpp's `/completion` API and answers from a local model's own logits
//! (log-softmax, top n_probs), so a whole-vocabulary K must give exactly local decoding.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

use serde_json::{Value, json};

use crate::common::logprobs::log_softmax;
use crate::common::{Models, assert_one_line_error, genarm, json_lines, p};
use genarm::engine::{CausalLm, ComputeDtype};

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Honest,
    /// `/completion` answers JSON without log-probs.
    Malformed,
    /// Honest for this many `/completion` requests, then malformed: a server that breaks
    /// mid-run.
    BreaksAfter(usize),
}

/// Serve `model` on a free port; the URL. The thread lives as long as the test process.
fn serve(model: &Path, behaviour: Behaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut model = CausalLm::load(model, ComputeDtype::F32).unwrap();
    std::thread::spawn(move || {
        let mut behaviour = behaviour;
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &mut model, &mut behaviour);
        }
    });
    url
}

fn answer(
    stream: TcpStream,
    model: &mut CausalLm,
    behaviour: &mut Behaviour,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let vocab = model.config.vocab_size;
    let reply = match request_line.split_whitespace().nth(1).unwrap_or("") {
        "/props" => json!({"default_generation_settings": {"n_ctx": 256}}),
        "/v1/models" => json!({"data": [{"id": "fake", "meta": {"n_vocab": vocab}}]}),
        "/tokenize" => {
            let text = body["content"].as_str().unwrap_or("");
            json!({"tokens": model.tokenizer.encode_response(text).unwrap()})
        }
        "/completion" if *behaviour == Behaviour::Malformed => json!({"content": "x"}),
        "/completion" if *behaviour == Behaviour::BreaksAfter(0) => json!({"content": "x"}),
        "/completion" => {
            if let Behaviour::BreaksAfter(left) = behaviour {
                *left -= 1;
            }
            let ids: Vec<u32> = serde_json::from_value(body["prompt"].clone()).unwrap();
            let k = body["n_probs"].as_u64().unwrap() as usize;
            model.truncate(0);
            let logprobs = log_softmax(&model.feed(&ids).unwrap());
            let mut order: Vec<usize> = (0..logprobs.len()).collect();
            order.sort_by(|&a, &b| logprobs[b].total_cmp(&logprobs[a]));
            let top: Vec<Value> = order[..k.min(vocab)]
                .iter()
                .map(|&id| json!({"id": id, "token": "", "logprob": logprobs[id]}))
                .collect();
            json!({"completion_probabilities": [{"id": order[0], "top_logprobs": top}]})
        }
        _ => json!({"error": {"message": "no such endpoint"}}),
    };
    let text = reply.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

fn generate(base: &str, arm: &Path, extra: &[&str]) -> Vec<Value> {
    let arm = format!("helpful={}", arm.display());
    let mut args = vec![
        "generate",
        "--base",
        base,
        "--arm",
        &arm,
        "--weight",
        "helpful=-0.5",
        "--prompt",
        "w5 w6 w7",
        "--max-new-tokens",
        "8",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = genarm(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out)
        .into_iter()
        .filter(|r| r["type"] == "token")
        .collect()
}

#[test]
fn a_whole_vocabulary_k_equals_local_decoding() {
    let models = Models::new();
    let (base, arm) = (models.llama("base", 1), models.llama("arm", 2));
    let vocab = CausalLm::load(&base, ComputeDtype::F32)
        .unwrap()
        .config
        .vocab_size;
    let url = serve(&base, Behaviour::Honest);
    let k = vocab.to_string();
    let remote = generate(&url, &arm, &["--remote-top-k", &k]);
    let local = generate(&base.display().to_string(), &arm, &[]);
    assert!(!remote.is_empty());
    assert_eq!(remote.len(), local.len());
    for (r, l) in remote.iter().zip(&local) {
        assert_eq!(r["token_id"], l["token_id"]);
        for field in ["base_logprob", "guided_logprob"] {
            let (a, b) = (r[field].as_f64().unwrap(), l[field].as_f64().unwrap());
            assert!((a - b).abs() < 1e-4, "{field}: {a} vs {b}");
        }
        assert_eq!(
            (r["candidates"].as_u64(), r["exact"].as_bool()),
            (Some(vocab as u64), Some(true))
        );
        assert!(
            l.get("candidates").is_none(),
            "a local base has no candidate fields"
        );
    }
}

#[test]
fn a_small_k_guides_over_the_union_and_says_when_it_is_inexact() {
    let models = Models::new();
    let (base, arm) = (models.llama("base", 1), models.llama("arm", 3));
    let url = serve(&base, Behaviour::Honest);
    let records = generate(&url, &arm, &["--remote-top-k", "2"]);
    assert!(!records.is_empty());
    for r in &records {
        let count = r["candidates"].as_u64().unwrap();
        // The server's 2 and the ARM's 2: 2 to 4 tokens.
        assert!((2..=4).contains(&count), "{r}");
        let exact = r["exact"].as_bool().unwrap();
        assert_eq!(exact, count == 2, "{r}");
        // Guided log-probs spread over the candidates only: the top list holds no more.
        assert!(r["top"].as_array().unwrap().len() as u64 <= count);
    }
}

#[test]
fn a_server_that_breaks_mid_run_ends_with_an_error_record_after_the_tokens_made() {
    let models = Models::new();
    let (base, arm) = (models.llama("base", 1), models.llama("arm", 2));
    // The prompt's request and two tokens' requests answer; the third token's does not.
    let url = serve(&base, Behaviour::BreaksAfter(3));
    let arm_flag = format!("helpful={}", arm.display());
    let out = genarm(&[
        "generate",
        "--base",
        &url,
        "--arm",
        &arm_flag,
        "--prompt",
        "w5 w6",
        "--max-new-tokens",
        "8",
        "--json",
    ]);
    assert!(!out.status.success());
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tokens = records.iter().filter(|r| r["type"] == "token").count();
    assert_eq!(tokens, 3, "{records:?}");
    let end = records.last().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["reason"], "error");
    assert!(
        end["error"].as_str().unwrap().contains("no log-probs"),
        "{end}"
    );
}

#[test]
fn a_server_that_is_not_there_or_answers_nonsense_is_one_line() {
    let models = Models::new();
    let (base, arm) = (models.llama("base", 1), models.llama("arm", 2));
    let arm_flag = format!("helpful={}", arm.display());
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{free}");
    let out = genarm(&[
        "generate", "--base", &url, "--arm", &arm_flag, "--prompt", "w5",
    ]);
    assert_one_line_error(&out, &["--base", &url, "nothing is listening"]);
    // A served ARM that is not there: one line naming it, the base local.
    let served_arm = format!("s={url}");
    let out = genarm(&[
        "generate",
        "--base",
        p(&base),
        "--arm",
        &served_arm,
        "--prompt",
        "w5",
    ]);
    assert_one_line_error(&out, &["--arm s", &url, "nothing is listening"]);

    let url = serve(&base, Behaviour::Malformed);
    let out = genarm(&[
        "generate", "--base", &url, "--arm", &arm_flag, "--prompt", "w5",
    ]);
    assert_one_line_error(&out, &[&format!("{url}/completion"), "no log-probs"]);

    let out = genarm(&["generate", "--base", &url, "--prompt", "w5"]);
    assert_one_line_error(&out, &["--base", &url, "--tokenizer or a local --arm"]);
    // Served ARMs alone give no tokenizer either.
    let served_arm = format!("s={url}");
    let out = genarm(&[
        "generate",
        "--base",
        &url,
        "--arm",
        &served_arm,
        "--prompt",
        "w5",
    ]);
    assert_one_line_error(&out, &["--base", &url, "--tokenizer or a local --arm"]);
    let out = genarm(&[
        "generate",
        "--base",
        &url,
        "--arm",
        &arm_flag,
        "--remote-api",
        "grpc",
        "--prompt",
        "w5",
    ]);
    assert_one_line_error(&out, &["--remote-api", "grpc"]);
    for (flag, value) in [
        ("--remote-top-k", "0"),
        ("--remote-timeout", "0"),
        ("--remote-timeout", "nan"),
    ] {
        let out = genarm(&[
            "generate", "--base", &url, "--arm", &arm_flag, flag, value, "--prompt", "w5",
        ]);
        assert_one_line_error(&out, &[flag]);
    }
}
