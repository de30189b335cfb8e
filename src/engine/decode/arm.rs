//! [`Arm`]: an ARM of a guide, run here or served by another engine, and [`Forward`], what the
//! guide asks of every model it runs side by side (a local base and the ARMs).

use std::ops::Range;
use std::time::Duration;

use crate::engine::error::Result;
use crate::engine::model::causal_lm::CausalLm;
use crate::engine::remote::RemoteArm;

// One per ARM, built once and never moved on a hot path: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Arm {
    Local(CausalLm),
    /// Served (`--arm NAME=URL`): each position gives the server's top K log-probs, completed
    /// to a whole row ([`RemoteArm`]).
    Remote(RemoteArm),
}

impl Arm {
    /// The model run here, if this ARM is.
    pub fn local(&self) -> Option<&CausalLm> {
        match self {
            Self::Local(model) => Some(model),
            Self::Remote(_) => None,
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Local(model) => model.config.vocab_size,
            Self::Remote(arm) => arm.vocab_size(),
        }
    }

    pub fn max_context(&self) -> usize {
        match self {
            Self::Local(model) => model.config.max_position_embeddings,
            Self::Remote(arm) => arm.remote.max_context(),
        }
    }

    /// Storage formats (`CausalLm::weight_formats`); "remote" for a served ARM.
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

    pub fn truncate(&mut self, position: usize) {
        match self {
            Self::Local(model) => model.truncate(position),
            Self::Remote(arm) => arm.remote.truncate(position),
        }
    }

    /// Time spent computing (local) or waiting on the server (served) since the last call.
    pub fn take_forward_time(&mut self) -> Duration {
        match self {
            Self::Local(model) => model.take_forward_time(),
            Self::Remote(arm) => arm.take_forward_time(),
        }
    }
}

impl From<CausalLm> for Arm {
    fn from(model: CausalLm) -> Self {
        Self::Local(model)
    }
}

/// What the guide runs on every model beside the others: rows of next-token logits (or
/// log-probs, for a served ARM), as [`CausalLm`]'s methods of the same names give them.
pub trait Forward: Send {
    fn feed(&mut self, ids: &[u32]) -> Result<Vec<f32>>;
    fn fork(&mut self, rows: usize) -> Result<()>;
    fn feed_rows(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>>;
    /// Teacher forcing over `ids` from empty caches: the rows predicting `ids[p + 1]` for `p`
    /// in `positions`.
    fn score_range(&mut self, ids: &[u32], positions: Range<usize>) -> Result<Vec<Vec<f32>>>;
}

impl Forward for CausalLm {
    fn feed(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        CausalLm::feed(self, ids)
    }

    fn fork(&mut self, rows: usize) -> Result<()> {
        CausalLm::fork(self, rows)
    }

    fn feed_rows(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        CausalLm::feed_rows(self, tokens)
    }

    fn score_range(&mut self, ids: &[u32], positions: Range<usize>) -> Result<Vec<Vec<f32>>> {
        let mut rows = self.score_all(ids)?;
        rows.truncate(positions.end);
        Ok(rows.split_off(positions.start.min(rows.len())))
    }
}

impl Forward for Arm {
    fn feed(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        match self {
            Self::Local(model) => Forward::feed(model, ids),
            Self::Remote(arm) => arm.feed(ids),
        }
    }

    fn fork(&mut self, rows: usize) -> Result<()> {
        match self {
            Self::Local(model) => Forward::fork(model, rows),
            Self::Remote(arm) => {
                arm.fork(rows);
                Ok(())
            }
        }
    }

    fn feed_rows(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        match self {
            Self::Local(model) => Forward::feed_rows(model, tokens),
            Self::Remote(arm) => arm.feed_rows(tokens),
        }
    }

    fn score_range(&mut self, ids: &[u32], positions: Range<usize>) -> Result<Vec<Vec<f32>>> {
        match self {
            Self::Local(model) => model.score_range(ids, positions),
            Self::Remote(arm) => arm.score_range(ids, positions),
        }
    }
}
