// Allocation of large CPU kernel outputs: transparent huge pages plus a small
// cache of freed blocks.
#pragma once
#include <ATen/core/Tensor.h>

namespace hrops {

// Like at::empty(sizes, options) for CPU tensors. Storage of 2 MiB or more is
// 2 MiB-aligned, madvise(MADV_HUGEPAGE)d, and returned on free to a cache
// that later outputs of the same rounded size reuse (least recently freed
// blocks are evicted first when the cache is full).
//
// Why: a fresh output is written once by a memory-bound kernel, and the
// first-touch page faults of newly mapped memory cost more than the kernel
// (measured: a 64 MiB output, 1 thread, 4 KiB pages 33 ms, huge pages 15 ms,
// already-mapped memory 9.5 ms). GAN layers repeat the same shapes every
// step, so reuse removes the faults.
// HROPS_CPU_CACHE_MB (default 1024) bounds the cached bytes per process; 0
// disables the cache. A forked child starts with an empty cache.
// HROPS_THP=0 disables huge pages.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// Frees every cached block (returns the number of bytes released):
// hrops.empty_cache().
int64_t empty_cache();

// Bytes the cache holds now.
int64_t cached_bytes();

}  // namespace hrops
