//! The AVX-512 VNNI kernels: one `vpdpbusd` per four values of the 16 rows of a tile.

use super::*;
use std::arch::x86_64::*;

/// Four activation bytes from `at`, in every 32-bit lane.
///
/// # Safety
/// `at + 4 <= qs.len()`, and the CPU must support avx512f (the kernels below, which enable it,
/// are the only callers).
#[inline(always)]
unsafe fn broadcast4(qs: &[i8], at: usize) -> __m512i {
    debug_assert!(at + 4 <= qs.len());
    // SAFETY: the caller keeps `at + 4 <= qs.len()`, so the four bytes read (unaligned) lie in
    // `qs`, and runs with avx512f enabled.
    unsafe { _mm512_set1_epi32(std::ptr::read_unaligned(qs.as_ptr().add(at).cast::<i32>())) }
}

/// The fifth bits of group g (0..4 within its 32 values) from the high-bit plane `plane`,
/// at bit 4 of the bytes of the low nibbles (from bit 0) and of the high ones (from bit 1);
/// the plane is then shifted down for the next group. A 16-bit shift moves bits across
/// bytes, but only into bits 6-7 (then 4-5, 2-3) of the byte below, never into bits 0-1,
/// which are the only ones read, within 4 groups.
///
/// # Safety
/// The CPU must support avx512f and avx512bw (the kernels below, which enable them, are the
/// only callers).
#[inline(always)]
unsafe fn next_fifths(plane: &mut __m512i) -> (__m512i, __m512i) {
    // SAFETY: register operations only; the caller runs with avx512f and avx512bw enabled.
    unsafe {
        let bit4 = _mm512_set1_epi8(0x10);
        let low = _mm512_and_si512(_mm512_slli_epi16::<4>(*plane), bit4);
        let high = _mm512_and_si512(_mm512_slli_epi16::<3>(*plane), bit4);
        *plane = _mm512_srli_epi16::<2>(*plane);
        (low, high)
    }
}

/// `portable::qk_sums` (Q4_K, or Q5_K with its high-bit planes) for M activation rows, each
/// with one block per tile.
///
/// # Safety
/// The CPU must support avx512f, avx512bw and avx512vnni (`Isa::Avx512Vnni.runs_here()`, which
/// `PackedWeight::product` checks). Nothing else: every load and store is unaligned and stays
/// inside a tile's or an activation block's fixed-size arrays, and `acts[m][b]` and `out[m]`
/// are indexed with bounds checks, so fewer than M rows in `acts` or `out`, or fewer than
/// `tiles.len()` blocks in a row, panic.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn qk_sums<const HIGH: usize, const M: usize>(
    tiles: &[TileK<HIGH>],
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
            // Q5_K: the sub-block's plane (HIGH is 0 for Q4_K, which has none).
            let mut plane = if HIGH > 0 {
                // SAFETY: Q5_K's 8 planes of 64 bytes, one per sub-block.
                unsafe { _mm512_loadu_si512(tile.qh.as_ptr().add(sub * 64).cast()) }
            } else {
                _mm512_setzero_si512()
            };
            // Low and high nibbles sum apart: two dependency chains instead of one.
            let mut low = [_mm512_setzero_si512(); M];
            let mut high = [_mm512_setzero_si512(); M];
            for g in sub * 4..sub * 4 + 4 {
                // SAFETY: group g's 64 bytes lie within `qs` (32 groups of 64).
                let w = unsafe { _mm512_loadu_si512(qs.add(g * 64).cast()) };
                let mut lo = _mm512_and_si512(w, nibble);
                let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(w), nibble);
                if HIGH > 0 {
                    // SAFETY: this kernel enables avx512f and avx512bw.
                    let (a, b) = unsafe { next_fifths(&mut plane) };
                    (lo, hi) = (_mm512_or_si512(lo, a), _mm512_or_si512(hi, b));
                }
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
                _mm512_cvtepu8_epi16(_mm256_loadu_si256(tile.mins.as_ptr().add(pair * 32).cast()))
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

