//! [`RemoteBase`]: a served base as the guide sees it. It holds the ids of each sequence (the
//! server keeps the computation cached) and answers each position with the server's top list.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::RemoteOptions;
use super::http::Http;
use super::protocol::{self, RemoteApi, ServerInfo, TopList};
use super::timing::{RemoteTimes, TimeSum};
use crate::engine::error::{EngineError, Result};
use crate::engine::formats::chat::ChatTemplate;
use crate::engine::formats::tokenizer::ModelTokenizer;

/// Requests in flight at once for batches and scoring: servers batch them, and more than this
/// only queues on their side.
const MAX_CONCURRENT: usize = 16;
/// How many held-back tokens (`protocol::held_back_token`) one position may ban before
/// giving up: each is a byte token the server sampled, rarely more than one or two in a row.
const MAX_HELD_BACK: usize = 8;
/// The text both tokenizers must split identically at start: words, digits, punctuation,
/// leading and doubled spaces, a newline and non-ASCII letters.
const PROBE: &str = " Hello, world! 12345 naïve café\n  two  spaces: ok?";

pub struct RemoteBase {
    /// The URL as the user gave it, named in every message.
    pub url: String,
    http: Http,
    pub api: RemoteApi,
    pub info: ServerInfo,
    /// K: how many of the server's most likely tokens each step asks for.
    pub top_k: usize,
    /// `--remote-exact-greedy`: greedy steps the top K cannot settle are asked again.
    pub exact_greedy: bool,
    /// The tokenizer genarm encodes with: `--tokenizer`, else the first ARM's (checked against
    /// the server's at start).
    pub tokenizer: ModelTokenizer,
    pub eos_ids: Vec<u32>,
    /// The ids of each sequence: one, or one per row after [`RemoteBase::fork`].
    rows: Vec<Vec<u32>>,
    request_time: Duration,
    /// What the server reported as its own compute, and how many requests reported it.
    server_time: TimeSum,
    /// Wall time per request (summed over concurrent ones), for `take_times`.
    wall_time: TimeSum,
    timed_replies: AtomicUsize,
    requests: AtomicUsize,
}

impl RemoteBase {
    /// Reach the server at `url`, learn its API and model, and check that it tokenizes as
    /// `tokenizer` does.
    pub fn connect(
        url: &str,
        options: &RemoteOptions,
        tokenizer: ModelTokenizer,
        eos_ids: Vec<u32>,
        tokenizer_source: &str,
    ) -> Result<Self> {
        if options.top_k == 0 {
            return Err(EngineError::usage("--remote-top-k must be at least 1"));
        }
        let http = Http::new(&super::server_root(url), options.timeout);
        let (api, info) = detect(&http, url, options)?;
        let mut tokenizer = tokenizer;
        // The server's chat template wins over the local tokenizer's: it is the served model's.
        if let Some(served) = &info.chat_template {
            tokenizer.chat_template = Some(ChatTemplate::from_source(
                Path::new(&http.url("/props")),
                &served.source,
                &served.bos_token,
                &served.eos_token,
            ));
        }
        let base = Self {
            url: url.to_string(),
            http,
            api,
            info,
            top_k: options.top_k,
            exact_greedy: options.exact_greedy,
            tokenizer,
            eos_ids,
            rows: vec![Vec::new()],
            request_time: Duration::ZERO,
            server_time: TimeSum::default(),
            wall_time: TimeSum::default(),
            timed_replies: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        };
        base.check_tokenizer(tokenizer_source)?;
        Ok(base)
    }

    /// The vocabulary the server reports, else the tokenizer's.
    pub fn vocab_size(&self) -> usize {
        self.info.vocab.unwrap_or(self.tokenizer.len)
    }

    /// The context a request may fill; unknown servers get the ARMs' (usize::MAX here).
    pub fn max_context(&self) -> usize {
        self.info.context.unwrap_or(usize::MAX)
    }

