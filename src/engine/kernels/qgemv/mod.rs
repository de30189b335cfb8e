//! Products with block-quantized weights (Q4_K and Q8_0, the two formats `--dtype` quantizes
//! to, and Q6_K, which a GGUF Q4_K_M file and `--dtype q4_k` use for the output layer and some
//! projections), in a layout of our own for AVX-512 VNNI and AVX2.
//!
//! Why not candle's kernels: decoding reads every weight once per token, so on CPU its speed is
//! the bytes per weight. candle's x86 Q4_K tiles keep each row's sub-block scales and mins
//! unpacked to f32, 6 bits per weight where the format has 4.5; here they stay 6-bit integers
//! (4.625 bits per weight in all) and are applied in integer arithmetic, once per sub-block.
//! candle also quantizes the activations once per call, and a sharded product calls it once
//! per shard; here `QuantizedRows` is made once and shared by every layer that reads the same
//! input (q, k and v; gate and up).
//!
//! Layout: the weight's rows are cut into tiles of 16 rows by one block (256 values for Q4_K
//! and Q6_K, 32 for Q8_0). In a tile, four consecutive values of all 16 rows lie side by side,
//! so one `vpdpbusd` multiplies them with four broadcast activation bytes and adds into 16 row
//! sums. The values are unsigned (Q4_K's nibbles, Q6_K's 6 bits before their -32, Q8_0's
//! stored with +128), as `vpdpbusd` needs; the offsets come back out through the activation
//! blocks' sums. The AVX2 kernels read the same tiles as two halves of 8 rows.
//!
//! `Isa::detect` picks the AVX-512 VNNI kernels at run time, else the AVX2 ones; the portable
//! kernels compute the same integer sums and are the reference the tests hold the vector ones
//! to. `Linear` packs weights only where fast kernels run, and leaves other CPUs to candle's.

use std::ops::Range;

use half::f16;

use crate::engine::error::{EngineError, Result};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
#[cfg(test)]
mod tests;

/// Rows in a tile: the 16 lanes of a 512-bit register of i32 sums.
pub const TILE_ROWS: usize = 16;
/// Values in a Q4_K super-block (and in an activation block paired with it).
const QK_K: usize = 256;
/// Values in a Q8_0 block (and in an activation block paired with it).
const QK8_0: usize = 32;
/// Bytes of one GGUF block: Q4_K is d, dmin (f16), 12 bytes of packed 6-bit scales and mins,
/// 128 bytes of nibbles; Q8_0 is d (f16) and 32 signed bytes.
const Q4K_BLOCK_BYTES: usize = 144;
const Q8_0_BLOCK_BYTES: usize = 34;
/// Q6_K: 128 bytes of low nibbles, 64 of 2-bit high parts, 16 signed scales, d (f16).
const Q6K_BLOCK_BYTES: usize = 210;
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

    /// The fastest kernel set this CPU runs.
    pub fn detect() -> Self {
        Self::PREFERENCE
            .iter()
            .copied()
            .find(|isa| isa.runs_here())
            .unwrap_or(Self::Portable)
    }

    /// Every kernel set this CPU runs, the fastest first: the tests hold each to the portable one.
    #[cfg(test)]
    fn available() -> Vec<Self> {
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

/// The block formats packed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackedFormat {
    Q4K,
    Q6K,
    Q8_0,
}

/// A quantized (rows, cols) weight in tiles of 16 rows.
pub struct PackedWeight {
    rows: usize,
    cols: usize,
    tiles: Tiles,
}

enum Tiles {
    /// tiles[t * blocks_per_row + b]
    Q4K(Vec<TileQ4K>),
    Q6K(Vec<TileQ6K>),
    Q8_0(Vec<TileQ8_0>),
}

/// 16 rows by 256 values of Q4_K; 2368 bytes for 4096 weights, a whole number of cache lines.
#[repr(C, align(64))]
#[derive(Clone)]
struct TileQ4K {
    /// [group g (32)][row (16)][4 bytes]: byte j holds value 8g+j of the row in its low nibble
    /// and value 8g+j+4 in its high nibble.
    qs: [u8; QK_K / 8 * TILE_ROWS * 4],
    /// 6-bit scale of each 32-value sub-block, [sub-block (8)][row (16)].
    scales: [u8; 8 * TILE_ROWS],
    /// 6-bit min of each sub-block, [sub-block pair (4)][row (16)][2], so that widened to i16
    /// a pair lines up with a pair of activation block sums for `vpdpwssd`.
    mins: [u8; 8 * TILE_ROWS],
    d: [f16; TILE_ROWS],
    dmin: [f16; TILE_ROWS],
}

