//! The packed tiles, one type per family of GGUF block formats, and how GGUF blocks become
//! them. The kernels (`portable.rs`, `avx2.rs`, `avx512.rs`) read only these types.
//!
//! Every tile is 16 rows by one block. The 4-bit parts of the values are laid out the same way
//! in all formats with nibbles ("groups" of 8 values: byte j of a row holds value 8g+j in its
//! low nibble and 8g+j+4 in its high one, the 16 rows' 4 bytes side by side), and the fifth
//! bit of the 5-bit formats (Q5_0, Q5_1, Q5_K) lies in one "high-bit plane" per 32 values:
//! [row (16)][4 bytes], byte j holding from bit 0 the fifth bits of values 8g+j and 8g+j+4 of
//! the 4 groups in turn. One plane is one 64-byte vector, and a shift by 2 brings the next
//! group's bits down.
//!
//! The formats of a family differ by arrays that are empty or not (a const generic length), so
//! one kernel serves the family and the compiler drops the parts a format lacks.

use half::f16;

/// Rows in a tile: the 16 lanes of a 512-bit register of i32 sums.
pub const TILE_ROWS: usize = 16;
/// Values in a K-quant super-block (and in an activation block paired with it).
pub(super) const QK_K: usize = 256;
/// Values in a block of the 32-value formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), and in the
/// activation block paired with it.
pub(super) const QK32: usize = 32;
/// Bytes of one high-bit plane (the fifth bits of 32 values of 16 rows).
pub(super) const PLANE_BYTES: usize = TILE_ROWS * 4;
/// Bytes of one GGUF block, as ggml lays them out:
/// Q4_K is d, dmin (f16), 12 bytes of packed 6-bit scales and mins, 128 bytes of nibbles;
pub(super) const Q4K_BLOCK_BYTES: usize = 144;
/// Q5_K is Q4_K with 32 bytes of fifth bits between the scales and the nibbles;
pub(super) const Q5K_BLOCK_BYTES: usize = 176;
/// Q6_K: 128 bytes of low nibbles, 64 of 2-bit high parts, 16 signed scales, d (f16);
pub(super) const Q6K_BLOCK_BYTES: usize = 210;
/// Q8_0: d (f16) and 32 signed bytes;
pub(super) const Q8_0_BLOCK_BYTES: usize = 34;
/// Q4_0: d (f16), 16 bytes of nibbles (values 0..16 low, 16..32 high); Q4_1 adds m (f16)
/// after d; Q5_0 and Q5_1 put 4 bytes of fifth bits (bit i for value i) before the nibbles.
pub(super) const Q4_0_BLOCK_BYTES: usize = 18;
pub(super) const Q4_1_BLOCK_BYTES: usize = 20;
pub(super) const Q5_0_BLOCK_BYTES: usize = 22;
pub(super) const Q5_1_BLOCK_BYTES: usize = 24;

/// 16 rows by 256 values of Q4_K (HIGH = 0) or Q5_K (HIGH = 8 planes): 2368 or 2880 bytes
/// for 4096 weights, whole numbers of cache lines.
#[repr(C, align(64))]
#[derive(Clone)]
pub(super) struct TileK<const HIGH: usize> {
    /// [group g (32)][row (16)][4 bytes]: the values' low 4 bits.
    pub qs: [u8; QK_K / 8 * TILE_ROWS * 4],
    /// Q5_K's fifth bits: one plane per 32-value sub-block.
    pub qh: [u8; HIGH],
    /// 6-bit scale of each 32-value sub-block, [sub-block (8)][row (16)].
    pub scales: [u8; 8 * TILE_ROWS],
    /// 6-bit min of each sub-block, [sub-block pair (4)][row (16)][2], so that widened to i16
    /// a pair lines up with a pair of activation block sums for `vpdpwssd`.
    pub mins: [u8; 8 * TILE_ROWS],
    pub d: [f16; TILE_ROWS],
    pub dmin: [f16; TILE_ROWS],
}

pub(super) type TileQ4K = TileK<0>;
pub(super) type TileQ5K = TileK<{ 8 * PLANE_BYTES }>;

