//! The transport to a served base: JSON over HTTP with timeouts, bounded retries with backoff on
//! transient failures, an API key that never leaves the request header, and errors that name the
//! URL in one line.

use std::io::Read;
use std::time::Duration;

use super::timing::TimeSum;
use crate::engine::error::{EngineError, Result};

/// How long to wait for a connection: a server on the network answers in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per request (the first and two retries).
const ATTEMPTS: u32 = 3;
/// Backoff before the first retry; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The largest reply read: a whole-vocabulary top list of a 152k vocabulary is about 15 MB.
const MAX_REPLY_BYTES: u64 = 256 << 20;
/// Where the API key comes from; its value is sent as a bearer token and nowhere else.
pub const KEY_VARIABLE: &str = "GENARM_REMOTE_KEY";

pub struct Http {
    agent: ureq::Agent,
    /// The server's root, without a trailing slash or `/v1`.
    pub root: String,
    key: Option<String>,
    /// Time spent writing request bodies and reading replies as JSON.
    pub json_time: TimeSum,
}

/// What a failed request leaves to decide on: retry or stop.
enum Failure {
    /// Worth another attempt: refused or reset connections, timeouts, 429 and 5xx.
    Transient(String),
    Permanent(String),
}

impl Http {
    pub fn new(root: &str, timeout: Duration) -> Self {
        // A whole-request deadline, not per-read timeouts: ureq 2 sets no read timeout on a
        // connection reused from its pool, so a server that stops answering (SIGSTOP, a hung
        // GPU) would block such a request forever; the deadline applies to every read.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(timeout)
            .build();
        let key = std::env::var(KEY_VARIABLE).ok().filter(|k| !k.is_empty());
        Self {
            agent,
            root: root.to_string(),
            key,
            json_time: TimeSum::default(),
        }
    }

    /// GET `path`; the reply as JSON.
    pub fn get(&self, path: &str) -> Result<serde_json::Value> {
        self.with_retries(path, || {
            let request = self.authorized(self.agent.get(&self.url(path)));
            read_json(request.call(), &self.json_time)
        })
    }

    /// POST `body` to `path`; the reply as JSON.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        let text = self.json_time.time(|| body.to_string());
        self.with_retries(path, || {
            let request = self
                .authorized(self.agent.post(&self.url(path)))
                .set("Content-Type", "application/json");
            read_json(request.send_string(&text), &self.json_time)
        })
    }

    /// GET `path` once, without retries: probing which API a server speaks, where a missing
    /// endpoint is an answer, not a failure.
    pub fn probe(&self, path: &str) -> Option<serde_json::Value> {
        let request = self.authorized(self.agent.get(&self.url(path)));
        read_json(request.call(), &self.json_time).ok()
    }

    /// POST `body` to `path` once, without retries: an optional endpoint (a server whose
    /// `/tokenize` fails is not probed, not retried).
    pub fn probe_post(&self, path: &str, body: &serde_json::Value) -> Option<serde_json::Value> {
        let request = self
            .authorized(self.agent.post(&self.url(path)))
            .set("Content-Type", "application/json");
        read_json(request.send_string(&body.to_string()), &self.json_time).ok()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    fn authorized(&self, request: ureq::Request) -> ureq::Request {
        match &self.key {
            Some(key) => request.set("Authorization", &format!("Bearer {key}")),
            None => request,
        }
    }

    fn with_retries(
        &self,
        path: &str,
        attempt: impl Fn() -> std::result::Result<serde_json::Value, Failure>,
    ) -> Result<serde_json::Value> {
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for tries in 1..=ATTEMPTS {
            match attempt() {
                Ok(value) => return Ok(value),
                Err(Failure::Permanent(message)) => return Err(self.error(path, message)),
                Err(Failure::Transient(message)) => {
                    last = message;
                    if tries < ATTEMPTS {
                        std::thread::sleep(backoff);
                        backoff *= 2;
                    }
                }
            }
        }
        Err(self.error(path, format!("{last} (after {ATTEMPTS} attempts)")))
    }

    fn error(&self, path: &str, message: String) -> EngineError {
        EngineError::remote(&self.url(path), message)
    }
}

fn read_json(
    reply: std::result::Result<ureq::Response, ureq::Error>,
    json_time: &TimeSum,
) -> std::result::Result<serde_json::Value, Failure> {
    let response = match reply {
        Ok(response) => response,
        Err(ureq::Error::Status(code, response)) => {
            let body = read_body(response).unwrap_or_default();
            let message = format!("HTTP {code}: {}", short(&server_message(&body)));
            return Err(if code == 429 || code >= 500 {
                Failure::Transient(message)
            } else {
                Failure::Permanent(message)
            });
        }
        Err(ureq::Error::Transport(transport)) => return Err(transport_failure(&transport)),
    };
    let body = read_body(response).map_err(Failure::Transient)?;
    json_time
        .time(|| serde_json::from_slice(&body))
        .map_err(|e| {
            Failure::Permanent(format!(
                "the reply is not JSON ({e}): {}",
                short(&String::from_utf8_lossy(&body))
            ))
        })
}

fn transport_failure(transport: &ureq::Transport) -> Failure {
    use ureq::ErrorKind;
    match transport.kind() {
        ErrorKind::ConnectionFailed => Failure::Transient("nothing is listening there".into()),
        ErrorKind::Dns => Failure::Permanent("the host name does not resolve".into()),
        ErrorKind::InvalidUrl | ErrorKind::UnknownScheme => {
            Failure::Permanent("not a valid http:// or https:// URL".into())
        }
        ErrorKind::Io => {
            let detail = transport.to_string();
            if detail.contains("timed out") || detail.contains("WouldBlock") {
                Failure::Transient("the server did not answer in time (--remote-timeout)".into())
            } else {
                Failure::Transient(format!("the connection failed: {}", short(&detail)))
            }
        }
        _ => Failure::Permanent(short(&transport.to_string())),
    }
}

fn read_body(response: ureq::Response) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_REPLY_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("the reply broke off: {e}"))?;
    if body.len() as u64 > MAX_REPLY_BYTES {
        return Err(format!(
            "the reply is larger than {} MiB",
            MAX_REPLY_BYTES >> 20
        ));
    }
    Ok(body)
}

/// The message inside an error reply where the server gives one (`{"error": {"message": ..}}`
/// as llama.cpp and vLLM write it), else the body.
fn server_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let message = parsed.as_ref().and_then(|v| {
        let error = v.get("error").unwrap_or(v);
        error
            .get("message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"))
            .and_then(|m| m.as_str().map(str::to_string))
    });
    message.unwrap_or_else(|| text.into_owned())
}

/// One line of at most 200 characters.
fn short(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_give_their_message() {
        let llama = br#"{"error":{"code":400,"message":"n_probs too large","type":"invalid_request_error"}}"#;
        assert_eq!(server_message(llama), "n_probs too large");
        let vllm =
            br#"{"object":"error","message":"logprobs exceeds 20","type":"BadRequestError"}"#;
        assert_eq!(server_message(vllm), "logprobs exceeds 20");
        assert_eq!(server_message(b"Bad Gateway"), "Bad Gateway");
    }

    #[test]
    fn long_messages_become_one_short_line() {
        let long = "word\n".repeat(100);
        let line = short(&long);
        assert!(!line.contains('\n'));
        assert_eq!(line.chars().count(), 201);
    }
}
