//! bf16 products for the few activation rows of a decoding step: y (m, n) = x (m, k) · Wᵀ with
//! W (n, k) in bf16 and m small (one row per sequence in the batch).
//!
//! Why not candle's matmul: its bf16 product has no fast path on x86 (bf16 decoded at 40 % of
//! f32's speed although it reads half the bytes). Here every weight row is read exactly once
//! from memory, widened to f32 in registers (a bf16 is the top half of an f32), and multiplied
//! with each activation row while it is in L1; the rows of W are cut into blocks that run on
//! rayon's pool, like the quantized shards of `linear.rs`. f32 and f16 stay with candle's gemm:
//! the same loop over them measured no faster (README, "Quantized and half-precision
//! decoding").
//!
//! The AVX2/FMA kernel is chosen at run time; other CPUs get a portable loop with the same
//! results up to summation order.

use half::bf16;
use rayon::prelude::*;

/// Blocks smaller than this many weight elements are not worth a rayon task.
const MIN_BLOCK_ELEMENTS: usize = 32 * 1024;

/// y = x · Wᵀ for `x` of m rows of length k (row-major) and `w` of n rows of length k; the
/// result is (m, n) row-major. Panics if the slice lengths do not match m, n, k (a caller bug:
/// `Linear` checks shapes before calling).
pub fn matmul_rows(x: &[f32], m: usize, w: &[bf16], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(x.len(), m * k, "activation rows");
    assert_eq!(w.len(), n * k, "weight rows");
    let kernel = Kernel::detect();
    // Weight-row major output (n, m): each block writes one contiguous run.
    let mut out_t = vec![0f32; n * m];
    let threads = rayon::current_num_threads().max(1);
    // A few blocks per thread, so a descheduled worker's share is picked up by the other.
    let block = n
        .div_ceil(threads * 4)
        .max(MIN_BLOCK_ELEMENTS.div_ceil(k.max(1)))
        .max(1);
    let run_block = |(b, chunk): (usize, &mut [f32])| {
        let first = b * block;
        for (i, out) in chunk.chunks_exact_mut(m).enumerate() {
            let j = first + i;
            for (r, y) in out.iter_mut().enumerate() {
                *y = kernel.dot(w, j, k, &x[r * k..(r + 1) * k]);
            }
        }
    };
    if threads == 1 || n <= block {
        out_t.chunks_mut(block * m).enumerate().for_each(run_block);
    } else {
        out_t
            .par_chunks_mut(block * m)
            .enumerate()
            .for_each(run_block);
    }
    if m == 1 {
        return out_t;
    }
    let mut out = vec![0f32; m * n];
    for (j, row) in out_t.chunks_exact(m).enumerate() {
        for (r, &v) in row.iter().enumerate() {
            out[r * n + j] = v;
        }
    }
    out
}

/// Which implementation of the dot product this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Self::Avx2;
        }
        Self::Portable
    }

    /// Row j of w (length k) · x.
    #[inline]
    fn dot(self, w: &[bf16], j: usize, k: usize, x: &[f32]) -> f32 {
        let row = &w[j * k..(j + 1) * k];
        match self {
            Self::Portable => portable::dot(row, x),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` chose this kernel only after finding avx2 and fma.
            Self::Avx2 => unsafe { avx2::dot_bf16(row, x) },
        }
    }
}

mod portable {
    use half::bf16;

    /// Sixteen independent sums, so the compiler can keep them in vector registers.
    #[inline]
    pub fn dot(w: &[bf16], x: &[f32]) -> f32 {
        let to_f32 = bf16::to_f32;
        let mut acc = [0f32; 16];
        let wc = w.chunks_exact(16);
        let xc = x.chunks_exact(16);
        let tail: f32 = wc
            .remainder()
            .iter()
            .zip(xc.remainder())
            .map(|(&a, &b)| to_f32(a) * b)
            .sum();
        for (w16, x16) in wc.zip(xc) {
            for i in 0..16 {
                acc[i] += to_f32(w16[i]) * x16[i];
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    // Named by path: the glob below brings std's own (unstable) `bf16` type.
    use std::arch::x86_64::*;

    /// Sum of the eight lanes.
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// One dot-product function per weight type: thirty-two weights per step in four
    /// independent accumulators (the FMA latency would otherwise bound one row's speed below the
    /// memory's). `$load8` turns the eight weights at a pointer into f32 lanes. A macro rather
    /// than a generic function with closures, so every intrinsic is compiled inside the
    /// `target_feature` function and inlined.
    macro_rules! dot_fn {
        ($name:ident, $t:ty, $to_f32:expr, |$p:ident| $load8:expr) => {
            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn $name(w: &[$t], x: &[f32]) -> f32 {
                let n = w.len().min(x.len());
                let body = n - n % 32;
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                while i < body {
                    for (a, acc) in acc.iter_mut().enumerate() {
                        let o = i + 8 * a;
                        // SAFETY: o + 8 <= body <= n, and both slices hold at least n elements.
                        let (wv, xv) = unsafe {
                            let $p = w.as_ptr().add(o);
                            ($load8, _mm256_loadu_ps(x.as_ptr().add(o)))
                        };
                        *acc = _mm256_fmadd_ps(wv, xv, *acc);
                    }
                    i += 32;
                }
                let sum =
                    _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                let tail: f32 = w[body..n]
                    .iter()
                    .zip(&x[body..n])
                    .map(|(&a, &b)| $to_f32(a) * b)
                    .sum();
                hsum(sum) + tail
            }
        };
    }

    // bf16 is the top half of an f32: widen to 32 bits and shift into place.
    dot_fn!(dot_bf16, half::bf16, half::bf16::to_f32, |p| {
        _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())),
            16,
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[j * k + i] as f64)
                    .sum();
                y[r * n + j] = s as f32;
            }
        }
        y
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        // A small LCG: deterministic values in [-1, 1) without a random-number crate.
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Shapes with k not a multiple of the 32-wide step (tails), one and several rows, and n
    /// spanning several rayon blocks.
    const SHAPES: [(usize, usize, usize); 4] =
        [(1, 3, 5), (1, 700, 96), (3, 129, 70), (4, 90, 1031)];

    #[test]
    fn products_match_a_double_precision_reference() {
        for (m, n, k) in SHAPES {
            let x = data(m * k, 1);
            let w: Vec<bf16> = data(n * k, 2).into_iter().map(bf16::from_f32).collect();
            // The reference multiplies the same (rounded) weights exactly.
            let exact: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
            let got = matmul_rows(&x, m, &w, n, k);
            let want = reference(&x, m, &exact, n, k);
            assert_eq!(got.len(), m * n);
            let err = max_diff(&got, &want);
            assert!(err < 1e-5 * k as f32, "({m},{n},{k}): off by {err}");
        }
    }

    #[test]
    fn portable_and_detected_kernels_agree() {
        let (n, k) = (40, 333);
        let x = data(k, 3);
        let w = data(n * k, 4);
        let w: Vec<bf16> = w.into_iter().map(bf16::from_f32).collect();
        for j in 0..n {
            let a = Kernel::Portable.dot(&w, j, k, &x);
            let b = Kernel::detect().dot(&w, j, k, &x);
            assert!((a - b).abs() < 1e-4, "row {j}: {a} vs {b}");
        }
    }
}