/// 16 rows by one 32-value block of Q4_0 (HIGH = MINS = 0, 288 bytes), Q4_1 (MINS = 16),
/// Q5_0 (HIGH = one plane) or Q5_1 (both). Q4_0 and Q5_0 values are unsigned with a zero
/// point (8, 16) that comes back out through the activation block's sum; Q4_1 and Q5_1 add
/// a min per row instead.
#[repr(C)]
#[derive(Clone)]
pub(super) struct Tile32<const HIGH: usize, const MINS: usize> {
    /// [group g (4)][row (16)][4 bytes]: the values' low 4 bits.
    pub qs: [u8; QK32 / 8 * TILE_ROWS * 4],
    pub qh: [u8; HIGH],
    pub d: [f16; TILE_ROWS],
    pub m: [f16; MINS],
}

pub(super) type TileQ4_0 = Tile32<0, 0>;
pub(super) type TileQ4_1 = Tile32<0, TILE_ROWS>;
pub(super) type TileQ5_0 = Tile32<PLANE_BYTES, 0>;
pub(super) type TileQ5_1 = Tile32<PLANE_BYTES, TILE_ROWS>;

/// The zero point of Q4_0 (8) and Q5_0 (16): half their range.
/// The fifth bits of values 8g+j and 8g+j+4 (g the group within its 32 values) from a
/// high-bit plane byte, as 16s to add to their low nibbles.
pub(super) fn fifths(plane_byte: u8, g: usize) -> (i32, i32) {
    let bits = (plane_byte >> (2 * (g % 4))) as i32;
    ((bits & 1) << 4, (bits & 2) << 3)
}

pub(super) const fn zero_point(high: usize) -> i32 {
    if high > 0 { 16 } else { 8 }
}

/// 16 rows by 256 values of Q6_K; 3392 bytes for 4096 weights.
///
/// Each sub-block's bytes lie together, in the order the kernel reads them: one stream per
/// tile. With the low and high bits in separate arrays (two streams at different strides),
/// products streamed from memory ran at a third of the speed.
#[repr(C, align(64))]
#[derive(Clone)]
pub(super) struct TileQ6K {
    /// Signed scale of each 16-value sub-block, [sub-block (16)][row (16)].
    pub scales: [i8; 16 * TILE_ROWS],
    pub d: [f16; TILE_ROWS],
    /// Keeps `body` on cache-line boundaries.
    _pad: [u8; 32],
    /// Per sub-block s (groups 2s and 2s+1): the low 4 bits of group 2s, then of 2s+1, each
    /// laid out as a `TileK::qs` group, then their high 2 bits, [row (16)][4 bytes], byte j
    /// holding from bit 0 those of values 8g+j and 8g+j+4 of group 2s, then of group 2s+1.
    pub body: [[u8; 3 * TILE_ROWS * 4]; 16],
}

impl TileQ6K {
    /// Offset in a sub-block's bytes of the low bits of group g, row r.
    pub fn low_at(g: usize, r: usize) -> usize {
        (g % 2 * TILE_ROWS + r) * 4
    }

    /// Offset in a sub-block's bytes of the high bits of row r.
    pub fn high_at(r: usize) -> usize {
        (2 * TILE_ROWS + r) * 4
    }
}

/// 16 rows by 32 values of Q8_0, the values stored +128; 544 bytes for 512 weights.
#[repr(C)]
#[derive(Clone)]
pub(super) struct TileQ8_0 {
    /// [group g (8)][row (16)][4 bytes]: values 4g..4g+4 of the row, each + 128.
    pub qs: [u8; QK32 * TILE_ROWS],
    pub d: [f16; TILE_ROWS],
}

/// A tile made from the GGUF blocks of its 16 rows (None past the weight's last row).
pub(super) trait Pack: Sized {
    fn pack<'a>(block_of_row: impl Fn(usize) -> Option<&'a [u8]>) -> Self;
}

/// Value `j` (0..8) of a K-quant block's packed 6-bit scales and mins, as ggml packs them: the
/// first four in the low 6 bits of bytes 0..4 and 4..8, the last four split between the low or
/// high nibbles of bytes 8..12 and the top 2 bits of bytes 0..8.
fn k_scale_min(j: usize, packed: &[u8]) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        (
            (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4),
            (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
        )
    }
}

