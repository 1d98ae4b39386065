// What this process runs on: the device, its threads, the CPU's vector features (from CPUID), the
// BLAS in use and the free memory. The engine asks here and nowhere else; nothing here knows of
// images, losses or flags.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "stylize/vgg19.hpp"

namespace stylize {

// MemAvailable from /proc/meminfo, or 0 when it cannot be read.
uint64_t available_memory_bytes();

// Parses "auto", "cpu", "cuda", "cuda:N"; throws DeviceError when CUDA is asked for but absent.
at::Device resolve_device(const std::string& spec);

// Uses `threads` intra-op threads (0 = all cores). Debian's LibTorch otherwise starts with one.
int configure_threads(int threads);

// The vector instruction sets that decide which OpenBLAS kernels can run on this CPU.
struct CpuVectorFeatures {
  bool avx2_fma = false;
  bool avx512 = false;  // F, BW, DQ and VL: what OpenBLAS's SkylakeX kernels use
  bool avx512_bf16 = false;  // VDPBF16PS: oneDNN's bf16 convolutions ~2.8x faster than fp32 on Zen 5
  bool amx_bf16 = false;  // AMX tiles with bf16: what makes oneDNN's bf16 convolutions ~3x faster than fp32
};
CpuVectorFeatures cpu_vector_features();

// What the engine's kernels may use: cpu_vector_features() less what oneDNN is told to leave alone
// (ONEDNN_MAX_CPU_ISA=AVX2 and the like, read by oneDNN at its first use). The layout plan, the bf16
// Gram products and --precision auto follow this, so a capped oneDNN runs the plan measured for
// the CPU it then imitates; without oneDNN in the build it is cpu_vector_features().
CpuVectorFeatures engine_vector_features();

// Parses --precision: "fp32", "bf16", "mixed", or "auto" = bf16 on a CPU with AMX-BF16 (where it
// measured ~2.5-3x faster per iteration than fp32 at the same final loss, BENCHMARKS.md), mixed on a
// CPU with AVX512-BF16 but no AMX (512 px, full VGG19, 2 threads, AMD EPYC Zen 4, interleaved medians
// of 5: 0.664 s against bf16's 0.737 and fp32's 0.746; see vgg19.hpp; on a Zen 5 and Cooper Lake
// predicted from per-layer profiles, not measured), fp32 everywhere else (AVX2-only CPUs, and CUDA:
// not measured there). Throws UsageError on anything else.
Precision resolve_precision(const std::string& spec, const at::Device& device, const CpuVectorFeatures& cpu);

// Why running in `precision` on `device` is a poor choice on this CPU, as one clause for a front-end
// to warn with after naming its own flag; "" when it is not. bf16 (or mixed) on a CPU without bf16 dot products
// (neither AMX-BF16 nor AVX512-BF16) runs LibTorch's reference bf16 convolutions: on an AMD EPYC
// Zen 1 (AVX2) a 256 px iteration took 59.6 s against fp32's 0.62 (stylize_engine_bench, 2 threads),
// and erred 12x a bf16 rounding. resolve_precision("auto") never picks it there.
std::string precision_caveat(Precision precision, const at::Device& device, const CpuVectorFeatures& cpu);

// OpenBLAS's kernel set in this process (e.g. "SkylakeX"); "" when the BLAS is not OpenBLAS.
std::string openblas_core();

// The kernel set to ask OpenBLAS for (OPENBLAS_CORETYPE) when it runs `current` on a CPU that can do
// better; "" when it should be left alone. OpenBLAS falls back to its SSE3 "Prescott" kernels on a CPU
// model it does not know: Debian 12's 0.3.21 on Sapphire/Emerald Rapids Xeons, where sgemm then runs
// at 36-45 GFLOP/s instead of ~195 (measured on 2 cores).
std::string better_openblas_core(const std::string& current, const CpuVectorFeatures& cpu);

}  // namespace stylize
