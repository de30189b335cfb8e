//! Products for the few activation rows of a decoding step: y (m, n) = x (m, k) · Wᵀ with
//! W (n, k) dense in f32, f16 or bf16 and m small (one row per sequence in the batch).
//!
//! Why not candle's matmul: its gemm is built for many rows, and for one row it neither reads
//! the weights at memory speed nor splits the product usefully over threads; its bf16 product
//! has no fast path on x86 at all. Here every weight row is read exactly once from memory,
//! widened to f32 in registers, and multiplied with each activation row while it is in L1; the
//! rows of W are cut into blocks that run on rayon's pool, like the quantized shards of
//! `linear.rs`.
//!
//! The AVX2/FMA kernels (with F16C for f16) are chosen at run time; other CPUs get a portable
//! loop with the same results up to summation order.

use half::{bf16, f16};
use rayon::prelude::*;

/// Blocks smaller than this many weight elements are not worth a rayon task.
const MIN_BLOCK_ELEMENTS: usize = 32 * 1024;

/// A weight element type the kernels read.
pub trait GemvWeight: Copy + Send + Sync {
    /// Row · x with the fastest kernel this CPU has.
    fn dot(kernel: Kernel, row: &[Self], x: &[f32]) -> f32;
}

/// y = x · Wᵀ for `x` of m rows of length k (row-major) and `w` of n rows of length k; the
/// result is (m, n) row-major. The rows of W are cut into blocks (`block_height`) that run on
/// rayon's pool. Panics if the slice lengths do not match m, n, k (a caller bug: `Linear`
/// checks shapes before calling).
pub fn matmul_rows<W: GemvWeight>(x: &[f32], m: usize, w: &[W], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(w.len(), n * k, "weight rows");
    let block = block_height(n, k);
    if n <= block {
        return matmul_block(x, m, w, n, k);
    }
    let blocks: Vec<Vec<f32>> = w
        .par_chunks(block * k)
        .map(|rows| matmul_block(x, m, rows, rows.len() / k, k))
        .collect();
    let mut out = vec![0f32; m * n];
    for (b, part) in blocks.iter().enumerate() {
        let count = part.len() / m.max(1);
        for (r, values) in part.chunks_exact(count.max(1)).enumerate() {
            out[r * n + b * block..][..count].copy_from_slice(values);
        }
    }
    out
}

/// How many rows of an (n, k) weight make one parallel block: a few blocks per thread, so a
/// descheduled worker's share is picked up by another, but none too small to be worth a task.
pub fn block_height(n: usize, k: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    n.div_ceil(threads * 4)
        .max(MIN_BLOCK_ELEMENTS.div_ceil(k.max(1)))
        .max(1)
}

/// y = x · Wᵀ on the calling thread, (m, n) row-major; same contract as `matmul_rows`.
pub fn matmul_block<W: GemvWeight>(x: &[f32], m: usize, w: &[W], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(x.len(), m * k, "activation rows");
    assert_eq!(w.len(), n * k, "weight rows");
    let kernel = Kernel::detect();
    let mut out = vec![0f32; m * n];
    // Each weight row is read once and multiplied with every activation row while in L1.
    for (j, row) in w.chunks_exact(k.max(1)).enumerate() {
        for r in 0..m {
            out[r * n + j] = W::dot(kernel, row, &x[r * k..(r + 1) * k]);
        }
    }
    out
}

/// a · b for two f32 vectors of the same length, with the fastest kernel this CPU has.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    f32::dot(Kernel::detect(), a, b)
}

/// out += a · x, elementwise (attention's weighted sum of value vectors).
pub fn add_scaled(out: &mut [f32], a: f32, x: &[f32]) {
    match Kernel::detect() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only `detect` makes a `Kernel::Avx2` (see `Detected`), and only after
        // finding avx2 and fma, all `avx2::add_scaled` asks.
        Kernel::Avx2 { .. } => unsafe { avx2::add_scaled(out, a, x) },
        Kernel::Portable => out.iter_mut().zip(x).for_each(|(o, x)| *o += a * x),
    }
}

/// Which implementation of the dot products this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Portable,
    /// AVX2 and FMA; `f16c` says whether f16 can be widened in hardware too.
    #[cfg(target_arch = "x86_64")]
    Avx2 {
        f16c: bool,
        detected: Detected,
    },
}

/// Proof that `Kernel::detect` made this value: its field is private to this module, so no other
/// code can build a `Kernel::Avx2` claiming features the CPU lacks, and the safe `dot`s below
/// may rely on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detected(());

impl Kernel {
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Self::Avx2 {
                f16c: std::arch::is_x86_feature_detected!("f16c"),
                detected: Detected(()),
            };
        }
        Self::Portable
    }
}

impl GemvWeight for f32 {
    #[inline]
    fn dot(kernel: Kernel, row: &[f32], x: &[f32]) -> f32 {
        match kernel {
            Kernel::Portable => portable::dot(row, x, |v| v),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only `detect` makes a `Kernel::Avx2` (see `Detected`), and only after
            // finding avx2 and fma, all `avx2::dot_f32` asks.
            Kernel::Avx2 { .. } => unsafe { avx2::dot_f32(row, x) },
        }
    }
}

impl GemvWeight for bf16 {
    #[inline]
    fn dot(kernel: Kernel, row: &[bf16], x: &[f32]) -> f32 {
        match kernel {
            Kernel::Portable => portable::dot(row, x, bf16::to_f32),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only `detect` makes a `Kernel::Avx2` (see `Detected`), and only after
            // finding avx2 and fma, all `avx2::dot_bf16` asks.
            Kernel::Avx2 { .. } => unsafe { avx2::dot_bf16(row, x) },
        }
    }
}