/// 16 rows by 256 values of Q6_K; 3392 bytes for 4096 weights.
///
/// Each sub-block's bytes lie together, in the order the kernel reads them: one stream per
/// tile. With the low and high bits in separate arrays (two streams at different strides),
/// products streamed from memory ran at a third of the speed.
#[repr(C, align(64))]
#[derive(Clone)]
struct TileQ6K {
    /// Signed scale of each 16-value sub-block, [sub-block (16)][row (16)].
    scales: [i8; 16 * TILE_ROWS],
    d: [f16; TILE_ROWS],
    /// Keeps `body` on cache-line boundaries.
    _pad: [u8; 32],
    /// Per sub-block s (groups 2s and 2s+1): the low 4 bits of group 2s, then of 2s+1, each
    /// laid out as a `TileQ4K::qs` group, then their high 2 bits, [row (16)][4 bytes], byte j
    /// holding from bit 0 those of values 8g+j and 8g+j+4 of group 2s, then of group 2s+1.
    body: [[u8; 3 * TILE_ROWS * 4]; 16],
}

impl TileQ6K {
    /// Offset in a sub-block's bytes of the low bits of group g, row r.
    fn low_at(g: usize, r: usize) -> usize {
        (g % 2 * TILE_ROWS + r) * 4
    }

    /// Offset in a sub-block's bytes of the high bits of row r.
    fn high_at(r: usize) -> usize {
        (2 * TILE_ROWS + r) * 4
    }
}

/// 16 rows by 32 values of Q8_0, the values stored +128; 544 bytes for 512 weights.
#[repr(C)]
#[derive(Clone)]
struct TileQ8_0 {
    /// [group g (8)][row (16)][4 bytes]: values 4g..4g+4 of the row, each + 128.
    qs: [u8; QK8_0 * TILE_ROWS],
    d: [f16; TILE_ROWS],
}

