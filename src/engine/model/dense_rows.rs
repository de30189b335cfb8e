//! A dense weight read in place, as the slice the kernels take: the storage of a candle tensor
//! or the bytes of a file map (`mapped.rs`). Both kinds of dense weight go through the same
//! products (`gemv.rs` for few rows, `gemm.rs` for prompts) and the same lookups.

use candle_core::{DType, Device, Tensor};

use crate::engine::error::Result;
use crate::engine::kernels::{gemm, gemv};

/// A contiguous dense CPU matrix of f32, f16 or bf16 values, row-major.
#[derive(Clone, Copy)]
pub enum DenseRows<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
    Bf16(&'a [half::bf16]),
}

impl<'a> DenseRows<'a> {
    /// The values of a contiguous f32/f16/bf16 CPU tensor's storage; None for anything else.
    pub fn of(storage: &'a candle_core::Storage, layout: &candle_core::Layout) -> Option<Self> {
        use candle_core::{CpuStorage, Storage};
        let (start, end) = layout.contiguous_offsets()?;
        Some(match storage {
            Storage::Cpu(CpuStorage::F32(v)) => Self::F32(v.get(start..end)?),
            Storage::Cpu(CpuStorage::F16(v)) => Self::F16(v.get(start..end)?),
            Storage::Cpu(CpuStorage::BF16(v)) => Self::Bf16(v.get(start..end)?),
            _ => return None,
        })
    }

    pub fn dtype(self) -> DType {
        match self {
            Self::F32(_) => DType::F32,
            Self::F16(_) => DType::F16,
            Self::Bf16(_) => DType::BF16,
        }
    }

    /// Values `from..from + len`. Panics past the end (a caller bug: shapes are checked where
    /// the matrix is made).
    pub fn slice(self, from: usize, len: usize) -> Self {
        match self {
            Self::F32(v) => Self::F32(&v[from..from + len]),
            Self::F16(v) => Self::F16(&v[from..from + len]),
            Self::Bf16(v) => Self::Bf16(&v[from..from + len]),
        }
    }

    /// The values as f32, through `half`'s slice conversion (F16C where the CPU has it: candle's
    /// `to_dtype` converts one value at a time in software, which cost more than the product).
    pub fn widened(self) -> Vec<f32> {
        use half::slice::HalfFloatSliceExt;
        match self {
            Self::F32(v) => v.to_vec(),
            Self::F16(v) => {
                let mut out = vec![0f32; v.len()];
                v.convert_to_f32_slice(&mut out);
                out
            }
            Self::Bf16(v) => {
                let mut out = vec![0f32; v.len()];
                v.convert_to_f32_slice(&mut out);
                out
            }
        }
    }

    /// A tensor of `shape` holding a copy of the values, in their dtype.
    pub fn to_tensor(self, shape: &[usize], device: &Device) -> Result<Tensor> {
        Ok(match self {
            Self::F32(v) => Tensor::from_slice(v, shape, device)?,
            Self::F16(v) => Tensor::from_slice(v, shape, device)?,
            Self::Bf16(v) => Tensor::from_slice(v, shape, device)?,
        })
    }

    /// Rows `ids` of this matrix of rows of `width` values, copied in their dtype into a tensor
    /// of shape `dims` (the ids' shape and `width`): an embedding lookup. None where an id is
    /// not a row.
    pub fn gather(
        self,
        ids: &[u32],
        width: usize,
        dims: &[usize],
        device: &Device,
    ) -> Result<Option<Tensor>> {
        fn rows<T: Copy>(v: &[T], ids: &[u32], width: usize) -> Option<Vec<T>> {
            let mut out = Vec::with_capacity(ids.len() * width);
            for &id in ids {
                let start = (id as usize).checked_mul(width)?;
                out.extend_from_slice(v.get(start..start.checked_add(width)?)?);
            }
            Some(out)
        }
        Ok(match self {
            Self::F32(v) => rows(v, ids, width)
                .map(|r| Tensor::from_vec(r, dims, device))
                .transpose()?,
            Self::F16(v) => rows(v, ids, width)
                .map(|r| Tensor::from_vec(r, dims, device))
                .transpose()?,
            Self::Bf16(v) => rows(v, ids, width)
                .map(|r| Tensor::from_vec(r, dims, device))
                .transpose()?,
        })
    }

    /// x · (these n rows of k)ᵀ, (m, n), parallel over blocks of rows (`gemv.rs`): the
    /// decoding step's product of few rows.
    pub fn rows_product(self, x: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        match self {
            Self::F32(w) => gemv::matmul_rows(x, m, w, n, k),
            Self::F16(w) => gemv::matmul_rows(x, m, w, n, k),
            Self::Bf16(w) => gemv::matmul_rows(x, m, w, n, k),
        }
    }

    /// (x · (these n rows)ᵀ)ᵀ, (n, m), through `gemm.rs`'s kernel, x packed once for every
    /// block.
    pub fn transposed_product(self, x: &gemm::PackedRows, n: usize) -> Vec<f32> {
        match self {
            Self::F32(w) => x.transposed_product(w, n),
            Self::F16(w) => x.transposed_product(w, n),
            Self::Bf16(w) => x.transposed_product(w, n),
        }
    }

    /// x · (these n rows)ᵀ on the calling thread (one task of a shared job).
    pub fn product(self, x: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        match self {
            Self::F32(w) => gemv::matmul_block(x, m, w, n, k),
            Self::F16(w) => gemv::matmul_block(x, m, w, n, k),
            Self::Bf16(w) => gemv::matmul_block(x, m, w, n, k),
        }
    }
}
