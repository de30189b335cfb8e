//! Rows read back out of the tiles, as f32: a tied model's embedding lookup reads the rows of
//! its packed output layer, so the matrix is held once (llama.cpp likewise keeps one
//! `token_embd`). The decoding is the portable kernels' (`portable.rs`) with the activation
//! left out: value `8g + j` of a block is a byte's low nibble, `8g + j + 4` its high one.

use super::tiles::*;
use super::{PackedWeight, Tiles};
use crate::engine::error::{EngineError, Result};

impl PackedWeight {
    /// Row `row` of the weight, dequantized.
    pub fn row(&self, row: usize) -> Result<Vec<f32>> {
        if row >= self.rows {
            return Err(EngineError::usage(format!(
                "row {row} of a {}x{} packed weight",
                self.rows, self.cols
            )));
        }
        let (tile_row, r) = (row / TILE_ROWS, row % TILE_ROWS);
        let blocks = self.cols / self.format().block_values();
        let range = tile_row * blocks..(tile_row + 1) * blocks;
        let mut out = Vec::with_capacity(self.cols);
        match &self.tiles {
            Tiles::Q4_0(t) => t[range].iter().for_each(|t| q32_row(t, r, &mut out)),
            Tiles::Q4_1(t) => t[range].iter().for_each(|t| q32_row(t, r, &mut out)),
            Tiles::Q5_0(t) => t[range].iter().for_each(|t| q32_row(t, r, &mut out)),
            Tiles::Q5_1(t) => t[range].iter().for_each(|t| q32_row(t, r, &mut out)),
            Tiles::Q8_0(t) => t[range].iter().for_each(|t| q8_0_row(t, r, &mut out)),
            Tiles::Q4K(t) => t[range].iter().for_each(|t| qk_row(t, r, &mut out)),
            Tiles::Q5K(t) => t[range].iter().for_each(|t| qk_row(t, r, &mut out)),
            Tiles::Q6K(t) => t[range].iter().for_each(|t| q6k_row(t, r, &mut out)),
        }
        Ok(out)
    }
}

fn qk_row<const HIGH: usize>(tile: &TileK<HIGH>, r: usize, out: &mut Vec<f32>) {
    let mut values = [0f32; QK_K];
    let (d, dmin) = (tile.d[r].to_f32(), tile.dmin[r].to_f32());
    for sub in 0..8 {
        let scale = d * tile.scales[sub * TILE_ROWS + r] as f32;
        let min = dmin * tile.mins[(sub / 2 * TILE_ROWS + r) * 2 + sub % 2] as f32;
        for g in sub * 4..sub * 4 + 4 {
            for j in 0..4 {
                let byte = tile.qs[(g * TILE_ROWS + r) * 4 + j] as i32;
                let (mut low, mut high) = (byte & 0x0F, byte >> 4);
                if HIGH > 0 {
                    let (a, b) = fifths(tile.qh[(sub * TILE_ROWS + r) * 4 + j], g);
                    (low, high) = (low | a, high | b);
                }
                values[8 * g + j] = scale * low as f32 - min;
                values[8 * g + j + 4] = scale * high as f32 - min;
            }
        }
    }
    out.extend_from_slice(&values);
}

fn q32_row<const HIGH: usize, const MINS: usize>(
    tile: &Tile32<HIGH, MINS>,
    r: usize,
    out: &mut Vec<f32>,
) {
    let mut values = [0f32; QK32];
    let d = tile.d[r].to_f32();
    // Q4_0 and Q5_0 subtract a zero point; Q4_1 and Q5_1 add a min.
    let (zero, min) = match MINS {
        0 => (zero_point(HIGH), 0.0),
        _ => (0, tile.m[r].to_f32()),
    };
    for g in 0..QK32 / 8 {
        for j in 0..4 {
            let byte = tile.qs[(g * TILE_ROWS + r) * 4 + j] as i32;
            let (mut low, mut high) = (byte & 0x0F, byte >> 4);
            if HIGH > 0 {
                let (a, b) = fifths(tile.qh[r * 4 + j], g);
                (low, high) = (low | a, high | b);
            }
            values[8 * g + j] = d * (low - zero) as f32 + min;
            values[8 * g + j + 4] = d * (high - zero) as f32 + min;
        }
    }
    out.extend_from_slice(&values);
}

fn q6k_row(tile: &TileQ6K, r: usize, out: &mut Vec<f32>) {
    let mut values = [0f32; QK_K];
    let d = tile.d[r].to_f32();
    for sub in 0..16 {
        let scale = d * tile.scales[sub * TILE_ROWS + r] as f32;
        let bytes = &tile.body[sub];
        for g in 2 * sub..2 * sub + 2 {
            for j in 0..4 {
                let low = bytes[TileQ6K::low_at(g, r) + j] as i32;
                let high = bytes[TileQ6K::high_at(r) + j] as i32 >> (4 * (g % 2));
                let a = (low & 0x0F) | ((high & 3) << 4);
                let b = (low >> 4) | (((high >> 2) & 3) << 4);
                values[8 * g + j] = scale * (a - 32) as f32;
                values[8 * g + j + 4] = scale * (b - 32) as f32;
            }
        }
    }
    out.extend_from_slice(&values);
}

fn q8_0_row(tile: &TileQ8_0, r: usize, out: &mut Vec<f32>) {
    let d = tile.d[r].to_f32();
    out.extend((0..QK32).map(|i| {
        let stored = tile.qs[(i / 4 * TILE_ROWS + r) * 4 + i % 4] as i32;
        d * (stored - 128) as f32
    }));
}