impl GemvWeight for f16 {
    #[inline]
    fn dot(kernel: Kernel, row: &[f16], x: &[f32]) -> f32 {
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only `detect` makes a `Kernel::Avx2` (see `Detected`), and it sets `f16c`
            // only after finding avx2, fma and f16c, all `avx2::dot_f16` asks.
            Kernel::Avx2 { f16c: true, .. } => unsafe { avx2::dot_f16(row, x) },
            _ => portable::dot(row, x, f16::to_f32),
        }
    }
}

mod portable {
    /// Sixteen independent sums, so the compiler can keep them in vector registers.
    #[inline]
    pub fn dot<T: Copy>(w: &[T], x: &[f32], to_f32: impl Fn(T) -> f32) -> f32 {
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
    ///
    /// # Safety
    /// A `target_feature` function: safe to call from functions that enable avx2 and fma (the
    /// kernels below, its only callers); anywhere else the caller must know the CPU has them.
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
        ($name:ident, $features:literal, $t:ty, $to_f32:expr, |$p:ident| $load8:expr) => {
            /// The dot product of `w` and `x` over their common length.
            ///
            /// # Safety
            #[doc = concat!("The CPU must support ", $features, " (`Kernel::detect` checks).")]
            /// Any lengths and alignments are fine: the products stop at the shorter slice and
            /// the loads are unaligned.
            #[target_feature(enable = $features)]
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

    dot_fn!(dot_f32, "avx2,fma", f32, |v: f32| v, |p| _mm256_loadu_ps(p));

    /// out += a · x over their common length.
    ///
    /// # Safety
    /// The CPU must support avx2 and fma (`Kernel::detect` checks). Any lengths and alignments
    /// are fine: the sum stops at the shorter slice and the loads and stores are unaligned.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn add_scaled(out: &mut [f32], a: f32, x: &[f32]) {
        let n = out.len().min(x.len());
        let body = n - n % 8;
        let av = _mm256_set1_ps(a);
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 <= body <= n, and both slices hold at least n elements.
            unsafe {
                let o = out.as_mut_ptr().add(i);
                let sum =
                    _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(o));
                _mm256_storeu_ps(o, sum);
            }
        }
        for (o, x) in out[body..n].iter_mut().zip(&x[body..n]) {
            *o += a * x;
        }
    }

    // bf16 is the top half of an f32: widen to 32 bits and shift into place.
    dot_fn!(dot_bf16, "avx2,fma", half::bf16, half::bf16::to_f32, |p| {
        _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())),
            16,
        ))
    });

    // F16C widens eight halves at once.
    dot_fn!(
        dot_f16,
        "avx2,fma,f16c",
        half::f16,
        half::f16::to_f32,
        |p| { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// x (m, k) · wᵀ (w: n rows of k) in f64, rounded to f32 at the end: the reference for the
    /// products here and for `qgemv`'s (with its dequantized weights).
    pub(crate) fn reference(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
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
            let w = data(n * k, 2);
            // The reference multiplies the same (rounded) weights exactly.
            let check = |got: Vec<f32>, exact: Vec<f32>, format: &str| {
                let want = reference(&x, m, &exact, n, k);
                assert_eq!(got.len(), m * n);
                let err = max_diff(&got, &want);
                assert!(
                    err < 1e-5 * k as f32,
                    "{format} ({m},{n},{k}): off by {err}"
                );
            };
            check(matmul_rows(&x, m, &w, n, k), w.clone(), "f32");
            let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            let exact = w16.iter().map(|v| v.to_f32()).collect();
            check(matmul_rows(&x, m, &w16, n, k), exact, "f16");
            let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            let exact = wb.iter().map(|v| v.to_f32()).collect();
            check(matmul_rows(&x, m, &wb, n, k), exact, "bf16");
        }
    }

    #[test]
    fn add_scaled_adds_a_multiple_with_tails() {
        for len in [1, 8, 13, 64, 67] {
            let x = data(len, 5);
            let start = data(len, 6);
            let mut out = start.clone();
            add_scaled(&mut out, -0.75, &x);
            for i in 0..len {
                let want = start[i] + -0.75 * x[i];
                assert!((out[i] - want).abs() < 1e-6, "len {len}, element {i}");
            }
        }
    }

    #[test]
    fn portable_and_detected_kernels_agree_for_every_weight_type() {
        let (n, k) = (40, 333);
        let x = data(k, 3);
        let w = data(n * k, 4);
        let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
        let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        let detected = Kernel::detect();
        for j in 0..n {
            let rows = j * k..(j + 1) * k;
            let pairs = [
                (
                    f32::dot(Kernel::Portable, &w[rows.clone()], &x),
                    f32::dot(detected, &w[rows.clone()], &x),
                ),
                (
                    f16::dot(Kernel::Portable, &w16[rows.clone()], &x),
                    f16::dot(detected, &w16[rows.clone()], &x),
                ),
                (
                    bf16::dot(Kernel::Portable, &wb[rows.clone()], &x),
                    bf16::dot(detected, &wb[rows], &x),
                ),
            ];
            for (a, b) in pairs {
                assert!((a - b).abs() < 1e-4, "row {j}: {a} vs {b}");
            }
        }
    }
}
