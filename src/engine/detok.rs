//! Incremental detokenisation: the exact text each new token adds to the decoded output.
//!
//! Two things make this harder than decoding one token at a time:
//! - byte-fallback and byte-level tokenizers split one character over several tokens, so a
//!   token may add nothing until the character completes (we hold back text ending in U+FFFD);
//! - decoders treat the start of a string specially (Llama's decoder strips the first space),
//!   so a token must be decoded together with some context before it.
//!
//! The decoder keeps an *anchor*: every token before it has been emitted and ends on a complete
//! character. Each step decodes the tokens from the anchor on, preceded by a little context, and
//! emits what they add beyond the context. The tokenizers crate's own stream decoder does the
//! same but fails outright on invalid byte sequences, which random and badly steered models do
//! produce; here such bytes come out as U+FFFD, as a full decode shows them.

use tokenizers::Tokenizer;

use super::error::{EngineError, Result};

/// Tokens of context decoded before the anchor (more when they decode to nothing).
const MAX_CONTEXT: usize = 4;
/// Tokens held back waiting for a character to complete before giving up and emitting U+FFFD.
const MAX_HELD: usize = 8;

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
    pub fn step(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
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
        let held = self.ids.len() - self.anchor;
        if tail.ends_with('\u{FFFD}') && held < MAX_HELD {
            return Ok(String::new());
        }
        self.anchor = self.ids.len();
        // Only the context before the anchor is ever decoded again: drop older ids so that
        // cloning a decoder (done per alternative token) stays cheap.
        if self.anchor > 2 * MAX_CONTEXT {
            self.ids.drain(..self.anchor - MAX_CONTEXT);
            self.anchor = MAX_CONTEXT;
        }
        Ok(tail)
    }

    /// A decoder that has seen `ids`, returning it with the pieces they produced.
    pub fn replay(tokenizer: &Tokenizer, ids: &[u32]) -> Result<(Self, Vec<String>)> {
        let mut decoder = Self::new();
        let pieces = ids
            .iter()
            .map(|&id| decoder.step(tokenizer, id))
            .collect::<Result<Vec<_>>>()?;
        Ok((decoder, pieces))
    }
}
