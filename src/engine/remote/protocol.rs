//! What the serving engines' APIs look like on the wire: the request for one position's top
//! log-probs over token ids, its reply, tokenizing, and what a server says about itself.
//! Pure functions over JSON, so the shapes of servers this machine cannot run (vLLM, SGLang)
//! are tested against replies as their documentation writes them.

use serde_json::{Value, json};

/// The API a served base speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteApi {
    /// llama.cpp's own `llama-server` API: `/completion`, `/props`, `/tokenize`.
    LlamaCpp,
    /// The OpenAI-compatible completions API as vLLM and SGLang serve it (llama-server too).
    OpenAi,
}

impl std::str::FromStr for RemoteApi {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "llamacpp" | "llama.cpp" | "llama-server" => Ok(Self::LlamaCpp),
            "openai" | "vllm" | "sglang" => Ok(Self::OpenAi),
            other => Err(format!(
                "'{other}' is not an API genarm speaks: llamacpp or openai"
            )),
        }
    }
}

impl RemoteApi {
    pub fn name(self) -> &'static str {
        match self {
            Self::LlamaCpp => "llama.cpp",
            Self::OpenAi => "OpenAI-compatible",
        }
    }
}

/// One position's next-token log-probs as the server returned them: (token id, log-prob), most
/// likely first.
pub type TopList = Vec<(u32, f32)>;

/// What a server says about itself at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerInfo {
    /// The served model's name (`--remote-model` picks one where several are served).
    pub model: Option<String>,
    pub vocab: Option<usize>,
    /// The context a request may fill.
    pub context: Option<usize>,
    /// llama-server's chat template (`/props`: the model's, or llama.cpp's default where the
    /// file has none), with the BOS and EOS texts it is rendered with.
    pub chat_template: Option<ServedTemplate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedTemplate {
    pub source: String,
    pub bos_token: String,
    pub eos_token: String,
}

/// The request for the top `k` next-token log-probs after `ids`: (path, body). The server
/// continues from its cached prefix (llama.cpp's `cache_prompt`, vLLM's prefix cache).
///
/// `ignore_eos`: the one token the server samples is thrown away, but when it is an
/// end-of-generation token llama-server ends the request without the position's log-probs.
/// Both llama-server and vLLM report log-probs of the raw logits, before the bias that
/// `ignore_eos` puts on those tokens, so the log-probs (the end token's included) are unchanged.
///
/// `banned`: tokens the server must not sample (llama.cpp only; see [`held_back_token`]), by
/// the same logit bias, which again leaves the log-probs as they are.
pub fn next_request(
    api: RemoteApi,
    model: Option<&str>,
    ids: &[u32],
    k: usize,
    banned: &[u32],
) -> (&'static str, Value) {
    match api {
        RemoteApi::LlamaCpp => {
            let mut body = json!({
                "prompt": ids,
                "n_predict": 1,
                "n_probs": k,
                "cache_prompt": true,
                "ignore_eos": true,
                "return_tokens": true,
                "temperature": 0.0,
                "stream": false,
            });
            if !banned.is_empty() {
                let bias: Vec<Value> = banned.iter().map(|&id| json!([id, false])).collect();
                body["logit_bias"] = Value::Array(bias);
            }
            ("/completion", body)
        }
        RemoteApi::OpenAi => {
            let mut body = json!({
                "prompt": ids,
                "max_tokens": 1,
                "logprobs": k,
                "ignore_eos": true,
                "temperature": 0.0,
                "return_tokens_as_token_ids": true,
            });
            if let Some(model) = model {
                body["model"] = json!(model);
            }
            ("/v1/completions", body)
        }
    }
}

/// The request for the exact next-token log-probs of `named` tokens after `ids` (vLLM's
/// `logprob_token_ids`, OpenAI-compatible completions only): (path, body). The reply has
/// [`next_request`]'s shape and holds the sampled token and every named one; a server without
/// the field ignores it and answers its top 1.
pub fn candidates_request(
    model: Option<&str>,
    ids: &[u32],
    named: &[u32],
) -> (&'static str, Value) {
    let (path, mut body) = next_request(RemoteApi::OpenAi, model, ids, 1, &[]);
    body["logprob_token_ids"] = json!(named);
    (path, body)
}

