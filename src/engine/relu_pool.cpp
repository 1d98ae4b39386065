#include "relu_pool.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace stylize {
namespace {

// Written first as a loop over windows with a data-dependent search, the forward ran at 5-14x the
// copy rate's time and the backward at 2-4x (BENCHMARKS.md, the profiles): the selects below are
// branch-free so that each copy (vector_copies.hpp) vectorises them.
// at::relu's values (clamp_min(v, 0)): a NaN stays NaN and -0 stays -0; a negative becomes +0.
STYLIZE_ALWAYS_INLINE float relu_value(float v) { return v > 0 || v != v || v == 0 ? v : 0.f; }

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
      const float d = vj <= 0 || gj == 0 ? 0.f : gj; /* ATen adds to zeros: a -0 gradient becomes +0 */         \
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

// The same for channels-last bf16 (every bf16 pass on the CPU), where ATen's relu_ + max pool wrote
// the activation back and kept it with int64 indices (50 MB at relu1_2, 512 px) and its backward ran
// at ~4x the copy rate's time (10.8 ms at relu1_2, 512 px, Zen 5; BENCHMARKS.md). In NHWC a window's
// four values of one channel lie C apart, so each loop runs over the channels, contiguous. bf16 is
// held as its bits (uint16_t) and compared as the float it widens to; the pooled value and the
// gradient are copied as bits, so nothing is rounded.
STYLIZE_ALWAYS_INLINE float as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

struct Rows {
  int64_t w, c, ow;  // input width, channels, output width
};

// One row of windows: input rows r0, r1 ([w, c] each) to pooled values o and winners a ([ow, c]).
// The ReLU is applied to the window's largest value only: max(relu(a), relu(b)) = relu(max(a, b)),
// and where the largest is > 0 or NaN the winner is the same (1.05 against 1.17 ms at relu1_2's
// shape, 512 px, AVX-512 F only, with the ReLU on each value). Each value is loaded once, widened to
// its fp32 bits (u << 16) and everything selected on 32 bits: written with selects on the 16-bit
// values themselves (a load under a condition), GCC 12 vectorised none of the copies
// (-fopt-info-vec). Noinline macros, as for the NCHW backward row.
#define STYLIZE_RELU_POOL_NHWC_FORWARD_ROW(name, attributes)                                                       \
  attributes __attribute__((noinline)) void name(const uint16_t* __restrict r0, const uint16_t* __restrict r1,   \
                                                 uint16_t* __restrict o, uint8_t* __restrict a, const Rows& s) {  \
    const int64_t c = s.c, ow = s.ow;                                                                             \
    for (int64_t j = 0; j < ow; ++j) {                                                                            \
      const uint16_t *__restrict p0 = r0 + 2 * j * c, *__restrict p1 = p0 + c;                                   \
      const uint16_t *__restrict p2 = r1 + 2 * j * c, *__restrict p3 = p2 + c;                                   \
      uint16_t* __restrict oj = o + j * c;                                                                        \
      uint8_t* __restrict aj = a + j * c;                                                                         \
      for (int64_t k = 0; k < c; ++k) {                                                                           \
        const uint32_t u0 = uint32_t{p0[k]} << 16, u1 = uint32_t{p1[k]} << 16;                                  \
        const uint32_t u2 = uint32_t{p2[k]} << 16, u3 = uint32_t{p3[k]} << 16;                                  \
        const float f1 = as_float(u1), f2 = as_float(u2), f3 = as_float(u3);                                    \
        /* the first largest wins, a NaN over anything (as in forward_body), on the values before the ReLU */   \
        const bool t1 = f1 > as_float(u0) || f1 != f1;                                                            \
        const uint32_t m1 = t1 ? u1 : u0;                                                                         \
        const int32_t w1 = t1 ? 1 : 0;                                                                            \
        const bool t2 = f2 > as_float(m1) || f2 != f2;                                                            \
        const uint32_t m2 = t2 ? u2 : m1;                                                                         \
        const int32_t w2 = t2 ? 2 : w1;                                                                           \
        const bool t3 = f3 > as_float(m2) || f3 != f3;                                                            \
        const uint32_t m3 = t3 ? u3 : m2;                                                                         \
        const int32_t w3 = t3 ? 3 : w2;                                                                           \
        /* then the ReLU: the same winner where the largest is > 0 or NaN; else every value became a zero */     \
        /* (+0, or -0 from -0, which at::relu keeps), a tie, which the first one wins */                         \
        const float m = as_float(m3);                                                                             \
        const bool kept = m > 0 || m != m;                                                                        \
        oj[k] = static_cast<uint16_t>(kept ? m3 >> 16 : u0 == 0x80000000u ? 0x8000u : 0u);                       \
        aj[k] = static_cast<uint8_t>(kept ? w3 : 0);                                                              \
      }                                                                                                           \
    }                                                                                                             \
  }

// One row of windows' input gradients: rows r0, r1 of dx ([w, c] each) from the pooled gradient g,
// the pooled values v and the winners a ([ow, c]).
#define STYLIZE_RELU_POOL_NHWC_BACKWARD_ROW(name, attributes)                                                      \
  attributes __attribute__((noinline)) void name(const uint16_t* __restrict g, const uint16_t* __restrict v,     \
                                                 const uint8_t* __restrict a, uint16_t* __restrict r0,            \
                                                 uint16_t* __restrict r1, const Rows& s) {                        \
    const int64_t c = s.c, ow = s.ow;                                                                             \
    for (int64_t j = 0; j < ow; ++j) {                                                                            \
      const uint16_t *__restrict gj = g + j * c, *__restrict vj = v + j * c;                                     \
      const uint8_t* __restrict aj = a + j * c;                                                                   \
      uint16_t *__restrict q0 = r0 + 2 * j * c, *__restrict q1 = q0 + c;                                        \
      uint16_t *__restrict q2 = r1 + 2 * j * c, *__restrict q3 = q2 + c;                                        \
      for (int64_t k = 0; k < c; ++k) {                                                                           \
        const uint16_t gk = gj[k];                                                                                \
        /* threshold_backward's rule, then ATen's sum onto zeros (a -0 gradient becomes +0) */                   \
        const uint16_t d = as_float(uint32_t{vj[k]} << 16) <= 0 || gk == 0x8000 ? 0 : gk;                         \
        const uint8_t w = aj[k];                                                                                  \
        q0[k] = w == 0 ? d : 0;                                                                                   \
        q1[k] = w == 1 ? d : 0;                                                                                   \
        q2[k] = w == 2 ? d : 0;                                                                                   \
        q3[k] = w == 3 ? d : 0;                                                                                   \
      }                                                                                                           \
    }                                                                                                             \
  }

using NhwcForwardRow = void (*)(const uint16_t*, const uint16_t*, uint16_t*, uint8_t*, const Rows&);
using NhwcBackwardRow = void (*)(const uint16_t*, const uint16_t*, const uint8_t*, uint16_t*, uint16_t*, const Rows&);

struct NhwcLoops {
  NhwcForwardRow forward;
  NhwcBackwardRow backward;
};

#define STYLIZE_RELU_POOL_NHWC_LOOPS(name, attributes)              \
  STYLIZE_RELU_POOL_NHWC_FORWARD_ROW(name##_forward, attributes)   \
  STYLIZE_RELU_POOL_NHWC_BACKWARD_ROW(name##_backward, attributes) \
  constexpr NhwcLoops name = {name##_forward, name##_backward};

// With AVX-512 BW (vector_copies.hpp): 0.50 / 0.34 ms against 1.05 / 0.57 forward / backward at
// relu1_2's shape, 512 px (build/stylize_relu_pool_bench, Zen 5; 0.62 / 0.40 with the -0 rule).
STYLIZE_VECTOR_COPIES_AVX512_AS(NhwcLoops, nhwc_loops, STYLIZE_RELU_POOL_NHWC_LOOPS, STYLIZE_TARGET_AVX512_BW)


}  // namespace

bool relu_max_pool_nchw_takes(const at::Tensor& x) {
  return x.is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 4 && x.is_contiguous();
}

bool relu_max_pool_nhwc_takes(const at::Tensor& x) {
  return x.is_cpu() && x.scalar_type() == at::kBFloat16 && x.dim() == 4 &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

std::pair<at::Tensor, at::Tensor> relu_max_pool_nchw(const at::Tensor& x, VectorCopy which) {
  if (!relu_max_pool_nchw_takes(x)) {
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

std::pair<at::Tensor, at::Tensor> relu_max_pool_nhwc(const at::Tensor& x, VectorCopy which) {
  if (!relu_max_pool_nhwc_takes(x)) {
    throw std::invalid_argument("relu_max_pool_nhwc: needs a channels-last bf16 CPU tensor [N, C, H, W]");
  }
  const NhwcLoops& run = nhwc_loops(which);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), oh = h / 2;
  const Rows s{w, c, w / 2};
  const auto layout = at::MemoryFormat::ChannelsLast;
  at::Tensor pooled = at::empty({n, c, oh, s.ow}, x.options().memory_format(layout));
  at::Tensor winner = at::empty(pooled.sizes(), x.options().dtype(at::kByte).memory_format(layout));
  const auto* in = reinterpret_cast<const uint16_t*>(x.data_ptr());
  auto* out = reinterpret_cast<uint16_t*>(pooled.data_ptr());
  uint8_t* arg = winner.data_ptr<uint8_t>();
  at::parallel_for(0, n * oh, 1, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {  // output row i of image p: input rows 2i, 2i + 1
      const int64_t p = r / oh, i = r % oh;
      const uint16_t* r0 = in + (p * h + 2 * i) * w * c;
      run.forward(r0, r0 + w * c, out + r * s.ow * c, arg + r * s.ow * c, s);
    }
  });
  return {pooled, winner};
}

at::Tensor relu_max_pool_nhwc_backward(const at::Tensor& grad_in, const at::Tensor& pooled, const at::Tensor& winner,
                                       int64_t height, int64_t width, VectorCopy which) {
  const auto layout = at::MemoryFormat::ChannelsLast;
  if (!relu_max_pool_nhwc_takes(pooled) || winner.sizes() != pooled.sizes() || !winner.is_contiguous(layout) ||
      winner.scalar_type() != at::kByte || grad_in.sizes() != pooled.sizes() || height / 2 != pooled.size(2) ||
      width / 2 != pooled.size(3)) {
    throw std::invalid_argument("relu_max_pool_nhwc_backward: gradient, pooled values and winners must match");
  }
  const NhwcLoops& run = nhwc_loops(which);
  const at::Tensor grad = grad_in.to(at::kBFloat16).contiguous(layout);
  const int64_t n = pooled.size(0), c = pooled.size(1), h = height, w = width, oh = pooled.size(2);
  const Rows s{w, c, pooled.size(3)};
  at::Tensor dx = at::empty({n, c, h, w}, grad.options().memory_format(layout));
  const auto* gp = reinterpret_cast<const uint16_t*>(grad.data_ptr());
  const auto* pv = reinterpret_cast<const uint16_t*>(pooled.data_ptr());
  const uint8_t* arg = winner.data_ptr<uint8_t>();
  auto* out = reinterpret_cast<uint16_t*>(dx.data_ptr());
  at::parallel_for(0, n * oh, 1, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {  // window row i of image p: input rows 2i, 2i + 1
      const int64_t p = r / oh, i = r % oh;
      uint16_t* r0 = out + (p * h + 2 * i) * w * c;
      run.backward(gp + r * s.ow * c, pv + r * s.ow * c, arg + r * s.ow * c, r0, r0 + w * c, s);
      if (w % 2) {  // an odd width's last column is in no window
        std::fill(r0 + (w - 1) * c, r0 + w * c, uint16_t{0});
        std::fill(r0 + (2 * w - 1) * c, r0 + 2 * w * c, uint16_t{0});
      }
    }
  });
  if (h % 2) {  // nor is an odd height's last row
    for (int64_t p = 0; p < n; ++p) std::fill(out + ((p + 1) * h - 1) * w * c, out + (p + 1) * h * w * c, uint16_t{0});
  }
  return dx;
}

}  // namespace stylize
