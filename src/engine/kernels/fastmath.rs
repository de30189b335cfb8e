//! Vocabulary-sized vector math for one decoding step, written so the compiler vectorises it.
//!
//! A guided step runs a log-sum-exp over the vocabulary once per model plus once for the guided
//! distribution; with a 32k vocabulary and libm's scalar `exp` that alone costs more than the
//! 3% overhead budget. The exponential below is branch-free (Cody–Waite range reduction and a
//! degree-6 polynomial, relative error ≈ 2e-7 — the size of f32 rounding) and deterministic, so
//! seeded sampling gives the same tokens on every machine.

/// e^x for x <= 0 (larger inputs are clamped to 0); returns 0 below about -87.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 0.0);
    // Round to nearest with the 1.5·2^23 trick: `f32::round` is a libm call on baseline x86-64
    // and would stop vectorisation.
    const ROUNDER: f32 = 12_582_912.0;
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    // The integer n also sits in the low mantissa bits of `shifted`: reading it from there
    // avoids a float-to-int conversion, which does not vectorise well.
    let n_int = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i32;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor to degree 6 on |r| <= ln2 / 2.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    // Below the clamp the true value is < 1.7e-38: report 0 rather than a denormal.
    if x <= -87.0 { 0.0 } else { p * scale }
}

/// Largest element (NEG_INFINITY for an empty slice).
pub fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    lanes.iter().copied().fold(tail, f32::max)
}

/// Σ exp(v - shift), accumulated in f32 lanes per block and in f64 across blocks, so rounding
/// error stays near f32 precision even for 150k-entry vocabularies.
pub fn sum_exp_shifted(values: &[f32], shift: f32) -> f64 {
    let mut total = 0f64;
    for block in values.chunks(1024) {
        let mut lanes = [0f32; 8];
        let mut chunks = block.chunks_exact(8);
        for chunk in &mut chunks {
            for (lane, &v) in lanes.iter_mut().zip(chunk) {
                *lane += exp_nonpositive(v - shift);
            }
        }
        let tail: f32 = chunks
            .remainder()
            .iter()
            .map(|&v| exp_nonpositive(v - shift))
            .sum();
        total += lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64;
    }
    total
}

/// log Σ exp(v), the normaliser of log_softmax.
pub fn log_sum_exp(values: &[f32]) -> f32 {
    let m = max(values);
    if !m.is_finite() {
        return m;
    }
    m + sum_exp_shifted(values, m).ln() as f32
}

/// exp(v - shift) into `out`, for probabilities once the normaliser is known.
pub fn exp_shifted_into(values: &[f32], shift: f32, out: &mut Vec<f32>) {
    out.clear();
    out.extend(values.iter().map(|&v| exp_nonpositive(v - shift)));
}

/// Index of the largest element; the lowest index wins ties, as torch.argmax does.
pub fn argmax(values: &[f32]) -> usize {
    let m = max(values);
    values.iter().position(|&v| v == m).unwrap_or(0)
}

/// Indices of the `k` largest elements, largest first (ties: lower index first), found with one
/// pass and a small sorted buffer instead of sorting the vocabulary.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let k = k.min(values.len());
    if k == 0 {
        return Vec::new();
    }
    if k > 64 {
        // Larger k: partial selection (O(n)), then sort the selected few.
        let mut idx: Vec<usize> = (0..values.len()).collect();
        let cmp = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
        idx.sort_unstable_by(cmp);
        return idx;
    }
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    let mut threshold = f32::NEG_INFINITY;
    for (i, &v) in values.iter().enumerate() {
        if best.len() == k && v <= threshold {
            continue;
        }
        // Insert keeping `best` sorted descending; equal values keep index order.
        let at = best.partition_point(|&(bv, _)| bv >= v);
        best.insert(at, (v, i));
        if best.len() > k {
            best.pop();
        }
        if best.len() == k {
            threshold = best[k - 1].0;
        }
    }
    best.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_to_f32_precision() {
        let mut worst = 0f64;
        for i in 0..200_000 {
            let x = -(i as f32) * 87.0 / 200_000.0;
            let exact = (x as f64).exp();
            let rel = ((exp_nonpositive(x) as f64 - exact) / exact).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(-200.0), 0.0);
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn log_sum_exp_matches_f64_reference() {
        let values: Vec<f32> = (0..32_003)
            .map(|i| ((i * 7919) % 1000) as f32 / 50.0 - 10.0)
            .collect();
        let m = values.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let reference = m + values
            .iter()
            .map(|&v| (v as f64 - m).exp())
            .sum::<f64>()
            .ln();
        assert!((log_sum_exp(&values) as f64 - reference).abs() < 1e-5);
    }

    #[test]
    fn top_k_agrees_with_a_full_sort() {
        let values: Vec<f32> = (0..5000).map(|i| ((i * 104_729) % 997) as f32).collect();
        let mut sorted: Vec<usize> = (0..values.len()).collect();
        sorted.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        for k in [1, 5, 64, 65, 300] {
            assert_eq!(top_k(&values, k), sorted[..k].to_vec(), "k = {k}");
        }
        assert_eq!(argmax(&values), sorted[0]);
    }
}
