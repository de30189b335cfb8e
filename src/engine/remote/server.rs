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
    /// ARM candidates outside the top K get their exact log-probs from a second request
    /// (vLLM's `logprob_token_ids`): the server gives them and `--remote-bounds-only` is off.
    pub exact_candidates: bool,
    /// Scoring asks once for every position (the prompt echoed with its log-probs, vLLM)
    /// rather than once per position.
    echo_scoring: bool,
    /// Things to tell the user about this server, found at start (one line each).
    pub notices: Vec<String>,
    /// The tokenizer genarm encodes with: `--tokenizer`, else the first ARM's (checked against
    /// the server's at start).
    pub tokenizer: ModelTokenizer,
    pub eos_ids: Vec<u32>,
    /// The ids of each sequence: one, or one per row after [`RemoteBase::fork`].
    rows: Vec<Vec<u32>>,
    /// Wall time of the calls that waited on the server, for `take_request_time`.
    request_time: TimeSum,
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
        let mut base = Self {
            url: url.to_string(),
            http,
            api,
            info,
            top_k: options.top_k,
            exact_greedy: options.exact_greedy,
            exact_candidates: false,
            echo_scoring: false,
            notices: Vec::new(),
            tokenizer,
            eos_ids,
            rows: vec![Vec::new()],
            request_time: TimeSum::default(),
            server_time: TimeSum::default(),
            wall_time: TimeSum::default(),
            timed_replies: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        };
        base.check_tokenizer(tokenizer_source)?;
        if api == RemoteApi::OpenAi {
            base.learn_openai_extensions(options)?;
        }
        Ok(base)
    }

    /// What an OpenAI-compatible server offers beyond the top K, tried once on the probe
    /// text: vLLM's `logprob_token_ids` (exact log-probs of named tokens) and `echo` with
    /// log-probs (every position of a prompt in one request). A server that refuses or ignores
    /// either is used without it.
    fn learn_openai_extensions(&mut self, options: &RemoteOptions) -> Result<()> {
        let ids = self.tokenizer.encode_response(PROBE)?;
        if ids.is_empty() {
            return Ok(());
        }
        let model = self.info.model.as_deref();
        let (path, body) = protocol::echo_request(model, &ids, 1);
        self.echo_scoring = ids.len() > 1
            && self
                .http
                .probe_post(path, &body)
                .is_some_and(|reply| protocol::parse_echo(&reply, &ids).is_ok());
        if !options.exact_candidates {
            return Ok(());
        }
        // Two ids a top 1 cannot both hold.
        let named = [0, 1];
        let (path, body) = protocol::candidates_request(model, &ids, &named);
        self.exact_candidates = self.http.probe_post(path, &body).is_some_and(|reply| {
            protocol::parse_next(&reply)
                .is_ok_and(|top| named.iter().all(|id| top.iter().any(|e| e.0 == *id)))
        });
        if !self.exact_candidates {
            self.notices.push(format!(
                "{}: the server does not give log-probs of named tokens (vLLM's \
                 logprob_token_ids), so ARM candidates outside its top {} hold the {}-th \
                 log-prob as a bound",
                self.url, self.top_k, self.top_k
            ));
        }
        Ok(())
    }

    /// `messages` as the server's own chat template renders them (vLLM's `/tokenize` with
    /// messages); None where the server does not render chat (llama-server's `/tokenize`
    /// reads no messages).
    pub fn chat_ids(
        &self,
        messages: &[serde_json::Value],
        variables: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Vec<u32>> {
        let (path, body) =
            protocol::chat_tokenize_request(self.info.model.as_deref(), messages, variables);
        let reply = self.http.probe_post(path, &body)?;
        protocol::parse_tokens(&reply)
            .ok()
            .filter(|ids| !ids.is_empty())
    }

    /// The ids of row `row` (the single sequence is row 0).
    pub fn row(&self, row: usize) -> &[u32] {
        self.rows.get(row).map_or(&[], Vec::as_slice)
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
        self.request_time.time(|| self.next(&self.rows[0]))
    }

    /// The top `k` list for the position after row `row`, asked again (the server's prompt
    /// cache holds the sequence): `Guide::widen_for_greedy`.
    pub fn widen(&self, row: usize, k: usize) -> Result<TopList> {
        self.request_time.time(|| self.next_with(self.row(row), k))
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
        let prefixes: Vec<&[u32]> = self.rows.iter().map(Vec::as_slice).collect();
        self.request_time.time(|| self.next_all(&prefixes))
    }

    /// Teacher forcing: the top list after each prefix `ids[..=p]` for `p` in `positions`:
    /// one echo request where the server has it, else one request per position, sent side
    /// by side.
    pub fn score_positions(
        &mut self,
        ids: &[u32],
        positions: std::ops::Range<usize>,
    ) -> Result<Vec<TopList>> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        if positions.end > ids.len() {
            return Err(EngineError::usage(format!(
                "positions up to {} of {} ids",
                positions.end,
                ids.len()
            )));
        }
        self.request_time.time(|| {
            if self.echo_scoring {
                let mut tops = self.request_echo(&ids[..positions.end])?;
                tops.truncate(positions.end);
                return Ok(tops.split_off(positions.start));
            }
            let prefixes: Vec<&[u32]> = positions.map(|p| &ids[..=p]).collect();
            self.next_all(&prefixes)
        })
    }

    /// The exact log-probs of each ask's ids after its prefix (vLLM's `logprob_token_ids`;
    /// [`RemoteBase::exact_candidates`] says the server gives them), at most K ids per
    /// request, the requests side by side. Each ask's list holds the ids the server answered.
    pub fn candidate_logprobs(&self, asks: &[(&[u32], &[u32])]) -> Result<Vec<TopList>> {
        let chunk = self.top_k.max(1);
        let requests: Vec<(usize, &[u32], &[u32])> = asks
            .iter()
            .enumerate()
            .flat_map(|(i, (prefix, ids))| ids.chunks(chunk).map(move |c| (i, *prefix, c)))
            .collect();
        let replies = self.request_time.time(|| {
            self.side_by_side(&requests, |&(_, prefix, ids)| {
                self.request(protocol::candidates_request(
                    self.info.model.as_deref(),
                    prefix,
                    ids,
                ))
            })
        })?;
        let mut lists = vec![TopList::new(); asks.len()];
        for ((ask, _, ids), reply) in requests.iter().zip(replies) {
            lists[*ask].extend(reply.into_iter().filter(|(id, _)| ids.contains(id)));
        }
        Ok(lists)
    }

    /// Time spent waiting on the server since the last call.
    pub fn take_request_time(&mut self) -> Duration {
        self.request_time.take()
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

    /// POST one request; its reply, counted and timed for `take_times`.
    fn post(&self, (path, body): (&str, serde_json::Value)) -> Result<serde_json::Value> {
        let reply = self.http.post(path, &body)?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(server) = protocol::server_time(&reply) {
            self.server_time.add(server);
            self.timed_replies.fetch_add(1, Ordering::Relaxed);
        }
        Ok(reply)
    }

    /// A request whose reply is one position's list ([`protocol::parse_next`]).
    fn request(&self, request: (&'static str, serde_json::Value)) -> Result<TopList> {
        let started = Instant::now();
        let path = request.0;
        let reply = self.post(request)?;
        let top = self
            .http
            .json_time
            .time(|| protocol::parse_next(&reply))
            .map_err(|message| EngineError::remote(&self.http.url(path), message));
        self.wall_time.add(started.elapsed());
        top
    }

    /// Every position's list of `ids` in one echo request ([`protocol::parse_echo`]).
    fn request_echo(&self, ids: &[u32]) -> Result<Vec<TopList>> {
        let started = Instant::now();
        let request = protocol::echo_request(self.info.model.as_deref(), ids, self.top_k);
        let path = request.0;
        let reply = self.post(request)?;
        let tops = self
            .http
            .json_time
            .time(|| protocol::parse_echo(&reply, ids))
            .map_err(|message| EngineError::remote(&self.http.url(path), message));
        self.wall_time.add(started.elapsed());
        tops
    }

    fn request_next(&self, ids: &[u32], k: usize) -> Result<TopList> {
        let mut api = self.api;
        let mut banned = Vec::new();
        loop {
            let (path, body) =
                protocol::next_request(api, self.info.model.as_deref(), ids, k, &banned);
            let reply = self.post((path, body))?;
            match self.http.json_time.time(|| protocol::parse_next(&reply)) {
                Ok(top) => return Ok(top),
                Err(message) => match protocol::held_back_token(&reply) {
                    Some(token) if banned.len() < MAX_HELD_BACK => banned.push(token),
                    // llama-server's OpenAI side drops the log-probs when its pick is part of
                    // a character and does not say which token it held back: its own API
                    // does, so the position is asked there.
                    _ if api == RemoteApi::OpenAi && protocol::is_llamacpp_reply(&reply) => {
                        api = RemoteApi::LlamaCpp;
                    }
                    _ => return Err(EngineError::remote(&self.http.url(path), message)),
                },
            }
        }
    }

    fn next_all(&self, prefixes: &[&[u32]]) -> Result<Vec<TopList>> {
        self.side_by_side(prefixes, |ids| self.next(ids))
    }

    /// `request` for every item, at most [`MAX_CONCURRENT`] in flight; the answers in order.
    fn side_by_side<I: Sync, T: Send>(
        &self,
        items: &[I],
        request: impl Fn(&I) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        let mut tops = Vec::with_capacity(items.len());
        let request = &request;
        for group in items.chunks(MAX_CONCURRENT) {
            let replies: Vec<Result<T>> = std::thread::scope(|scope| {
                let handles: Vec<_> = group
                    .iter()
                    .map(|item| scope.spawn(move || request(item)))
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
