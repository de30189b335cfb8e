//! A served base (`--base URL`) driven through a server the test starts on 127.0.0.1. The
//! server speaks llama.cpp's `/completion` API, or vLLM's OpenAI-compatible completions as its
//! documentation shapes them (`return_tokens_as_token_ids`, `logprob_token_ids`, `echo`), and
//! answers from a local model's own logits (log-softmax, top K), so a whole-vocabulary K must
//! give exactly local decoding.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

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
    /// vLLM's API: no `/props`, `/v1/completions` over token ids. `named` honours
    /// `logprob_token_ids` (a server before it ignores the field); `echo` answers echoed
    /// prompts with their log-probs.
    Vllm {
        named: bool,
        echo: bool,
    },
}

/// What the fake vLLM was asked on `/v1/completions`, one word per request: "named" (with
/// `logprob_token_ids`), "echo", or "next".
type Asked = Arc<Mutex<Vec<&'static str>>>;

/// Serve `model` on a free port; the URL. The thread lives as long as the test process.
fn serve(model: &Path, behaviour: Behaviour) -> String {
    serve_asked(model, behaviour).0
}

/// [`serve`], with the record of what it was asked.
fn serve_asked(model: &Path, behaviour: Behaviour) -> (String, Asked) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut model = CausalLm::load(model, ComputeDtype::F32).unwrap();
    let asked = Asked::default();
    let record = asked.clone();
    std::thread::spawn(move || {
        let mut behaviour = behaviour;
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &mut model, &mut behaviour, &record);
        }
    });
    (url, asked)
}

/// The log-probs after `ids`, from empty caches.
fn logprobs_after(model: &mut CausalLm, ids: &[u32]) -> Vec<f32> {
    model.truncate(0);
    log_softmax(&model.feed(ids).unwrap())
}

/// Ids by descending log-prob.
fn ranked(logprobs: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logprobs.len()).collect();
    order.sort_by(|&a, &b| logprobs[b].total_cmp(&logprobs[a]));
    order
}

/// vLLM's `/v1/completions` reply for a token-id prompt (`return_tokens_as_token_ids`): each
/// position's object from `token_id:ID` to log-prob holds the position's token and either its
/// top `logprobs` or, with `logprob_token_ids`, the named ids instead; an echoed prompt comes
/// first, its first position null.
fn vllm_completion(
    model: &mut CausalLm,
    body: &Value,
    named_ok: bool,
    echo_ok: bool,
) -> (Value, &'static str) {
    let ids: Vec<u32> = serde_json::from_value(body["prompt"].clone()).unwrap();
    let k = body["logprobs"].as_u64().unwrap() as usize;
    let named: Vec<usize> =
        serde_json::from_value(body["logprob_token_ids"].clone()).unwrap_or_default();
    let named = if named_ok { named } else { Vec::new() };
    let echo = echo_ok && body["echo"] == json!(true);
    let entry = |logprobs: &[f32], token: usize| {
        let mut ids: Vec<usize> = match named.is_empty() {
            true => ranked(logprobs)[..k.min(logprobs.len())].to_vec(),
            false => named.clone(),
        };
        ids.push(token);
        let object: serde_json::Map<String, Value> = ids
            .into_iter()
            .map(|id| (format!("token_id:{id}"), json!(logprobs[id])))
            .collect();
        Value::Object(object)
    };
    let mut top = Vec::new();
    if echo {
        top.push(Value::Null);
        for j in 1..ids.len() {
            top.push(entry(&logprobs_after(model, &ids[..j]), ids[j] as usize));
        }
    }
    let last = logprobs_after(model, &ids);
    let sampled = ranked(&last)[0];
    top.push(entry(&last, sampled));
    let reply = json!({"id": "cmpl-1", "object": "text_completion", "model": "fake",
        "choices": [{"index": 0, "text": format!("token_id:{sampled}"), "finish_reason": "length",
            "logprobs": {"top_logprobs": top}}]});
    let asked = match (echo, named.is_empty()) {
        (true, _) => "echo",
        (false, false) => "named",
        (false, true) => "next",
    };
    (reply, asked)
}

