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

use super::error::{EngineError, Result};

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
            // SAFETY: `product` checked that this CPU runs the set (`Isa::runs_here`) and gave
            // every row one activation block per tile.
            Isa::Avx512Vnni => unsafe { by_rows!(avx512) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
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

/// The kernels written out value by value: the definition the vector kernels must meet (same
/// integer sums, the same f32 operations in the same order).
mod portable {
    use super::*;

    pub fn q4k_sums(tiles: &[TileQ4K], acts: &[&[ActQ8K]], out: &mut [[f32; TILE_ROWS]]) {
        for (act_row, sums) in acts.iter().zip(out.iter_mut()) {
            *sums = [0.0; TILE_ROWS];
            for (tile, act) in tiles.iter().zip(act_row.iter()) {
                for (r, sum) in sums.iter_mut().enumerate() {
                    let (mut scaled, mut mins) = (0i32, 0i32);
                    for sub in 0..8 {
                        let mut dot = 0i32;
                        for g in sub * 4..sub * 4 + 4 {
                            for j in 0..4 {
                                let byte = tile.qs[(g * TILE_ROWS + r) * 4 + j] as i32;
                                dot += (byte & 0x0F) * act.qs[8 * g + j] as i32;
                                dot += (byte >> 4) * act.qs[8 * g + j + 4] as i32;
                            }
                        }
                        scaled += dot * tile.scales[sub * TILE_ROWS + r] as i32;
                        let min = tile.mins[(sub / 2 * TILE_ROWS + r) * 2 + sub % 2] as i32;
                        mins += min * act.sums[sub] as i32;
                    }
                    let d = tile.d[r].to_f32() * act.d;
                    let dmin = tile.dmin[r].to_f32() * act.d;
                    *sum = (scaled as f32).mul_add(d, *sum);
                    *sum = (-(mins as f32)).mul_add(dmin, *sum);
                }
            }
        }
    }

    pub fn q6k_sums(tiles: &[TileQ6K], acts: &[&[ActQ8K]], out: &mut [[f32; TILE_ROWS]]) {
        for (act_row, sums) in acts.iter().zip(out.iter_mut()) {
            *sums = [0.0; TILE_ROWS];
            for (tile, act) in tiles.iter().zip(act_row.iter()) {
                for (r, sum) in sums.iter_mut().enumerate() {
                    let mut scaled = 0i32;
                    for sub in 0..16 {
                        let mut dot = 0i32;
                        for g in 2 * sub..2 * sub + 2 {
                            for j in 0..4 {
                                let bytes = &tile.body[sub];
                                let low = bytes[TileQ6K::low_at(g, r) + j] as i32;
                                let high = bytes[TileQ6K::high_at(r) + j] as i32;
                                let high = high >> (4 * (g % 2));
                                let a = (low & 0x0F) | ((high & 3) << 4);
                                let b = (low >> 4) | (((high >> 2) & 3) << 4);
                                dot += a * act.qs[8 * g + j] as i32;
                                dot += b * act.qs[8 * g + j + 4] as i32;
                            }
                        }
                        let dot = dot - 32 * act.sums16[sub] as i32;
                        scaled += dot * tile.scales[sub * TILE_ROWS + r] as i32;
                    }
                    *sum = (scaled as f32).mul_add(tile.d[r].to_f32() * act.d, *sum);
                }
            }
        }
    }

    pub fn q8_0_sums(tiles: &[TileQ8_0], acts: &[&[ActQ8_32]], out: &mut [[f32; TILE_ROWS]]) {
        for (act_row, sums) in acts.iter().zip(out.iter_mut()) {
            *sums = [0.0; TILE_ROWS];
            for (tile, act) in tiles.iter().zip(act_row.iter()) {
                for (r, sum) in sums.iter_mut().enumerate() {
                    let mut dot = 0i32;
                    for i in 0..QK8_0 {
                        let stored = tile.qs[(i / 4 * TILE_ROWS + r) * 4 + i % 4] as i32;
                        dot += stored * act.qs[i] as i32;
                    }
                    let dot = dot - 128 * act.sum;
                    *sum = (dot as f32).mul_add(tile.d[r].to_f32() * act.d, *sum);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    /// Four activation bytes from `at`, in every 32-bit lane.
    #[inline(always)]
    unsafe fn broadcast4(qs: &[i8], at: usize) -> __m512i {
        debug_assert!(at + 4 <= qs.len());
        // SAFETY: the callers' offsets stay within the block (`at + 4 <= qs.len()`), and call
        // this only from functions that enable avx512f.
        unsafe { _mm512_set1_epi32(std::ptr::read_unaligned(qs.as_ptr().add(at).cast::<i32>())) }
    }

    /// `portable::q4k_sums` for M activation rows, each with one block per tile.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn q4k_sums<const M: usize>(
        tiles: &[TileQ4K],
        acts: &[&[ActQ8K]],
        out: &mut [[f32; TILE_ROWS]],
    ) {
        let nibble = _mm512_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); M];
        for (b, tile) in tiles.iter().enumerate() {
            let act: [&ActQ8K; M] = std::array::from_fn(|m| &acts[m][b]);
            let qs = tile.qs.as_ptr();
            let mut scaled = [_mm512_setzero_si512(); M];
            for sub in 0..8 {
                // Low and high nibbles sum apart: two dependency chains instead of one.
                let mut low = [_mm512_setzero_si512(); M];
                let mut high = [_mm512_setzero_si512(); M];
                for g in sub * 4..sub * 4 + 4 {
                    // SAFETY: group g's 64 bytes lie within `qs` (32 groups of 64).
                    let w = unsafe { _mm512_loadu_si512(qs.add(g * 64).cast()) };
                    let lo = _mm512_and_si512(w, nibble);
                    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(w), nibble);
                    for m in 0..M {
                        // SAFETY: 8g + 8 <= 256.
                        unsafe {
                            low[m] = _mm512_dpbusd_epi32(low[m], lo, broadcast4(&act[m].qs, 8 * g));
                            high[m] =
                                _mm512_dpbusd_epi32(high[m], hi, broadcast4(&act[m].qs, 8 * g + 4));
                        }
                    }
                }
                // SAFETY: 16 scale bytes per sub-block, 8 sub-blocks.
                let scale = unsafe {
                    _mm512_cvtepu8_epi32(_mm_loadu_si128(
                        tile.scales.as_ptr().add(sub * TILE_ROWS).cast(),
                    ))
                };
                for m in 0..M {
                    let dot = _mm512_add_epi32(low[m], high[m]);
                    scaled[m] = _mm512_add_epi32(scaled[m], _mm512_mullo_epi32(dot, scale));
                }
            }
            let mut mins = [_mm512_setzero_si512(); M];
            for pair in 0..4 {
                // SAFETY: 32 min bytes per pair of sub-blocks, 4 pairs.
                let widened = unsafe {
                    _mm512_cvtepu8_epi16(_mm256_loadu_si256(
                        tile.mins.as_ptr().add(pair * 32).cast(),
                    ))
                };
                for m in 0..M {
                    let sums = &act[m].sums[2 * pair..2 * pair + 2];
                    let both = (sums[0] as u16 as u32 | ((sums[1] as u16 as u32) << 16)) as i32;
                    mins[m] = _mm512_dpwssd_epi32(mins[m], widened, _mm512_set1_epi32(both));
                }
            }
            // SAFETY: 16 f16 scales each.
            let (d, dmin) = unsafe {
                (
                    _mm512_cvtph_ps(_mm256_loadu_si256(tile.d.as_ptr().cast())),
                    _mm512_cvtph_ps(_mm256_loadu_si256(tile.dmin.as_ptr().cast())),
                )
            };
            for m in 0..M {
                let da = _mm512_set1_ps(act[m].d);
                let scaled = _mm512_cvtepi32_ps(scaled[m]);
                acc[m] = _mm512_fmadd_ps(scaled, _mm512_mul_ps(d, da), acc[m]);
                let mins = _mm512_cvtepi32_ps(mins[m]);
                acc[m] = _mm512_fnmadd_ps(mins, _mm512_mul_ps(dmin, da), acc[m]);
            }
        }
        for m in 0..M {
            // SAFETY: 16 floats per output row.
            unsafe { _mm512_storeu_ps(out[m].as_mut_ptr(), acc[m]) };
        }
    }

    /// `portable::q6k_sums` for M activation rows, each with one block per tile.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn q6k_sums<const M: usize>(
        tiles: &[TileQ6K],
        acts: &[&[ActQ8K]],
        out: &mut [[f32; TILE_ROWS]],
    ) {
        let nibble = _mm512_set1_epi8(0x0F);
        let top = _mm512_set1_epi8(0x30);
        let mut acc = [_mm512_setzero_ps(); M];
        for (b, tile) in tiles.iter().enumerate() {
            let act: [&ActQ8K; M] = std::array::from_fn(|m| &acts[m][b]);
            let mut scaled = [_mm512_setzero_si512(); M];
            // One sub-block of 16 values is two groups, whose high bits share one vector.
            for sub in 0..16 {
                let bytes = tile.body[sub].as_ptr();
                // SAFETY: a sub-block's 192 bytes are its two groups' low bits and their high
                // bits, 64 bytes each.
                let (w0, w1, h) = unsafe {
                    (
                        _mm512_loadu_si512(bytes.cast()),
                        _mm512_loadu_si512(bytes.add(64).cast()),
                        _mm512_loadu_si512(bytes.add(128).cast()),
                    )
                };
                // Bits 4-5 of each byte: the high parts moved over the nibbles they complete.
                let values = [
                    _mm512_or_si512(
                        _mm512_and_si512(w0, nibble),
                        _mm512_and_si512(_mm512_slli_epi16::<4>(h), top),
                    ),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16::<4>(w0), nibble),
                        _mm512_and_si512(_mm512_slli_epi16::<2>(h), top),
                    ),
                    _mm512_or_si512(_mm512_and_si512(w1, nibble), _mm512_and_si512(h, top)),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16::<4>(w1), nibble),
                        _mm512_and_si512(_mm512_srli_epi16::<2>(h), top),
                    ),
                ];
                // SAFETY: 16 scale bytes per sub-block, 16 sub-blocks.
                let scale = unsafe {
                    _mm512_cvtepi8_epi32(_mm_loadu_si128(
                        tile.scales.as_ptr().add(sub * TILE_ROWS).cast(),
                    ))
                };
                for m in 0..M {
                    let first = 16 * sub;
                    // SAFETY: first + 16 <= 256.
                    let (a0, a1) = unsafe {
                        (
                            _mm512_dpbusd_epi32(
                                _mm512_setzero_si512(),
                                values[0],
                                broadcast4(&act[m].qs, first),
                            ),
                            _mm512_dpbusd_epi32(
                                _mm512_setzero_si512(),
                                values[1],
                                broadcast4(&act[m].qs, first + 4),
                            ),
                        )
                    };
                    // SAFETY: as above.
                    let (a0, a1) = unsafe {
                        (
                            _mm512_dpbusd_epi32(a0, values[2], broadcast4(&act[m].qs, first + 8)),
                            _mm512_dpbusd_epi32(a1, values[3], broadcast4(&act[m].qs, first + 12)),
                        )
                    };
                    let offset = _mm512_set1_epi32(32 * act[m].sums16[sub] as i32);
                    let dot = _mm512_sub_epi32(_mm512_add_epi32(a0, a1), offset);
                    scaled[m] = _mm512_add_epi32(scaled[m], _mm512_mullo_epi32(dot, scale));
                }
            }
            // SAFETY: 16 f16 scales.
            let d = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(tile.d.as_ptr().cast())) };
            for m in 0..M {
                let da = _mm512_set1_ps(act[m].d);
                let scaled = _mm512_cvtepi32_ps(scaled[m]);
                acc[m] = _mm512_fmadd_ps(scaled, _mm512_mul_ps(d, da), acc[m]);
            }
        }
        for m in 0..M {
            // SAFETY: 16 floats per output row.
            unsafe { _mm512_storeu_ps(out[m].as_mut_ptr(), acc[m]) };
        }
    }

    /// `portable::q8_0_sums` for M activation rows, each with one block per tile.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn q8_0_sums<const M: usize>(
        tiles: &[TileQ8_0],
        acts: &[&[ActQ8_32]],
        out: &mut [[f32; TILE_ROWS]],
    ) {
        let mut acc = [_mm512_setzero_ps(); M];
        for (b, tile) in tiles.iter().enumerate() {
            let act: [&ActQ8_32; M] = std::array::from_fn(|m| &acts[m][b]);
            let qs = tile.qs.as_ptr();
            let mut even = [_mm512_setzero_si512(); M];
            let mut odd = [_mm512_setzero_si512(); M];
            for g in (0..QK8_0 / 4).step_by(2) {
                // SAFETY: groups g and g+1 (64 bytes each) lie within `qs` (8 groups).
                let (w0, w1) = unsafe {
                    (
                        _mm512_loadu_si512(qs.add(g * 64).cast()),
                        _mm512_loadu_si512(qs.add(g * 64 + 64).cast()),
                    )
                };
                for m in 0..M {
                    // SAFETY: 4g + 8 <= 32.
                    unsafe {
                        even[m] = _mm512_dpbusd_epi32(even[m], w0, broadcast4(&act[m].qs, 4 * g));
                        odd[m] = _mm512_dpbusd_epi32(odd[m], w1, broadcast4(&act[m].qs, 4 * g + 4));
                    }
                }
            }
            // SAFETY: 16 f16 scales.
            let d = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(tile.d.as_ptr().cast())) };
            for m in 0..M {
                let dot = _mm512_sub_epi32(
                    _mm512_add_epi32(even[m], odd[m]),
                    _mm512_set1_epi32(128 * act[m].sum),
                );
                let da = _mm512_set1_ps(act[m].d);
                acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(d, da), acc[m]);
            }
        }
        for m in 0..M {
            // SAFETY: 16 floats per output row.
            unsafe { _mm512_storeu_ps(out[m].as_mut_ptr(), acc[m]) };
        }
    }
}

