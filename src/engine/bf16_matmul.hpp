// bf16 × bf16 matrix products with fp32 accumulation, for the Gram matrices of a bf16 network.
// Internal to the engine (src/losses.cpp); kept out of the public headers.
#pragma once

#include <ATen/core/Tensor.h>

namespace stylize {

// True when this build has oneDNN's matmul (libdnnl) and the CPU runs bf16 products natively
// (AVX512-BF16 or AMX-BF16); otherwise the caller casts to fp32 and uses BLAS.
bool bf16_matmul_available();

// out = a·b for 2-D CPU tensors of any strides: a (m×k) and b (k×n) bf16, `out` (m×n) fp32 or bf16,
// written in place. Products are accumulated in fp32 and rounded once, to out's type.
void bf16_matmul(const at::Tensor& a, const at::Tensor& b, at::Tensor& out);

}  // namespace stylize
