//! Products with block-quantized weights in a layout of our own for AVX-512 VNNI and AVX2:
//! every format of llama.cpp's Q4_0, Q4_1, Q4_K_M, Q5_K_M, Q6_K and Q8_0 files (Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), which are also the formats `--dtype` quantizes to.
//!
//! Why not candle's kernels: decoding reads every weight once per token, so on CPU its speed is
//! the bytes per weight. candle's x86 Q4_K tiles keep each row's sub-block scales and mins
//! unpacked to f32, 6 bits per weight where the format has 4.5; here they stay 6-bit integers
//! (4.625 bits per weight in all) and are applied in integer arithmetic, once per sub-block.
//! candle also quantizes the activations once per call, and a sharded product calls it once
//! per shard; here `QuantizedRows` is made once and shared by every layer that reads the same
//! input (q, k and v; gate and up).
//!
//! Layout (`tiles.rs`): the weight's rows are cut into tiles of 16 rows by one block (256
//! values for the K-quants, 32 for the others). In a tile, four consecutive values of all 16
//! rows lie side by side, so one `vpdpbusd` multiplies them with four broadcast activation
//! bytes and adds into 16 row sums. The values are unsigned (the nibbles with their fifth bits
//! where the format has them, Q6_K's 6 bits before their -32, Q8_0's stored with +128), as
//! `vpdpbusd` needs; the offsets come back out through the activation blocks' sums. The AVX2
//! kernels read the same tiles as two halves of 8 rows. One kernel serves each family of
//! formats (`qk_sums`: Q4_K, Q5_K; `q32_sums`: Q4_0, Q4_1, Q5_0, Q5_1), the formats told
//! apart by const generics.
//!
//! `Isa::detect` picks the AVX-512 VNNI kernels at run time, else the AVX2 ones; the portable
//! kernels compute the same integer sums and are the reference the tests hold the vector ones
//! to. `Linear` packs weights only where fast kernels run, and leaves other CPUs to candle's.

use std::ops::Range;

use crate::engine::error::{EngineError, Result};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
#[cfg(test)]
mod tests;
mod tiles;
mod unpack;

pub use tiles::TILE_ROWS;
use tiles::*;

/// Activation rows that go through the weights together: each tile is read once for up to
/// this many rows (a decoding step of several sequences, or a prompt in chunks).
const ROWS_PER_PASS: usize = 4;

/// Which kernels this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    /// AVX2 with FMA and F16C: most x86_64 CPUs without AVX-512 VNNI (Haswell on, Zen 1 to 3).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    /// Every kernel set, the fastest first.
    const PREFERENCE: &[Isa] = &[
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2,
        Isa::Portable,
    ];

    /// The fastest kernel set this CPU runs, or the one `GENARM_QUANT_KERNEL` names (one of its
    /// '+'-joined items: "avx2", to measure the AVX2 kernels on an AVX-512 machine) where this
    /// CPU runs it. Read once.
    pub fn detect() -> Self {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let asked = std::env::var("GENARM_QUANT_KERNEL").unwrap_or_default();
            Self::PREFERENCE
                .iter()
                .copied()
                .filter(|isa| isa.runs_here())
                .find(|isa| asked.split('+').any(|item| item == isa.name()))
                .unwrap_or_else(Self::fastest)
        })
    }

    fn fastest() -> Self {
        Self::PREFERENCE
            .iter()
            .copied()
            .find(|isa| isa.runs_here())
            .unwrap_or(Self::Portable)
    }

    /// The set's name for `GENARM_QUANT_KERNEL`.
    fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Vnni => "avx512",
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => "avx2",
        }
    }

    /// Every kernel set this CPU runs, the fastest first: the tests hold each to the portable one.
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Self> {
        Self::PREFERENCE
            .iter()
            .copied()
            .filter(|isa| isa.runs_here())
            .collect()
    }

    /// Whether this CPU has every feature the kernel set's `target_feature`s enable.
    fn runs_here(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
        }
    }

    /// Whether packing pays off: the portable kernels are a reference, slower than candle's.
    pub fn is_fast(self) -> bool {
        self != Self::Portable
    }
}

