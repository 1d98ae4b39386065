// A CPU allocator for LibTorch that keeps large freed blocks and hands them out again.
//
// Every L-BFGS iteration allocates the same full-size activations and gradients and frees them
// again. Through LibTorch's default allocator each of those is a fresh mmap from glibc (blocks of
// tens of MB are above its mmap threshold), so every iteration page-faults its whole working set
// back in and the kernel zeroes it: measured at 512×384, ~126,000 page faults (~500 MB) per
// iteration (a 25-iteration run minus a 5-iteration one, so the setup cancels out). Here such
// blocks go to a cache and the next iteration's request of the same size takes one back.
//
// A request takes the smallest cached block of at least its (rounded) size and at most kReuseSlack
// times it; a step of the backward pass often wants a size that the forward pass's freed blocks do
// not have. So the cache may hold more than the most ever in use at once, by a headroom: the blocks
// held from the system (in use + cached) stay within (1 + headroom) × that peak; a request that
// would pass it first returns cached blocks, oldest first. Measured, peak RSS and page faults per
// iteration: 512×384, headroom 0.5: 922 MiB, ~1,150 (the default allocator: 961 MiB, ~126,000); 1024×768, headroom 0.5: 2723 MiB,
// ~4,600; headroom 0: 2117 MiB, ~380,000 (the default allocator: 2317 MiB, far more faults).
#pragma once

#include <cstddef>
#include <cstdint>

namespace stylize {

struct CpuAllocatorStats {
  uint64_t reused = 0;          // large requests served from the cache
  uint64_t fresh = 0;           // large requests that had to get memory from the system
  uint64_t in_use_bytes = 0;    // large blocks handed out and not yet freed
  uint64_t cached_bytes = 0;    // large blocks freed and kept for reuse
  uint64_t peak_in_use_bytes = 0;
};

// Makes the reusing allocator LibTorch's CPU allocator, for every tensor allocated from now on
// (idempotent). Tensors allocated before keep their own deleter and are freed correctly.
void use_reusing_cpu_allocator();

// Counters of the reusing allocator (all zero before use_reusing_cpu_allocator).
CpuAllocatorStats cpu_allocator_stats();

// The cache's headroom over the peak in use (see above); the stylizer lowers it to 0 when memory is
// short.
constexpr double kDefaultCacheHeadroom = 0.5;
void set_cpu_cache_headroom(double fraction);

// Gives every cached block back to the system, and counts the peak in use afresh from now on.
void release_cached_cpu_memory();

// How much larger than a request a reused block may be. With exact sizes only, an fp32 pass in
// NCHW (CPUs without AVX-512: oneDNN reorders to and from its blocked layouts, more distinct sizes)
// outgrew the headroom and the cache churned: ~32 fresh blocks per 512 px iteration, their page
// faults 15% of the iteration (1.94 → 1.68 s with a slack of 2, oneDNN capped to AVX2 on an EPYC
// Zen 5, 2 threads; 1024 px 9.39 → 7.19 s, peak RSS 2373 → 2473 MiB). A headroom of 1 instead did
// as well at 512 px (1.67 s) but held more at 1024 (2619 MiB, 7.52 s); AVX-512 and bf16 runs, which
// did not churn, are unchanged (0.99 and 0.52 s, the same peak RSS to 1%).
constexpr double kReuseSlack = 2.0;

// Requests of at least this many bytes go through the cache; smaller ones straight to malloc. glibc
// serves requests from 128 KiB up with a fresh mmap (its threshold only rises when such blocks are
// freed, which the cache no longer does), so the cache has to start there: with 1 MiB, 47,000 page
// faults per 512 px iteration remained.
constexpr size_t kReusedBlockMinBytes = size_t{128} << 10;

}  // namespace stylize