/// `portable::q32_sums` (Q4_0, Q4_1, Q5_0, Q5_1) for M activation rows, each with one block
/// per tile.
///
/// # Safety
/// The CPU must support avx512f, avx512bw and avx512vnni (`Isa::Avx512Vnni.runs_here()`, which
/// `PackedWeight::product` checks). Nothing else: every load and store is unaligned and stays
/// inside a tile's or an activation block's fixed-size arrays, and `acts[m][b]` and `out[m]`
/// are indexed with bounds checks, so fewer than M rows in `acts` or `out`, or fewer than
/// `tiles.len()` blocks in a row, panic.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn q32_sums<const HIGH: usize, const MINS: usize, const M: usize>(
    tiles: &[Tile32<HIGH, MINS>],
    acts: &[&[ActQ8_32]],
    out: &mut [[f32; TILE_ROWS]],
) {
    let nibble = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); M];
    for (b, tile) in tiles.iter().enumerate() {
        let act: [&ActQ8_32; M] = std::array::from_fn(|m| &acts[m][b]);
        let qs = tile.qs.as_ptr();
        let mut plane = if HIGH > 0 {
            // SAFETY: Q5_0's and Q5_1's one plane of 64 bytes.
            unsafe { _mm512_loadu_si512(tile.qh.as_ptr().cast()) }
        } else {
            _mm512_setzero_si512()
        };
        let mut low = [_mm512_setzero_si512(); M];
        let mut high = [_mm512_setzero_si512(); M];
        for g in 0..QK32 / 8 {
            // SAFETY: group g's 64 bytes lie within `qs` (4 groups of 64).
            let w = unsafe { _mm512_loadu_si512(qs.add(g * 64).cast()) };
            let mut lo = _mm512_and_si512(w, nibble);
            let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(w), nibble);
            if HIGH > 0 {
                // SAFETY: this kernel enables avx512f and avx512bw.
                let (a, b) = unsafe { next_fifths(&mut plane) };
                (lo, hi) = (_mm512_or_si512(lo, a), _mm512_or_si512(hi, b));
            }
            for m in 0..M {
                // SAFETY: 8g + 8 <= 32.
                unsafe {
                    low[m] = _mm512_dpbusd_epi32(low[m], lo, broadcast4(&act[m].qs, 8 * g));
                    high[m] = _mm512_dpbusd_epi32(high[m], hi, broadcast4(&act[m].qs, 8 * g + 4));
                }
            }
        }
        // SAFETY: 16 f16 scales.
        let d = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(tile.d.as_ptr().cast())) };
        for m in 0..M {
            let mut dot = _mm512_add_epi32(low[m], high[m]);
            if MINS == 0 {
                let offset = _mm512_set1_epi32(zero_point(HIGH) * act[m].sum);
                dot = _mm512_sub_epi32(dot, offset);
            }
            let da = _mm512_set1_ps(act[m].d);
            acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(d, da), acc[m]);
            if MINS > 0 {
                // SAFETY: Q4_1's and Q5_1's 16 f16 mins.
                let min = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(tile.m.as_ptr().cast())) };
                let sum = _mm512_set1_ps(act[m].sum as f32);
                acc[m] = _mm512_fmadd_ps(sum, _mm512_mul_ps(min, da), acc[m]);
            }
        }
    }
    for m in 0..M {
        // SAFETY: 16 floats per output row.
        unsafe { _mm512_storeu_ps(out[m].as_mut_ptr(), acc[m]) };
    }
}

/// `portable::q6k_sums` for M activation rows, each with one block per tile.
///
/// # Safety
/// The CPU must support avx512f, avx512bw and avx512vnni (`Isa::Avx512Vnni.runs_here()`, which
/// `PackedWeight::product` checks). Nothing else: every load and store is unaligned and stays
/// inside a tile's or an activation block's fixed-size arrays, and `acts[m][b]` and `out[m]`
/// are indexed with bounds checks, so fewer than M rows in `acts` or `out`, or fewer than
/// `tiles.len()` blocks in a row, panic.
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
///
/// # Safety
/// The CPU must support avx512f, avx512bw and avx512vnni (`Isa::Avx512Vnni.runs_here()`, which
/// `PackedWeight::product` checks). Nothing else: every load and store is unaligned and stays
/// inside a tile's or an activation block's fixed-size arrays, and `acts[m][b]` and `out[m]`
/// are indexed with bounds checks, so fewer than M rows in `acts` or `out`, or fewer than
/// `tiles.len()` blocks in a row, panic.
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
        for g in (0..QK32 / 4).step_by(2) {
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
