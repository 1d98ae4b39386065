#include "direct_conv.hpp"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace stylize {
namespace {

// GCC's vector types: one source for every copy. Each copy picks the width its registers hold (the
// baseline's 4-float vectors are SSE's), and how many vectors and channels one block keeps in
// registers (STYLIZE_DIRECT_CONV_COPY below).
typedef float Vec4 __attribute__((vector_size(16)));
typedef float Vec8 __attribute__((vector_size(32)));
typedef float Vec16 __attribute__((vector_size(64)));

template <class V>
constexpr int64_t lanes() {
  return static_cast<int64_t>(sizeof(V) / sizeof(float));
}

// One 3×3 convolution over rows: out[n][o] = bias[o] + Σ_i Σ_ky,kx w[o][i][ky][kx] · in[n][i] shifted.
// The forward is one (x → y with the weights); the input gradient is another (dy → dx with the
// kernels transposed and flipped, [C, K, 3, 3]): the same kernel serves both. The kernels take rows
// [first, last) of N·H output rows.
struct Geometry {
  const float* in;    // [N, inputs, H, W]
  const float* w;     // [outputs, inputs, 3, 3]
  const float* bias;  // [outputs] or null
  float* out;         // [N, outputs, H, W]
  int64_t inputs, outputs, h, width;
};

// By reference: a vector returned by value would have another ABI in the baseline's instantiation.
template <class V>
STYLIZE_ALWAYS_INLINE void load(V& v, const float* p) {
  std::memcpy(&v, p, sizeof v);
}

// The input rows the output row being computed reads, copied once each into rows padded with zeros
// (column -1 and every column past the last chunk), three rows per input channel, reused round:
// moving down one output row copies one new row per channel. Rows outside the image are a row of
// zeros. Every chunk of columns then reads the same way, with no edge cases, and from cache: conv1_1's
// input gradient reads 64 channels × 3 rows for each row it writes (0.4 MiB at 512 columns); read in
// place, with each chunk's edges copied, it took 6.6 ms against 4.5 (512 px, Zen 5, 2 threads).
class PaddedRows {
 public:
  PaddedRows(int64_t inputs, int64_t width, int64_t chunk)
      : inputs_(inputs), width_(width), stride_((width + chunk - 1) / chunk * chunk + 2),
        values_(inputs * 3 * stride_, 0.0f), zeros_(stride_, 0.0f), pointers_(inputs * 3) {}

  // Returns p with p[i·3 + ky]: input channel i's row y - 1 + ky of image n, padded (index 0 is
  // column -1).
  const float* const* rows_for(const float* in, int64_t n, int64_t y, int64_t h) {
    for (int ky = 0; ky < 3; ++ky) {
      const int64_t yy = y - 1 + ky;
      if (yy < 0 || yy >= h) {
        for (int64_t i = 0; i < inputs_; ++i) pointers_[i * 3 + ky] = zeros_.data();
        continue;
      }
      const int64_t slot = yy % 3;
      if (held_[slot][0] != n || held_[slot][1] != yy) {
        for (int64_t i = 0; i < inputs_; ++i) {
          std::memcpy(row(i, slot) + 1, in + ((n * inputs_ + i) * h + yy) * width_, width_ * sizeof(float));
        }
        held_[slot][0] = n;
        held_[slot][1] = yy;
      }
      for (int64_t i = 0; i < inputs_; ++i) pointers_[i * 3 + ky] = row(i, slot);
    }
    return pointers_.data();
  }

 private:
  float* row(int64_t i, int64_t slot) { return values_.data() + (i * 3 + slot) * stride_; }