/// The block formats packed here: every format of llama.cpp's Q4_0, Q4_1, Q4_K_M, Q5_K_M,
/// Q6_K and Q8_0 files (their fallbacks for rows that do not split into 256 included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackedFormat {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

/// The activation blocks a format's kernels read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ActBlocks {
    /// One scale per 256 values (`ActQ8K`): the K-quants.
    Q8K,
    /// One scale per 32 values (`ActQ8_32`): the 32-value formats.
    Q8_32,
}

impl PackedFormat {
    /// (values, bytes) of one GGUF block, and the activation blocks the kernels pair it with.
    fn table(self) -> (usize, usize, ActBlocks) {
        match self {
            Self::Q4_0 => (QK32, Q4_0_BLOCK_BYTES, ActBlocks::Q8_32),
            Self::Q4_1 => (QK32, Q4_1_BLOCK_BYTES, ActBlocks::Q8_32),
            Self::Q5_0 => (QK32, Q5_0_BLOCK_BYTES, ActBlocks::Q8_32),
            Self::Q5_1 => (QK32, Q5_1_BLOCK_BYTES, ActBlocks::Q8_32),
            Self::Q8_0 => (QK32, Q8_0_BLOCK_BYTES, ActBlocks::Q8_32),
            Self::Q4K => (QK_K, Q4K_BLOCK_BYTES, ActBlocks::Q8K),
            Self::Q5K => (QK_K, Q5K_BLOCK_BYTES, ActBlocks::Q8K),
            Self::Q6K => (QK_K, Q6K_BLOCK_BYTES, ActBlocks::Q8K),
        }
    }

    /// Values in one block (the row length must be a multiple).
    pub fn block_values(self) -> usize {
        self.table().0
    }
}

/// A quantized (rows, cols) weight in tiles of 16 rows.
pub struct PackedWeight {
    rows: usize,
    cols: usize,
    tiles: Tiles,
}

/// tiles[t * blocks_per_row + b], one variant per format.
enum Tiles {
    Q4_0(Vec<TileQ4_0>),
    Q4_1(Vec<TileQ4_1>),
    Q5_0(Vec<TileQ5_0>),
    Q5_1(Vec<TileQ5_1>),
    Q8_0(Vec<TileQ8_0>),
    Q4K(Vec<TileQ4K>),
    Q5K(Vec<TileQ5K>),
    Q6K(Vec<TileQ6K>),
}

/// Run kernel `$kernel` (with its format's const generics `$g`, if any) of the chosen set for
/// one to four activation rows; the row count is a const generic too, so each count keeps its
/// sums in registers.
macro_rules! run_kernel {
    ($isa:expr, $kernel:ident [$($g:expr),*], $tiles:expr, $acts:expr, $out:expr) => {{
        let (tiles, acts, out) = ($tiles, $acts, $out);
        macro_rules! by_rows {
            ($set:ident) => {
                match acts.len() {
                    1 => $set::$kernel::<$({ $g },)* 1>(tiles, acts, out),
                    2 => $set::$kernel::<$({ $g },)* 2>(tiles, acts, out),
                    3 => $set::$kernel::<$({ $g },)* 3>(tiles, acts, out),
                    _ => $set::$kernel::<$({ $g },)* 4>(tiles, acts, out),
                }
            };
        }
        match $isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the kernels ask only for the CPU features of their set, and `product`
            // (the only caller, through `tile_sums`) returned an error unless
            // `isa.runs_here()`.
            Isa::Avx512Vnni => unsafe { by_rows!(avx512) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for AVX-512 just above: `product` checked `isa.runs_here()`.
            Isa::Avx2 => unsafe { by_rows!(avx2) },
            Isa::Portable => portable::$kernel::<$({ $g }),*>(tiles, acts, out),
        }
    }};
}

