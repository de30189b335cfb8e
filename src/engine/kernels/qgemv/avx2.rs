//! The AVX2 kernels: the same tiles, each 64-byte group taken as two 256-bit halves of 8 rows
//! (bytes 0..32 are rows 0..8, bytes 32..64 rows 8..16). Without `vpdpbusd`, a group is
//! `vpmaddubsw` (pairs of u8 × i8 products into i16) and `vpmaddwd` (pairs of i16 into i32).

use super::*;
use std::arch::x86_64::*;

/// Four activation bytes from `at`, in every 32-bit lane.
///
/// # Safety
/// `at + 4 <= qs.len()`, and the CPU must support avx2 (the kernels below, which enable it,
/// are the only callers).
#[inline(always)]
unsafe fn broadcast4(qs: &[i8], at: usize) -> __m256i {
    debug_assert!(at + 4 <= qs.len());
    // SAFETY: the caller keeps `at + 4 <= qs.len()`, so the four bytes read (unaligned) lie in
    // `qs`, and runs with avx2 enabled.
    unsafe { _mm256_set1_epi32(std::ptr::read_unaligned(qs.as_ptr().add(at).cast::<i32>())) }
}

/// As `avx512::next_fifths`: the fifth bits of the next group of a high-bit plane (here a
/// half of 8 rows), at bit 4 of the low nibbles' and the high nibbles' bytes.
///
/// # Safety
/// The CPU must support avx2 (the kernels below, which enable it, are the only callers).
#[inline(always)]
unsafe fn next_fifths(plane: &mut __m256i) -> (__m256i, __m256i) {
    // SAFETY: register operations only; the caller runs with avx2 enabled.
    unsafe {
        let bit4 = _mm256_set1_epi8(0x10);
        let low = _mm256_and_si256(_mm256_slli_epi16::<4>(*plane), bit4);
        let high = _mm256_and_si256(_mm256_slli_epi16::<3>(*plane), bit4);
        *plane = _mm256_srli_epi16::<2>(*plane);
        (low, high)
    }
}

/// Groups of 8 values whose `maddubs` products can be summed in i16 before widening: a
/// `maddubs` lane is at most 2·15·127 = 3810 for 4-bit values, and a group adds two (low and
/// high nibbles), so 4 groups reach 30480; 5-bit values give 2·31·127 = 7874, so 2 groups
/// reach 31496. Both stay under 32767.
const fn groups_per_i16_sum(high: usize) -> usize {
    if high > 0 { 2 } else { 4 }
}

/// `portable::qk_sums` (Q4_K, or Q5_K with its high-bit planes) for M activation rows, each
/// with one block per tile.
///
/// # Safety
/// The CPU must support avx2, fma and f16c (`Isa::Avx2.runs_here()`, which
/// `PackedWeight::product` checks). Nothing else: every load and store is unaligned and stays
/// inside a tile's or an activation block's fixed-size arrays, and `acts[m][b]` and `out[m]`
/// are indexed with bounds checks, so fewer than M rows in `acts` or `out`, or fewer than
/// `tiles.len()` blocks in a row, panic.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn qk_sums<const HIGH: usize, const M: usize>(
    tiles: &[TileK<HIGH>],
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
                // Each row's scale in both i16 halves of its lane: one `madd` adds the
                // row's two i16 sums and scales them (at most 2 · 31496 · 63).
                // SAFETY: 16 scale bytes per sub-block, 8 sub-blocks; 8 read from 8·half.
                let scale = unsafe {
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                        tile.scales.as_ptr().add(sub * TILE_ROWS + 8 * half).cast(),
                    ))
                };
                let scale = _mm256_or_si256(scale, _mm256_slli_epi32::<16>(scale));
                let mut plane = if HIGH > 0 {
                    // SAFETY: Q5_K's 8 planes of 64 bytes; this half's rows are 32 of them.
                    unsafe { _mm256_loadu_si256(tile.qh.as_ptr().add(sub * 64 + 32 * half).cast()) }
                } else {
                    _mm256_setzero_si256()
                };
                // The sub-block's products summed in i16, widened and scaled every
                // `groups_per_i16_sum` groups.
                let mut dot = [_mm256_setzero_si256(); M];
                for g in sub * 4..sub * 4 + 4 {
                    // SAFETY: group g's 64 bytes lie within `qs` (32 groups of 64).
                    let w = unsafe {
                        _mm256_loadu_si256(tile.qs.as_ptr().add(g * 64 + 32 * half).cast())
                    };
                    let mut lo = _mm256_and_si256(w, nibble);
                    let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(w), nibble);
                    if HIGH > 0 {
                        // SAFETY: this kernel enables avx2.
                        let (a, b) = unsafe { next_fifths(&mut plane) };
                        (lo, hi) = (_mm256_or_si256(lo, a), _mm256_or_si256(hi, b));
                    }
                    let widen = (g + 1) % groups_per_i16_sum(HIGH) == 0;
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
                        if widen {
                            let products = _mm256_madd_epi16(dot[m], scale);
                            scaled[m] = _mm256_add_epi32(scaled[m], products);
                            dot[m] = _mm256_setzero_si256();
                        }
                    }
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

