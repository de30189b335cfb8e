//! Hand-written CPU kernels: dense and block-quantized products for the decoding step, the
//! AVX-512 dense product for prompts, fast exp/log.

pub(crate) mod fastmath;
pub(crate) mod gemm;
pub(crate) mod gemv;
pub(crate) mod qgemv;
