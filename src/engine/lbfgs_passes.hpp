// The passes of L-BFGS's two-loop recursion over the CPU's fp32 vectors, each update fused with the
// next dot product and split over ATen's threads. ATen's ops (a BLAS dot, then an addcmul, per pair
// per loop) read the stored vectors as often but q once more, and ran the dot on one thread, which
// was the bound where one core cannot use the memory's bandwidth (SyncFreeLbfgs, src/engine/lbfgs.cpp).
// Internal to the engine; kept out of the public headers.
#pragma once

#include <cstdint>

#include "vector_copies.hpp"

namespace stylize {

// One pass over n values (n >= 0), with q_in = `from` if given, else q itself (in place):
//   q[j] = (a·q_in[j] + c·v[j])·m      (without v: (a·q_in[j])·m)
//   returns Σ_j w[j]·q[j]              (without w: 0)
// from, v and w may be null; none overlaps q (v and w may be one array). The sum is taken in blocks of kPassBlock values, each
// in 16 float lanes (lane k sums the positions ≡ k mod 16 in order), the lanes and then the blocks
// added in double in a fixed order: the same bits for every thread count and every copy (`which`,
// vector_copies.hpp). Parallel over ATen's threads from kPassParallelFrom values. Throws
// std::invalid_argument for a copy this CPU cannot run.
double two_loop_pass(float* q, const float* from, float a, const float* v, float c, float m, const float* w,
                     int64_t n, VectorCopy which = VectorCopy::widest);

constexpr int64_t kPassBlock = 4096;
constexpr int64_t kPassParallelFrom = 16 * kPassBlock;

}  // namespace stylize
