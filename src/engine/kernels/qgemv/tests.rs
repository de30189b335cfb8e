use super::*;
use crate::engine::kernels::gemv::tests::reference;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use half::f16;

fn packed(format: GgmlDType, w: &Tensor) -> (PackedWeight, Vec<f32>) {
    let (rows, cols) = w.dims2().unwrap();
    let q = QTensor::quantize(w, format).unwrap();
    let ours = ours(format);
    let weight = PackedWeight::from_gguf_blocks(ours, &q.data().unwrap(), rows, cols).unwrap();
    // candle's dequantization: an independent reading of the GGUF block layout.
    let dequantized = q.dequantize(&Device::Cpu).unwrap();
    let values = dequantized.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (weight, values)
}

/// Our name for a candle format: every format packed here.
fn ours(format: GgmlDType) -> PackedFormat {
    match format {
        GgmlDType::Q4_0 => PackedFormat::Q4_0,
        GgmlDType::Q4_1 => PackedFormat::Q4_1,
        GgmlDType::Q5_0 => PackedFormat::Q5_0,
        GgmlDType::Q5_1 => PackedFormat::Q5_1,
        GgmlDType::Q8_0 => PackedFormat::Q8_0,
        GgmlDType::Q4K => PackedFormat::Q4K,
        GgmlDType::Q5K => PackedFormat::Q5K,
        GgmlDType::Q6K => PackedFormat::Q6K,
        other => panic!("{other:?} is not packed"),
    }
}

/// Every packed format, with a row length of whole blocks.
const FORMATS: [(GgmlDType, usize); 8] = [
    (GgmlDType::Q4_0, 96),
    (GgmlDType::Q4_1, 96),
    (GgmlDType::Q5_0, 96),
    (GgmlDType::Q5_1, 96),
    (GgmlDType::Q8_0, 96),
    (GgmlDType::Q4K, 512),
    (GgmlDType::Q5K, 512),
    (GgmlDType::Q6K, 512),
];

fn random(rows: usize, cols: usize, seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// Every format, row counts that do not fill the last tile, 1 to 6 activation rows (two
/// passes when over 4), whole and partial tile ranges: the portable kernels equal the
/// dequantized product up to the activations' 8-bit rounding, and every vector kernel set
/// this CPU runs (AVX-512 VNNI, AVX2) equals the portable one.
#[test]
fn packed_products_match_the_dequantized_weights() {
    let isas = Isa::available();
    assert_eq!(isas[0], Isa::detect());
    for (format, cols) in FORMATS {
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
                let want = reference(&x, m, &dense, rows, cols);
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

/// The extremes the vector kernels' i16 sums are sized for (4-bit values of 15 and 5-bit ones
/// of 31, K-quant scales and mins of 63, Q6_K values of 63 and 0 with scales of -128 and 127, Q8_0 values of -128
/// and 127, activations of ±127): every kernel set this CPU runs gives the portable
/// kernels' sums exactly.
#[test]
fn extreme_values_give_the_portable_sums() {
    let one = f16::ONE.to_le_bytes();
    let rows = 20;
    // The formats with nibbles (and fifth bits): d = 1 (and m or dmin = 1), then every byte
    // of scales, fifth bits and nibbles all ones, all high nibbles, all low nibbles, or mixed.
    let nibble_block = |format: PackedFormat, r: usize| {
        let (_, bytes, _) = format.table();
        let halves = match format {
            PackedFormat::Q4_0 | PackedFormat::Q5_0 => 1,
            _ => 2,
        };
        let mut block = vec![0u8; bytes];
        for h in 0..halves {
            block[2 * h..2 * h + 2].copy_from_slice(&one);
        }
        for (i, byte) in block[2 * halves..].iter_mut().enumerate() {
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
        (PackedFormat::Q4_0, 64),
        (PackedFormat::Q4_1, 64),
        (PackedFormat::Q5_0, 64),
        (PackedFormat::Q5_1, 64),
        (PackedFormat::Q8_0, 64),
        (PackedFormat::Q4K, 512),
        (PackedFormat::Q5K, 512),
        (PackedFormat::Q6K, 512),
    ];
    for (format, cols) in formats {
        let size = format.block_values();
        let block = |r: usize| match format {
            PackedFormat::Q6K => q6k_block(r),
            PackedFormat::Q8_0 => q8_0_block(r),
            _ => nibble_block(format, r),
        };
        let bytes: Vec<u8> = (0..rows)
            .flat_map(|r| (0..cols / size).flat_map(|_| block(r)).collect::<Vec<_>>())
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

/// Every format, a row count that does not fill the last tile: each row read back out of the
/// tiles equals candle's dequantization of the same GGUF blocks.
#[test]
fn rows_read_back_out_of_the_tiles_equal_the_dequantized_blocks() {
    for (format, cols) in FORMATS {
        let rows = 40;
        let (weight, dense) = packed(format, &random(rows, cols, 11));
        for row in 0..rows {
            let got = weight.row(row).unwrap();
            let want = &dense[row * cols..(row + 1) * cols];
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "{format:?} row {row} value {i}: {g} vs {w}"
                );
            }
            assert_eq!(got.len(), cols);
        }
        assert!(weight.row(rows).is_err());
    }
}
