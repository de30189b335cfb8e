//! The kernels written out value by value: the definition the vector kernels must meet (same
//! integer sums, the same f32 operations in the same order).

use super::*;

/// Q4_K (HIGH = 0) and Q5_K.
pub fn qk_sums<const HIGH: usize>(
    tiles: &[TileK<HIGH>],
    acts: &[&[ActQ8K]],
    out: &mut [[f32; TILE_ROWS]],
) {
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
                            let (mut low, mut high) = (byte & 0x0F, byte >> 4);
                            if HIGH > 0 {
                                let (a, b) = fifths(tile.qh[(sub * TILE_ROWS + r) * 4 + j], g);
                                (low, high) = (low | a, high | b);
                            }
                            dot += low * act.qs[8 * g + j] as i32;
                            dot += high * act.qs[8 * g + j + 4] as i32;
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

/// Q4_0 (HIGH = MINS = 0), Q4_1, Q5_0 and Q5_1.
pub fn q32_sums<const HIGH: usize, const MINS: usize>(
    tiles: &[Tile32<HIGH, MINS>],
    acts: &[&[ActQ8_32]],
    out: &mut [[f32; TILE_ROWS]],
) {
    for (act_row, sums) in acts.iter().zip(out.iter_mut()) {
        *sums = [0.0; TILE_ROWS];
        for (tile, act) in tiles.iter().zip(act_row.iter()) {
            for (r, sum) in sums.iter_mut().enumerate() {
                let mut dot = 0i32;
                for g in 0..QK32 / 8 {
                    for j in 0..4 {
                        let byte = tile.qs[(g * TILE_ROWS + r) * 4 + j] as i32;
                        let (mut low, mut high) = (byte & 0x0F, byte >> 4);
                        if HIGH > 0 {
                            let (a, b) = fifths(tile.qh[r * 4 + j], g);
                            (low, high) = (low | a, high | b);
                        }
                        dot += low * act.qs[8 * g + j] as i32;
                        dot += high * act.qs[8 * g + j + 4] as i32;
                    }
                }
                let d = tile.d[r].to_f32() * act.d;
                if MINS == 0 {
                    let dot = dot - zero_point(HIGH) * act.sum;
                    *sum = (dot as f32).mul_add(d, *sum);
                } else {
                    *sum = (dot as f32).mul_add(d, *sum);
                    let m = tile.m[r].to_f32() * act.d;
                    *sum = (act.sum as f32).mul_add(m, *sum);
                }
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
                for i in 0..QK32 {
                    let stored = tile.qs[(i / 4 * TILE_ROWS + r) * 4 + i % 4] as i32;
                    dot += stored * act.qs[i] as i32;
                }
                let dot = dot - 128 * act.sum;
                *sum = (dot as f32).mul_add(tile.d[r].to_f32() * act.d, *sum);
            }
        }
    }
}
