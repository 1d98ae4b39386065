#include "bf16_matmul.hpp"

#include "stylize/runtime.hpp"

#include <ATen/ATen.h>

#include <stdexcept>

#ifdef STYLIZE_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace stylize {

#ifdef STYLIZE_HAVE_ONEDNN

namespace {

dnnl::memory::desc describe(const at::Tensor& t) {
  const auto type = t.scalar_type() == at::kBFloat16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
  const dnnl::memory::dims sizes(t.sizes().begin(), t.sizes().end()), strides(t.strides().begin(), t.strides().end());
  return dnnl::memory::desc(sizes, type, strides);
}

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

}  // namespace

bool bf16_matmul_available() {
  // oneDNN's bf16 matmul has a reference path on any x86-64 CPU, far slower than fp32 BLAS; only
  // the native ISAs are worth it.
  static const bool native = [] {
    const CpuVectorFeatures cpu = engine_vector_features();  // CPUID, capped as oneDNN is
    return cpu.avx512_bf16 || cpu.amx_bf16;
  }();
  return native;
}

bool onednn_matmul_available() { return true; }

void onednn_matmul(const at::Tensor& a, const at::Tensor& b, at::Tensor& out) {
  // Primitive creation goes through oneDNN's primitive cache (keyed by the descriptors), so
  // building the descriptor per call costs microseconds once a shape has been seen.
  dnnl::engine& engine = cpu_engine();
  const auto a_md = describe(a), b_md = describe(b), out_md = describe(out);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, out_md), engine);
  dnnl::memory a_mem(a_md, engine, const_cast<void*>(a.data_ptr()));
  dnnl::memory b_mem(b_md, engine, const_cast<void*>(b.data_ptr()));
  dnnl::memory out_mem(out_md, engine, out.data_ptr());
  dnnl::stream stream(engine);
  dnnl::matmul(pd).execute(stream, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, out_mem}});
  stream.wait();
}

void bf16_matmul(const at::Tensor& a, const at::Tensor& b, at::Tensor& out) { onednn_matmul(a, b, out); }

#else

bool bf16_matmul_available() { return false; }

bool onednn_matmul_available() { return false; }

void onednn_matmul(const at::Tensor&, const at::Tensor&, at::Tensor&) {
  throw std::logic_error("onednn_matmul: built without oneDNN");
}

void bf16_matmul(const at::Tensor&, const at::Tensor&, at::Tensor&) {
  throw std::logic_error("bf16_matmul: built without oneDNN");
}

#endif

}  // namespace stylize
