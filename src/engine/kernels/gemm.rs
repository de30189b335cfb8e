//! Products for many activation rows (prompts): y (m, n) = x (m, k) · Wᵀ for a dense block of
//! W (n, k) in f32, f16 or bf16, on the calling thread, with AVX-512 or AVX2.
//!
//! Why not candle's gemm: the `gemm` crate keeps its AVX-512 kernels behind a nightly-only
//! feature, so on AVX-512 machines prompts ran its AVX2 microkernel (`x2x6`, 8 lanes) at half
//! the width the CPU has, and llama.cpp's f16 prompts ran 1.3x faster than genarm's; and a
//! half-precision W had to be widened to a whole f32 copy per block before candle could
//! multiply it.
//!
//! The layout: x is small (a prompt's rows) and shared by every block of W, so x is the operand
//! that is packed, once per product (`PackedRows`): panels of two vectors' worth of rows
//! (32 with AVX-512, 16 with AVX2), k-major, the values of one column side by side. W is read as
//! stored, widened to f32 a tile's rows at a time so they stay in L1. A tile of `rows` rows of
//! W × one panel lives in 2 × `rows` vector registers while the whole of k runs through it: per
//! column, two loads of the panel and `rows` broadcasts of W feed 2 × `rows` fused
//! multiply-adds (12 rows of 32 registers with AVX-512, 6 rows of 16 with AVX2). Tiles are
//! written transposed (W's rows by x's rows), as the caller wants each block's columns anyway.
//!
//! `linear.rs` runs the blocks of a weight on rayon's pool and calls this where `Width::detect`
//! finds a kernel set (`qgemv::Isa`, which `GENARM_QUANT_KERNEL=avx2` forces down to AVX2);
//! elsewhere candle's gemm.

use std::cell::RefCell;

use half::{bf16, f16};

/// The vector width a product runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Width {
    /// The kernel set chosen for this CPU (`qgemv::Isa::detect`), None where there is none.
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            use super::qgemv::Isa;
            match Isa::detect() {
                Isa::Avx512Vnni => Some(Self::Avx512),
                Isa::Avx2 => Some(Self::Avx2),
                Isa::Portable => None,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// Every width this CPU runs (the tests hold each to a reference).
    #[cfg(test)]
    pub fn all_here() -> Vec<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            use super::qgemv::Isa;
            Isa::available()
                .into_iter()
                .filter_map(|isa| match isa {
                    Isa::Avx512Vnni => Some(Self::Avx512),
                    Isa::Avx2 => Some(Self::Avx2),
                    Isa::Portable => None,
                })
                .collect()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Vec::new()
        }
    }

    /// Rows of x per panel: two vectors.
    fn panel(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => 32,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => 16,
        }
    }

    /// Rows of W per tile: 2 × this many accumulators leave registers for the panel and the
    /// broadcasts (32 registers with AVX-512, 16 with AVX2).
    fn tile_rows(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => 12,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => 6,
        }
    }
}

/// The most bytes of packed x one pass of W's tiles reads (see `transposed_product`): half of
/// a 1-2 MiB L2, leaving the rest to W's rows and the results.
const GROUP_BYTES: usize = 512 << 10;

/// A dense weight element the product widens to f32.
pub trait PanelWeight: Copy + Sync {
    /// `rows` as f32: the rows themselves where they are f32, else widened into `scratch`.
    fn widened<'a>(rows: &'a [Self], scratch: &'a mut Vec<f32>, width: Width) -> &'a [f32];
}

impl PanelWeight for f32 {
    fn widened<'a>(rows: &'a [f32], _: &'a mut Vec<f32>, _: Width) -> &'a [f32] {
        rows
    }
}

impl PanelWeight for f16 {
    fn widened<'a>(rows: &'a [f16], scratch: &'a mut Vec<f32>, width: Width) -> &'a [f32] {
        let out = grown(scratch, rows.len());
        match width {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Width::detect` chose AVX-512 for this CPU; the lengths are equal.
            Width::Avx512 => unsafe { avx512::widen_f16(rows, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Width::detect` chose the AVX2 set (AVX2, FMA, F16C) for this CPU.
            Width::Avx2 => unsafe { avx2::widen_f16(rows, out) },
        }
        out
    }
}

