//! The embedding lookup table: dense rows, or the block-quantized matrix itself, as llama.cpp
//! keeps `token_embd`. A quantized model's table in f32 would be a fifth of a small model's
//! memory (49152 x 576 values); the blocks are the bytes the file or the tied output layer
//! already has, and a looked-up row is dequantized when it is read.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use candle_nn::Embedding;

use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::qgemv::PackedWeight;
use crate::engine::model::mapped::MappedMatrix;
use crate::engine::model::weights::Table;

pub enum Lookup {
    Dense(Embedding),
    /// Read in place from the file, rows copied out as they are looked up.
    Mapped(MappedMatrix),
    /// A tied model's packed output layer, its rows read back out of the tiles.
    Packed(Arc<PackedWeight>),
    Blocks {
        blocks: Arc<QTensor>,
        rows: usize,
        hidden: usize,
    },
}

impl Lookup {
    /// The table read in place, where it is (`Lookup::Mapped`).
    pub fn mapped(&self) -> Option<&MappedMatrix> {
        match self {
            Self::Mapped(m) => Some(m),
            _ => None,
        }
    }

    /// The table of `table`: a dense one as read (an untied model quantized at load keeps its
    /// embedding as the source has it, as llama.cpp's files hold what their quantizer chose).
    pub fn new(table: Table) -> Result<Self> {
        Ok(match table {
            Table::Blocks(blocks) => {
                let (rows, hidden) = blocks.shape().dims2()?;
                Self::Blocks {
                    blocks,
                    rows,
                    hidden,
                }
            }
            Table::Mapped(m) => Self::Mapped(m),
            Table::Dense(t) => {
                let hidden = t.dims2()?.1;
                Self::Dense(Embedding::new(t, hidden))
            }
        })
    }

    /// The rows of a tied model's packed output layer (the same matrix).
    pub fn from_packed(weight: Arc<PackedWeight>) -> Result<Self> {
        Ok(Self::Packed(weight))
    }

    /// Rows (batch, t, hidden) of `tokens` (batch, t): the table's dtype where it is dense, f32
    /// where it is quantized.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let (blocks, rows, hidden) = match self {
            Self::Dense(e) => return Ok(e.forward(tokens)?),
            Self::Mapped(m) => return mapped_rows(m, tokens),
            Self::Packed(weight) => return packed_rows(weight, tokens),
            Self::Blocks {
                blocks,
                rows,
                hidden,
            } => (blocks, *rows, *hidden),
        };
        let data = blocks.data()?;
        let row_bytes = data.len() / rows.max(1);
        let ids = tokens.flatten_all()?.to_vec1::<u32>()?;
        let mut out = Vec::with_capacity(ids.len() * hidden);
        for id in ids {
            let id = id as usize;
            if id >= rows {
                return Err(EngineError::usage(format!(
                    "token id {id} is outside the vocabulary of {rows}"
                )));
            }
            // One row is whole blocks: a 1-row matrix of the same format, dequantized.
            let bytes = &data[id * row_bytes..(id + 1) * row_bytes];
            let storage = QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, blocks.dtype())?;
            let row = QTensor::new(storage, (1, hidden))?.dequantize(&Device::Cpu)?;
            out.extend(row.flatten_all()?.to_vec1::<f32>()?);
        }
        let mut dims = tokens.dims().to_vec();
        dims.push(hidden);
        Ok(Tensor::from_vec(out, dims, tokens.device())?)
    }
}

/// Rows (batch, t, hidden) of `tokens` from a mapped table, in its dtype (as a dense
/// table's are).
fn mapped_rows(table: &MappedMatrix, tokens: &Tensor) -> Result<Tensor> {
    let (rows, hidden) = table.dims();
    let ids = tokens.flatten_all()?.to_vec1::<u32>()?;
    let mut dims = tokens.dims().to_vec();
    dims.push(hidden);
    table
        .values()
        .gather(&ids, hidden, &dims, tokens.device())?
        .ok_or_else(|| {
            let id = ids
                .iter()
                .find(|&&id| id as usize >= rows)
                .copied()
                .unwrap_or(0);
            EngineError::usage(format!("token id {id} is outside the vocabulary of {rows}"))
        })
}

/// Rows (batch, t, hidden) of `tokens` from a packed matrix.
fn packed_rows(weight: &PackedWeight, tokens: &Tensor) -> Result<Tensor> {
    let (rows, hidden) = weight.dims();
    let ids = tokens.flatten_all()?.to_vec1::<u32>()?;
    let mut out = Vec::with_capacity(ids.len() * hidden);
    for id in ids {
        if id as usize >= rows {
            return Err(EngineError::usage(format!(
                "token id {id} is outside the vocabulary of {rows}"
            )));
        }
        out.extend(weight.row(id as usize)?);
    }
    let mut dims = tokens.dims().to_vec();
    dims.push(hidden);
    Ok(Tensor::from_vec(out, dims, tokens.device())?)
}
