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

/// What a served base's step row was built from, kept so that the bounds can be replaced by
/// exact log-probs ([`fill_bounds`]) and a greedy choice checked ([`settles_greedy`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The candidates whose base log-prob came from the server.
    pub exact_ids: Vec<u32>,
    /// The candidates holding the bound: ARMs' top tokens the server did not return.
    pub bounded: Vec<u32>,
    /// The K-th log-prob of the server's top list: no token outside that list has more.
    pub bound: f32,
    /// The K the server and the ARMs' candidates were taken with.
    pub k: usize,
}

/// The base's log-probs over the shared vocabulary (`vocab` long) for one position, from the
/// server's `top` list and the ARMs' logits (`arm_rows`, each at least `vocab` long): the
/// server's value for what it returned, the bound for the ARMs' top `k` it did not, minus
/// infinity elsewhere. Server ids at or past `vocab` (added tokens the ARMs lack) are dropped.
///
/// The bound is the `k`-th largest value returned, not the smallest: a reply may carry a few
/// exact values beyond its top K (vLLM's echoed prompt token), and those are no bound on
/// what the top K left out.
pub fn base_row(
    top: &[(u32, f32)],
    arm_rows: &[&[f32]],
    k: usize,
    vocab: usize,
) -> (Vec<f32>, Candidates, Served) {
    let mut row = vec![f32::NEG_INFINITY; vocab];
    let mut known = vec![false; vocab];
    let mut exact_ids = Vec::with_capacity(top.len());
    for &(id, lp) in top {
        if (id as usize) < vocab && !known[id as usize] {
            row[id as usize] = lp;
            known[id as usize] = true;
            exact_ids.push(id);
        }
    }
    let mut values: Vec<f32> = exact_ids.iter().map(|&id| row[id as usize]).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    let bound = values
        .get(k.clamp(1, values.len().max(1)) - 1)
        .copied()
        .unwrap_or(0.0);
    let mut bounded = Vec::new();
    if exact_ids.len() < vocab {
        for arm in arm_rows {
            for id in fastmath::top_k(&arm[..vocab], k) {
                if !known[id] {
                    row[id] = bound;
                    known[id] = true;
                    bounded.push(id as u32);
                }
            }
        }
    }
    let candidates = Candidates {
        count: exact_ids.len() + bounded.len(),
        exact: bounded.is_empty(),
    };
    let served = Served {
        exact_ids,
        bounded,
        bound,
        k,
    };
    (row, candidates, served)
}

/// Replace the bounds in `row` by the exact log-probs the server gave for them (`exact`, from
/// a request naming the bounded ids). Ids not asked for are ignored. Whether every bound was
/// answered: a server that ignores the request's ids answers none.
pub fn fill_bounds(
    row: &mut [f32],
    candidates: &mut Candidates,
    served: &mut Served,
    exact: &[(u32, f32)],
) -> bool {
    for &(id, lp) in exact {
        if let Some(at) = served.bounded.iter().position(|&b| b == id) {
            served.bounded.swap_remove(at);
            served.exact_ids.push(id);
            row[id as usize] = lp;
        }
    }
    candidates.exact = served.bounded.is_empty();
    candidates.exact
}

