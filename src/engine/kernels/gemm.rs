//! Products for many activation rows (prompts) with AVX-512: y (m, n) = x (m, k) · Wᵀ for a
//! dense block of W (n, k) in f32, f16 or bf16, on the calling thread.
//!
//! Why not candle's gemm: the `gemm` crate keeps its AVX-512 kernels behind a nightly-only
//! feature, so on AVX-512 machines prompts ran its AVX2 microkernel (`x2x6`, 8 lanes) at half
//! the width the CPU has, and llama.cpp's f16 prompts ran 1.3x faster than genarm's.
//!
//! The layout: x is small (a prompt's rows) and shared by every block of W, so x is the operand
//! that is packed, once per product (`PackedRows`): panels of 32 rows, k-major, the 32 values
//! of one column side by side. W is read as stored, a block's rows widened to f32 with one
//! conversion per weight (a tile's rows at a time, so they stay in L1), shared by all rows of
//! x. A tile of 12 rows of W × 32 rows of x lives in 24 of the 32 vector registers while the
//! whole of k runs through it: per column, two loads of the panel and twelve broadcasts of W
//! feed 24 fused multiply-adds. Tiles are
//! written transposed (W's rows by x's rows) and turned once at the end.
//!
//! `linear.rs` runs the blocks of a weight on rayon's pool and calls this only where
//! `available()` (the AVX-512 kernel set is chosen, see `qgemv::Isa`); elsewhere candle's gemm.

use std::cell::RefCell;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// Rows of x per panel: two 16-lane vectors.
const PANEL: usize = 32;
/// Rows of W per tile: 12 × 2 accumulators leave registers for the panel and the broadcasts.
const TILE_ROWS: usize = 12;

/// A dense weight element the product widens to f32.
pub trait PanelWeight: Copy + Sync {
    /// `rows` as f32: the rows themselves where they are f32, else widened into `scratch`.
    fn widened<'a>(rows: &'a [Self], scratch: &'a mut Vec<f32>) -> &'a [f32];
}

impl PanelWeight for f32 {
    fn widened<'a>(rows: &'a [f32], _: &'a mut Vec<f32>) -> &'a [f32] {
        rows
    }
}

impl PanelWeight for f16 {
    fn widened<'a>(rows: &'a [f16], scratch: &'a mut Vec<f32>) -> &'a [f32] {
        let out = grown(scratch, rows.len());
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: `available()` said this CPU has AVX-512; the lengths are equal.
            unsafe { avx512::widen_f16(rows, out) };
            return out;
        }
        rows.convert_to_f32_slice(out);
        out
    }
}

impl PanelWeight for bf16 {
    fn widened<'a>(rows: &'a [bf16], scratch: &'a mut Vec<f32>) -> &'a [f32] {
        let out = grown(scratch, rows.len());
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: as for f16.
            unsafe { avx512::widen_bf16(rows, out) };
            return out;
        }
        rows.convert_to_f32_slice(out);
        out
    }
}

/// The first `len` values of `scratch`, grown (never shrunk) to hold them; their contents are
/// whatever was there, as every caller overwrites them all.
fn grown(scratch: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    &mut scratch[..len]
}

