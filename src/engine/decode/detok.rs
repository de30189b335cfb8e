//! Incremental detokenisation: the exact text each new token adds to the decoded output.
//!
//! Two things make this harder than decoding one token at a time:
//! - byte-fallback and byte-level tokenizers split one character over several tokens, so a
//!   token may add nothing until the character completes (we hold back text ending in U+FFFD);
//! - decoders treat the start of a string specially (Llama's decoder strips the first space),
//!   so a token must be decoded together with some context before it.
//!
//! - byte-fallback decoders convert a whole run of byte tokens at once, and one invalid byte
//!   turns the entire run into U+FFFD (even an ASCII byte decoded a moment earlier), so text from
//!   byte tokens is held until the run ends.
//!
//! The decoder keeps an *anchor*: every token before it has been emitted and ends on a complete
//! character. Each step decodes the tokens from the anchor on, preceded by a little context, and
//! emits what they add beyond the context. The tokenizers crate's own stream decoder does the
//! same but fails outright on invalid byte sequences, which random and badly steered models do
//! produce; here such bytes come out as U+FFFD, as a full decode shows them.

use crate::engine::error::{EngineError, Result};
use crate::engine::formats::tokenizer::ModelTokenizer;

/// Tokens of context decoded before the anchor (more when they decode to nothing).
const MAX_CONTEXT: usize = 4;
/// Tokens held back waiting for a character or byte run to complete before giving up.
const MAX_HELD: usize = 16;

#[derive(Default, Clone)]
pub struct IncrementalDecoder {
    ids: Vec<u32>,
    /// Index into `ids` of the first token whose text has not been emitted.
    anchor: usize,
}

impl IncrementalDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The text `id` adds (empty while a multi-byte character is incomplete).
    pub fn step(&mut self, tokenizer: &ModelTokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let held = self.ids.len() - self.anchor;
        if tokenizer.is_byte_token(id) && held < MAX_HELD {
            return Ok(String::new());
        }
        let tail = self.pending_text(tokenizer)?;
        if tail.ends_with('\u{FFFD}') && held < MAX_HELD {
            return Ok(String::new());
        }
        self.emit_all();
        Ok(tail)
    }

    /// Whatever is still held back (an unfinished byte run at the end of generation), decoded
    /// as a full decode would show it; the decoder is then empty of pending tokens.
    pub fn finish(&mut self, tokenizer: &ModelTokenizer) -> Result<String> {
        if self.anchor == self.ids.len() {
            return Ok(String::new());
        }
        let tail = self.pending_text(tokenizer)?;
        self.emit_all();
        Ok(tail)
    }

    /// The text the tokens from the anchor on add after the context before it.
    fn pending_text(&self, tokenizer: &ModelTokenizer) -> Result<String> {
        let tokenizer = &tokenizer.inner;
        let id = self.ids.last().copied().unwrap_or_default();
        let decode = |ids: &[u32]| {
            tokenizer
                .decode(ids, true)
                .map_err(|e| EngineError::usage(format!("cannot decode token {id}: {e}")))
        };
        // Context: the tokens just before the anchor, extended while they decode to nothing or
        // to an incomplete character.
        let mut start = self.anchor;
        let mut context = String::new();
        while start > 0 && self.anchor - start < MAX_CONTEXT {
            start -= 1;
            context = decode(&self.ids[start..self.anchor])?;
            if !context.is_empty() && !context.starts_with('\u{FFFD}') {
                break;
            }
        }
        let window = decode(&self.ids[start..])?;
        let tail = match window.strip_prefix(context.as_str()) {
            Some(tail) => tail.to_string(),
            // The context decodes differently on its own (invalid bytes merging): fall back to
            // the longest common prefix, on a character boundary.
            None => {
                let common = window
                    .char_indices()
                    .zip(context.chars())
                    .take_while(|((_, a), b)| a == b)
                    .last()
                    .map_or(0, |((i, c), _)| i + c.len_utf8());
                window[common..].to_string()
            }
        };
        Ok(tail)
    }

    /// Mark every token as emitted.
    fn emit_all(&mut self) {
        self.anchor = self.ids.len();
        // Only the context before the anchor is ever decoded again: drop older ids so that
        // cloning a decoder (done per alternative token) stays cheap.
        if self.anchor > 2 * MAX_CONTEXT {
            self.ids.drain(..self.anchor - MAX_CONTEXT);
            self.anchor = MAX_CONTEXT;
        }
    }

    /// A decoder that has seen `ids`, returning it with the pieces they produced.
    pub fn replay(tokenizer: &ModelTokenizer, ids: &[u32]) -> Result<(Self, Vec<String>)> {
        let mut decoder = Self::new();
        let pieces = ids
            .iter()
            .map(|&id| decoder.step(tokenizer, id))
            .collect::<Result<Vec<_>>>()?;
        Ok((decoder, pieces))
    }
}
