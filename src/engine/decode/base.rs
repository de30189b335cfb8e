//! [`Base`]: the base model of a guide, run here or served by another engine.

use std::time::Duration;

use crate::engine::formats::tokenizer::ModelTokenizer;
use crate::engine::model::causal_lm::CausalLm;
use crate::engine::remote::RemoteBase;

// One per guide, built once and never moved on a hot path: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Base {
    Local(CausalLm),
    /// Served (`--base URL`): each position gives the server's top K log-probs, not logits.
    Remote(RemoteBase),
}

impl Base {
    pub fn tokenizer(&self) -> &ModelTokenizer {
        match self {
            Self::Local(model) => &model.tokenizer,
            Self::Remote(remote) => &remote.tokenizer,
        }
    }

    /// Every id that ends generation.
    pub fn eos_ids(&self) -> &[u32] {
        match self {
            Self::Local(model) => &model.eos_ids,
            Self::Remote(remote) => &remote.eos_ids,
        }
    }

    /// A short name for messages: the model's, or the server's URL.
    pub fn display_name(&self) -> String {
        match self {
            Self::Local(model) => model.display_name(),
            Self::Remote(remote) => remote.url.clone(),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Local(model) => model.config.vocab_size,
            Self::Remote(remote) => remote.vocab_size(),
        }
    }

    pub fn max_context(&self) -> usize {
        match self {
            Self::Local(model) => model.config.max_position_embeddings,
            Self::Remote(remote) => remote.max_context(),
        }
    }

    pub fn position(&self) -> usize {
        match self {
            Self::Local(model) => model.position(),
            Self::Remote(remote) => remote.position(),
        }
    }

    /// The served base, if this one is.
    pub fn remote(&self) -> Option<&RemoteBase> {
        match self {
            Self::Local(_) => None,
            Self::Remote(remote) => Some(remote),
        }
    }

    /// Storage formats (`CausalLm::weight_formats`); "remote" for a served base.
    pub fn weight_formats(&self) -> String {
        match self {
            Self::Local(model) => model.weight_formats(),
            Self::Remote(_) => "remote".into(),
        }
    }

    pub fn fallbacks(&self) -> String {
        match self {
            Self::Local(model) => model.fallbacks(),
            Self::Remote(_) => String::new(),
        }
    }

    /// Time spent computing (local) or waiting on the server (remote) since the last call.
    pub fn take_time(&mut self) -> Duration {
        match self {
            Self::Local(model) => model.take_forward_time(),
            Self::Remote(remote) => remote.take_request_time(),
        }
    }
}