thread_local! {
    /// Each thread's widened weight rows, kept between products.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether the kernel runs here: the AVX-512 kernel set is the one chosen (not forced down to
/// AVX2 with `GENARM_QUANT_KERNEL=avx2`, so that a forced run measures an AVX2 machine).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use super::qgemv::Isa;
        Isa::detect() == Isa::Avx512Vnni
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// x (m, k) in panels of `PANEL` rows, each k-major: panel p, column c, row r at
/// `p * PANEL * k + c * PANEL + r`; rows past m are zero.
pub struct PackedRows {
    panels: Vec<f32>,
    m: usize,
    k: usize,
}

impl PackedRows {
    /// Packed x, or None where the kernel does not run here (`available`). Panics if `x` is
    /// not m rows of length k (a caller bug: `Linear` checks shapes before calling).
    pub fn new(x: &[f32], m: usize, k: usize) -> Option<Self> {
        assert_eq!(x.len(), m * k, "activation rows");
        if !available() {
            return None;
        }
        let mut panels = vec![0f32; m.div_ceil(PANEL) * PANEL * k];
        for (i, row) in x.chunks_exact(k.max(1)).enumerate() {
            let panel = &mut panels[(i / PANEL) * PANEL * k..][..PANEL * k];
            for (c, &value) in row.iter().enumerate() {
                panel[c * PANEL + i % PANEL] = value;
            }
        }
        Some(Self { panels, m, k })
    }

    /// (x · Wᵀ)ᵀ = W · xᵀ, (n, m) row-major: W's row j against every row of x at
    /// `[j * m..][..m]`, for `w` of n rows of length k. Transposed because that is how the
    /// tiles hold it; the caller places each block's columns anyway. Panics if `w` is not n
    /// rows of length k.
    pub fn transposed_product<W: PanelWeight>(&self, w: &[W], n: usize) -> Vec<f32> {
        let (m, k) = (self.m, self.k);
        assert_eq!(w.len(), n * k, "weight rows");
        let width = m.div_ceil(PANEL) * PANEL;
        if k == 0 {
            return vec![0f32; n * m];
        }
        // Every tile stores all its PANEL columns, so nothing needs clearing first.
        let mut out = vec![0f32; n * width];
        SCRATCH.with_borrow_mut(|wide| {
            #[cfg(target_arch = "x86_64")]
            for top in (0..n).step_by(TILE_ROWS) {
                let rows = TILE_ROWS.min(n - top);
                // Widened a tile at a time, so the f32 rows stay in L1 (a whole block
                // widened at once went through L2 and cost half as much as the products).
                let tile_rows = W::widened(&w[top * k..(top + rows) * k], wide);
                for (p, panel) in self.panels.chunks_exact(PANEL * k).enumerate() {
                    let tile = Tile {
                        w: tile_rows,
                        k,
                        panel,
                        out: &mut out[top * width + p * PANEL..],
                        out_stride: width,
                    };
                    // SAFETY: `new` found the AVX-512 kernel set on this CPU; the kernel
                    // checks every length it reads or writes.
                    unsafe { avx512::tile(tile, rows) };
                }
            }
        });
        if width != m {
            for j in 1..n {
                out.copy_within(j * width..j * width + m, j * m);
            }
            out.truncate(n * m);
        }
        out
    }
}

/// One tile's operands: up to `TILE_ROWS` rows of W (length k each, f32), the panel of x they
/// meet, and where the (rows, PANEL) results go (W's row r at `out[r * out_stride..][..PANEL]`).
#[cfg(target_arch = "x86_64")]
struct Tile<'a> {
    w: &'a [f32],
    k: usize,
    panel: &'a [f32],
    out: &'a mut [f32],
    out_stride: usize,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PANEL, TILE_ROWS, Tile};
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// f16 to f32, 16 values per instruction (half's slice conversion goes 8 at a time through
    /// a call per chunk, and widening cost a third of the kernel's time).
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `out` as long as `rows`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn widen_f16(rows: &[f16], out: &mut [f32]) {
        assert_eq!(rows.len(), out.len());
        let whole = rows.len() / 16 * 16;
        for i in (0..whole).step_by(16) {
            // SAFETY: i + 16 <= whole <= the length of both slices.
            unsafe {
                let halves = _mm256_loadu_si256(rows.as_ptr().add(i).cast());
                _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_cvtph_ps(halves));
            }
        }
        for i in whole..rows.len() {
            out[i] = rows[i].to_f32();
        }
    }

    /// bf16 to f32: each value's 16 bits become the high half of an f32.
    ///
    /// # Safety
    /// As `widen_f16`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn widen_bf16(rows: &[bf16], out: &mut [f32]) {
        assert_eq!(rows.len(), out.len());
        let whole = rows.len() / 16 * 16;
        for i in (0..whole).step_by(16) {
            // SAFETY: as in widen_f16.
            unsafe {
                let halves = _mm256_loadu_si256(rows.as_ptr().add(i).cast());
                let wide = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(halves));
                _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_castsi512_ps(wide));
            }
        }
        for i in whole..rows.len() {
            out[i] = rows[i].to_f32();
        }
    }

    /// The tile with `rows` (1..=6) rows of W.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    pub unsafe fn tile(t: Tile, rows: usize) {
        // The row count is a constant in each copy, so the accumulators stay in registers.
        // SAFETY: the caller guarantees AVX-512F, all `kernel` needs beyond its own checks.
        unsafe {
            match rows {
                1 => kernel::<1>(t),
                2 => kernel::<2>(t),
                3 => kernel::<3>(t),
                4 => kernel::<4>(t),
                5 => kernel::<5>(t),
                6 => kernel::<6>(t),
                7 => kernel::<7>(t),
                8 => kernel::<8>(t),
                9 => kernel::<9>(t),
                10 => kernel::<10>(t),
                11 => kernel::<11>(t),
                _ => kernel::<TILE_ROWS>(t),
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX-512F; the slices' lengths are checked here.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const R: usize>(t: Tile) {
        let k = t.k;
        assert!(t.w.len() >= R * k && t.panel.len() >= PANEL * k);
        assert!(R == 0 || t.out.len() >= (R - 1) * t.out_stride + PANEL);
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let w = t.w.as_ptr();
        let panel = t.panel.as_ptr();
        for c in 0..k {
            // SAFETY: c < k, so the panel's column c (PANEL values) and w[r * k + c] for r < R
            // are inside the slices checked above.
            unsafe {
                let lo = _mm512_loadu_ps(panel.add(c * PANEL));
                let hi = _mm512_loadu_ps(panel.add(c * PANEL + 16));
                for (r, row) in acc.iter_mut().enumerate() {
                    let v = _mm512_set1_ps(*w.add(r * k + c));
                    row[0] = _mm512_fmadd_ps(v, lo, row[0]);
                    row[1] = _mm512_fmadd_ps(v, hi, row[1]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            // SAFETY: row r's PANEL outputs are inside `out` (checked above).
            unsafe {
                let dst = t.out.as_mut_ptr().add(r * t.out_stride);
                _mm512_storeu_ps(dst, row[0]);
                _mm512_storeu_ps(dst.add(16), row[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product in f64, from the weights as f32.
    fn reference(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|c| f64::from(x[r * k + c]) * f64::from(w[j * k + c]))
                    .sum();
                y[r * n + j] = dot as f32;
            }
        }
        y
    }

    /// Each output within f32 summation error of the reference: k roundings, each at most
    /// f32's epsilon of the sum of the terms' magnitudes.
    fn assert_close(y: &[f32], x: &[f32], m: usize, w: &[f32], n: usize, k: usize) {
        let expected = reference(x, m, w, n, k);
        for r in 0..m {
            for j in 0..n {
                let magnitude: f64 = (0..k)
                    .map(|c| f64::from(x[r * k + c]).abs() * f64::from(w[j * k + c]).abs())
                    .sum();
                let bound = magnitude * k as f64 * f64::from(f32::EPSILON) + 1e-30;
                let (a, b) = (y[r * n + j], expected[r * n + j]);
                assert!(
                    f64::from((a - b).abs()) <= bound,
                    "m {m} n {n} k {k} at ({r}, {j}): {a} vs {b}"
                );
            }
        }
    }

    fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        (0..cols * rows)
            .map(|i| a[(i % rows) * cols + i / rows])
            .collect()
    }

    fn values(count: usize, seed: u32) -> Vec<f32> {
        (0..count)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed);
                ((h >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn check<W: PanelWeight>(convert: impl Fn(f32) -> W, back: impl Fn(W) -> f32) {
        // Every remainder of rows (tiles of 6) and columns (panels of 32), odd k.
        for &(m, n, k) in &[
            (1, 1, 1),
            (33, 7, 5),
            (64, 13, 96),
            (70, 64, 200),
            (31, 6, 577),
            (9, 20, 0),
        ] {
            let x = values(m * k, 1);
            let w: Vec<W> = values(n * k, 2).into_iter().map(&convert).collect();
            let wf: Vec<f32> = w.iter().map(|&v| back(v)).collect();
            let Some(packed) = PackedRows::new(&x, m, k) else {
                return; // no AVX-512 here: nothing to compare
            };
            let y = transpose(&packed.transposed_product(&w, n), n, m);
            assert_close(&y, &x, m, &wf, n, k);
        }
    }

    #[test]
    fn products_match_a_double_precision_reference_in_every_dense_format() {
        check(|v| v, |v| v);
        check(f16::from_f32, f16::to_f32);
        check(bf16::from_f32, bf16::to_f32);
    }

    #[test]
    fn extreme_values_stay_finite_where_the_reference_does() {
        let (m, n, k) = (3, 40, 64);
        let x: Vec<f32> = (0..m * k)
            .map(|i| if i % 2 == 0 { 6.0e4 } else { -6.0e4 })
            .collect();
        let w: Vec<f16> = (0..n * k)
            .map(|i| f16::from_f32(if i % 3 == 0 { 65504.0 } else { -1.0e-7 }))
            .collect();
        let wf: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
        if let Some(packed) = PackedRows::new(&x, m, k) {
            let y = transpose(&packed.transposed_product(&w, n), n, m);
            assert!(y.iter().all(|v| v.is_finite()));
            assert_close(&y, &x, m, &wf, n, k);
        }
    }
}
