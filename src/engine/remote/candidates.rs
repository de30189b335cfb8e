//! Guidance on a candidate set: a served base returns only its top K log-probs, so a step is
//! guided over the union of those and each local ARM's top K. A candidate the server did not
//! return gets the smallest log-prob it did return (the K-th): an upper bound on its true
//! log-prob, and the step is then marked inexact. Every other token gets minus infinity, so
//! the guided distribution is renormalised over the candidates. When the server returns the
//! whole vocabulary, every token is a candidate with its exact log-prob and the step equals
//! local decoding of the same weights.

use crate::engine::kernels::fastmath;

/// How one step's guided distribution was formed from a served base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidates {
    /// Tokens the guided distribution is spread over.
    pub count: usize,
    /// Every candidate's base log-prob came from the server (none is a bound).
    pub exact: bool,
}

/// The base's log-probs over the shared vocabulary (`vocab` long) for one position, from the
/// server's `top` list and the ARMs' logits (`arm_rows`, each at least `vocab` long): the
/// server's value for what it returned, the bound for the ARMs' top `k` it did not, minus
/// infinity elsewhere. Server ids at or past `vocab` (added tokens the ARMs lack) are dropped.
pub fn base_row(
    top: &[(u32, f32)],
    arm_rows: &[&[f32]],
    k: usize,
    vocab: usize,
) -> (Vec<f32>, Candidates) {
    let mut row = vec![f32::NEG_INFINITY; vocab];
    let mut known = vec![false; vocab];
    let mut count = 0;
    let mut bound = 0.0f32;
    for &(id, lp) in top {
        let id = id as usize;
        if id < vocab && !known[id] {
            row[id] = lp;
            known[id] = true;
            count += 1;
            bound = bound.min(lp);
        }
    }
    let mut exact = true;
    if count < vocab {
        for arm in arm_rows {
            for id in fastmath::top_k(&arm[..vocab], k) {
                if !known[id] {
                    row[id] = bound;
                    known[id] = true;
                    count += 1;
                    exact = false;
                }
            }
        }
    }
    (row, Candidates { count, exact })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arms_candidates_get_the_kth_logprob_as_a_bound() {
        // Server top 2 of 6: tokens 4 and 1. The ARM's top 2 are 1 and 3: 3 is new.
        let top = [(4, -0.5), (1, -1.5)];
        let arm = [0.0, 5.0, 0.0, 4.0, 0.0, 0.0];
        let (row, c) = base_row(&top, &[&arm], 2, 6);
        let ninf = f32::NEG_INFINITY;
        assert_eq!(row, vec![ninf, -1.5, ninf, -1.5, -0.5, ninf]);
        assert_eq!(
            c,
            Candidates {
                count: 3,
                exact: false
            }
        );
    }

    #[test]
    fn arm_candidates_inside_the_server_list_keep_it_exact() {
        let top = [(4, -0.5), (1, -1.5)];
        let arm = [0.0, 5.0, 0.0, 0.0, 4.0, 0.0];
        let (_, c) = base_row(&top, &[&arm], 2, 6);
        assert_eq!(
            c,
            Candidates {
                count: 2,
                exact: true
            }
        );
    }

    #[test]
    fn the_whole_vocabulary_is_exact_and_ids_past_it_are_dropped() {
        let top = [(0, -1.0), (2, -1.2), (1, -1.1), (3, -9.0)];
        let arm = [9.0, 0.0, 0.0];
        let (row, c) = base_row(&top, &[&arm], 1, 3);
        assert_eq!(row, vec![-1.0, -1.1, -1.2]);
        assert_eq!(
            c,
            Candidates {
                count: 3,
                exact: true
            }
        );
    }
}
