//! Hand-written CPU kernels for the decoding step: dense and block-quantized matrix-vector products, fast exp/log.

pub(crate) mod fastmath;
pub(crate) mod gemv;
pub(crate) mod qgemv;