/// Tiles of `T` for a weight of `tile_rows` tiles by `blocks` blocks; `block(row, b)` is a
/// row's GGUF block b, None past the last row.
fn pack_all<'a, T: Pack>(
    tile_rows: usize,
    blocks: usize,
    block: impl Fn(usize, usize) -> Option<&'a [u8]>,
) -> Vec<T> {
    let order = (0..tile_rows).flat_map(|t| (0..blocks).map(move |b| (t, b)));
    order
        .map(|(t, b)| T::pack(|r| block(t * TILE_ROWS + r, b)))
        .collect()
}

impl PackedWeight {
    /// Pack GGUF-layout blocks (`QTensor::data`) of a (rows, cols) weight; rows past the end of
    /// the last tile are zeros.
    pub fn from_gguf_blocks(
        format: PackedFormat,
        bytes: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        let (block_values, block_bytes, _) = format.table();
        if !cols.is_multiple_of(block_values)
            || bytes.len() != rows * cols / block_values * block_bytes
        {
            return Err(EngineError::usage(format!(
                "{format:?} weight of {rows}x{cols} given {} bytes",
                bytes.len()
            )));
        }
        let blocks = cols / block_values;
        let n = rows.div_ceil(TILE_ROWS);
        let block = |row: usize, b: usize| {
            (row < rows).then(|| &bytes[(row * blocks + b) * block_bytes..][..block_bytes])
        };
        let tiles = match format {
            PackedFormat::Q4_0 => Tiles::Q4_0(pack_all(n, blocks, block)),
            PackedFormat::Q4_1 => Tiles::Q4_1(pack_all(n, blocks, block)),
            PackedFormat::Q5_0 => Tiles::Q5_0(pack_all(n, blocks, block)),
            PackedFormat::Q5_1 => Tiles::Q5_1(pack_all(n, blocks, block)),
            PackedFormat::Q8_0 => Tiles::Q8_0(pack_all(n, blocks, block)),
            PackedFormat::Q4K => Tiles::Q4K(pack_all(n, blocks, block)),
            PackedFormat::Q5K => Tiles::Q5K(pack_all(n, blocks, block)),
            PackedFormat::Q6K => Tiles::Q6K(pack_all(n, blocks, block)),
        };
        Ok(Self { rows, cols, tiles })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    pub fn format(&self) -> PackedFormat {
        match self.tiles {
            Tiles::Q4_0(_) => PackedFormat::Q4_0,
            Tiles::Q4_1(_) => PackedFormat::Q4_1,
            Tiles::Q5_0(_) => PackedFormat::Q5_0,
            Tiles::Q5_1(_) => PackedFormat::Q5_1,
            Tiles::Q8_0(_) => PackedFormat::Q8_0,
            Tiles::Q4K(_) => PackedFormat::Q4K,
            Tiles::Q5K(_) => PackedFormat::Q5K,
            Tiles::Q6K(_) => PackedFormat::Q6K,
        }
    }

    /// Tiles of 16 rows; `product` takes a range of them.
    pub fn tile_count(&self) -> usize {
        self.rows.div_ceil(TILE_ROWS)
    }

    /// Rows `16 * tiles.start ..` (up to the weight's last row) of x · Wᵀ, as (m, rows)
    /// row-major, for the m activation rows of `x`.
    pub fn product(&self, isa: Isa, x: &QuantizedRows, tiles: Range<usize>) -> Result<Vec<f32>> {
        if !isa.runs_here() {
            return Err(EngineError::usage(format!(
                "this CPU cannot run the {isa:?} kernels"
            )));
        }
        let first_row = tiles.start * TILE_ROWS;
        let end_row = (tiles.end * TILE_ROWS).min(self.rows);
        if tiles.end > self.tile_count() || x.cols != self.cols {
            return Err(EngineError::usage(format!(
                "quantized product of a {}x{} weight given tiles {tiles:?} and rows of {}",
                self.rows, self.cols, x.cols
            )));
        }
        let width = end_row.saturating_sub(first_row);
        let mut out = vec![0f32; x.rows * width];
        let mut sums = [[0f32; TILE_ROWS]; ROWS_PER_PASS];
        for t in tiles {
            for first in (0..x.rows).step_by(ROWS_PER_PASS) {
                let count = ROWS_PER_PASS.min(x.rows - first);
                self.tile_sums(isa, x, t, first..first + count, &mut sums[..count])?;
                let col = t * TILE_ROWS - first_row;
                let valid = TILE_ROWS.min(width - col);
                for (r, row_sums) in sums[..count].iter().enumerate() {
                    out[(first + r) * width + col..][..valid].copy_from_slice(&row_sums[..valid]);
                }
            }
        }
        Ok(out)
    }

    /// The 16 sums of tile row `t` for each activation row in `rows`.
    fn tile_sums(
        &self,
        isa: Isa,
        x: &QuantizedRows,
        t: usize,
        rows: Range<usize>,
        out: &mut [[f32; TILE_ROWS]],
    ) -> Result<()> {
        let count = rows.len();
        let blocks = self.cols / self.format().block_values();
        let name = self.format();
        // The tile row's tiles and the activation rows' blocks, for the format's kernel.
        macro_rules! select {
            ($tiles:expr, $acts:expr) => {{
                let acts = $acts.as_deref().ok_or_else(|| missing(name))?;
                (
                    &$tiles[t * blocks..(t + 1) * blocks],
                    row_blocks(acts, blocks, rows),
                )
            }};
        }
        match &self.tiles {
            Tiles::Q4_0(tiles) => {
                let (tiles, acts) = select!(tiles, x.q8_32);
                run_kernel!(isa, q32_sums[0, 0], tiles, &acts[..count], out);
            }
            Tiles::Q4_1(tiles) => {
                let (tiles, acts) = select!(tiles, x.q8_32);
                run_kernel!(isa, q32_sums[0, TILE_ROWS], tiles, &acts[..count], out);
            }
            Tiles::Q5_0(tiles) => {
                let (tiles, acts) = select!(tiles, x.q8_32);
                run_kernel!(isa, q32_sums[PLANE_BYTES, 0], tiles, &acts[..count], out);
            }
            Tiles::Q5_1(tiles) => {
                let (tiles, acts) = select!(tiles, x.q8_32);
                let acts = &acts[..count];
                run_kernel!(isa, q32_sums[PLANE_BYTES, TILE_ROWS], tiles, acts, out);
            }
            Tiles::Q8_0(tiles) => {
                let (tiles, acts) = select!(tiles, x.q8_32);
                run_kernel!(isa, q8_0_sums[], tiles, &acts[..count], out);
            }
            Tiles::Q4K(tiles) => {
                let (tiles, acts) = select!(tiles, x.q8k);
                run_kernel!(isa, qk_sums[0], tiles, &acts[..count], out);
            }
            Tiles::Q5K(tiles) => {
                let (tiles, acts) = select!(tiles, x.q8k);
                run_kernel!(isa, qk_sums[8 * PLANE_BYTES], tiles, &acts[..count], out);
            }
            Tiles::Q6K(tiles) => {
                let (tiles, acts) = select!(tiles, x.q8k);
                run_kernel!(isa, q6k_sums[], tiles, &acts[..count], out);
            }
        }
        Ok(())
    }
}

/// The activation blocks of each row in `rows` (at most `ROWS_PER_PASS`; the array's unused
/// entries repeat the last row), in an array rather than a Vec: this runs once per tile row
/// and pass, thousands of times per token.
fn row_blocks<T>(acts: &[T], blocks: usize, rows: Range<usize>) -> [&[T]; ROWS_PER_PASS] {
    let last = rows.end.saturating_sub(1);
    std::array::from_fn(|i| {
        let r = (rows.start + i).min(last);
        &acts[r * blocks..(r + 1) * blocks]
    })
}

fn missing(format: PackedFormat) -> EngineError {
    EngineError::usage(format!(
        "activations were not quantized for {format:?} weights"
    ))
}

/// Activation rows quantized to 8 bits, in the block sizes the packed weights need: one scale
/// per 256 values for the K-quants (with the sums of each 32 and 16), one per 32 for the
/// 32-value formats (with its sum).
pub struct QuantizedRows {
    rows: usize,
    cols: usize,
    q8k: Option<Vec<ActQ8K>>,
    q8_32: Option<Vec<ActQ8_32>>,
}

#[derive(Clone)]
struct ActQ8K {
    qs: [i8; QK_K],
    /// The sum of each 32 values, for Q4_K's and Q5_K's mins.
    sums: [i16; 8],
    /// The sum of each 16 values, for Q6_K's -32.
    sums16: [i16; 16],
    d: f32,
}

#[derive(Clone)]
struct ActQ8_32 {
    qs: [i8; QK32],
    /// The sum of the values: to take out Q8_0's +128 and the zero points of Q4_0 and Q5_0,
    /// and to add the mins of Q4_1 and Q5_1.
    sum: i32,
    d: f32,
}

impl QuantizedRows {
    /// Quantize the m rows of `x` (row-major, `cols` wide) for weights of the given formats.
    pub fn new(x: &[f32], rows: usize, cols: usize, formats: &[PackedFormat]) -> Result<Self> {
        if x.len() != rows * cols {
            return Err(EngineError::usage(format!(
                "{} values given for {rows} rows of {cols}",
                x.len()
            )));
        }
        let wants = |kind| formats.iter().any(|f| f.table().2 == kind);
        let q8k = wants(ActBlocks::Q8K)
            .then(|| blocks_of(x, cols, QK_K, "K-quant"))
            .transpose()?
            .map(|blocks| blocks.map(ActQ8K::quantize).collect());
        let q8_32 = wants(ActBlocks::Q8_32)
            .then(|| blocks_of(x, cols, QK32, "32-value"))
            .transpose()?
            .map(|blocks| blocks.map(ActQ8_32::quantize).collect());
        Ok(Self {
            rows,
            cols,
            q8k,
            q8_32,
        })
    }
}

fn blocks_of<'a>(
    x: &'a [f32],
    cols: usize,
    size: usize,
    format: &str,
) -> Result<std::slice::ChunksExact<'a, f32>> {
    if !cols.is_multiple_of(size) {
        return Err(EngineError::usage(format!(
            "rows of {cols} do not split into {format} blocks of {size}"
        )));
    }
    Ok(x.chunks_exact(size))
}

/// Symmetric 8-bit quantization of one block: scale amax/127, values in -127..=127.
fn quantize_block<const N: usize>(values: &[f32]) -> ([i8; N], f32) {
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; N];
    for (q, v) in qs.iter_mut().zip(values) {
        *q = (v * inverse).round().clamp(-127.0, 127.0) as i8;
    }
    (qs, d)
}

impl ActQ8K {
    fn quantize(values: &[f32]) -> Self {
        let (qs, d) = quantize_block::<QK_K>(values);
        let mut sums16 = [0i16; 16];
        for (sum, part) in sums16.iter_mut().zip(qs.chunks_exact(16)) {
            *sum = part.iter().map(|&q| q as i16).sum();
        }
        let sums = std::array::from_fn(|i| sums16[2 * i] + sums16[2 * i + 1]);
        Self {
            qs,
            sums,
            sums16,
            d,
        }
    }
}

impl ActQ8_32 {
    fn quantize(values: &[f32]) -> Self {
        let (qs, d) = quantize_block::<QK32>(values);
        let sum = qs.iter().map(|&q| q as i32).sum();
        Self { qs, sum, d }
    }
}
