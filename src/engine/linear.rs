//! One linear layer for every weight format: dense tensors (f32, f16, bf16) through candle's
//! matmul, block-quantized ones (Q8_0, Q4_K, Q6_K, ... read from GGUF or quantized at load)
//! through candle's `QMatMul`, which multiplies f32 activations with the packed blocks directly.
//! The decoder builds every projection from this type, so one model code runs all formats.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor};

use super::error::{EngineError, Result};

/// Which block format the projections and the output layer are quantized to at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantPlan {
    pub projections: GgmlDType,
    pub lm_head: GgmlDType,
}

/// The weight of a linear layer, (out, in) as Hugging Face stores it.
#[derive(Clone)]
pub enum LinearWeight {
    Dense(Tensor),
    Quantized(Arc<QTensor>),
}

impl LinearWeight {
    /// Quantize a dense weight to `format`, or keep it dense where its rows do not split into
    /// whole blocks of that format (llama.cpp falls back the same way).
    pub fn quantize(dense: &Tensor, format: GgmlDType) -> Result<Self> {
        let (_, in_dim) = dense.dims2()?;
        if in_dim % format.block_size() != 0 {
            return Ok(Self::Dense(dense.clone()));
        }
        let q = QTensor::quantize(&dense.to_dtype(DType::F32)?, format)?;
        Ok(Self::Quantized(Arc::new(q)))
    }

    /// (out, in).
    pub fn dims(&self) -> Result<(usize, usize)> {
        Ok(match self {
            Self::Dense(t) => t.dims2()?,
            Self::Quantized(q) => q.shape().dims2()?,
        })
    }

    /// The weight as a dense tensor of `dtype` (LoRA merging, training).
    pub fn to_dense(&self, dtype: DType) -> Result<Tensor> {
        Ok(match self {
            Self::Dense(t) => t.to_dtype(dtype)?,
            Self::Quantized(q) => q.dequantize(&q.device())?.to_dtype(dtype)?,
        })
    }

    /// The dense tensor itself, or an error naming what needs one (quantized weights cannot
    /// be trained).
    pub fn dense(&self, purpose: &str) -> Result<&Tensor> {
        match self {
            Self::Dense(t) => Ok(t),
            Self::Quantized(q) => Err(EngineError::usage(format!(
                "{purpose} needs dense weights, but this model's are quantized ({:?})",
                q.dtype()
            ))),
        }
    }

    /// The storage format, for reports ("f32", "q8_0", ...).
    pub fn format_name(&self) -> String {
        match self {
            Self::Dense(t) => format!("{:?}", t.dtype()).to_lowercase(),
            Self::Quantized(q) => format!("{:?}", q.dtype()).to_lowercase(),
        }
    }
}

/// y = x·Wᵀ + b.
#[derive(Clone)]
pub struct Linear {
    weight: LinearWeight,
    /// candle's quantized matmul, built once per quantized weight.
    qmatmul: Option<QMatMul>,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: LinearWeight, bias: Option<Tensor>) -> Result<Self> {
        let qmatmul = match &weight {
            LinearWeight::Dense(_) => None,
            LinearWeight::Quantized(q) => Some(QMatMul::from_arc(q.clone())?),
        };
        Ok(Self {
            weight,
            qmatmul,
            bias,
        })
    }

    pub fn weight(&self) -> &LinearWeight {
        &self.weight
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match (&self.weight, &self.qmatmul) {
            (_, Some(q)) => {
                // Quantized kernels take f32 activations; hand back the caller's dtype.
                let dtype = x.dtype();
                let y = q.forward(&x.to_dtype(DType::F32)?.contiguous()?)?;
                y.to_dtype(dtype)?
            }
            (LinearWeight::Dense(w), None) => dense_matmul(x, w)?,
            (LinearWeight::Quantized(_), None) => unreachable!("QMatMul built in new()"),
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// x (.., in) · wᵀ, as candle-nn's Linear does it: a batch of row vectors is flattened into
/// one matrix so the product is a single gemm.
fn dense_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Ok(match *x.dims() {
        [b1, b2, m, k] if x.is_contiguous() => x
            .reshape((b1 * b2 * m, k))?
            .matmul(&w.t()?)?
            .reshape((b1, b2, m, ()))?,
        [b, m, k] if x.is_contiguous() => {
            x.reshape((b * m, k))?
                .matmul(&w.t()?)?
                .reshape((b, m, ()))?
        }
        _ => x.broadcast_matmul(&w.t()?)?,
    })
}
