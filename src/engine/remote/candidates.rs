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

/// What a served base's step row was built from, kept so that a greedy choice can be checked
/// ([`settles_greedy`]) and the step asked again with a larger K.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The ids the server returned, most likely first.
    pub ids: Vec<u32>,
    /// The K the server and the ARMs' candidates were taken with.
    pub k: usize,
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

/// Whether greedy decoding's choice `chosen` over a candidate row is the token exact decoding
/// would choose, so that asking the server for more log-probs cannot change it.
/// `base_row` is [`base_row`]'s row built from the server's `served` ids with the ARMs' top
/// `k`; `arm_rows` and `arm_lse` are the ARMs' logits and log-sum-exps, `weights` theirs.
///
/// The choice stands when (1) its own base log-prob came from the server (a bound would
/// overrate it), and (2) no token outside the candidates can score higher: such a token's base
/// log-prob is at most the server's K-th, and each ARM's log-prob at most that ARM's K-th
/// (a negative weight flips that to the ARM's smallest). Candidates holding a bound were
/// overrated and still lost, so their true scores lose too.
pub fn settles_greedy(
    base_row: &[f32],
    served: &[u32],
    arm_rows: &[&[f32]],
    arm_lse: &[f32],
    weights: &[f32],
    k: usize,
    chosen: usize,
) -> bool {
    let vocab = base_row.len();
    if chosen >= vocab || !served.iter().any(|&id| id as usize == chosen) {
        return false;
    }
    let distinct = {
        let mut known = vec![false; vocab];
        served
            .iter()
            .filter(|&&id| {
                (id as usize) < vocab && !std::mem::replace(&mut known[id as usize], true)
            })
            .count()
    };
    if distinct >= vocab {
        return true;
    }
    let bound = served
        .iter()
        .filter(|&&id| (id as usize) < vocab)
        .map(|&id| base_row[id as usize])
        .fold(f32::INFINITY, f32::min);
    let mut score = base_row[chosen];
    let mut ceiling = bound;
    for ((arm, &lse), &w) in arm_rows.iter().zip(arm_lse).zip(weights) {
        if w == 0.0 {
            continue;
        }
        let arm = &arm[..vocab];
        score += w * (arm[chosen] - lse);
        let outside_best = if w > 0.0 {
            fastmath::top_k(arm, k)
                .into_iter()
                .map(|i| arm[i])
                .fold(f32::INFINITY, f32::min)
        } else {
            arm.iter().copied().fold(f32::INFINITY, f32::min)
        };
        ceiling += w * (outside_best - lse);
    }
    score >= ceiling
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

    /// Exact decoding's greedy choice on a full row: argmax of base + w * (arm - lse).
    fn exact_choice(base: &[f32], arm: &[f32], w: f32) -> usize {
        let lse = fastmath::log_sum_exp(arm);
        let score = |i: usize| base[i] + w * (arm[i] - lse);
        (0..base.len())
            .max_by(|&a, &b| score(a).total_cmp(&score(b)))
            .unwrap()
    }

    #[test]
    fn a_bounded_choice_is_not_settled() {
        // Server top 2 of 6; the ARM pushes token 3, whose base log-prob only has a bound.
        let top = [(4, -0.5), (1, -1.5)];
        let arm = [0.0, 0.0, 0.0, 6.0, 0.0, 0.0];
        let (row, _) = base_row(&top, &[&arm], 2, 6);
        let lse = fastmath::log_sum_exp(&arm);
        let chosen = fastmath::argmax(&[row[0], row[1], row[2], row[3] + 6.0, row[4], row[5]]);
        assert_eq!(chosen, 3);
        assert!(!settles_greedy(
            &row,
            &[4, 1],
            &[&arm],
            &[lse],
            &[1.0],
            2,
            3
        ));
        // Its true base log-prob is far lower: exact decoding keeps the server's best.
        let base = [-9.0, -1.5, -9.0, -12.0, -0.5, -9.0];
        assert_eq!(exact_choice(&base, &arm, 1.0), 4);
    }

    #[test]
    fn a_served_choice_that_beats_the_ceiling_is_settled_and_equals_exact_decoding() {
        let top = [(4, -0.2), (1, -2.5)];
        let arm = [0.0, 1.0, 0.0, 0.5, 0.3, 0.0];
        let lse = fastmath::log_sum_exp(&arm);
        let (row, _) = base_row(&top, &[&arm], 2, 6);
        // Candidates 4, 1 (served) and 3 (bound -2.5); token 4 wins: -0.2 + 0.3 beats
        // -2.5 + 1.0, and a token outside both lists scores at most -2.5 + 0.5 (the server's
        // K-th plus the ARM's K-th).
        assert!(settles_greedy(&row, &[4, 1], &[&arm], &[lse], &[1.0], 2, 4));
        // Any base row below the server's K-th outside its list gives the same choice.
        for hidden in [-2.5f32, -3.0, -30.0] {
            let base = [hidden, -2.5, hidden, hidden, -0.2, hidden];
            assert_eq!(exact_choice(&base, &arm, 1.0), 4);
        }
    }

    #[test]
    fn a_token_outside_every_list_can_unsettle_the_choice() {
        // The served best barely leads; a token outside both top lists could score up to the
        // server's K-th plus the ARM's K-th, which is more.
        let top = [(0, -1.0), (1, -1.05)];
        let arm = [0.0, 0.0, 0.9, 0.8, 0.0];
        let lse = fastmath::log_sum_exp(&arm);
        let (row, _) = base_row(&top, &[&arm], 2, 5);
        // Candidates 0, 1 (served), 2 and 3 (bound -1.05). 2 wins with the bound: not settled.
        assert!(!settles_greedy(
            &row,
            &[0, 1],
            &[&arm],
            &[lse],
            &[1.0],
            2,
            2
        ));
        // With the ARM weighted 0 only the served list matters: settled on token 0.
        assert!(settles_greedy(&row, &[0, 1], &[&arm], &[lse], &[0.0], 2, 0));
        // Weighted 3, token 0 (ARM 0.0) cannot rule out a hidden token with the ARM's K-th
        // 0.8: -1.05 + 3 * 0.8 > -1.0 + 0.
        assert!(!settles_greedy(
            &row,
            &[0, 1],
            &[&arm],
            &[lse],
            &[3.0],
            2,
            0
        ));
        // A negative weight: the ceiling takes the ARM's smallest logit (0.0), so a hidden
        // token scores at most -1.05 - 0, below token 0's -1.0 - 0: settled.
        assert!(settles_greedy(
            &row,
            &[0, 1],
            &[&arm],
            &[lse],
            &[-1.0],
            2,
            0
        ));
    }

    #[test]
    fn the_whole_vocabulary_settles_every_choice() {
        let top = [(0, -1.0), (2, -1.2), (1, -1.1)];
        let arm = [0.0, 9.0, 0.0];
        let lse = fastmath::log_sum_exp(&arm);
        let (row, _) = base_row(&top, &[&arm], 1, 3);
        assert!(settles_greedy(
            &row,
            &[0, 2, 1],
            &[&arm],
            &[lse],
            &[1.0],
            1,
            1
        ));
    }
}