    pub fn position(&self) -> usize {
        self.rows[0].len()
    }

    pub fn truncate(&mut self, position: usize) {
        self.rows.truncate(1);
        self.rows[0].truncate(position);
    }

    /// Append `ids`; the server's top list for the position after them.
    pub fn feed(&mut self, ids: &[u32]) -> Result<TopList> {
        self.rows.truncate(1);
        self.rows[0].extend_from_slice(ids);
        let started = Instant::now();
        let top = self.next(&self.rows[0]);
        self.request_time += started.elapsed();
        top
    }

    /// The top `k` list for the position after the single sequence, asked again (the server's
    /// prompt cache holds the sequence): `Guide::widen_for_greedy`.
    pub fn widen(&mut self, k: usize) -> Result<TopList> {
        self.rows.truncate(1);
        let started = Instant::now();
        let top = self.next_with(&self.rows[0], k);
        self.request_time += started.elapsed();
        top
    }

    /// Copy the single sequence into `rows` rows; see [`RemoteBase::feed_rows`].
    pub fn fork(&mut self, rows: usize) {
        let first = self.rows[0].clone();
        self.rows = vec![first; rows.max(1)];
    }

    /// Append one token per row; each row's top list, the requests sent side by side.
    pub fn feed_rows(&mut self, tokens: &[u32]) -> Result<Vec<TopList>> {
        if tokens.len() != self.rows.len() {
            return Err(EngineError::usage(format!(
                "{} tokens for {} rows",
                tokens.len(),
                self.rows.len()
            )));
        }
        for (row, &token) in self.rows.iter_mut().zip(tokens) {
            row.push(token);
        }
        let started = Instant::now();
        let prefixes: Vec<&[u32]> = self.rows.iter().map(Vec::as_slice).collect();
        let tops = self.next_all(&prefixes);
        self.request_time += started.elapsed();
        tops
    }

    /// Teacher forcing: the top list after each prefix `ids[..=p]` for `p` in `positions`,
    /// one request per position, sent side by side.
    pub fn score_positions(
        &mut self,
        ids: &[u32],
        positions: std::ops::Range<usize>,
    ) -> Result<Vec<TopList>> {
        let started = Instant::now();
        let prefixes: Vec<&[u32]> = positions.map(|p| &ids[..=p]).collect();
        let tops = self.next_all(&prefixes);
        self.request_time += started.elapsed();
        tops
    }

    /// Time spent waiting on the server since the last call.
    pub fn take_request_time(&mut self) -> Duration {
        std::mem::take(&mut self.request_time)
    }

    /// Where the requests' time went since the last call (`bench`). The server's share is
    /// given only when every reply reported it.
    pub fn take_times(&self) -> RemoteTimes {
        let requests = self.requests.swap(0, Ordering::Relaxed);
        let timed = self.timed_replies.swap(0, Ordering::Relaxed);
        let server = self.server_time.take();
        RemoteTimes {
            requests,
            wall: self.wall_time.take(),
            server: (requests > 0 && timed == requests).then_some(server),
            json: self.http.json_time.take(),
        }
    }

    fn next(&self, ids: &[u32]) -> Result<TopList> {
        self.next_with(ids, self.top_k)
    }

    fn next_with(&self, ids: &[u32], k: usize) -> Result<TopList> {
        let started = Instant::now();
        let top = self.request_next(ids, k);
        self.wall_time.add(started.elapsed());
        top
    }

    fn request_next(&self, ids: &[u32], k: usize) -> Result<TopList> {
        let mut banned = Vec::new();
        loop {
            let (path, body) =
                protocol::next_request(self.api, self.info.model.as_deref(), ids, k, &banned);
            let reply = self.http.post(path, &body)?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            if let Some(server) = protocol::server_time(&reply) {
                self.server_time.add(server);
                self.timed_replies.fetch_add(1, Ordering::Relaxed);
            }
            match self.http.json_time.time(|| protocol::parse_next(&reply)) {
                Ok(top) => return Ok(top),
                Err(message) => match protocol::held_back_token(&reply) {
                    Some(token) if banned.len() < MAX_HELD_BACK => banned.push(token),
                    _ => return Err(EngineError::remote(&self.http.url(path), message)),
                },
            }
        }
    }