  int64_t inputs_, width_, stride_;
  std::vector<float> values_, zeros_;
  std::vector<const float*> pointers_;
  int64_t held_[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};  // (image, row) in each slot
};

// One block: CB outputs × XV vectors of one output row, from column x0 on. rows[i·3 + ky] + x0 is
// input i's padded row y - 1 + ky at column x0 - 1; w: the block's first output's kernels [inputs,
// 3, 3], the next output's `wstride` apart; out: output row (o0, y) at x0, the next output `ostride`
// apart; n ≤ XV·lanes columns are written. The sums stay in registers over every input and tap, in
// the order the header gives (from the bias; input, kernel row, kernel column).
template <class V, int XV, int CB>
STYLIZE_ALWAYS_INLINE void conv_block(const float* const* rows, int64_t x0, int64_t inputs, const float* w,
                                      int64_t wstride, const float* bias, float* out, int64_t ostride, int64_t n) {
  constexpr int64_t L = lanes<V>();
  V acc[CB][XV];
#pragma GCC unroll 16
  for (int b = 0; b < CB; ++b) {
#pragma GCC unroll 16
    for (int v = 0; v < XV; ++v) acc[b][v] = V{} + (bias != nullptr ? bias[b] : 0.0f);
  }
  for (int64_t i = 0; i < inputs; ++i) {
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ++ky) {
      const float* p = rows[i * 3 + ky] + x0;
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; ++kx) {
        V a[XV];
#pragma GCC unroll 16
        for (int v = 0; v < XV; ++v) load(a[v], p + kx + v * L);
        const float* wk = w + i * 9 + ky * 3 + kx;
#pragma GCC unroll 16
        for (int b = 0; b < CB; ++b) {
          const float s = wk[b * wstride];
#pragma GCC unroll 16
          for (int v = 0; v < XV; ++v) acc[b][v] += a[v] * s;
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int b = 0; b < CB; ++b) {
    if (n == XV * L) {
#pragma GCC unroll 16
      for (int v = 0; v < XV; ++v) std::memcpy(out + b * ostride + v * L, &acc[b][v], sizeof(V));
    } else {
      float tail[XV * L];
      std::memcpy(tail, acc[b], sizeof tail);
      std::memcpy(out + b * ostride, tail, n * sizeof(float));
    }
  }
}

// Outputs [o, o + CB) of one output row, chunk by chunk; out: the row of output 0.
template <class V, int XV, int CB>
STYLIZE_ALWAYS_INLINE void conv_outputs(const Geometry& g, const float* const* rows, float* out, int64_t o) {
  constexpr int64_t chunk = XV * lanes<V>();
  const int64_t plane = g.h * g.width, wstride = g.inputs * 9;
  for (int64_t x0 = 0; x0 < g.width; x0 += chunk) {
    conv_block<V, XV, CB>(rows, x0, g.inputs, g.w + o * wstride, wstride, g.bias != nullptr ? g.bias + o : nullptr,
                          out + o * plane + x0, plane, std::min(chunk, g.width - x0));
  }
}

// Output rows [first, last) of N·H, all outputs: CB outputs at a time, then one at a time for what
// is left.
template <class V, int XV, int CB>
STYLIZE_ALWAYS_INLINE void conv_rows(const Geometry& g, int64_t first, int64_t last) {
  PaddedRows padded(g.inputs, g.width, XV * lanes<V>());
  for (int64_t row = first; row < last; ++row) {
    const int64_t n = row / g.h, y = row % g.h;
    const float* const* rows = padded.rows_for(g.in, n, y, g.h);
    float* out = g.out + n * g.outputs * g.h * g.width + y * g.width;
    int64_t o = 0;
    for (; o + CB <= g.outputs; o += CB) conv_outputs<V, XV, CB>(g, rows, out, o);
    for (; o < g.outputs; ++o) conv_outputs<V, XV, 1>(g, rows, out, o);
  }
}

struct Kernels {
  void (*forward)(const Geometry&, int64_t, int64_t);
  void (*backward)(const Geometry&, int64_t, int64_t);
};

// A copy: its attributes, vector type, and the blocks its registers hold: the forward XV vectors ×
// FCB outputs of sums plus XV inputs, the input gradient (3 outputs, conv1_1's image channels) BXV ×
// 3 plus BXV. AVX-512 (32 registers): 4 × 4 + 4 and 4 × 3 + 4; AVX2 and SSE (16): 2 × 4 + 2 and
// 3 × 3 + 3.
#define STYLIZE_DIRECT_CONV_COPY(name, attributes, V, FXV, FCB, BXV)                                         \
  attributes void name##_forward(const Geometry& g, int64_t first, int64_t last) {                         \
    conv_rows<V, FXV, FCB>(g, first, last);                                                                \
  }                                                                                                         \
  attributes void name##_backward(const Geometry& g, int64_t first, int64_t last) {                        \
    conv_rows<V, BXV, 3>(g, first, last);                                                                  \
  }                                                                                                         \
  constexpr Kernels name = {name##_forward, name##_backward};

STYLIZE_DIRECT_CONV_COPY(kernels_baseline, , Vec4, 2, 4, 3)
#ifdef STYLIZE_VECTOR_COPIES_X86
// FMA named with AVX2 (a separate feature; the AVX2 copy runs only where both are: vector_copies.cpp).
#ifdef __clang__
STYLIZE_DIRECT_CONV_COPY(kernels_avx512, __attribute__((target("avx512f,fma"))), Vec16, 4, 4, 4)
#else
STYLIZE_DIRECT_CONV_COPY(kernels_avx512, __attribute__((target("avx512f,fma,prefer-vector-width=512"))), Vec16, 4, 4, 4)
#endif
STYLIZE_DIRECT_CONV_COPY(kernels_avx2, __attribute__((target("avx2,fma"))), Vec8, 2, 4, 3)
const Kernels& kernels(VectorCopy which) { return pick_vector_copy(which, kernels_avx512, kernels_avx2, kernels_baseline); }
#else
const Kernels& kernels(VectorCopy which) { return pick_vector_copy(which, kernels_baseline, kernels_baseline, kernels_baseline); }
#endif

void check_fp32_cpu(const at::Tensor& t, const char* what, const char* name) {
  if (!t.defined() || t.scalar_type() != at::kFloat || !t.device().is_cpu()) {
    throw std::invalid_argument(std::string(what) + ": " + name + " must be an fp32 CPU tensor");
  }
}

void check_weight(const at::Tensor& weight, int64_t channels, int64_t dim, const char* what) {
  check_fp32_cpu(weight, what, "weight");
  if (weight.dim() != 4 || weight.size(2) != 3 || weight.size(3) != 3 || weight.size(dim) != channels) {
    throw std::invalid_argument(std::string(what) + ": weight must be [K, C, 3, 3] with " + (dim == 1 ? "C" : "K") +
                                " = " + std::to_string(channels) + " (the input's channels)");
  }
}

// Rows in one task: at least ~64K multiply-adds, so that small images stay on one thread.
int64_t grain_rows(int64_t width, int64_t c, int64_t k) { return std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, width * c * k * 9)); }

}  // namespace