/// The AVX2 kernels: the same tiles, each 64-byte group taken as two 256-bit halves of 8 rows
/// (bytes 0..32 are rows 0..8, bytes 32..64 rows 8..16). Without `vpdpbusd`, a group is
/// `vpmaddubsw` (pairs of u8 × i8 products into i16) and `vpmaddwd` (pairs of i16 into i32).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    /// Four activation bytes from `at`, in every 32-bit lane.
    #[inline(always)]
    unsafe fn broadcast4(qs: &[i8], at: usize) -> __m256i {
        debug_assert!(at + 4 <= qs.len());
        // SAFETY: the callers' offsets stay within the block (`at + 4 <= qs.len()`), and call
        // this only from functions that enable avx2.
        unsafe { _mm256_set1_epi32(std::ptr::read_unaligned(qs.as_ptr().add(at).cast::<i32>())) }
    }

    /// `portable::q4k_sums` for M activation rows, each with one block per tile.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4k_sums<const M: usize>(
        tiles: &[TileQ4K],
        acts: &[&[ActQ8K]],
        out: &mut [[f32; TILE_ROWS]],
    ) {
        let nibble = _mm256_set1_epi8(0x0F);
        // acc[half][m]: the f32 sums of rows 8·half..8·half+8.
        let mut acc = [[_mm256_setzero_ps(); M]; 2];
        for (b, tile) in tiles.iter().enumerate() {
            let act: [&ActQ8K; M] = std::array::from_fn(|m| &acts[m][b]);
            for (half, acc) in acc.iter_mut().enumerate() {
                let mut scaled = [_mm256_setzero_si256(); M];
                for sub in 0..8 {
                    // The sub-block's products summed in i16: a `maddubs` lane is at most
                    // 2·15·127 = 3810 in magnitude (it cannot saturate) and a sub-block adds 8
                    // of them (4 groups, low and high nibbles), at most 30480 < 32767.
                    let mut dot = [_mm256_setzero_si256(); M];
                    for g in sub * 4..sub * 4 + 4 {
                        // SAFETY: group g's 64 bytes lie within `qs` (32 groups of 64).
                        let w = unsafe {
                            _mm256_loadu_si256(tile.qs.as_ptr().add(g * 64 + 32 * half).cast())
                        };
                        let lo = _mm256_and_si256(w, nibble);
                        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(w), nibble);
                        for m in 0..M {
                            // SAFETY: 8g + 8 <= 256.
                            let (x_lo, x_hi) = unsafe {
                                (
                                    broadcast4(&act[m].qs, 8 * g),
                                    broadcast4(&act[m].qs, 8 * g + 4),
                                )
                            };
                            let both = _mm256_add_epi16(
                                _mm256_maddubs_epi16(lo, x_lo),
                                _mm256_maddubs_epi16(hi, x_hi),
                            );
                            dot[m] = _mm256_add_epi16(dot[m], both);
                        }
                    }
                    // Each row's scale in both i16 halves of its lane: one `madd` adds the
                    // row's two i16 sums and scales them (at most 60960 · 63 per sub-block).
                    // SAFETY: 16 scale bytes per sub-block, 8 sub-blocks; 8 read from 8·half.
                    let scale = unsafe {
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                            tile.scales.as_ptr().add(sub * TILE_ROWS + 8 * half).cast(),
                        ))
                    };
                    let scale = _mm256_or_si256(scale, _mm256_slli_epi32::<16>(scale));
                    for m in 0..M {
                        scaled[m] = _mm256_add_epi32(scaled[m], _mm256_madd_epi16(dot[m], scale));
                    }
                }
                let mut mins = [_mm256_setzero_si256(); M];
                for pair in 0..4 {
                    // SAFETY: 32 min bytes per pair of sub-blocks (16 rows × 2), 4 pairs; the
                    // half's 8 rows are 16 of them from 16·half.
                    let widened = unsafe {
                        _mm256_cvtepu8_epi16(_mm_loadu_si128(
                            tile.mins.as_ptr().add(pair * 32 + 16 * half).cast(),
                        ))
                    };
                    for m in 0..M {
                        let sums = &act[m].sums[2 * pair..2 * pair + 2];
                        let both = (sums[0] as u16 as u32 | ((sums[1] as u16 as u32) << 16)) as i32;
                        let products = _mm256_madd_epi16(widened, _mm256_set1_epi32(both));
                        mins[m] = _mm256_add_epi32(mins[m], products);
                    }
                }
                // SAFETY: 16 f16 scales each; 8 read from 8·half.
                let (d, dmin) = unsafe {
                    (
                        _mm256_cvtph_ps(_mm_loadu_si128(tile.d.as_ptr().add(8 * half).cast())),
                        _mm256_cvtph_ps(_mm_loadu_si128(tile.dmin.as_ptr().add(8 * half).cast())),
                    )
                };
                for m in 0..M {
                    let da = _mm256_set1_ps(act[m].d);
                    let sum = &mut acc[m];
                    let scaled = _mm256_cvtepi32_ps(scaled[m]);
                    *sum = _mm256_fmadd_ps(scaled, _mm256_mul_ps(d, da), *sum);
                    let mins = _mm256_cvtepi32_ps(mins[m]);
                    *sum = _mm256_fnmadd_ps(mins, _mm256_mul_ps(dmin, da), *sum);
                }
            }
        }
        for (half, acc) in acc.iter().enumerate() {
            for m in 0..M {
                // SAFETY: 16 floats per output row, 8 written from 8·half.
                unsafe { _mm256_storeu_ps(out[m].as_mut_ptr().add(8 * half), acc[m]) };
            }
        }
    }

    /// `portable::q6k_sums` for M activation rows, each with one block per tile.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q6k_sums<const M: usize>(
        tiles: &[TileQ6K],
        acts: &[&[ActQ8K]],
        out: &mut [[f32; TILE_ROWS]],
    ) {
        let nibble = _mm256_set1_epi8(0x0F);
        let top = _mm256_set1_epi8(0x30);
        let low_half = _mm256_set1_epi32(0xFFFF);
        // acc[half][m]: the f32 sums of rows 8·half..8·half+8.
        let mut acc = [[_mm256_setzero_ps(); M]; 2];
        for (b, tile) in tiles.iter().enumerate() {
            let act: [&ActQ8K; M] = std::array::from_fn(|m| &acts[m][b]);
            for (half, acc) in acc.iter_mut().enumerate() {
                let mut scaled = [_mm256_setzero_si256(); M];
                let mut offsets = [_mm256_setzero_si256(); M];
                for sub in 0..16 {
                    let bytes = tile.body[sub].as_ptr();
                    // SAFETY: a sub-block's 192 bytes are its two groups' low bits and their
                    // high bits, 64 bytes each; this half's rows are 32 of each from 32·half.
                    let (w0, w1, h) = unsafe {
                        (
                            _mm256_loadu_si256(bytes.add(32 * half).cast()),
                            _mm256_loadu_si256(bytes.add(64 + 32 * half).cast()),
                            _mm256_loadu_si256(bytes.add(128 + 32 * half).cast()),
                        )
                    };
                    // As in the AVX-512 kernel: the high parts moved over their nibbles.
                    let values = [
                        _mm256_or_si256(
                            _mm256_and_si256(w0, nibble),
                            _mm256_and_si256(_mm256_slli_epi16::<4>(h), top),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(w0), nibble),
                            _mm256_and_si256(_mm256_slli_epi16::<2>(h), top),
                        ),
                        _mm256_or_si256(_mm256_and_si256(w1, nibble), _mm256_and_si256(h, top)),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(w1), nibble),
                            _mm256_and_si256(_mm256_srli_epi16::<2>(h), top),
                        ),
                    ];
                    // The rows' signed scales, as i32 and in both i16 halves of each lane.
                    // SAFETY: 16 scale bytes per sub-block, 16 sub-blocks; 8 read from 8·half.
                    let scale = unsafe {
                        _mm256_cvtepi8_epi32(_mm_loadl_epi64(
                            tile.scales.as_ptr().add(sub * TILE_ROWS + 8 * half).cast(),
                        ))
                    };
                    let scale_both = _mm256_or_si256(
                        _mm256_and_si256(scale, low_half),
                        _mm256_slli_epi32::<16>(scale),
                    );
                    for m in 0..M {
                        let first = 16 * sub;
                        // A `maddubs` lane is at most 2·63·127 = 16002: two of them still fit
                        // an i16, so the four are summed in two pairs.
                        // SAFETY: first + 16 <= 256.
                        let x: [__m256i; 4] = std::array::from_fn(|i| unsafe {
                            broadcast4(&act[m].qs, first + 4 * i)
                        });
                        let pair01 = _mm256_add_epi16(
                            _mm256_maddubs_epi16(values[0], x[0]),
                            _mm256_maddubs_epi16(values[1], x[1]),
                        );
                        let pair23 = _mm256_add_epi16(
                            _mm256_maddubs_epi16(values[2], x[2]),
                            _mm256_maddubs_epi16(values[3], x[3]),
                        );
                        let dot = _mm256_add_epi32(
                            _mm256_madd_epi16(pair01, scale_both),
                            _mm256_madd_epi16(pair23, scale_both),
                        );
                        scaled[m] = _mm256_add_epi32(scaled[m], dot);
                        // scale · (sum of the 16 activations), for the values' -32: the sum
                        // in the low i16 of each lane meets the scale there, the scale's sign
                        // bits in the high i16 meet 0.
                        let sum = _mm256_set1_epi32(act[m].sums16[sub] as u16 as i32);
                        offsets[m] = _mm256_add_epi32(offsets[m], _mm256_madd_epi16(scale, sum));
                    }
                }
                // SAFETY: 16 f16 scales; 8 read from 8·half.
                let d = unsafe {
                    _mm256_cvtph_ps(_mm_loadu_si128(tile.d.as_ptr().add(8 * half).cast()))
                };
                for m in 0..M {
                    let total = _mm256_sub_epi32(scaled[m], _mm256_slli_epi32::<5>(offsets[m]));
                    let da = _mm256_set1_ps(act[m].d);
                    acc[m] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(d, da), acc[m]);
                }
            }
        }
        for (half, acc) in acc.iter().enumerate() {
            for m in 0..M {
                // SAFETY: 16 floats per output row, 8 written from 8·half.
                unsafe { _mm256_storeu_ps(out[m].as_mut_ptr().add(8 * half), acc[m]) };
            }
        }
    }

    /// `portable::q8_0_sums` for M activation rows, each with one block per tile.
    ///
    /// The stored bytes (value + 128, up to 255) would overflow `maddubs`'s i16 pairs (2 · 255 ·
    /// 127), so the value itself is used, signed: its magnitude times the activation with its
    /// sign, at most 2 · 128 · 127 = 32512. No +128 offset to take out, the same integer sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q8_0_sums<const M: usize>(
        tiles: &[TileQ8_0],
        acts: &[&[ActQ8_32]],
        out: &mut [[f32; TILE_ROWS]],
    ) {
        let flip = _mm256_set1_epi8(i8::MIN);
        let ones = _mm256_set1_epi16(1);
        // acc[half][m]: the f32 sums of rows 8·half..8·half+8.
        let mut acc = [[_mm256_setzero_ps(); M]; 2];
        for (b, tile) in tiles.iter().enumerate() {
            let act: [&ActQ8_32; M] = std::array::from_fn(|m| &acts[m][b]);
            let mut dot = [[_mm256_setzero_si256(); M]; 2];
            for g in 0..QK8_0 / 4 {
                // SAFETY: 4g + 4 <= 32.
                let x: [__m256i; M] =
                    std::array::from_fn(|m| unsafe { broadcast4(&act[m].qs, 4 * g) });
                for (half, dot) in dot.iter_mut().enumerate() {
                    // SAFETY: group g's 64 bytes lie within `qs` (8 groups of 64).
                    let stored = unsafe {
                        _mm256_loadu_si256(tile.qs.as_ptr().add(g * 64 + 32 * half).cast())
                    };
                    // value = stored − 128, whose i8 bits are stored ^ 0x80; its magnitude as
                    // u8 (−128 gives 0x80, i.e. 128).
                    let value = _mm256_xor_si256(stored, flip);
                    let magnitude = _mm256_sign_epi8(value, value);
                    for m in 0..M {
                        // The activation (−127..=127, so negating it cannot wrap) with the
                        // value's sign, or 0 where the value is 0.
                        let signed = _mm256_sign_epi8(x[m], value);
                        let pairs = _mm256_maddubs_epi16(magnitude, signed);
                        let sum = &mut dot[m];
                        *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
            for (half, (acc, dot)) in acc.iter_mut().zip(&dot).enumerate() {
                // SAFETY: 16 f16 scales; 8 read from 8·half.
                let d = unsafe {
                    _mm256_cvtph_ps(_mm_loadu_si128(tile.d.as_ptr().add(8 * half).cast()))
                };
                for m in 0..M {
                    let da = _mm256_set1_ps(act[m].d);
                    let dot = _mm256_cvtepi32_ps(dot[m]);
                    acc[m] = _mm256_fmadd_ps(dot, _mm256_mul_ps(d, da), acc[m]);
                }
            }
        }
        for (half, acc) in acc.iter().enumerate() {
            for m in 0..M {
                // SAFETY: 16 floats per output row, 8 written from 8·half.
                unsafe { _mm256_storeu_ps(out[m].as_mut_ptr().add(8 * half), acc[m]) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn packed(format: GgmlDType, w: &Tensor) -> (PackedWeight, Vec<f32>) {
        let (rows, cols) = w.dims2().unwrap();
        let q = QTensor::quantize(w, format).unwrap();
        let ours = match format {
            GgmlDType::Q4K => PackedFormat::Q4K,
            GgmlDType::Q6K => PackedFormat::Q6K,
            _ => PackedFormat::Q8_0,
        };
        let weight = PackedWeight::from_gguf_blocks(ours, &q.data().unwrap(), rows, cols).unwrap();
        // candle's dequantization: an independent reading of the GGUF block layout.
        let dequantized = q.dequantize(&Device::Cpu).unwrap();
        let values = dequantized.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (weight, values)
    }

    fn random(rows: usize, cols: usize, seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    /// Products of dequantized weights with unquantized activations, in f64.
    fn reference(w: &[f32], x: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|i| w[j * k + i] as f64 * x[r * k + i] as f64)
                    .sum();
                y[r * n + j] = dot as f32;
            }
        }
        y
    }

    fn max_abs(v: &[f32]) -> f32 {
        v.iter().fold(0f32, |m, x| m.max(x.abs()))
    }

    /// All three formats, row counts that do not fill the last tile, 1 to 6 activation rows (two
    /// passes when over 4), whole and partial tile ranges: the portable kernels equal the
    /// dequantized product up to the activations' 8-bit rounding, and every vector kernel set
    /// this CPU runs (AVX-512 VNNI, AVX2) equals the portable one.
    #[test]
    fn packed_products_match_the_dequantized_weights() {
        let isas = Isa::available();
        assert_eq!(isas[0], Isa::detect());
        let formats = [
            (GgmlDType::Q4K, 512),
            (GgmlDType::Q6K, 512),
            (GgmlDType::Q8_0, 96),
        ];
        for (format, cols) in formats {
            for rows in [16, 40] {
                let w = random(rows, cols, rows as u64);
                let (weight, dense) = packed(format, &w);
                for m in [1, 3, 6] {
                    let x: Vec<f32> = random(m, cols, 7 + m as u64)
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    let acts = QuantizedRows::new(&x, m, cols, &[weight.format()]).unwrap();
                    let all = 0..weight.tile_count();
                    let portable = weight.product(Isa::Portable, &acts, all.clone()).unwrap();
                    let want = reference(&dense, &x, m, rows, cols);
                    let error = portable.iter().zip(&want).map(|(a, b)| (a - b).abs());
                    let worst = error.fold(0f32, f32::max);
                    // 8-bit activations: each value off by up to half a step of amax/127.
                    assert!(
                        worst < 0.01 * max_abs(&want),
                        "{format:?} {rows}x{cols} m={m}: {worst}"
                    );
                    for &isa in &isas {
                        let fast = weight.product(isa, &acts, all.clone()).unwrap();
                        for (a, b) in fast.iter().zip(&portable) {
                            assert!(
                                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                                "{isa:?} {format:?} {rows}x{cols} m={m}: {a} vs {b}"
                            );
                        }
                        // The second tile alone: rows 16.. of the product.
                        let tail = weight.product(isa, &acts, 1..weight.tile_count()).unwrap();
                        let width = rows - 16;
                        for r in 0..m {
                            assert_eq!(tail[r * width..][..width], fast[r * rows + 16..][..width]);
                        }
                    }
                }
            }
        }
    }

    /// The extremes the vector kernels' i16 sums are sized for (Q4_K nibbles of 15 with scales
    /// and mins of 63, Q6_K values of 63 and 0 with scales of -128 and 127, Q8_0 values of -128
    /// and 127, activations of ±127): every kernel set this CPU runs gives the portable
    /// kernels' sums exactly.
    #[test]
    fn extreme_values_give_the_portable_sums() {
        let one = f16::ONE.to_le_bytes();
        let rows = 20;
        let q4k_block = |r: usize| {
            let mut block = vec![0u8; Q4K_BLOCK_BYTES];
            block[0..2].copy_from_slice(&one);
            block[2..4].copy_from_slice(&one);
            for (i, byte) in block[4..].iter_mut().enumerate() {
                *byte = match r % 4 {
                    0 => 0xFF,
                    1 => 0xF0,
                    2 => 0x0F,
                    _ => (i * 37 + r * 11) as u8,
                };
            }
            block
        };
        // Q6_K: all values 63 or 0 (-32 after the offset) with scales of -128 and 127.
        let q6k_block = |r: usize| {
            let mut block = vec![0u8; Q6K_BLOCK_BYTES];
            let (bits, scale) = match r % 4 {
                0 => (0xFF, 0x80),
                1 => (0x00, 0x7F),
                2 => (0xFF, 0x7F),
                _ => (0, 0),
            };
            for (i, byte) in block[..208].iter_mut().enumerate() {
                *byte = match (r % 4, i) {
                    (3, _) => (i * 37 + r * 11) as u8,
                    (_, 0..192) => bits,
                    _ => scale,
                };
            }
            block[208..].copy_from_slice(&one);
            block
        };
        let q8_0_block = |r: usize| {
            let mut block = vec![0u8; Q8_0_BLOCK_BYTES];
            block[0..2].copy_from_slice(&one);
            for (i, byte) in block[2..].iter_mut().enumerate() {
                *byte = match r % 4 {
                    0 => 0x80,
                    1 => 0x7F,
                    2 => [0x80, 0x7F][i % 2],
                    _ => (i * 37 + r * 11) as u8,
                };
            }
            block
        };
        let act_rows = |cols: usize| -> Vec<f32> {
            let patterns: [fn(usize) -> f32; 4] = [
                |_| 1.0,
                |_| -1.0,
                |i| if i % 2 == 0 { 1.0 } else { -1.0 },
                |i| if i % 3 == 0 { -1.0 } else { 0.5 },
            ];
            patterns.iter().flat_map(|p| (0..cols).map(p)).collect()
        };
        let formats = [
            (PackedFormat::Q4K, 512),
            (PackedFormat::Q6K, 512),
            (PackedFormat::Q8_0, 64),
        ];
        for (format, cols) in formats {
            let (size, block): (usize, &dyn Fn(usize) -> Vec<u8>) = match format {
                PackedFormat::Q4K => (QK_K, &q4k_block),
                PackedFormat::Q6K => (QK_K, &q6k_block),
                PackedFormat::Q8_0 => (QK8_0, &q8_0_block),
            };
            let bytes: Vec<u8> = (0..rows)
                .flat_map(|r| (0..cols / size).flat_map(move |_| block(r)))
                .collect();
            let weight = PackedWeight::from_gguf_blocks(format, &bytes, rows, cols).unwrap();
            let x = act_rows(cols);
            let acts = QuantizedRows::new(&x, 4, cols, &[format]).unwrap();
            let all = 0..weight.tile_count();
            let portable = weight.product(Isa::Portable, &acts, all.clone()).unwrap();
            for isa in Isa::available() {
                let fast = weight.product(isa, &acts, all.clone()).unwrap();
                assert_eq!(fast, portable, "{isa:?} {format:?}");
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(PackedWeight::from_gguf_blocks(PackedFormat::Q4K, &[0; 143], 1, 256).is_err());
        assert!(PackedWeight::from_gguf_blocks(PackedFormat::Q8_0, &[0; 34], 1, 48).is_err());
        let w = PackedWeight::from_gguf_blocks(PackedFormat::Q8_0, &[0; 68], 2, 32).unwrap();
        let x = QuantizedRows::new(&[0.5; 64], 2, 32, &[PackedFormat::Q8_0]).unwrap();
        assert!(w.product(Isa::Portable, &x, 0..2).is_err());
        let other = QuantizedRows::new(&[0.5; 64], 1, 64, &[PackedFormat::Q8_0]).unwrap();
        assert!(w.product(Isa::Portable, &other, 0..1).is_err());
        let q4 = QuantizedRows::new(&[0.5; 32], 1, 32, &[PackedFormat::Q4K]);
        assert!(q4.is_err());
        let unasked = QuantizedRows::new(&[0.5; 32], 1, 32, &[]).unwrap();
        assert!(w.product(Isa::Portable, &unasked, 0..1).is_err());
    }
}