    fn next_all(&self, prefixes: &[&[u32]]) -> Result<Vec<TopList>> {
        let mut tops = Vec::with_capacity(prefixes.len());
        for group in prefixes.chunks(MAX_CONCURRENT) {
            let replies: Vec<Result<TopList>> = std::thread::scope(|scope| {
                let handles: Vec<_> = group
                    .iter()
                    .map(|ids| scope.spawn(move || self.next(ids)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(EngineError::remote(&self.url, "a request thread failed"))
                        })
                    })
                    .collect()
            });
            for reply in replies {
                tops.push(reply?);
            }
        }
        Ok(tops)
    }

    /// The server must split a probe text into the same ids as genarm's tokenizer, and hold
    /// the same vocabulary: ids are what travels, so a different tokenizer would silently
    /// steer the wrong tokens.
    fn check_tokenizer(&self, source: &str) -> Result<()> {
        let (path, body) = protocol::tokenize_request(self.api, self.info.model.as_deref(), PROBE);
        // A server without a working /tokenize cannot be checked (an empty list for a
        // non-empty text is a server that read neither field); the vocabulary check below
        // still runs.
        if let Some(reply) = self.http.probe_post(path, &body) {
            let served = protocol::parse_tokens(&reply)
                .map_err(|message| EngineError::remote(&self.http.url(path), message))?;
            let local = self.tokenizer.encode_response(PROBE)?;
            if !served.is_empty() && served != local {
                return Err(EngineError::remote(
                    &self.url,
                    format!(
                        "the server and {source} tokenize differently: {:?} is {served:?} there \
                         but {local:?} here (give the served model's tokenizer with --tokenizer)",
                        PROBE
                    ),
                ));
            }
        }
        if let Some(vocab) = self.info.vocab
            && vocab != self.tokenizer.len
        {
            return Err(EngineError::remote(
                &self.url,
                format!(
                    "the server's vocabulary has {vocab} tokens, {source}'s {} (give the served \
                     model's tokenizer with --tokenizer)",
                    self.tokenizer.len
                ),
            ));
        }
        Ok(())
    }
}

/// The API (forced by `--remote-api` or detected) and what the server says about its model.
fn detect(http: &Http, url: &str, options: &RemoteOptions) -> Result<(RemoteApi, ServerInfo)> {
    let props = match options.api {
        Some(RemoteApi::OpenAi) => None,
        _ => http.probe("/props").filter(protocol::is_llamacpp_props),
    };
    let api = match (options.api, &props) {
        (Some(api), _) => api,
        (None, Some(_)) => RemoteApi::LlamaCpp,
        (None, None) => RemoteApi::OpenAi,
    };
    // /v1/models answers on all three engines; its failure is the clearest message for a
    // server that is not there or not one of them.
    let models = http.get("/v1/models").map_err(|e| {
        let absent = e.to_string().contains("nothing is listening");
        if props.is_none() && options.api.is_none() && !absent {
            EngineError::remote(
                url,
                format!(
                    "{}; neither llama.cpp's API (GET /props) nor an OpenAI-compatible one (GET \
                     /v1/models) answers here",
                    e.to_string()
                        .trim_start_matches(&format!("{}/v1/models: ", http.root))
                ),
            )
        } else {
            e
        }
    })?;
    let info = protocol::server_info(&models, props.as_ref(), options.model.as_deref())
        .map_err(|message| EngineError::remote(&http.url("/v1/models"), message))?;
    Ok((api, info))
}