pub(super) fn read_f16(bytes: &[u8]) -> f16 {
    f16::from_le_bytes([bytes[0], bytes[1]])
}

/// Store the values of one row of a tile (each 0..32, `value(i)` for i in 0..32·groups/4)
/// into the nibble groups `qs` and, where the format has them, the high-bit planes `qh`.
fn put_values(qs: &mut [u8], qh: &mut [u8], r: usize, groups: usize, value: impl Fn(usize) -> u8) {
    for g in 0..groups {
        for j in 0..4 {
            let (a, b) = (value(8 * g + j), value(8 * g + j + 4));
            qs[(g * TILE_ROWS + r) * 4 + j] = (a & 0x0F) | ((b & 0x0F) << 4);
            if !qh.is_empty() {
                let bits = (a >> 4) | ((b >> 4) << 1);
                qh[(g / 4 * TILE_ROWS + r) * 4 + j] |= bits << (2 * (g % 4));
            }
        }
    }
}

impl<const HIGH: usize> Pack for TileK<HIGH> {
    fn pack<'a>(block_of_row: impl Fn(usize) -> Option<&'a [u8]>) -> Self {
        let mut tile = TileK {
            qs: [0; QK_K / 8 * TILE_ROWS * 4],
            qh: [0; HIGH],
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
                let (scale, min) = k_scale_min(sub, &block[4..16]);
                tile.scales[sub * TILE_ROWS + r] = scale;
                tile.mins[(sub / 2 * TILE_ROWS + r) * 2 + sub % 2] = min;
            }
            // GGUF's nibbles: each 32-byte chunk c holds values 64c.. in its low nibbles and
            // 64c+32.. in its high ones. Q5_K's fifth bits: bit i/32 of byte i%32.
            let (high, qs) = block[16..].split_at(if HIGH > 0 { 32 } else { 0 });
            let value = |i: usize| {
                let byte = qs[i / 64 * 32 + i % 32];
                let nibble = if i % 64 < 32 { byte & 0x0F } else { byte >> 4 };
                let fifth = high.get(i % 32).map_or(0, |h| (h >> (i / 32)) & 1);
                nibble | (fifth << 4)
            };
            put_values(&mut tile.qs, &mut tile.qh, r, QK_K / 8, value);
        }
        tile
    }
}

impl<const HIGH: usize, const MINS: usize> Pack for Tile32<HIGH, MINS> {
    fn pack<'a>(block_of_row: impl Fn(usize) -> Option<&'a [u8]>) -> Self {
        let mut tile = Tile32 {
            qs: [0; QK32 / 8 * TILE_ROWS * 4],
            qh: [0; HIGH],
            d: [f16::ZERO; TILE_ROWS],
            m: [f16::ZERO; MINS],
        };
        for r in 0..TILE_ROWS {
            let Some(block) = block_of_row(r) else {
                continue;
            };
            tile.d[r] = read_f16(&block[0..2]);
            let mut rest = &block[2..];
            if MINS > 0 {
                tile.m[r] = read_f16(&rest[0..2]);
                rest = &rest[2..];
            }
            let (high, qs) = rest.split_at(if HIGH > 0 { 4 } else { 0 });
            let fifths = high
                .iter()
                .rev()
                .fold(0u32, |bits, &b| (bits << 8) | b as u32);
            // Values 0..16 in the low nibbles, 16..32 in the high ones; fifth bit i for value i.
            let value = |i: usize| {
                let nibble = if i < 16 {
                    qs[i] & 0x0F
                } else {
                    qs[i - 16] >> 4
                };
                nibble | ((((fifths >> i) & 1) as u8) << 4)
            };
            put_values(&mut tile.qs, &mut tile.qh, r, QK32 / 8, value);
        }
        tile
    }
}

impl Pack for TileQ6K {
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

impl Pack for TileQ8_0 {
    fn pack<'a>(block_of_row: impl Fn(usize) -> Option<&'a [u8]>) -> Self {
        // Rows past the weight's end hold value 0, i.e. 128 stored, with d = 0.
        let mut tile = TileQ8_0 {
            qs: [128; QK32 * TILE_ROWS],
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