at::Tensor direct_conv3x3(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, VectorCopy which) {
  check_fp32_cpu(x, "direct_conv3x3", "x");
  if (x.dim() != 4) throw std::invalid_argument("direct_conv3x3: x must be [N, C, H, W]");
  check_weight(weight, x.size(1), 1, "direct_conv3x3");
  const int64_t k = weight.size(0);
  if (bias.defined()) {
    check_fp32_cpu(bias, "direct_conv3x3", "bias");
    if (bias.numel() != k) throw std::invalid_argument("direct_conv3x3: bias must have K values");
  }
  const Kernels& run = kernels(which);
  const at::Tensor in = x.contiguous(), w = weight.contiguous(), b = bias.defined() ? bias.contiguous() : at::Tensor();
  at::Tensor y = at::empty({x.size(0), k, x.size(2), x.size(3)}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;
  const Geometry g{in.data_ptr<float>(), w.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr,
                   y.data_ptr<float>(), x.size(1), k, x.size(2), x.size(3)};
  at::parallel_for(0, x.size(0) * g.h, grain_rows(g.width, g.inputs, g.outputs),
                   [&](int64_t first, int64_t last) { run.forward(g, first, last); });
  return y;
}

at::Tensor direct_conv3x3_input_gradient(const at::Tensor& dy, const at::Tensor& weight, VectorCopy which) {
  check_fp32_cpu(dy, "direct_conv3x3_input_gradient", "dy");
  if (dy.dim() != 4) throw std::invalid_argument("direct_conv3x3_input_gradient: dy must be [N, K, H, W]");
  check_weight(weight, dy.size(1), 0, "direct_conv3x3_input_gradient");
  const Kernels& run = kernels(which);
  const int64_t k = weight.size(0), c = weight.size(1);
  // dx is the convolution of dy with the kernels transposed (input and output channels swapped) and
  // flipped: [C, K, 3, 3].
  const at::Tensor wf = weight.flip({2, 3}).transpose(0, 1).contiguous();
  const at::Tensor in = dy.contiguous();
  at::Tensor dx = at::empty({dy.size(0), c, dy.size(2), dy.size(3)}, dy.options().memory_format(at::MemoryFormat::Contiguous));
  if (dx.numel() == 0) return dx;
  const Geometry g{in.data_ptr<float>(), wf.data_ptr<float>(), nullptr, dx.data_ptr<float>(), k, c, dy.size(2), dy.size(3)};
  at::parallel_for(0, dy.size(0) * g.h, grain_rows(g.width, g.inputs, g.outputs),
                   [&](int64_t first, int64_t last) { run.backward(g, first, last); });
  return dx;
}

}  // namespace stylize
