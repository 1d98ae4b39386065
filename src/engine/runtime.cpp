#include "stylize/runtime.hpp"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/cuda.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <fstream>

#include "stylize/error.hpp"

#ifdef STYLIZE_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

namespace stylize {

uint64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024ull;
  }
  return 0;
}

at::Device resolve_device(const std::string& spec) {
  if (spec == "auto") return torch::cuda::is_available() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  if (spec == "cpu") return at::Device(at::kCPU);
  if (spec.rfind("cuda", 0) != 0) {
    throw UsageError("unknown device " + in_quotes(spec) + "; expected auto, cpu, cuda or cuda:N");
  }
  int index = 0;
  if (spec.size() > 4) {
    if (spec[4] != ':' || spec.size() == 5 || spec.find_first_not_of("0123456789", 5) != std::string::npos) {
      throw UsageError("unknown device " + in_quotes(spec) + "; expected auto, cpu, cuda or cuda:N");
    }
    index = std::stoi(spec.substr(5));
  }
  if (!torch::cuda::is_available()) {
    throw DeviceError("device " + in_quotes(spec) +
                      " asked for, but CUDA is not available (this LibTorch build or machine has no GPU); "
                      "use " + field("device") + " cpu");
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  if (index >= count) {
    throw DeviceError("device " + in_quotes(spec) + " asked for, but only " + std::to_string(count) +
                      " CUDA device(s) exist (cuda:0..cuda:" + std::to_string(count - 1) + ")");
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
}

int configure_threads(int threads) {
  if (threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? static_cast<int>(n) : 1;
  }
  at::set_num_threads(threads);
  // Debian's LibTorch does its matrix products through libblas.so.3, which is usually OpenBLAS with
  // a thread pool of its own beside ATen's OpenMP one. After each product those threads spin before
  // sleeping, and with ATen already using every core the element-wise operations that follow each
  // Gram product wait for them (~8 ms stalls seen in a profile; 512 px iteration 1.05 → 0.99 s on 2
  // cores). One BLAS thread removes the contention; the Gram products split their work over ATen's
  // threads themselves (losses.cpp). Looked up at run time: a different BLAS simply lacks the symbol.
  using SetThreads = void (*)(int);
  if (auto set_blas_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set_blas_threads(1);
  }
  return threads;
}

namespace {

#if defined(__x86_64__) || defined(__i386__)
// Register `reg` (0 = EAX … 3 = EDX) of CPUID leaf/subleaf, or 0 when the leaf does not exist.
uint32_t cpuid_register(unsigned leaf, unsigned subleaf, int reg) {
  unsigned r[4] = {0, 0, 0, 0};
  if (!__get_cpuid_count(leaf, subleaf, &r[0], &r[1], &r[2], &r[3])) return 0;
  return r[reg];
}

bool bit(uint32_t value, int n) { return (value >> n) & 1u; }

// XCR0: which register states the OS saves on a context switch. A feature the CPU has but the
// kernel does not enable (AVX-512 or AMX tile state) cannot be used.
uint64_t os_enabled_states() {
  if (!bit(cpuid_register(1, 0, 2), 27)) return 0;  // OSXSAVE: xgetbv itself is available
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

}  // namespace

// From CPUID directly (Intel SDM vol. 2A, "CPUID"), not __builtin_cpu_supports: GCC before 11 knows
// no "amx-bf16", and the builtins say nothing about what the OS has enabled.
CpuVectorFeatures cpu_vector_features() {
  CpuVectorFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  const uint64_t xcr0 = os_enabled_states();
  const bool avx_state = (xcr0 & 0x6) == 0x6;             // XMM and YMM
  const bool avx512_state = avx_state && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool amx_state = (xcr0 & 0x60000) == 0x60000;    // XTILECFG and XTILEDATA
  const uint32_t ecx1 = cpuid_register(1, 0, 2);
  const uint32_t ebx7 = cpuid_register(7, 0, 1), edx7 = cpuid_register(7, 0, 3);
  const uint32_t eax7_1 = cpuid_register(7, 0, 0) >= 1 ? cpuid_register(7, 1, 0) : 0;
  f.avx2_fma = avx_state && bit(ebx7, 5) && bit(ecx1, 12);
  f.avx512 = avx512_state && bit(ebx7, 16) && bit(ebx7, 17) && bit(ebx7, 30) && bit(ebx7, 31);  // F DQ BW VL
  f.avx512_bf16 = f.avx512 && bit(eax7_1, 5);
  f.amx_bf16 = f.avx512_bf16 && amx_state && bit(edx7, 22) && bit(edx7, 24);  // AMX-BF16, AMX-TILE
#endif
  return f;
}

CpuVectorFeatures engine_vector_features() {
  CpuVectorFeatures f = cpu_vector_features();
#ifdef STYLIZE_HAVE_ONEDNN
  // oneDNN's ISA values are nested bit sets: a set is allowed when all of its bits are.
  const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
  auto allows = [isa](dnnl_cpu_isa_t set) { return (isa & static_cast<unsigned>(set)) == static_cast<unsigned>(set); };
  f.avx2_fma = f.avx2_fma && allows(dnnl_cpu_isa_avx2);
  f.avx512 = f.avx512 && allows(dnnl_cpu_isa_avx512_core);
  f.avx512_bf16 = f.avx512_bf16 && allows(dnnl_cpu_isa_avx512_core_bf16);
  f.amx_bf16 = f.amx_bf16 && allows(dnnl_cpu_isa_avx512_core_amx);
#endif
  return f;
}

Precision resolve_precision(const std::string& spec, const at::Device& device, const CpuVectorFeatures& cpu) {
  if (spec == "fp32") return Precision::fp32;
  if (spec == "bf16") return Precision::bf16;
  if (spec == "mixed") return Precision::mixed;
  if (spec != "auto") throw UsageError("unknown precision " + in_quotes(spec) + "; expected auto, fp32, bf16 or mixed");
  if (!device.is_cpu()) return Precision::fp32;
  return cpu.amx_bf16 ? Precision::bf16 : cpu.avx512_bf16 ? Precision::mixed : Precision::fp32;
}

std::string precision_caveat(Precision precision, const at::Device& device, const CpuVectorFeatures& cpu) {
  if (precision == Precision::fp32 || !device.is_cpu() || cpu.amx_bf16 || cpu.avx512_bf16) return "";
  const std::string which = precision == Precision::mixed
                                ? "mixed's bf16 layers (conv1_1 .. conv2_2, a quarter of the arithmetic) run"
                                : "bf16 convolutions run";
  return "this CPU has no bf16 dot products (AMX-BF16 or AVX512-BF16), so " + which + " on LibTorch's generic "
         "code: about 100x slower than fp32 (59.6 s against 0.62 s per 256 px iteration on an AVX2 EPYC) and less "
         "exact; fp32, or auto, is the fast choice here";
}

std::string openblas_core() {
  using CoreName = char* (*)();
  auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = core_name ? core_name() : nullptr;
  return name ? name : "";
}

std::string better_openblas_core(const std::string& current, const CpuVectorFeatures& cpu) {
  // Only the generic fallback is overridden: a core OpenBLAS recognised is its own informed choice.
  if (current != "Prescott") return "";
  if (cpu.avx512_bf16) return "Cooperlake";
  if (cpu.avx512) return "SkylakeX";
  if (cpu.avx2_fma) return "Haswell";
  return "";
}

}  // namespace stylize
