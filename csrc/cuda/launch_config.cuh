// Launch configuration of the grid-stride CUDA kernels (torch-free, for the
// .cu files): threads per block, the grid for n items, and the loop's first
// index and stride. The grid is capped: the loop covers the rest, so n may
// exceed what one launch's blocks could index.
#pragma once
#include <algorithm>
#include <cstdint>

namespace hrops {

constexpr int kThreads = 256;  // per block, unless a kernel says otherwise

// Blocks of `threads` for a grid-stride loop over n items (at most 65536).
inline int64_t blocks_for(int64_t n, int threads = kThreads) {
  return std::min<int64_t>((n + threads - 1) / threads, 65536);
}

// for (int64_t i = grid_first(); i < n; i += grid_stride()): 64-bit indices.
__device__ __forceinline__ int64_t grid_first() {
  return blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace hrops