/// The request scoring every position of `ids` at once: the prompt echoed with each
/// position's top `k` (OpenAI completions' `echo`, as vLLM answers it for token prompts).
pub fn echo_request(model: Option<&str>, ids: &[u32], k: usize) -> (&'static str, Value) {
    let (path, mut body) = next_request(RemoteApi::OpenAi, model, ids, k, &[]);
    body["echo"] = json!(true);
    (path, body)
}

/// The top lists of an [`echo_request`] reply for `ids`: entry `j - 1` of the result predicts
/// `ids[j]` (the list after `ids[..j]`), and the last is the position after all of `ids`.
/// The reply's `choices[0].logprobs.top_logprobs` holds a null for the first prompt token,
/// then one object per token, each holding at least that prompt token (vLLM adds it to the
/// top K): that is checked, so a server answering another shape (no echo, text keys, a
/// shifted list) is told apart.
pub fn parse_echo(reply: &Value, ids: &[u32]) -> Result<Vec<TopList>, String> {
    let entries = reply
        .pointer("/choices/0/logprobs/top_logprobs")
        .and_then(Value::as_array)
        .ok_or("the reply has no top_logprobs list (choices[0].logprobs)")?;
    if entries.len() < ids.len() + 1 {
        return Err(format!(
            "the reply has log-probs for {} positions, not the {} of an echoed prompt and one \
             more (the server ignores echo)",
            entries.len(),
            ids.len() + 1
        ));
    }
    let mut tops = Vec::with_capacity(ids.len());
    for (j, entry) in entries.iter().enumerate().take(ids.len() + 1).skip(1) {
        let holder = json!({"top_logprobs": [entry]});
        let top = parse_openai_top(&holder)?;
        if let Some(&token) = ids.get(j)
            && !top.iter().any(|&(id, _)| id == token)
        {
            return Err(format!(
                "position {j}'s log-probs lack its prompt token {token}: not an echo of the prompt"
            ));
        }
        tops.push(top);
    }
    Ok(tops)
}

/// The token llama-server sampled but held back: when the one token it samples ends in an
/// incomplete UTF-8 character (a byte token), it keeps the token's text and log-probs for the
/// next one, and with `n_predict: 1` answers with neither. Its id is still in `tokens`
/// (`return_tokens`); asking again with it banned gets the position's log-probs.
pub fn held_back_token(reply: &Value) -> Option<u32> {
    let probs = reply
        .get("completion_probabilities")
        .and_then(Value::as_array);
    if probs.is_some_and(|p| !p.is_empty()) {
        return None;
    }
    match reply.get("tokens")?.as_array()?.as_slice() {
        [id] => id.as_u64().and_then(|id| u32::try_from(id).ok()),
        _ => None,
    }
}

/// The top list of a reply to [`next_request`]. Three shapes: llama.cpp's `/completion`
/// (`completion_probabilities[0].top_logprobs[{id, logprob}]`), llama-server's
/// `/v1/completions` (`choices[0].logprobs.content[0].top_logprobs[{id, logprob}]`), and
/// vLLM's and SGLang's OpenAI completions (`choices[0].logprobs.top_logprobs[0]`, an object
/// from `"token_id:ID"` to log-prob).
pub fn parse_next(reply: &Value) -> Result<TopList, String> {
    let positions = match reply.get("completion_probabilities") {
        Some(list) => list,
        None => {
            let logprobs = reply
                .pointer("/choices/0/logprobs")
                .filter(|l| !l.is_null())
                .ok_or("the reply has no log-probs (choices[0].logprobs)")?;
            match logprobs.get("content") {
                Some(list) => list,
                None => return parse_openai_top(logprobs),
            }
        }
    };
    let first = positions
        .get(0)
        .ok_or("the reply has log-probs for no position")?;
    let top = first
        .get("top_logprobs")
        .and_then(Value::as_array)
        .ok_or("the reply's position has no top_logprobs list")?;
    let mut out = Vec::with_capacity(top.len());
    for entry in top {
        let id = entry
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or("a top_logprobs entry has no token id")?;
        out.push((id, logprob_of(entry.get("logprob"))?));
    }
    sorted(out)
}