/// Run kernel `$kernel` (`q4k_sums`, `q6k_sums` or `q8_0_sums`) of the chosen set for one to
/// four activation rows; the row count is a const generic, so each count keeps its sums in
/// registers.
macro_rules! run_kernel {
    ($isa:expr, $kernel:ident, $tiles:expr, $acts:expr, $out:expr) => {{
        let (tiles, acts, out) = ($tiles, $acts, $out);
        macro_rules! by_rows {
            ($set:ident) => {
                match acts.len() {
                    1 => $set::$kernel::<1>(tiles, acts, out),
                    2 => $set::$kernel::<2>(tiles, acts, out),
                    3 => $set::$kernel::<3>(tiles, acts, out),
                    _ => $set::$kernel::<4>(tiles, acts, out),
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
            Isa::Portable => portable::$kernel(tiles, acts, out),
        }
    }};
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
        let (block_values, block_bytes) = match format {
            PackedFormat::Q4K => (QK_K, Q4K_BLOCK_BYTES),
            PackedFormat::Q6K => (QK_K, Q6K_BLOCK_BYTES),
            PackedFormat::Q8_0 => (QK8_0, Q8_0_BLOCK_BYTES),
        };
        if !cols.is_multiple_of(block_values)
            || bytes.len() != rows * cols / block_values * block_bytes
        {
            return Err(EngineError::usage(format!(
                "{format:?} weight of {rows}x{cols} given {} bytes",
                bytes.len()
            )));
        }
        let blocks = cols / block_values;
        let tile_rows = rows.div_ceil(TILE_ROWS);
        let block = |row: usize, b: usize| {
            (row < rows).then(|| &bytes[(row * blocks + b) * block_bytes..][..block_bytes])
        };
        let order = (0..tile_rows).flat_map(|t| (0..blocks).map(move |b| (t, b)));
        let tiles = match format {
            PackedFormat::Q4K => Tiles::Q4K(
                order
                    .map(|(t, b)| TileQ4K::pack(|r| block(t * TILE_ROWS + r, b)))
                    .collect(),
            ),
            PackedFormat::Q6K => Tiles::Q6K(
                order
                    .map(|(t, b)| TileQ6K::pack(|r| block(t * TILE_ROWS + r, b)))
                    .collect(),
            ),
            PackedFormat::Q8_0 => Tiles::Q8_0(
                order
                    .map(|(t, b)| TileQ8_0::pack(|r| block(t * TILE_ROWS + r, b)))
                    .collect(),
            ),
        };
        Ok(Self { rows, cols, tiles })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    pub fn format(&self) -> PackedFormat {
        match self.tiles {
            Tiles::Q4K(_) => PackedFormat::Q4K,
            Tiles::Q6K(_) => PackedFormat::Q6K,
            Tiles::Q8_0(_) => PackedFormat::Q8_0,
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
        match &self.tiles {
            Tiles::Q4K(tiles) => {
                let blocks = self.cols / QK_K;
                let acts = x.q8k.as_deref().ok_or_else(|| missing("Q4K"))?;
                let acts = row_blocks(acts, blocks, rows);
                let tiles = &tiles[t * blocks..(t + 1) * blocks];
                run_kernel!(isa, q4k_sums, tiles, &acts[..count], out);
            }
            Tiles::Q6K(tiles) => {
                let blocks = self.cols / QK_K;
                let acts = x.q8k.as_deref().ok_or_else(|| missing("Q6K"))?;
                let acts = row_blocks(acts, blocks, rows);
                let tiles = &tiles[t * blocks..(t + 1) * blocks];
                run_kernel!(isa, q6k_sums, tiles, &acts[..count], out);
            }
            Tiles::Q8_0(tiles) => {
                let blocks = self.cols / QK8_0;
                let acts = x.q8_32.as_deref().ok_or_else(|| missing("Q8_0"))?;
                let acts = row_blocks(acts, blocks, rows);
                let tiles = &tiles[t * blocks..(t + 1) * blocks];
                run_kernel!(isa, q8_0_sums, tiles, &acts[..count], out);
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

fn missing(format: &str) -> EngineError {
    EngineError::usage(format!(
        "activations were not quantized for {format} weights"
    ))
}

/// Value `j` (0..8) of a Q4_K block's packed 6-bit scales and mins, as ggml packs them: the
/// first four in the low 6 bits of bytes 0..4 and 4..8, the last four split between the low or
/// high nibbles of bytes 8..12 and the top 2 bits of bytes 0..8.
fn q4k_scale_min(j: usize, packed: &[u8]) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        (
            (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4),
            (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
        )
    }
}

fn read_f16(bytes: &[u8]) -> f16 {
    f16::from_le_bytes([bytes[0], bytes[1]])
}

impl TileQ4K {
    fn pack<'a>(block_of_row: impl Fn(usize) -> Option<&'a [u8]>) -> Self {
        let mut tile = TileQ4K {
            qs: [0; QK_K / 8 * TILE_ROWS * 4],
            scales: [0; 8 * TILE_ROWS],
            mins: [0; 8 * TILE_ROWS],
            d: [f16::ZERO; TILE_ROWS],
            dmin: [f16::ZERO; TILE_ROWS],
        };
        for r in 0..TILE_ROWS {
            let Some(block) = block_of_row(r) else {
                continue;
            };
            tile.d[r] = read_f16(&block[0..2]);
            tile.dmin[r] = read_f16(&block[2..4]);
            for sub in 0..8 {
                let (scale, min) = q4k_scale_min(sub, &block[4..16]);
                tile.scales[sub * TILE_ROWS + r] = scale;
                tile.mins[(sub / 2 * TILE_ROWS + r) * 2 + sub % 2] = min;
            }
            // GGUF's nibbles: each 32-byte chunk c holds values 64c.. in its low nibbles and
            // 64c+32.. in its high ones.
            let qs = &block[16..];
            let value = |i: usize| {
                let byte = qs[i / 64 * 32 + i % 32];
                if i % 64 < 32 { byte & 0x0F } else { byte >> 4 }
            };
            for g in 0..QK_K / 8 {
                for j in 0..4 {
                    tile.qs[(g * TILE_ROWS + r) * 4 + j] =
                        value(8 * g + j) | (value(8 * g + j + 4) << 4);
                }
            }
        }
        tile
    }
}

impl TileQ6K {
    fn pack<'a>(block_of_row: impl Fn(usize) -> Option<&'a [u8]>) -> Self {
        let mut tile = TileQ6K {
            scales: [0; 16 * TILE_ROWS],
            d: [f16::ZERO; TILE_ROWS],
            _pad: [0; 32],
            body: [[0; 3 * TILE_ROWS * 4]; 16],
        };
        for r in 0..TILE_ROWS {
            let Some(block) = block_of_row(r) else {
                continue;
            };
            let (low, high) = (&block[..128], &block[128..192]);
            for (sub, &scale) in block[192..208].iter().enumerate() {
                tile.scales[sub * TILE_ROWS + r] = scale as i8;
            }
            tile.d[r] = read_f16(&block[208..210]);
            // GGUF's layout, per 128-value half h: value 128h + 32c + l (c in 0..4, l in 0..32)
            // has its low 4 bits in byte 64h + l (+ 32 for odd c), the low nibble for c < 2,
            // and its high 2 bits at bit 2c of byte 32h + l.
            let value = |i: usize| {
                let (h, c, l) = (i / 128, i % 128 / 32, i % 32);
                let byte = low[64 * h + l + 32 * (c % 2)];
                let nibble = if c < 2 { byte & 0x0F } else { byte >> 4 };
                let top = (high[32 * h + l] >> (2 * c)) & 3;
                nibble | (top << 4)
            };
            for g in 0..QK_K / 8 {
                for j in 0..4 {
                    let (a, b) = (value(8 * g + j), value(8 * g + j + 4));
                    let sub = &mut tile.body[g / 2];
                    sub[Self::low_at(g, r) + j] = (a & 0x0F) | ((b & 0x0F) << 4);
                    let bits = (a >> 4) | ((b >> 4) << 2);
                    sub[Self::high_at(r) + j] |= bits << (4 * (g % 2));
                }
            }
        }
        tile
    }
}

impl TileQ8_0 {
    fn pack<'a>(block_of_row: impl Fn(usize) -> Option<&'a [u8]>) -> Self {
        // Rows past the weight's end hold value 0, i.e. 128 stored, with d = 0.
        let mut tile = TileQ8_0 {
            qs: [128; QK8_0 * TILE_ROWS],
            d: [f16::ZERO; TILE_ROWS],
        };
        for r in 0..TILE_ROWS {
            let Some(block) = block_of_row(r) else {
                continue;
            };
            tile.d[r] = read_f16(&block[0..2]);
            for (i, &q) in block[2..].iter().enumerate() {
                tile.qs[(i / 4 * TILE_ROWS + r) * 4 + i % 4] = (q as i8 as i16 + 128) as u8;
            }
        }
        tile
    }
}

/// Activation rows quantized to 8 bits, in the block sizes the packed weights need: one scale
/// per 256 values for Q4_K (with the sum of each 32), one per 32 for Q8_0 (with its sum).
pub struct QuantizedRows {
    rows: usize,
    cols: usize,
    q8k: Option<Vec<ActQ8K>>,
    q8_32: Option<Vec<ActQ8_32>>,
}

#[derive(Clone)]
struct ActQ8K {
    qs: [i8; QK_K],
    /// The sum of each 32 values, for Q4_K's mins.
    sums: [i16; 8],
    /// The sum of each 16 values, for Q6_K's -32.
    sums16: [i16; 16],
    d: f32,
}

#[derive(Clone)]
struct ActQ8_32 {
    qs: [i8; QK8_0],
    /// The sum of the values, to take out the weights' +128.
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
        let wants = |f| formats.contains(&f);
        let q8k = (wants(PackedFormat::Q4K) || wants(PackedFormat::Q6K))
            .then(|| blocks_of(x, cols, QK_K, "Q4K/Q6K"))
            .transpose()?
            .map(|blocks| blocks.map(ActQ8K::quantize).collect());
        let q8_32 = wants(PackedFormat::Q8_0)
            .then(|| blocks_of(x, cols, QK8_0, "Q8_0"))
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
        let (qs, d) = quantize_block::<QK8_0>(values);
        let sum = qs.iter().map(|&q| q as i32).sum();
        Self { qs, sum, d }
    }
}
