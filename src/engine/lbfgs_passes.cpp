#include "lbfgs_passes.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace stylize {
namespace {

constexpr int kLanes = 16;

// One block of a pass: its update written, its dot product returned (lanes added in double). From,
// HasV and HasW drop what is missing at compile time rather than testing it per value. In place
// (no `from`), q is read and written through one pointer: with q_out == q_in as two pointers, GCC
// versions the loop on their overlap and, since they overlap exactly, ran its scalar copy.
template <bool From, bool HasV, bool HasW>
STYLIZE_ALWAYS_INLINE double block_body(float* __restrict q, const float* __restrict from, float a,
                                        const float* __restrict v, float c, float m, const float* __restrict w,
                                        int64_t len) {
  float acc[kLanes] = {};
  auto value = [&](int64_t j) {
    float t = a * (From ? from[j] : q[j]);
    if (HasV) t = t + c * v[j];
    return t * m;
  };
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const float t = value(j + k);
      q[j + k] = t;
      if (HasW) acc[k] = acc[k] + w[j + k] * t;
    }
  }
  for (int k = 0; j < len; ++j, ++k) {  // the tail, lane by lane as the full rows
    const float t = value(j);
    q[j] = t;
    if (HasW) acc[k] = acc[k] + w[j] * t;
  }
  double sum = 0;
  for (int k = 0; k < kLanes; ++k) sum += acc[k];
  return sum;
}

using Block = double (*)(float*, const float*, float, const float*, float, float, const float*, int64_t);

// Indexed by from · 4 + v · 2 + w.
struct Blocks {
  Block variant[8];
};

#define STYLIZE_LBFGS_PASS_BLOCKS(name, attributes)                                                            \
  template <bool From, bool HasV, bool HasW>                                                                   \
  attributes double name##_block(float* q, const float* from, float a, const float* v, float c, float m,       \
                                 const float* w, int64_t len) {                                                \
    return block_body<From, HasV, HasW>(q, from, a, v, c, m, w, len);                                          \
  }                                                                                                            \
  constexpr Blocks name = {{name##_block<false, false, false>, name##_block<false, false, true>,               \
                            name##_block<false, true, false>, name##_block<false, true, true>,                 \
                            name##_block<true, false, false>, name##_block<true, false, true>,                 \
                            name##_block<true, true, false>, name##_block<true, true, true>}};

STYLIZE_VECTOR_COPIES(Blocks, blocks, STYLIZE_LBFGS_PASS_BLOCKS)

}  // namespace

double two_loop_pass(float* q, const float* from, float a, const float* v, float c, float m, const float* w,
                     int64_t n, VectorCopy which) {
  const Block block = blocks(which).variant[(from ? 4 : 0) + (v ? 2 : 0) + (w ? 1 : 0)];
  const int64_t count = (n + kPassBlock - 1) / kPassBlock;
  std::vector<double> partial(static_cast<size_t>(count), 0.0);
  auto at_offset = [](const float* p, int64_t begin) { return p ? p + begin : nullptr; };
  auto run = [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      const int64_t begin = i * kPassBlock, len = std::min(kPassBlock, n - begin);
      partial[static_cast<size_t>(i)] =
          block(q + begin, at_offset(from, begin), a, at_offset(v, begin), c, m, at_offset(w, begin), len);
    }
  };
  if (n >= kPassParallelFrom) {
    at::parallel_for(0, count, 1, run);
  } else {
    run(0, count);
  }
  double sum = 0;
  for (double p : partial) sum += p;  // in block order, whichever thread ran each
  return sum;
}

}  // namespace stylize