fn parse_openai_top(logprobs: &Value) -> Result<TopList, String> {
    let top = logprobs
        .pointer("/top_logprobs/0")
        .and_then(Value::as_object)
        .ok_or("the reply has no top_logprobs for the position")?;
    let mut out = Vec::with_capacity(top.len());
    for (key, value) in top {
        let id = key
            .strip_prefix("token_id:")
            .and_then(|id| id.parse::<u32>().ok())
            .ok_or_else(|| {
                format!(
                    "the top_logprobs are keyed by text ('{key}'), not token ids: the server \
                     ignores return_tokens_as_token_ids (vLLM has it; use --remote-api llamacpp \
                     for llama-server)"
                )
            })?;
        out.push((id, logprob_of(Some(value))?));
    }
    sorted(out)
}

/// A log-prob from the reply; llama.cpp writes the lowest float for a probability that
/// underflowed to 0, which is minus infinity here.
fn logprob_of(value: Option<&Value>) -> Result<f32, String> {
    let lp = value
        .and_then(Value::as_f64)
        .ok_or("a top_logprobs entry has no numeric log-prob")?;
    if lp.is_nan() || lp > 1e-3 {
        return Err(format!("a log-prob of {lp} is not one"));
    }
    Ok(if lp < -1e30 {
        f32::NEG_INFINITY
    } else {
        lp.min(0.0) as f32
    })
}

fn sorted(mut top: TopList) -> Result<TopList, String> {
    if top.is_empty() {
        return Err("the reply's top list is empty".into());
    }
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    top.dedup_by_key(|e| e.0);
    Ok(top)
}

/// The server's own compute for a request, where its reply reports it: llama.cpp's
/// `timings.prompt_ms + timings.predicted_ms` (on `/completion` and its `/v1/completions`).
pub fn server_time(reply: &Value) -> Option<std::time::Duration> {
    let timings = reply.get("timings")?;
    let ms = timings.get("prompt_ms")?.as_f64()? + timings.get("predicted_ms")?.as_f64()?;
    (ms.is_finite() && ms >= 0.0).then(|| std::time::Duration::from_secs_f64(ms / 1e3))
}

/// The request tokenizing `text` without special tokens: (path, body).
pub fn tokenize_request(api: RemoteApi, model: Option<&str>, text: &str) -> (&'static str, Value) {
    match api {
        RemoteApi::LlamaCpp => ("/tokenize", json!({"content": text, "add_special": false})),
        RemoteApi::OpenAi => {
            // vLLM and SGLang read `prompt`; llama-server's OpenAI-compatible side still reads
            // its own `content`. Each ignores the other's field.
            let mut body = json!({"prompt": text, "content": text, "add_special_tokens": false});
            if let Some(model) = model {
                body["model"] = json!(model);
            }
            ("/tokenize", body)
        }
    }
}

/// The request for a conversation's ids as the server's chat template renders them, with the
/// generation prompt and no special tokens added (vLLM's `/tokenize` with `messages`).
pub fn chat_tokenize_request(
    model: Option<&str>,
    messages: &[Value],
    variables: &serde_json::Map<String, Value>,
) -> (&'static str, Value) {
    let mut body = json!({
        "messages": messages,
        "add_generation_prompt": true,
        "add_special_tokens": false,
        "chat_template_kwargs": variables,
    });
    if let Some(model) = model {
        body["model"] = json!(model);
    }
    ("/tokenize", body)
}