impl PanelWeight for bf16 {
    fn widened<'a>(rows: &'a [bf16], scratch: &'a mut Vec<f32>, width: Width) -> &'a [f32] {
        let out = grown(scratch, rows.len());
        match width {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for f16.
            Width::Avx512 => unsafe { avx512::widen_bf16(rows, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for f16.
            Width::Avx2 => unsafe { avx2::widen_bf16(rows, out) },
        }
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

/// x (m, k) in panels of `panel` rows, each k-major: panel p, column c, row r at
/// `p * panel * k + c * panel + r`; rows past m are zero.
pub struct PackedRows {
    panels: Vec<f32>,
    m: usize,
    k: usize,
    width: Width,
}

impl PackedRows {
    /// Packed x for the kernels of `width` (`Width::detect`). Panics if `x` is not m rows of
    /// length k (a caller bug: `Linear` checks shapes before calling).
    pub fn with_width(x: &[f32], m: usize, k: usize, width: Width) -> Self {
        assert_eq!(x.len(), m * k, "activation rows");
        let panel = width.panel();
        let mut panels = vec![0f32; m.div_ceil(panel) * panel * k];
        for (i, row) in x.chunks_exact(k.max(1)).enumerate() {
            let part = &mut panels[(i / panel) * panel * k..][..panel * k];
            for (c, &value) in row.iter().enumerate() {
                part[c * panel + i % panel] = value;
            }
        }
        Self {
            panels,
            m,
            k,
            width,
        }
    }

    /// (x · Wᵀ)ᵀ = W · xᵀ, (n, m) row-major: W's row j against every row of x at
    /// `[j * m..][..m]`, for `w` of n rows of length k. Transposed because that is how the
    /// tiles hold it; the caller places each block's columns anyway. Panics if `w` is not n
    /// rows of length k.
    pub fn transposed_product<W: PanelWeight>(&self, w: &[W], n: usize) -> Vec<f32> {
        let (m, k, width) = (self.m, self.k, self.width);
        assert_eq!(w.len(), n * k, "weight rows");
        let (panel, tile_rows) = (width.panel(), width.tile_rows());
        let padded = m.div_ceil(panel) * panel;
        if k == 0 {
            return vec![0f32; n * m];
        }
        // Every tile stores all its panel's columns, so nothing needs clearing first.
        let mut out = vec![0f32; n * padded];
        // Long prompts: the panels are taken a group at a time, a group small enough to stay
        // in L2 while every tile of W passes over it; otherwise each tile of W would stream
        // all of x from memory again. A short prompt is one group.
        let panel_len = panel * k;
        let group = (GROUP_BYTES / (panel_len * size_of::<f32>())).max(1);
        SCRATCH.with_borrow_mut(|wide| {
            for (g, panels) in self.panels.chunks(group * panel_len).enumerate() {
                for top in (0..n).step_by(tile_rows) {
                    let rows = tile_rows.min(n - top);
                    let tile_w = W::widened(&w[top * k..(top + rows) * k], wide, width);
                    for (p, part) in panels.chunks_exact(panel_len).enumerate() {
                        let first_row = (g * group + p) * panel;
                        let tile = Tile {
                            w: tile_w,
                            k,
                            panel: part,
                            out: &mut out[top * padded + first_row..],
                            out_stride: padded,
                        };
                        run_tile(width, tile, rows);
                    }
                }
            }
        });
        if padded != m {
            for j in 1..n {
                out.copy_within(j * padded..j * padded + m, j * m);
            }
            out.truncate(n * m);
        }
        out
    }
}

/// One tile's operands: `rows` rows of W (length k each, f32), the panel of x they meet, and
/// where the results go (W's row r at `out[r * out_stride..][..panel]`).
pub struct Tile<'a> {
    w: &'a [f32],
    k: usize,
    panel: &'a [f32],
    out: &'a mut [f32],
    out_stride: usize,
}

fn run_tile(width: Width, tile: Tile, rows: usize) {
    match width {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Width` is only made for a kernel set this CPU runs (`detect`, `all_here`);
        // the kernels check every length they read or write.
        Width::Avx512 => unsafe { avx512::tile(tile, rows) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Width::Avx2 => unsafe { avx2::tile(tile, rows) },
    }
}

/// The tile kernel of one vector width: `tile(t, rows)` picks the copy made for that row
/// count (a constant in each copy, so the accumulators stay in registers).
macro_rules! tile_kernel {
    ($features:literal, $vector:ty, $lanes:literal, rows: [$($rows:literal),*], $max_rows:literal,
     $zero:ident, $load:ident, $set1:ident, $fmadd:ident, $store:ident) => {
        /// The tile with `rows` (1..=max) rows of W.
        ///
        /// # Safety
        /// The CPU must have this module's features.
        pub unsafe fn tile(t: Tile, rows: usize) {
            // SAFETY: the caller guarantees the features, all `kernel` needs beyond its
            // own checks.
            unsafe {
                match rows {
                    $($rows => kernel::<$rows>(t),)*
                    _ => kernel::<$max_rows>(t),
                }
            }
        }

        /// # Safety
        /// The CPU must have this module's features; the slices' lengths are checked here.
        #[target_feature(enable = $features)]
        unsafe fn kernel<const R: usize>(t: Tile) {
            const PANEL: usize = 2 * $lanes;
            let k = t.k;
            assert!(t.w.len() >= R * k && t.panel.len() >= PANEL * k);
            assert!(R == 0 || t.out.len() >= (R - 1) * t.out_stride + PANEL);
            let mut acc: [[$vector; 2]; R] = [[$zero(); 2]; R];
            let w = t.w.as_ptr();
            let panel = t.panel.as_ptr();
            for c in 0..k {
                // SAFETY: c < k, so the panel's column c (PANEL values) and w[r * k + c] for
                // r < R are inside the slices checked above.
                unsafe {
                    let lo = $load(panel.add(c * PANEL));
                    let hi = $load(panel.add(c * PANEL + $lanes));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let v = $set1(*w.add(r * k + c));
                        row[0] = $fmadd(v, lo, row[0]);
                        row[1] = $fmadd(v, hi, row[1]);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                // SAFETY: row r's PANEL outputs are inside `out` (checked above).
                unsafe {
                    let dst = t.out.as_mut_ptr().add(r * t.out_stride);
                    $store(dst, row[0]);
                    $store(dst.add($lanes), row[1]);
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Tile;
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    tile_kernel!(
        "avx512f",
        __m512,
        16,
        rows: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        12,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_storeu_ps
    );

    /// f16 to f32, 16 values per instruction (half's slice conversion goes 8 at a time through
    /// a call per chunk: widening cost a third of the kernel's time).
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
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Tile;
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// bf16 to f32, 8 values at a time: each value's 16 bits become the high half of an f32.
    ///
    /// # Safety
    /// The CPU must have AVX2; `out` as long as `rows`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn widen_bf16(rows: &[bf16], out: &mut [f32]) {
        assert_eq!(rows.len(), out.len());
        let whole = rows.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: i + 8 <= whole <= the length of both slices.
            unsafe {
                let halves = _mm_loadu_si128(rows.as_ptr().add(i).cast());
                let wide = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(halves));
                _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_castsi256_ps(wide));
            }
        }
        for i in whole..rows.len() {
            out[i] = rows[i].to_f32();
        }
    }

    /// f16 to f32, 8 values per instruction, inlined into the caller's loop (half's slice
    /// conversion makes a call per 8 values).
    ///
    /// # Safety
    /// The CPU must have AVX and F16C; `out` as long as `rows`.
    #[target_feature(enable = "avx,f16c")]
    pub unsafe fn widen_f16(rows: &[f16], out: &mut [f32]) {
        assert_eq!(rows.len(), out.len());
        let whole = rows.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: i + 8 <= whole <= the length of both slices.
            unsafe {
                let halves = _mm_loadu_si128(rows.as_ptr().add(i).cast());
                _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(halves));
            }
        }
        for i in whole..rows.len() {
            out[i] = rows[i].to_f32();
        }
    }

    tile_kernel!(
        "avx2,fma",
        __m256,
        8,
        rows: [1, 2, 3, 4, 5],
        6,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_storeu_ps
    );
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
    fn assert_close(y: &[f32], x: &[f32], m: usize, w: &[f32], n: usize, k: usize, width: Width) {
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
                    "{width:?} m {m} n {n} k {k} at ({r}, {j}): {a} vs {b}"
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
        // Every remainder of panel rows (16 or 32) and tile rows (6 or 12), odd k, k = 0, and
        // x in several groups of panels (300 x 1100: 2.6 MiB of packed x).
        let shapes = [
            (1, 1, 1),
            (33, 7, 5),
            (64, 13, 96),
            (70, 64, 200),
            (31, 6, 577),
            (9, 20, 0),
        ];
        for width in Width::all_here() {
            for &(m, n, k) in &shapes {
                let x = values(m * k, 1);
                let w: Vec<W> = values(n * k, 2).into_iter().map(&convert).collect();
                let wf: Vec<f32> = w.iter().map(|&v| back(v)).collect();
                let packed = PackedRows::with_width(&x, m, k, width);
                let y = transpose(&packed.transposed_product(&w, n), n, m);
                assert_close(&y, &x, m, &wf, n, k, width);
            }
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
        for width in Width::all_here() {
            let packed = PackedRows::with_width(&x, m, k, width);
            let y = transpose(&packed.transposed_product(&w, n), n, m);
            assert!(y.iter().all(|v| v.is_finite()), "{width:?}");
            assert_close(&y, &x, m, &wf, n, k, width);
        }
    }
}
