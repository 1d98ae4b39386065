#include "relu_pool.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

namespace stylize {
namespace {

// Written first as a loop over windows with a data-dependent search, the forward ran at 5-14x the
// copy rate's time and the backward at 2-4x (BENCHMARKS.md, the profiles): the selects below are
// branch-free so that each copy (vector_copies.hpp) vectorises them.
STYLIZE_ALWAYS_INLINE float relu_value(float v) { return v > 0 || v != v ? v : 0.f; }  // NaN stays NaN, as in at::relu

struct Planes {
  int64_t h, w, oh, ow;
};

// Windows of planes [first, last): pooled value and winner of each.
STYLIZE_ALWAYS_INLINE void forward_body(const float* in, float* out, uint8_t* arg, const Planes& s, int64_t first,
                                        int64_t last) {
  const int64_t h = s.h, w = s.w, oh = s.oh, ow = s.ow;  // locals: a uint8_t store could alias s
  for (int64_t p = first; p < last; ++p) {
    for (int64_t i = 0; i < oh; ++i) {
      const float* __restrict r0 = in + (p * h + 2 * i) * w;
      const float* __restrict r1 = r0 + w;
      float* __restrict o = out + (p * oh + i) * ow;
      uint8_t* __restrict a = arg + (p * oh + i) * ow;
      for (int64_t j = 0; j < ow; ++j) {
        const float v0 = relu_value(r0[2 * j]), v1 = relu_value(r0[2 * j + 1]);
        const float v2 = relu_value(r1[2 * j]), v3 = relu_value(r1[2 * j + 1]);
        // The first largest wins, a NaN over anything: v_t replaces the best so far if greater or NaN.
        const bool t1 = v1 > v0 || v1 != v1;
        const float b1 = t1 ? v1 : v0;
        const int k1 = t1 ? 1 : 0;
        const bool t2 = v2 > b1 || v2 != v2;
        const float b2 = t2 ? v2 : b1;
        const int k2 = t2 ? 2 : k1;
        const bool t3 = v3 > b2 || v3 != v3;
        o[j] = t3 ? v3 : b2;
        a[j] = static_cast<uint8_t>(t3 ? 3 : k2);
      }
    }
  }
}

// One row of windows' input gradients: rows r0 and r1 of dx from the pooled gradient g, the pooled
// values v and the winners a of ow windows. Each copy is written out by this macro, noinline, rather
// than inlined from one always_inline body as the forward is: inlined, GCC 12 kept this loop's
// selects as branches and did not vectorise it in any copy (-fopt-info-vec); written out, it does,
// the baseline's too once g[j] is read whatever v[j] is (SSE2 has no masked loads).
#define STYLIZE_RELU_POOL_BACKWARD_ROW(name, attributes)                                                           \
  attributes __attribute__((noinline)) void name(const float* __restrict g, const float* __restrict v,            \
                                                 const uint8_t* __restrict a, float* __restrict r0,               \
                                                 float* __restrict r1, int64_t ow) {                              \
    for (int64_t j = 0; j < ow; ++j) {                                                                            \
      const float gj = g[j], vj = v[j]; /* both read: a select, not a branch around a load */                    \
      const float d = vj <= 0 ? 0.f : gj;                                                                         \
      const uint8_t k = a[j];                                                                                     \
      const float e0 = k == 0 ? d : 0.f, e1 = k == 1 ? d : 0.f, e2 = k == 2 ? d : 0.f, e3 = k == 3 ? d : 0.f;    \
      r0[2 * j] = e0;                                                                                             \
      r0[2 * j + 1] = e1;                                                                                         \
      r1[2 * j] = e2;                                                                                             \
      r1[2 * j + 1] = e3;                                                                                         \
    }                                                                                                             \
  }

using BackwardRow = void (*)(const float*, const float*, const uint8_t*, float*, float*, int64_t);

// Input gradients of planes [first, last): each window's gradient at its winner.
STYLIZE_ALWAYS_INLINE void backward_body(BackwardRow row, const float* gp, const float* pv, const uint8_t* arg,
                                         float* out, const Planes& s, int64_t first, int64_t last) {
  const int64_t h = s.h, w = s.w, oh = s.oh, ow = s.ow;
  for (int64_t p = first; p < last; ++p) {
    for (int64_t i = 0; i < oh; ++i) {
      float* r0 = out + (p * h + 2 * i) * w;
      const int64_t base = (p * oh + i) * ow;
      row(gp + base, pv + base, arg + base, r0, r0 + w, ow);
      if (w % 2) r0[w - 1] = r0[2 * w - 1] = 0.f;
    }
    if (h % 2) std::fill(out + (p * h + h - 1) * w, out + (p + 1) * h * w, 0.f);
  }
}

using Forward = void (*)(const float*, float*, uint8_t*, const Planes&, int64_t, int64_t);
using Backward = void (*)(const float*, const float*, const uint8_t*, float*, const Planes&, int64_t, int64_t);

struct Loops {
  Forward forward;
  Backward backward;
};

#define STYLIZE_RELU_POOL_LOOPS(name, attributes)                                                                   \
  attributes void name##_forward(const float* in, float* out, uint8_t* arg, const Planes& s, int64_t f, int64_t l) { \
    forward_body(in, out, arg, s, f, l);                                                                             \
  }                                                                                                                  \
  STYLIZE_RELU_POOL_BACKWARD_ROW(name##_backward_row, attributes)                                                    \
  attributes void name##_backward(const float* gp, const float* pv, const uint8_t* arg, float* out, const Planes& s, \
                                  int64_t f, int64_t l) {                                                            \
    backward_body(name##_backward_row, gp, pv, arg, out, s, f, l);                                                   \
  }                                                                                                                  \
  constexpr Loops name = {name##_forward, name##_backward};

STYLIZE_VECTOR_COPIES(Loops, loops, STYLIZE_RELU_POOL_LOOPS)

}  // namespace

std::pair<at::Tensor, at::Tensor> relu_max_pool_nchw(const at::Tensor& x, VectorCopy which) {
  if (!x.is_cpu() || x.scalar_type() != at::kFloat || x.dim() != 4 || !x.is_contiguous()) {
    throw std::invalid_argument("relu_max_pool_nchw: needs a contiguous fp32 CPU tensor [N, C, H, W]");
  }
  const Loops& run = loops(which);
  const Planes s{x.size(2), x.size(3), x.size(2) / 2, x.size(3) / 2};
  at::Tensor pooled = at::empty({x.size(0), x.size(1), s.oh, s.ow}, x.options());
  at::Tensor winner = at::empty(pooled.sizes(), x.options().dtype(at::kByte));
  const float* in = x.data_ptr<float>();
  float* out = pooled.data_ptr<float>();
  uint8_t* arg = winner.data_ptr<uint8_t>();
  at::parallel_for(0, x.size(0) * x.size(1), 1,
                   [&](int64_t first, int64_t last) { run.forward(in, out, arg, s, first, last); });
  return {pooled, winner};
}

at::Tensor relu_max_pool_nchw_backward(const at::Tensor& grad_in, const at::Tensor& pooled, const at::Tensor& winner,
                                       int64_t height, int64_t width, VectorCopy which) {
  if (pooled.dim() != 4 || !pooled.is_contiguous() || pooled.scalar_type() != at::kFloat ||
      winner.sizes() != pooled.sizes() || !winner.is_contiguous() || winner.scalar_type() != at::kByte ||
      grad_in.sizes() != pooled.sizes() || height / 2 != pooled.size(2) || width / 2 != pooled.size(3)) {
    throw std::invalid_argument("relu_max_pool_nchw_backward: gradient, pooled values and winners must match");
  }
  const Loops& run = loops(which);
  const at::Tensor grad = grad_in.to(at::kFloat).contiguous();
  const Planes s{height, width, pooled.size(2), pooled.size(3)};
  at::Tensor dx = at::empty({pooled.size(0), pooled.size(1), height, width}, grad.options());
  const float *gp = grad.data_ptr<float>(), *pv = pooled.data_ptr<float>();
  const uint8_t* arg = winner.data_ptr<uint8_t>();
  float* out = dx.data_ptr<float>();
  at::parallel_for(0, pooled.size(0) * pooled.size(1), 1,
                   [&](int64_t first, int64_t last) { run.backward(gp, pv, arg, out, s, first, last); });
  return dx;
}

}  // namespace stylize
