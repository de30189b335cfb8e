//! A base model served by another engine (llama.cpp's `llama-server`, vLLM, SGLang), driven
//! token by token while the ARMs run locally: GenARM's weak-to-strong use, a base too large for
//! this machine steered by small ARMs. genarm owns the token ids: every request sends the
//! prompt and generated ids and asks for one position's top log-probs.
//!
//! - `http`: the transport (timeouts, retries, the API key, one-line errors naming the URL).
//! - `protocol`: the APIs' requests and replies as JSON.
//! - `candidates`: the guided step over the server's and the ARMs' top tokens.
//! - `server`: [`RemoteBase`], the served base as the guide sees it.
//! - `arm`: [`RemoteArm`], a served ARM: its top K completed to a whole row.
//! - `timing`: where a step's time goes (server, transport, JSON), for `bench`.

mod arm;
pub mod candidates;
mod http;
pub mod protocol;
mod server;
mod timing;

use std::time::Duration;

pub use arm::RemoteArm;
pub use candidates::{Candidates, Served};
pub use http::KEY_VARIABLE;
pub use protocol::RemoteApi;
pub use server::RemoteBase;
pub use timing::RemoteTimes;

/// How to reach and use a served base (`--remote-*` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteOptions {
    /// The API, or None to detect it (`GET /props`, then `GET /v1/models`).
    pub api: Option<RemoteApi>,
    /// The served model to use where a server serves several.
    pub model: Option<String>,
    /// How many of the server's most likely tokens each step asks for.
    pub top_k: usize,
    /// How long one request may take.
    pub timeout: Duration,
    /// Greedy decoding asks for more log-probs until the top K settles each choice.
    pub exact_greedy: bool,
    /// Ask for the exact log-probs of ARM candidates outside the top K where the server gives
    /// them (a second request per step); off (`--remote-bounds-only`) they hold the bound.
    pub exact_candidates: bool,
}

/// The default K: vLLM's default `--max-logprobs`.
pub const DEFAULT_TOP_K: usize = 20;

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            api: None,
            model: None,
            top_k: DEFAULT_TOP_K,
            timeout: Duration::from_secs(60),
            exact_greedy: false,
            exact_candidates: true,
        }
    }
}

/// Does this model argument name a server rather than a file or Hub id?
pub fn is_url(model: &str) -> bool {
    let lower = model.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// The server's root: no trailing slash, no `/v1` (the API paths add it).
fn server_root(url: &str) -> String {
    let root = url.trim_end_matches('/');
    root.strip_suffix("/v1").unwrap_or(root).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths_and_reduced_to_their_root() {
        assert!(is_url("http://127.0.0.1:8080") && is_url("HTTPS://h/v1"));
        assert!(!is_url("models/base") && !is_url("org/repo") && !is_url("http.gguf"));
        assert_eq!(server_root("http://h:8000/v1/"), "http://h:8000");
        assert_eq!(server_root("http://h:8080"), "http://h:8080");
    }
}
