//! The kernels written out value by value: the definition the vector kernels must meet (same
//! integer sums, the same f32 operations in the same order).

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
