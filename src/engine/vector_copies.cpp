#include "vector_copies.hpp"

#include <stdexcept>
#include <string>

#include "stylize/runtime.hpp"

namespace stylize {

bool vector_copy_runs_here(VectorCopy which) {
#ifdef STYLIZE_VECTOR_COPIES_X86
  static const CpuVectorFeatures f = engine_vector_features();
  if (which == VectorCopy::avx512) return f.avx512;
  if (which == VectorCopy::avx2) return f.avx2_fma;
#else
  if (which == VectorCopy::avx512 || which == VectorCopy::avx2) return false;
#endif
  return true;
}

VectorCopy resolve_vector_copy(VectorCopy which) {
  if (which == VectorCopy::widest) {
    return vector_copy_runs_here(VectorCopy::avx512) ? VectorCopy::avx512
           : vector_copy_runs_here(VectorCopy::avx2) ? VectorCopy::avx2
                                                     : VectorCopy::baseline;
  }
  if (!vector_copy_runs_here(which)) {
    throw std::invalid_argument(std::string("this CPU cannot run the ") + to_string(which) + " copy of a loop");
  }
  return which;
}

const char* to_string(VectorCopy which) {
  switch (which) {
    case VectorCopy::widest:
      return "widest";
    case VectorCopy::avx512:
      return "avx512";
    case VectorCopy::avx2:
      return "avx2";
    default:
      return "baseline";
  }
}

}  // namespace stylize
