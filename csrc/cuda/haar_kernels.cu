// Haar DWT/IDWT CUDA kernels: one thread per 2x2 block, grid-stride loop,
// 64-bit indexing. Per-block math: csrc/common/haar.h (also run by the CPU
// kernels, which is how this math is tested without a GPU).
#include <algorithm>

#include "common/haar.h"
#include "cuda/convert.cuh"
#include "cuda/launch_dtype.h"
#include "cuda/launch_config.cuh"

namespace hrops {
namespace {

template <typename T>
__global__ void haar_dwt_kernel(const T* __restrict__ x, int64_t sn, int64_t sc, int64_t sh,
                                int64_t sw, T* __restrict__ out, int64_t N, int64_t C, int64_t H,
                                int64_t W) {
  using Acc = typename AccOf<T>::type;
  const int64_t h = (H + 1) / 2, w = (W + 1) / 2, plane = h * w;
  const int64_t total = N * C * plane;
  for (int64_t k = grid_first(); k < total; k += grid_stride()) {
    const int64_t j = k % w, i = (k / w) % h, c = (k / plane) % C, n = k / (plane * C);
    const T* src = x + n * sn + c * sc + 2 * i * sh + 2 * j * sw;
    T* base = out + n * 4 * C * plane + i * w + j;
    haar_dwt_block<Acc>(src, sh, sw, 2 * i + 1 < H, 2 * j + 1 < W,
                        base + haar_packed_channel(C, c, 0) * plane,
                        base + haar_packed_channel(C, c, 1) * plane,
                        base + haar_packed_channel(C, c, 2) * plane,
                        base + haar_packed_channel(C, c, 3) * plane);
  }
}

template <typename T>
__global__ void haar_idwt_kernel(const T* __restrict__ low, int64_t ln, int64_t lc, int64_t lh,
                                 int64_t lw, const T* __restrict__ high, int64_t hn, int64_t hc,
                                 int64_t hb, int64_t hh, int64_t hw, T* __restrict__ out,
                                 int64_t N, int64_t C, int64_t H, int64_t W) {
  using Acc = typename AccOf<T>::type;
  const int64_t h = (H + 1) / 2, w = (W + 1) / 2, plane = h * w;
  const int64_t total = N * C * plane;
  for (int64_t k = grid_first(); k < total; k += grid_stride()) {
    const int64_t j = k % w, i = (k / w) % h, c = (k / plane) % C, n = k / (plane * C);
    const T* hi = high + n * hn + c * hc + i * hh + j * hw;
    haar_idwt_block<Acc>(low[n * ln + c * lc + i * lh + j * lw], hi[0], hi[hb], hi[2 * hb],
                         out + ((n * C + c) * H + 2 * i) * W + 2 * j, W, 1, 2 * i + 1 < H,
                         2 * j + 1 < W);
  }
}

template <typename T>
cudaError_t dwt(const void* x, const int64_t* xs, void* out, int64_t N, int64_t C, int64_t H,
                int64_t W, cudaStream_t stream) {
  const int64_t total = N * C * ((H + 1) / 2) * ((W + 1) / 2);
  if (total == 0) return cudaSuccess;
  haar_dwt_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<const T*>(x), xs[0], xs[1], xs[2], xs[3], static_cast<T*>(out), N, C, H, W);
  return cudaGetLastError();
}

template <typename T>
cudaError_t idwt(const void* low, const int64_t* ls, const void* high, const int64_t* hs,
                 void* out, int64_t N, int64_t C, int64_t H, int64_t W, cudaStream_t stream) {
  const int64_t total = N * C * ((H + 1) / 2) * ((W + 1) / 2);
  if (total == 0) return cudaSuccess;
  haar_idwt_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<const T*>(low), ls[0], ls[1], ls[2], ls[3], static_cast<const T*>(high), hs[0],
      hs[1], hs[2], hs[3], hs[4], static_cast<T*>(out), N, C, H, W);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_haar_dwt(DType dtype, const void* x, const int64_t xs[4], void* out, int64_t N,
                            int64_t C, int64_t H, int64_t W, cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, dwt<T>(x, xs, out, N, C, H, W, stream));
}

cudaError_t launch_haar_idwt(DType dtype, const void* low, const int64_t ls[4], const void* high,
                             const int64_t hs[5], void* out, int64_t N, int64_t C, int64_t H,
                             int64_t W, cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, idwt<T>(low, ls, high, hs, out, N, C, H, W, stream));
}

}  // namespace hrops
