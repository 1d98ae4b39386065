// oneDNN's matrix products: bf16 × bf16 with fp32 accumulation for the Gram matrices of a bf16
// network (src/engine/losses.cpp), and the batched fp32 products of the Winograd convolutions
// (src/engine/winograd.cpp). Internal to the engine; kept out of the public headers.
#pragma once

#include <ATen/core/Tensor.h>

namespace stylize {

// True when this build has oneDNN's matmul (libdnnl) and the CPU runs bf16 products natively
// (AVX512-BF16 or AMX-BF16); otherwise the caller casts to fp32 and uses BLAS.
bool bf16_matmul_available();

// Whether this build has oneDNN's matmul (libdnnl).
bool onednn_matmul_available();

// out = a·b on oneDNN's matmul, on the OpenMP threads ATen uses: 2-D (m×k · k×n) or batched 3-D
// (B×m×k · B×k×n) CPU tensors of any strides, each fp32 or bf16, written into `out` in place.
// Throws std::logic_error when built without oneDNN.
void onednn_matmul(const at::Tensor& a, const at::Tensor& b, at::Tensor& out);

// out = a·b for 2-D CPU tensors of any strides: a (m×k) and b (k×n) bf16, `out` (m×n) fp32 or bf16,
// written in place. Products are accumulated in fp32 and rounded once, to out's type.
void bf16_matmul(const at::Tensor& a, const at::Tensor& b, at::Tensor& out);

}  // namespace stylize
