//! An ARM served by another engine (`--arm NAME=URL`): each position gives the server's top K
//! log-probs, and the probability they leave is spread evenly over the tokens it did not
//! return. For a true top K that completion is a distribution (it sums to one, so the guide's
//! normaliser is 0) that never ranks an unreturned token above a returned one: each of them
//! holds at most the K-th token's probability, so their average does too (a list that breaks
//! this gets the K-th value instead). With K covering the vocabulary the row is the served
//! model's exact log-softmax.

use std::time::Duration;

use crate::engine::error::Result;
use crate::engine::remote::RemoteBase;
use crate::engine::remote::protocol::TopList;

pub struct RemoteArm {
    pub remote: RemoteBase,
}

impl RemoteArm {
    pub fn new(remote: RemoteBase) -> Self {
        Self { remote }
    }

    pub fn vocab_size(&self) -> usize {
        self.remote.vocab_size()
    }

    /// Append `ids`; the log-probs of the position after them (see the module comment).
    pub fn feed(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        let top = self.remote.feed(ids)?;
        Ok(completed_row(&top, self.vocab_size()))
    }

    pub fn fork(&mut self, rows: usize) {
        self.remote.fork(rows);
    }

    pub fn feed_rows(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let vocab = self.vocab_size();
        let tops = self.remote.feed_rows(tokens)?;
        Ok(tops.iter().map(|top| completed_row(top, vocab)).collect())
    }

    /// Teacher forcing: the rows predicting `ids[p + 1]` for `p` in `positions`, one request
    /// per position, sent side by side.
    pub fn score_range(
        &mut self,
        ids: &[u32],
        positions: std::ops::Range<usize>,
    ) -> Result<Vec<Vec<f32>>> {
        let vocab = self.vocab_size();
        let tops = self.remote.score_positions(ids, positions)?;
        Ok(tops.iter().map(|top| completed_row(top, vocab)).collect())
    }

    pub fn take_forward_time(&mut self) -> Duration {
        self.remote.take_request_time()
    }
}

/// A full row of log-probs over `vocab` from a server's `top` list: the listed ids keep their
/// values, every other id gets an equal share of the probability they leave. Ids at or past
/// `vocab` are dropped.
pub fn completed_row(top: &TopList, vocab: usize) -> Vec<f32> {
    let mut row = vec![0.0f32; vocab];
    let mut listed = vec![false; vocab];
    let mut count = 0;
    let mut mass = 0.0f64;
    let mut smallest = f32::INFINITY;
    for &(id, lp) in top {
        let id = id as usize;
        if id < vocab && !listed[id] {
            listed[id] = true;
            row[id] = lp;
            count += 1;
            mass += f64::from(lp).exp();
            smallest = smallest.min(lp);
        }
    }
    if count < vocab {
        // Rounding can leave the listed mass a hair above one: the rest then gets almost none.
        let share = ((1.0 - mass).max(f64::MIN_POSITIVE) / (vocab - count) as f64).ln() as f32;
        let fill = share.min(smallest);
        for (value, _) in row.iter_mut().zip(&listed).filter(|(_, l)| !**l) {
            *value = fill;
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_the_mass_is_shared_evenly_and_the_row_sums_to_one() {
        // 0.5 and 0.3 listed of 5 tokens: 0.2 left for 3 tokens.
        let top = vec![(3, 0.5f32.ln()), (0, 0.3f32.ln())];
        let row = completed_row(&top, 5);
        let share = (0.2f32 / 3.0).ln();
        let want = [0.3f32.ln(), share, share, 0.5f32.ln(), share];
        for (got, want) in row.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{row:?}");
        }
        let total: f32 = row.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn an_unlisted_token_never_outranks_a_listed_one() {
        // Listed mass 0.1 over 2 tokens of 3: the one left would get 0.9, more than the
        // listed ones, which no true distribution with this top 2 allows; it gets the K-th.
        let top = vec![(0, 0.06f32.ln()), (1, 0.04f32.ln())];
        let row = completed_row(&top, 3);
        assert_eq!(row[2], 0.04f32.ln());
    }

    #[test]
    fn the_whole_vocabulary_is_kept_as_served_and_ids_past_it_are_dropped() {
        let top = vec![(1, -0.1), (0, -2.4), (7, -5.0)];
        assert_eq!(completed_row(&top, 2), vec![-2.4, -0.1]);
    }
}