fn answer(
    stream: TcpStream,
    model: &mut CausalLm,
    behaviour: &mut Behaviour,
    asked: &Asked,
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
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let mut status = "200 OK";
    let reply = if let Behaviour::Vllm { named, echo } = *behaviour {
        match path {
            "/v1/models" => json!({"object": "list", "data": [{"id": "fake", "object": "model",
                "max_model_len": 256}]}),
            "/tokenize" => {
                let text = match body["messages"].as_array() {
                    // The served model's chat template: "w1 CONTENT w2 " per message, then
                    // "w3" for the generation prompt.
                    Some(messages) => {
                        let turns: String = messages
                            .iter()
                            .map(|m| format!("w1 {} w2 ", m["content"].as_str().unwrap()))
                            .collect();
                        turns + "w3"
                    }
                    None => body["prompt"].as_str().unwrap_or("").to_string(),
                };
                json!({"tokens": model.tokenizer.encode_response(&text).unwrap()})
            }
            "/v1/completions" => {
                let (reply, kind) = vllm_completion(model, &body, named, echo);
                asked.lock().unwrap().push(kind);
                reply
            }
            _ => {
                status = "404 Not Found";
                json!({"detail": "Not Found"})
            }
        }
    } else {
        match path {
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
        }
    };
    let text = reply.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

fn generate(base: &str, arm: &Path, extra: &[&str]) -> Vec<Value> {
    let (records, _) = generate_records(base, arm, extra);
    records
        .into_iter()
        .filter(|r| r["type"] == "token")
        .collect()
}

/// `generate --json` with ARM helpful at -0.5: every record, and stderr.
fn generate_records(base: &str, arm: &Path, extra: &[&str]) -> (Vec<Value>, String) {
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
    (
        json_lines(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The base's exact log-prob of each generated token, computed here from the model itself
/// after the start record's prompt ids and the tokens before it.
fn exact_base_logprobs(model: &Path, records: &[Value]) -> Vec<f32> {
    let mut model = CausalLm::load(model, ComputeDtype::F32).unwrap();
    let start = records.iter().find(|r| r["type"] == "start").unwrap();
    let mut ids: Vec<u32> = serde_json::from_value(start["prompt_token_ids"].clone()).unwrap();
    let mut out = Vec::new();
    for token in records.iter().filter(|r| r["type"] == "token") {
        let id = token["token_id"].as_u64().unwrap() as u32;
        out.push(logprobs_after(&mut model, &ids)[id as usize]);
        ids.push(id);
    }
    out
}

fn count(asked: &Asked, kind: &str) -> usize {
    asked.lock().unwrap().iter().filter(|&&k| k == kind).count()
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
fn a_vllm_server_gives_the_exact_log_probs_of_the_arms_candidates() {
    let models = Models::new();
    let (base, arm) = (models.llama("base", 1), models.llama("arm", 3));
    let (url, asked) = serve_asked(
        &base,
        Behaviour::Vllm {
            named: true,
            echo: true,
        },
    );
    let (records, stderr) = generate_records(&url, &arm, &["--remote-top-k", "2"]);
    assert!(!stderr.contains("logprob_token_ids"), "{stderr}");
    let tokens: Vec<&Value> = records.iter().filter(|r| r["type"] == "token").collect();
    assert_eq!(tokens.len(), 8);
    let exact = exact_base_logprobs(&base, &records);
    let mut widened = 0;
    for (r, want) in tokens.iter().zip(exact) {
        // The server's 2 and the ARM's 2, every base log-prob the server's own.
        let count = r["candidates"].as_u64().unwrap();
        assert!((2..=4).contains(&count), "{r}");
        widened += usize::from(count > 2);
        assert_eq!(r["exact"], true, "{r}");
        let got = r["base_logprob"].as_f64().unwrap() as f32;
        assert!((got - want).abs() < 1e-4, "{r}: the exact value is {want}");
    }
    // The ARM's candidates outside the top 2 were asked for by name (the probe at start once).
    assert!(
        widened > 0,
        "no step had an ARM candidate outside the top 2"
    );
    assert!(count(&asked, "named") > 1, "{:?}", asked.lock().unwrap());

    // Asked not to, genarm keeps the bounds and sends no named request, not even the probe.
    let (url, asked) = serve_asked(
        &base,
        Behaviour::Vllm {
            named: true,
            echo: true,
        },
    );
    let records = generate(&url, &arm, &["--remote-top-k", "2", "--remote-bounds-only"]);
    for r in &records {
        assert_eq!(r["exact"].as_bool().unwrap(), r["candidates"] == 2, "{r}");
    }
    assert!(records.iter().any(|r| r["exact"] == false));
    assert_eq!(count(&asked, "named"), 0);
}

#[test]
fn a_server_without_named_log_probs_keeps_the_bounds_and_says_so() {
    let models = Models::new();
    let (base, arm) = (models.llama("base", 1), models.llama("arm", 3));
    let (url, asked) = serve_asked(
        &base,
        Behaviour::Vllm {
            named: false,
            echo: false,
        },
    );
    let (records, stderr) = generate_records(&url, &arm, &["--remote-top-k", "2"]);
    assert!(
        stderr.contains(&url) && stderr.contains("logprob_token_ids"),
        "{stderr}"
    );
    let tokens: Vec<&Value> = records.iter().filter(|r| r["type"] == "token").collect();
    assert_eq!(tokens.len(), 8);
    for r in &tokens {
        assert_eq!(r["exact"].as_bool().unwrap(), r["candidates"] == 2, "{r}");
    }
    // The two probes at start (echo and named ids, both ignored), then one request per step
    // (the prompt and 7 tokens; the 8th is not fed): nothing more was asked.
    assert_eq!(count(&asked, "named"), 0);
    assert_eq!(count(&asked, "next"), 2 + 8, "{:?}", asked.lock().unwrap());
}

#[test]
fn scoring_through_vllm_asks_once_with_the_prompt_echoed() {
    let models = Models::new();
    let (base, arm) = (models.llama("base", 1), models.llama("arm", 2));
    let vocab = CausalLm::load(&base, ComputeDtype::F32)
        .unwrap()
        .config
        .vocab_size
        .to_string();
    let arm_flag = format!("helpful={}", arm.display());
    let score = |base: &str, extra: &[&str]| {
        let mut args = vec![
            "score",
            "--base",
            base,
            "--arm",
            &arm_flag,
            "--weight",
            "helpful=-0.5",
            "--prompt",
            "w5 w6",
            "--response",
            " w7 w8 w9 w5 w6",
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
    };
    let local = score(p(&base), &[]);
    for echo in [true, false] {
        let (url, asked) = serve_asked(&base, Behaviour::Vllm { named: true, echo });
        let served = score(&url, &["--remote-top-k", &vocab]);
        assert_eq!(served.len(), local.len());
        for (s, l) in served.iter().zip(&local) {
            assert_eq!(s["type"], l["type"]);
            assert_eq!(s["token_id"], l["token_id"]);
            for field in ["base_logprob", "guided_logprob"] {
                if let (Some(a), Some(b)) = (s[field].as_f64(), l[field].as_f64()) {
                    assert!((a - b).abs() < 1e-4, "echo {echo}: {field}: {a} vs {b}");
                }
            }
        }
        let scored = served.iter().filter(|r| r["type"] == "token").count();
        assert!(scored >= 5, "{served:?}");
        // The probe at start, then one request for every position, or one per position.
        let (echoed, single) = (count(&asked, "echo"), count(&asked, "next"));
        match echo {
            true => assert_eq!((echoed, single), (2, 0)),
            false => assert_eq!(single, 1 + scored),
        }
    }
}

#[test]
fn a_vllm_servers_chat_rendering_is_checked_against_the_local_template() {
    let models = Models::new();
    let (base, arm) = (models.llama("base", 1), models.llama("arm", 2));
    let url = serve(
        &base,
        Behaviour::Vllm {
            named: true,
            echo: true,
        },
    );
    // A local tokenizer folder whose chat template ends the generation prompt with `ending`.
    let tokenizer_with = |name: &str, ending: &str| {
        let dir = models.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(arm.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
        let template = format!(
            "{{% for m in messages %}}w1 {{{{ m['content'] }}}} w2 {{% endfor %}}\
             {{% if add_generation_prompt %}}{ending}{{% endif %}}"
        );
        let config = json!({"bos_token": "<s>", "eos_token": "</s>", "chat_template": template});
        std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
        dir
    };
    let chat =
        |tokenizer: &Path| generate_records(&url, &arm, &["--chat", "--tokenizer", p(tokenizer)]);
    // The same template as the server's: no notice, and the prompt is the server's rendering.
    let (records, stderr) = chat(&tokenizer_with("same", "w3"));
    assert!(!stderr.contains("--chat"), "{stderr}");
    let start = records.iter().find(|r| r["type"] == "start").unwrap();
    let want = CausalLm::load(&base, ComputeDtype::F32)
        .unwrap()
        .tokenizer
        .encode_response("w1 w5 w6 w7 w2 w3")
        .unwrap();
    assert_eq!(start["prompt_token_ids"], json!(want));
    // Another ending: the run goes on with the local template, and a notice says where the
    // two part (at the generation prompt, the last token).
    let (records, stderr) = chat(&tokenizer_with("other", "w4"));
    assert!(
        stderr.contains("--chat") && stderr.contains(&url) && stderr.contains("differing at"),
        "{stderr}"
    );
    let start = records.iter().find(|r| r["type"] == "start").unwrap();
    assert_eq!(
        start["prompt_token_ids"][5],
        json!(want[5] + 1),
        "w4 follows w3"
    );
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
