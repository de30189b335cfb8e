//! Checks between reading a model's description and building it (config.json's own values are
//! checked where it is parsed, in `config.rs`): the rotary table is finite, the weights hold the
//! layers the config claims and no NaN or infinity, and the machine has the memory they need.
//! Each failure is one line naming the file, and each runs before the allocation it protects.

use std::path::Path;

use candle_core::DType;

use crate::engine::error::{EngineError, Result};
use crate::engine::model::config::ModelConfig;

/// The rotary frequencies a config gives are positive and finite (the last guard for scaling
/// rules whose factors combine).
pub fn check_rope_table(inv_freq: &[f32]) -> std::result::Result<(), String> {
    match inv_freq.iter().position(|f| !(f.is_finite() && *f > 0.0)) {
        None => Ok(()),
        Some(i) => Err(format!(
            "rotary frequency {i} is {}: rope_theta or rope scaling make the model non-finite",
            inv_freq[i]
        )),
    }
}

/// The weights hold exactly the layers `model.layers.0` to `model.layers.{L-1}` for the
/// config's L = `num_hidden_layers`: a config claiming more would be refused tensor by tensor
/// only after sizing every layer, and one claiming fewer would silently drop trained layers.
pub fn check_layers<'a>(
    cfg: &ModelConfig,
    names: impl Iterator<Item = &'a String>,
    source: &Path,
) -> Result<()> {
    let held = names
        .filter_map(|n| n.strip_prefix("model.layers."))
        .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
        .map(|layer| layer + 1)
        .max()
        .unwrap_or(0);
    if held == cfg.num_hidden_layers {
        return Ok(());
    }
    Err(EngineError::invalid(
        source,
        format!(
            "holds {held} layers (model.layers.*) but num_hidden_layers is {}",
            cfg.num_hidden_layers
        ),
    ))
}

/// Index of the first NaN or infinity in the raw little-endian bytes of a tensor of `dtype`:
/// a value is non-finite when its exponent bits are all ones, so this reads bits, not floats.
pub fn first_non_finite(bytes: &[u8], dtype: DType) -> Option<usize> {
    match dtype {
        DType::F32 => bytes.chunks_exact(4).position(|b| {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7f80_0000 == 0x7f80_0000
        }),
        DType::F16 => bytes
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00),
        DType::BF16 => bytes
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7f80 == 0x7f80),
        DType::F64 => bytes.chunks_exact(8).position(|b| {
            let bits = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            bits & 0x7ff0_0000_0000_0000 == 0x7ff0_0000_0000_0000
        }),
        _ => None,
    }
}

/// The error for a tensor holding a NaN or infinity at `index`.
pub fn non_finite_error(source: &Path, name: &str, index: usize) -> EngineError {
    EngineError::invalid(
        source,
        format!(
            "tensor '{name}' holds a NaN or infinite value (element {index}); the model cannot run"
        ),
    )
}

/// Refuse to load `needed` bytes of weights when the machine plainly lacks the memory:
/// better one line now than the kernel's OOM killer after minutes of reading.
/// `GENARM_IGNORE_MEMORY=1` skips the check (swap, or memory freed meanwhile).
pub fn check_memory(source: &Path, needed: u64, format: &str) -> Result<()> {
    if std::env::var_os("GENARM_IGNORE_MEMORY").is_some_and(|v| v == "1") {
        return Ok(());
    }
    let Some(available) = available_memory() else {
        return Ok(());
    };
    if needed <= available {
        return Ok(());
    }
    Err(EngineError::invalid(
        source,
        format!(
            "the weights need {} in memory as {format}, this machine has {} available \
             (a smaller --dtype needs less; GENARM_IGNORE_MEMORY=1 tries anyway)",
            gigabytes(needed),
            gigabytes(available)
        ),
    ))
}

fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Memory this process can still take: the system's `MemAvailable`, or less where a cgroup
/// (a container) caps it. None where neither can be read (not Linux).
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let system = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())?
        .saturating_mul(1024);
    let cgroup = || -> Option<u64> {
        let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok();
        let max = read("memory.max")?.trim().parse::<u64>().ok()?;
        let current = read("memory.current")?.trim().parse::<u64>().ok()?;
        Some(max.saturating_sub(current))
    };
    Some(cgroup().map_or(system, |c| c.min(system)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_found_by_their_bits() {
        let f32s: Vec<u8> = [1.0f32, -0.0, 3.0e38, f32::INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(first_non_finite(&f32s, DType::F32), Some(3));
        let nan: Vec<u8> = [0.5f32, f32::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(first_non_finite(&nan, DType::F32), Some(1));
        // f16: 0x7bff is 65504 (the largest finite), 0x7c00 is +inf, 0xfe00 a NaN.
        let f16s: Vec<u8> = [0x3c00u16, 0x7bff, 0xfe00]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(first_non_finite(&f16s, DType::F16), Some(2));
        assert_eq!(first_non_finite(&f16s[..4], DType::F16), None);
        // bf16: 0x7f7f is the largest finite, 0xff80 is -inf.
        let bf16s: Vec<u8> = [0x7f7fu16, 0xff80]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(first_non_finite(&bf16s, DType::BF16), Some(1));
    }

    #[test]
    fn rope_tables_must_be_positive_and_finite() {
        assert!(check_rope_table(&[1.0, 0.1, 0.01]).is_ok());
        assert!(
            check_rope_table(&[1.0, f32::NAN])
                .unwrap_err()
                .contains("frequency 1")
        );
        assert!(check_rope_table(&[f32::INFINITY]).is_err());
        assert!(check_rope_table(&[0.0]).is_err());
    }

    #[test]
    fn this_machine_reports_some_memory() {
        if cfg!(target_os = "linux") {
            assert!(available_memory().is_some_and(|m| m > 0));
        }
    }
}