/// `portable::q32_sums` (Q4_0, Q4_1, Q5_0, Q5_1) for M activation rows, each with one block
/// per tile.
///
/// # Safety
/// The CPU must support avx2, fma and f16c (`Isa::Avx2.runs_here()`, which
/// `PackedWeight::product` checks). Nothing else: every load and store is unaligned and stays
/// inside a tile's or an activation block's fixed-size arrays, and `acts[m][b]` and `out[m]`
/// are indexed with bounds checks, so fewer than M rows in `acts` or `out`, or fewer than
/// `tiles.len()` blocks in a row, panic.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q32_sums<const HIGH: usize, const MINS: usize, const M: usize>(
    tiles: &[Tile32<HIGH, MINS>],
    acts: &[&[ActQ8_32]],
    out: &mut [[f32; TILE_ROWS]],
) {
    let nibble = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    // acc[half][m]: the f32 sums of rows 8·half..8·half+8.
    let mut acc = [[_mm256_setzero_ps(); M]; 2];
    for (b, tile) in tiles.iter().enumerate() {
        let act: [&ActQ8_32; M] = std::array::from_fn(|m| &acts[m][b]);
        for (half, acc) in acc.iter_mut().enumerate() {
            let mut plane = if HIGH > 0 {
                // SAFETY: Q5_0's and Q5_1's plane of 64 bytes; this half's rows are 32.
                unsafe { _mm256_loadu_si256(tile.qh.as_ptr().add(32 * half).cast()) }
            } else {
                _mm256_setzero_si256()
            };
            let mut part = [_mm256_setzero_si256(); M];
            let mut dot = [_mm256_setzero_si256(); M];
            for g in 0..QK32 / 8 {
                // SAFETY: group g's 64 bytes lie within `qs` (4 groups of 64).
                let w =
                    unsafe { _mm256_loadu_si256(tile.qs.as_ptr().add(g * 64 + 32 * half).cast()) };
                let mut lo = _mm256_and_si256(w, nibble);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(w), nibble);
                if HIGH > 0 {
                    // SAFETY: this kernel enables avx2.
                    let (a, b) = unsafe { next_fifths(&mut plane) };
                    (lo, hi) = (_mm256_or_si256(lo, a), _mm256_or_si256(hi, b));
                }
                let widen = (g + 1) % groups_per_i16_sum(HIGH) == 0;
                for m in 0..M {
                    // SAFETY: 8g + 8 <= 32.
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
                    part[m] = _mm256_add_epi16(part[m], both);
                    if widen {
                        dot[m] = _mm256_add_epi32(dot[m], _mm256_madd_epi16(part[m], ones));
                        part[m] = _mm256_setzero_si256();
                    }
                }
            }
            // SAFETY: 16 f16 scales; 8 read from 8·half.
            let d =
                unsafe { _mm256_cvtph_ps(_mm_loadu_si128(tile.d.as_ptr().add(8 * half).cast())) };
            for m in 0..M {
                let mut dot = dot[m];
                if MINS == 0 {
                    let offset = _mm256_set1_epi32(zero_point(HIGH) * act[m].sum);
                    dot = _mm256_sub_epi32(dot, offset);
                }
                let da = _mm256_set1_ps(act[m].d);
                acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(d, da), acc[m]);
                if MINS > 0 {
                    // SAFETY: Q4_1's and Q5_1's 16 f16 mins; 8 read from 8·half.
                    let min = unsafe {
                        _mm256_cvtph_ps(_mm_loadu_si128(tile.m.as_ptr().add(8 * half).cast()))
                    };
                    let sum = _mm256_set1_ps(act[m].sum as f32);
                    acc[m] = _mm256_fmadd_ps(sum, _mm256_mul_ps(min, da), acc[m]);
                }
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
///
/// # Safety
/// The CPU must support avx2, fma and f16c (`Isa::Avx2.runs_here()`, which
/// `PackedWeight::product` checks). Nothing else: every load and store is unaligned and stays
/// inside a tile's or an activation block's fixed-size arrays, and `acts[m][b]` and `out[m]`
/// are indexed with bounds checks, so fewer than M rows in `acts` or `out`, or fewer than
/// `tiles.len()` blocks in a row, panic.
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
                    let x: [__m256i; 4] =
                        std::array::from_fn(|i| unsafe { broadcast4(&act[m].qs, first + 4 * i) });
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
            let d =
                unsafe { _mm256_cvtph_ps(_mm_loadu_si128(tile.d.as_ptr().add(8 * half).cast())) };
            for m in 0..M {
                let total = _mm256_sub_epi32(scaled[m], _mm256_slli_epi32::<5>(offsets[m]));
                let da = _mm256_set1_ps(act[m].d);
                acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(d, da), acc[m]);
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
///
/// # Safety
/// The CPU must support avx2, fma and f16c (`Isa::Avx2.runs_here()`, which
/// `PackedWeight::product` checks). Nothing else: every load and store is unaligned and stays
/// inside a tile's or an activation block's fixed-size arrays, and `acts[m][b]` and `out[m]`
/// are indexed with bounds checks, so fewer than M rows in `acts` or `out`, or fewer than
/// `tiles.len()` blocks in a row, panic.
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
        for g in 0..QK32 / 4 {
            // SAFETY: 4g + 4 <= 32.
            let x: [__m256i; M] = std::array::from_fn(|m| unsafe { broadcast4(&act[m].qs, 4 * g) });
            for (half, dot) in dot.iter_mut().enumerate() {
                // SAFETY: group g's 64 bytes lie within `qs` (8 groups of 64).
                let stored =
                    unsafe { _mm256_loadu_si256(tile.qs.as_ptr().add(g * 64 + 32 * half).cast()) };
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
            let d =
                unsafe { _mm256_cvtph_ps(_mm_loadu_si128(tile.d.as_ptr().add(8 * half).cast())) };
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