/// The ids of a `/tokenize` reply (`{"tokens": [..]}` on llama.cpp, vLLM and SGLang).
pub fn parse_tokens(reply: &Value) -> Result<Vec<u32>, String> {
    reply
        .get("tokens")
        .and_then(Value::as_array)
        .ok_or("the reply has no tokens list")?
        .iter()
        .map(|t| {
            t.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| format!("'{t}' is not a token id"))
        })
        .collect()
}

/// Is this completion reply llama-server's? Its OpenAI-compatible replies carry its
/// `timings`, which vLLM's and SGLang's do not.
pub fn is_llamacpp_reply(reply: &Value) -> bool {
    reply.get("timings").is_some_and(Value::is_object)
}

/// Is this `/props` reply llama.cpp's?
pub fn is_llamacpp_props(props: &Value) -> bool {
    props.get("default_generation_settings").is_some()
}

/// What `/v1/models` (and llama.cpp's `/props`) say about the served model. `wanted` is
/// `--remote-model`; without it a server serving one model gets that one.
pub fn server_info(
    models: &Value,
    props: Option<&Value>,
    wanted: Option<&str>,
) -> Result<ServerInfo, String> {
    let served: Vec<&Value> = models
        .get("data")
        .and_then(Value::as_array)
        .ok_or("the /v1/models reply has no data list")?
        .iter()
        .collect();
    let name = |m: &Value| m.get("id").and_then(Value::as_str).map(str::to_string);
    let chosen = match wanted {
        Some(wanted) => served
            .iter()
            .find(|m| name(m).as_deref() == Some(wanted))
            .copied()
            .ok_or_else(|| {
                let names: Vec<String> = served.iter().filter_map(|m| name(m)).collect();
                format!(
                    "--remote-model {wanted}: not served here (served: {})",
                    names.join(", ")
                )
            })?,
        None => match served.as_slice() {
            [one] => *one,
            [] => return Err("the server serves no model (/v1/models is empty)".into()),
            several => {
                let names: Vec<String> = several.iter().filter_map(|m| name(m)).collect();
                return Err(format!(
                    "the server serves several models ({}): pick one with --remote-model",
                    names.join(", ")
                ));
            }
        },
    };
    let number = |v: Option<&Value>| v.and_then(Value::as_u64).map(|n| n as usize);
    let context = number(props.and_then(|p| p.pointer("/default_generation_settings/n_ctx")))
        .or_else(|| number(chosen.get("max_model_len")))
        .or_else(|| number(chosen.pointer("/meta/n_ctx_train")));
    let text = |key: &str| {
        props
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let chat_template = Some(text("chat_template"))
        .filter(|source| !source.trim().is_empty())
        .map(|source| ServedTemplate {
            source,
            bos_token: text("bos_token"),
            eos_token: text("eos_token"),
        });
    Ok(ServerInfo {
        model: name(chosen),
        vocab: number(chosen.pointer("/meta/n_vocab")),
        context,
        chat_template,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_reply_shapes_give_the_same_list() {
        let llama = json!({"completion_probabilities": [{"id": 5, "logprob": -0.1,
            "top_logprobs": [{"id": 9, "token": "b", "logprob": -2.5},
                             {"id": 5, "token": "a", "logprob": -0.1}]}]});
        let server_oai = json!({"choices": [{"text": "a", "logprobs": {"content": [{"id": 5,
            "logprob": -0.1, "top_logprobs": [{"id": 5, "logprob": -0.1},
                                              {"id": 9, "logprob": -2.5}]}]}}]});
        // vLLM's completions reply with return_tokens_as_token_ids (its docs' shape): the
        // sampled token may appear in the top object again.
        let vllm = json!({"choices": [{"index": 0, "text": "token_id:5", "logprobs": {
            "tokens": ["token_id:5"], "token_logprobs": [-0.1], "text_offset": [0],
            "top_logprobs": [{"token_id:5": -0.1, "token_id:9": -2.5}]}}]});
        let expected = vec![(5, -0.1), (9, -2.5)];
        let server_oai_timed = json!({"choices": [], "timings": {"prompt_ms": 0.4}});
        assert!(is_llamacpp_reply(&server_oai_timed) && !is_llamacpp_reply(&vllm));
        for reply in [llama, server_oai, vllm] {
            assert_eq!(parse_next(&reply).unwrap(), expected, "{reply}");
        }
    }

    #[test]
    fn malformed_replies_say_what_is_missing() {
        let cases = [
            (json!({}), "no log-probs"),
            (json!({"choices": [{"logprobs": null}]}), "no log-probs"),
            (json!({"completion_probabilities": []}), "no position"),
            (
                json!({"completion_probabilities": [{"top_logprobs": [{"logprob": -1}]}]}),
                "no token id",
            ),
            (
                json!({"completion_probabilities": [{"top_logprobs": [{"id": 1, "logprob": 2.0}]}]}),
                "is not one",
            ),
            (
                json!({"completion_probabilities": [{"top_logprobs": []}]}),
                "empty",
            ),
            (
                json!({"choices": [{"logprobs": {"top_logprobs": [{" the": -0.5}]}}]}),
                "keyed by text",
            ),
        ];
        for (reply, expected) in cases {
            let err = parse_next(&reply).unwrap_err();
            assert!(err.contains(expected), "{reply}: {err}");
        }
    }

    #[test]
    fn an_underflowed_probability_is_minus_infinity() {
        let reply = json!({"completion_probabilities": [{"top_logprobs": [
            {"id": 1, "logprob": -0.01}, {"id": 2, "logprob": -3.4028234663852886e38}]}]});
        assert_eq!(parse_next(&reply).unwrap()[1], (2, f32::NEG_INFINITY));
    }

    #[test]
    fn server_info_picks_the_model_and_its_sizes() {
        let vllm = json!({"object": "list", "data": [
            {"id": "meta-llama/Llama-3.1-70B", "object": "model", "max_model_len": 8192},
            {"id": "small", "object": "model", "max_model_len": 2048}]});
        let info = server_info(&vllm, None, Some("small")).unwrap();
        assert_eq!(info.model.as_deref(), Some("small"));
        assert_eq!(info.context, Some(2048));
        assert_eq!(info.vocab, None);
        let err = server_info(&vllm, None, None).unwrap_err();
        assert!(
            err.contains("--remote-model") && err.contains("Llama-3.1-70B"),
            "{err}"
        );
        let err = server_info(&vllm, None, Some("big")).unwrap_err();
        assert!(err.contains("not served here"), "{err}");
        let llama =
            json!({"data": [{"id": "m.gguf", "meta": {"n_vocab": 32000, "n_ctx_train": 4096}}]});
        let props = json!({"default_generation_settings": {"n_ctx": 1024}});
        let info = server_info(&llama, Some(&props), None).unwrap();
        assert_eq!((info.vocab, info.context), (Some(32000), Some(1024)));
    }

    #[test]
    fn requests_carry_token_ids_and_k() {
        let (path, body) = next_request(RemoteApi::OpenAi, Some("m"), &[1, 2, 3], 20, &[]);
        assert_eq!(path, "/v1/completions");
        assert_eq!(body["prompt"], json!([1, 2, 3]));
        assert_eq!(
            (body["logprobs"].as_u64(), body["max_tokens"].as_u64()),
            (Some(20), Some(1))
        );
        assert_eq!(body["return_tokens_as_token_ids"], json!(true));
        assert_eq!(body["ignore_eos"], json!(true));
        let (_, body) = next_request(RemoteApi::LlamaCpp, None, &[7], 5, &[9, 4]);
        assert_eq!(body["logit_bias"], json!([[9, false], [4, false]]));
        let (path, body) = next_request(RemoteApi::LlamaCpp, None, &[7], 5, &[]);
        assert!(body.get("logit_bias").is_none());
        assert_eq!(path, "/completion");
        assert_eq!(
            (body["n_probs"].as_u64(), body["n_predict"].as_u64()),
            (Some(5), Some(1))
        );
        assert_eq!(body["cache_prompt"], json!(true));
        assert_eq!(body["ignore_eos"], json!(true));
        assert_eq!(
            parse_tokens(&json!({"tokens": [3, 4]})).unwrap(),
            vec![3, 4]
        );
        assert!(parse_tokens(&json!({"tokens": ["a"]})).is_err());
    }

    #[test]
    fn candidate_and_echo_requests_extend_the_completion_request() {
        let (path, body) = candidates_request(Some("m"), &[1, 2], &[7, 9]);
        assert_eq!(path, "/v1/completions");
        assert_eq!(body["logprob_token_ids"], json!([7, 9]));
        assert_eq!(
            (body["logprobs"].as_u64(), body["max_tokens"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(body["model"], json!("m"));
        let (_, body) = echo_request(None, &[1, 2], 5);
        assert_eq!(
            (body["echo"].as_bool(), body["logprobs"].as_u64()),
            (Some(true), Some(5))
        );
        assert_eq!(body["prompt"], json!([1, 2]));
    }

    /// vLLM's echo reply for a 3-token prompt with `logprobs: 2` and
    /// `return_tokens_as_token_ids` (its documented completions shape): a null for the first
    /// token, then each prompt token's top 2 plus the token itself, then the generated one.
    fn vllm_echo() -> Value {
        json!({"choices": [{"index": 0, "text": "token_id:1token_id:2token_id:3token_id:4",
            "logprobs": {
                "tokens": ["token_id:1", "token_id:2", "token_id:3", "token_id:4"],
                "token_logprobs": [null, -3.0, -0.2, -0.1],
                "text_offset": [0, 10, 20, 30],
                "top_logprobs": [null,
                    {"token_id:2": -3.0, "token_id:5": -0.5, "token_id:6": -1.0},
                    {"token_id:3": -0.2, "token_id:7": -2.0},
                    {"token_id:4": -0.1, "token_id:8": -2.5}]}}]})
    }

    #[test]
    fn an_echo_reply_gives_every_positions_list() {
        let tops = parse_echo(&vllm_echo(), &[1, 2, 3]).unwrap();
        assert_eq!(
            tops,
            vec![
                vec![(5, -0.5), (6, -1.0), (2, -3.0)],
                vec![(3, -0.2), (7, -2.0)],
                vec![(4, -0.1), (8, -2.5)],
            ]
        );
    }

    #[test]
    fn a_reply_that_is_no_echo_of_the_prompt_is_refused() {
        // A server that ignored echo: only the generated position.
        let plain = json!({"choices": [{"logprobs": {"top_logprobs": [{"token_id:4": -0.1}]}}]});
        assert!(
            parse_echo(&plain, &[1, 2, 3])
                .unwrap_err()
                .contains("ignores echo")
        );
        // Another prompt's echo: position 1 lacks token 9.
        let err = parse_echo(&vllm_echo(), &[1, 9, 3]).unwrap_err();
        assert!(err.contains("lack its prompt token 9"), "{err}");
        // llama-server's own /v1/completions shape has no top_logprobs list.
        let server =
            json!({"choices": [{"logprobs": {"content": [{"id": 4, "top_logprobs": []}]}}]});
        assert!(parse_echo(&server, &[1, 2]).is_err());
    }

    #[test]
    fn a_held_back_byte_token_is_recognised_only_without_log_probs() {
        // llama-server's reply when the sampled token is half a character (as seen from
        // llama-server 0.3.36 with a byte-level BPE vocabulary).
        let held = json!({"content": "\u{fffd}", "tokens": [48], "stop": true});
        assert_eq!(held_back_token(&held), Some(48));
        assert!(parse_next(&held).is_err());
        let normal = json!({"tokens": [48], "completion_probabilities":
            [{"id": 48, "top_logprobs": [{"id": 48, "logprob": -0.1}]}]});
        assert_eq!(held_back_token(&normal), None);
        assert_eq!(held_back_token(&json!({"content": "x"})), None);
    }
}
