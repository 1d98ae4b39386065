// Loops compiled more than once from one source: for AVX-512, for AVX2 and for the x86-64 baseline
// (the build sets no -march), the widest copy the engine may use picked at run time. Internal to the
// engine (src/engine/winograd.cpp, src/engine/relu_pool.cpp, src/engine/lbfgs_passes.cpp); kept out of
// the public headers.
//
// How: the loop is an always_inline body in plain C++ over contiguous arrays (so that the compiler
// vectorises it); thin wrappers marked STYLIZE_TARGET_AVX512 / STYLIZE_TARGET_AVX2 / nothing inline
// it, each compiled for its set. Only the wrappers carry wider code: what they call out of line
// (memset, memmove) is compiled for the baseline. Files with copies are built with
// -ffp-contract=off (CMakeLists.txt): GCC contracts a*b+c into FMA by default in C++ and AVX-512
// brings FMA, so the copies would otherwise round differently; tests compare each copy with the
// baseline bit for bit.
#pragma once

namespace stylize {

// widest: AVX-512 where engine_vector_features() allows it (F, DQ, BW, VL, and oneDNN not capped
// below it), else AVX2 (with FMA), else the baseline; so a run with oneDNN capped to AVX2 runs the
// AVX2 copies too.
enum class VectorCopy { widest, avx512, avx2, baseline };

// Whether this CPU (as capped for oneDNN) may run `which`; widest and baseline always can.
bool vector_copy_runs_here(VectorCopy which);

// The copy `which` means here (widest resolved; never widest). Throws std::invalid_argument for a
// copy this CPU cannot run.
VectorCopy resolve_vector_copy(VectorCopy which);

// "widest", "avx512", "avx2" or "baseline".
const char* to_string(VectorCopy which);

// One of three same-typed things (function tables, usually) for the copy `which` resolves to.
template <class T>
const T& pick_vector_copy(VectorCopy which, const T& avx512, const T& avx2, const T& baseline) {
  switch (resolve_vector_copy(which)) {
    case VectorCopy::avx512:
      return avx512;
    case VectorCopy::avx2:
      return avx2;
    default:
      return baseline;
  }
}

}  // namespace stylize

#define STYLIZE_ALWAYS_INLINE inline __attribute__((always_inline))

// STYLIZE_VECTOR_COPIES(Table, getter, DEFINE): DEFINE(name, attributes) defines a constexpr Table
// `name` of functions compiled with `attributes`; this expands it once per copy (getter_baseline,
// getter_avx2, getter_avx512) and defines `const Table& getter(VectorCopy which)` picking one.
#if defined(__x86_64__) && defined(__GNUC__)
#define STYLIZE_VECTOR_COPIES_X86 1
#define STYLIZE_TARGET_AVX2 __attribute__((target("avx2")))
#ifdef __clang__  // Clang knows no prefer-vector-width in a target attribute (it would drop the attribute)
#define STYLIZE_TARGET_AVX512 __attribute__((target("avx512f")))
#define STYLIZE_TARGET_AVX512_BW __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#else
#define STYLIZE_TARGET_AVX512 __attribute__((target("avx512f,prefer-vector-width=512")))
#define STYLIZE_TARGET_AVX512_BW __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512")))
#endif
// STYLIZE_VECTOR_COPIES_AVX512_AS(Table, getter, DEFINE, avx512_target): the same, the AVX-512 copy
// compiled with `avx512_target`. STYLIZE_TARGET_AVX512_BW adds BW, DQ and VL (which the avx512 copy
// already requires at run time) for loops over 8- and 16-bit data: the bf16 NHWC ReLU + pool ran
// 2x faster with them, while the fp32 NCHW one (stride-2 reads, byte winners) ran 3x slower, so
// each file says which it wants (relu_pool.cpp).
#define STYLIZE_VECTOR_COPIES_AVX512_AS(Table, getter, DEFINE, avx512_target)          \
  DEFINE(getter##_baseline, )                                                          \
  DEFINE(getter##_avx2, STYLIZE_TARGET_AVX2)                                           \
  DEFINE(getter##_avx512, avx512_target)                                               \
  const Table& getter(VectorCopy which) {                                              \
    return pick_vector_copy(which, getter##_avx512, getter##_avx2, getter##_baseline); \
  }
#define STYLIZE_VECTOR_COPIES(Table, getter, DEFINE) \
  STYLIZE_VECTOR_COPIES_AVX512_AS(Table, getter, DEFINE, STYLIZE_TARGET_AVX512)
#else
#define STYLIZE_VECTOR_COPIES(Table, getter, DEFINE)                                            \
  DEFINE(getter##_baseline, )                                                                   \
  const Table& getter(VectorCopy which) {                                                       \
    return pick_vector_copy(which, getter##_baseline, getter##_baseline, getter##_baseline);   \
  }
#define STYLIZE_VECTOR_COPIES_AVX512_AS(Table, getter, DEFINE, avx512_target) STYLIZE_VECTOR_COPIES(Table, getter, DEFINE)
#endif