/// Whether greedy decoding's choice `chosen` over a candidate row is the token exact decoding
/// would choose, so that asking the server for more log-probs cannot change it.
/// `base_row` and `served` are [`base_row`]'s (bounds perhaps filled); `arm_rows` and `arm_lse`
/// are the ARMs' logits and log-sum-exps, `weights` theirs.
///
/// The choice stands when (1) its own base log-prob came from the server (a bound would
/// overrate it), and (2) no token outside the candidates can score higher: such a token's base
/// log-prob is at most the server's K-th, and each ARM's log-prob at most that ARM's K-th
/// (a negative weight flips that to the ARM's smallest). Candidates holding a bound were
/// overrated and still lost, so their true scores lose too.
pub fn settles_greedy(
    base_row: &[f32],
    served: &Served,
    arm_rows: &[&[f32]],
    arm_lse: &[f32],
    weights: &[f32],
    chosen: usize,
) -> bool {
    let vocab = base_row.len();
    if chosen >= vocab || !served.exact_ids.iter().any(|&id| id as usize == chosen) {
        return false;
    }
    // `exact_ids` holds distinct in-vocabulary ids ([`base_row`]).
    if served.exact_ids.len() >= vocab {
        return true;
    }
    let k = served.k;
    let mut ceiling = served.bound;
    let mut score = base_row[chosen];
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
        let (row, c, _) = base_row(&top, &[&arm], 2, 6);
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
        let (_, c, _) = base_row(&top, &[&arm], 2, 6);
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
        let (row, c, _) = base_row(&top, &[&arm], 1, 3);
        assert_eq!(row, vec![-1.0, -1.1, -1.2]);
        assert_eq!(
            c,
            Candidates {
                count: 3,
                exact: true
            }
        );
    }

    #[test]
    fn the_bound_is_the_kth_value_even_when_the_reply_carries_more() {
        // vLLM's echo gives the prompt token beside the top 2: it is exact, but no bound on
        // what the top 2 left out.
        let top = [(0, -0.5), (1, -1.0), (2, -7.0)];
        let arm = [0.0, 0.0, 0.0, 3.0];
        let (row, c, served) = base_row(&top, &[&arm], 2, 4);
        assert_eq!(served.bound, -1.0);
        assert_eq!(row, vec![-0.5, -1.0, -7.0, -1.0]);
        assert_eq!((c.count, c.exact), (4, false));
        assert_eq!(served.bounded, vec![3]);
    }

    #[test]
    fn filled_bounds_become_exact_and_settle_a_choice_they_held() {
        // The ARM's top 2 are 3 and 4; the server's top 2 lack 3: a bound, so unsettled.
        let top = [(4, -0.5), (1, -1.5)];
        let arm = [0.0, 0.0, 0.0, 6.0, 1.0, 0.0];
        let lse = fastmath::log_sum_exp(&arm);
        let (mut row, mut c, mut served) = base_row(&top, &[&arm], 2, 6);
        assert!(!settles_greedy(&row, &served, &[&arm], &[lse], &[1.0], 3));
        // The server's exact value for 3 (and an id not asked for, which is ignored).
        assert!(fill_bounds(
            &mut row,
            &mut c,
            &mut served,
            &[(3, -1.8), (0, -9.0)]
        ));
        assert_eq!(
            row,
            vec![
                f32::NEG_INFINITY,
                -1.5,
                f32::NEG_INFINITY,
                -1.8,
                -0.5,
                f32::NEG_INFINITY
            ]
        );
        assert!(c.exact && served.bounded.is_empty());
        // Now 3 scores -1.8 + 6 - lse against a hidden token's -1.5 + 1 - lse: settled, and
        // exact decoding agrees for any hidden value below the K-th.
        assert!(settles_greedy(&row, &served, &[&arm], &[lse], &[1.0], 3));
        let base = [-2.0, -1.5, -9.0, -1.8, -0.5, -3.0];
        assert_eq!(exact_choice(&base, &arm, 1.0), 3);
        // A reply without the asked id leaves the bound in place.
        let (mut row, mut c, mut served) = base_row(&top, &[&arm], 2, 6);
        assert!(!fill_bounds(&mut row, &mut c, &mut served, &[(4, -0.5)]));
        assert!(!c.exact && row[3] == -1.5);
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
        let (row, _, served) = base_row(&top, &[&arm], 2, 6);
        let lse = fastmath::log_sum_exp(&arm);
        let chosen = fastmath::argmax(&[row[0], row[1], row[2], row[3] + 6.0, row[4], row[5]]);
        assert_eq!(chosen, 3);
        assert!(!settles_greedy(&row, &served, &[&arm], &[lse], &[1.0], 3));
        // Its true base log-prob is far lower: exact decoding keeps the server's best.
        let base = [-9.0, -1.5, -9.0, -12.0, -0.5, -9.0];
        assert_eq!(exact_choice(&base, &arm, 1.0), 4);
    }

    #[test]
    fn a_served_choice_that_beats_the_ceiling_is_settled_and_equals_exact_decoding() {
        let top = [(4, -0.2), (1, -2.5)];
        let arm = [0.0, 1.0, 0.0, 0.5, 0.3, 0.0];
        let lse = fastmath::log_sum_exp(&arm);
        let (row, _, served) = base_row(&top, &[&arm], 2, 6);
        // Candidates 4, 1 (served) and 3 (bound -2.5); token 4 wins: -0.2 + 0.3 beats
        // -2.5 + 1.0, and a token outside both lists scores at most -2.5 + 0.5 (the server's
        // K-th plus the ARM's K-th).
        assert!(settles_greedy(&row, &served, &[&arm], &[lse], &[1.0], 4));
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
        let (row, _, served) = base_row(&top, &[&arm], 2, 5);
        // Candidates 0, 1 (served), 2 and 3 (bound -1.05). 2 wins with the bound: not settled.
        assert!(!settles_greedy(&row, &served, &[&arm], &[lse], &[1.0], 2));
        // With the ARM weighted 0 only the served list matters: settled on token 0.
        assert!(settles_greedy(&row, &served, &[&arm], &[lse], &[0.0], 0));
        // Weighted 3, token 0 (ARM 0.0) cannot rule out a hidden token with the ARM's K-th
        // 0.8: -1.05 + 3 * 0.8 > -1.0 + 0.
        assert!(!settles_greedy(&row, &served, &[&arm], &[lse], &[3.0], 0));
        // A negative weight: the ceiling takes the ARM's smallest logit (0.0), so a hidden
        // token scores at most -1.05 - 0, below token 0's -1.0 - 0: settled.
        assert!(settles_greedy(&row, &served, &[&arm], &[lse], &[-1.0], 0));
    }

    #[test]
    fn the_whole_vocabulary_settles_every_choice() {
        let top = [(0, -1.0), (2, -1.2), (1, -1.1)];
        let arm = [0.0, 9.0, 0.0];
        let lse = fastmath::log_sum_exp(&arm);
        let (row, _, served) = base_row(&top, &[&arm], 1, 3);
        assert!(settles_greedy(&row, &served, &[&arm], &[lse], &[1.0], 1));
    }
}
