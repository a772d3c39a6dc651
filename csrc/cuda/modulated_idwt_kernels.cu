// MobileStyleGAN's modulated IDWT upsampling, CUDA kernels. Per-block math:
// csrc/common/haar.h (modulated_idwt_block / _backward), shared with the CPU
// kernels.
#include <algorithm>

#include "common/haar.h"
#include "cuda/convert.cuh"
#include "cuda/launch_dtype.h"
#include "cuda/launch_config.cuh"

namespace hrops {
namespace {

template <typename T>
__global__ void modulated_idwt_kernel(const T* __restrict__ x, int64_t sn, int64_t sc, int64_t sh,
                                      int64_t sw, const T* __restrict__ mod, T* __restrict__ out,
                                      int64_t N, int64_t C, int64_t h, int64_t w) {
  using Acc = typename AccOf<T>::type;
  using Cv = Convert<T>;
  const int64_t plane = h * w, total = N * C * plane, W = 2 * w;
  for (int64_t k = grid_first(); k < total; k += grid_stride()) {
    const int64_t j = k % w, i = (k / w) % h, c = (k / plane) % C, n = k / (plane * C);
    const T* m = mod + n * 4 * C;
    const Acc s[4] = {Cv::template load<Acc>(m[c]), Cv::template load<Acc>(m[C + 3 * c]),
                      Cv::template load<Acc>(m[C + 3 * c + 1]),
                      Cv::template load<Acc>(m[C + 3 * c + 2])};
    const T* ll = x + n * sn + c * sc + i * sh + j * sw;
    const T* lh = x + n * sn + (C + 3 * c) * sc + i * sh + j * sw;
    modulated_idwt_block<Acc>(ll[0], lh[0], lh[sc], lh[2 * sc], s,
                              out + ((n * C + c) * 2 * h + 2 * i) * W + 2 * j, W, 1, true, true);
  }
}

// One thread block per (n, c) plane (blocks stride over the N*C planes, which
// may outnumber a grid's 2^31 - 1 blocks); it owns the plane's four
// modulation gradients, so no atomics are needed and the result is
// deterministic.
template <typename T>
__global__ void modulated_idwt_backward_kernel(const T* __restrict__ grad, const T* __restrict__ x,
                                               const T* __restrict__ mod, T* __restrict__ grad_x,
                                               typename AccOf<T>::type* __restrict__ grad_mod,
                                               int64_t N, int64_t C, int64_t h, int64_t w) {
  using Acc = typename AccOf<T>::type;
  using Cv = Convert<T>;
  __shared__ Acc partial[4][kThreads];
  const int64_t plane = h * w, W = 2 * w;
  for (int64_t nc = blockIdx.x; nc < N * C; nc += gridDim.x) {
    const int64_t c = nc % C, n = nc / C;
    const int64_t ch[4] = {c, C + 3 * c, C + 3 * c + 1, C + 3 * c + 2};
    Acc s[4], gs[4] = {Acc(0), Acc(0), Acc(0), Acc(0)};
    for (int q = 0; q < 4; ++q) s[q] = Cv::template load<Acc>(mod[n * 4 * C + ch[q]]);
    const T* gy = grad + nc * 4 * plane;
    for (int64_t k = threadIdx.x; k < plane; k += blockDim.x) {
      const int64_t i = k / w, j = k % w;
      T xv[4], gx[4];
      for (int q = 0; q < 4; ++q) xv[q] = x[(n * 4 * C + ch[q]) * plane + k];
      modulated_idwt_block_backward<Acc>(gy + 2 * i * W + 2 * j, W, 1, true, true, xv, s, gx, gs);
      for (int q = 0; q < 4; ++q) grad_x[(n * 4 * C + ch[q]) * plane + k] = gx[q];
    }
    for (int q = 0; q < 4; ++q) partial[q][threadIdx.x] = gs[q];
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) {
        for (int q = 0; q < 4; ++q) partial[q][threadIdx.x] += partial[q][threadIdx.x + stride];
      }
      __syncthreads();
    }
    if (threadIdx.x < 4) grad_mod[n * 4 * C + ch[threadIdx.x]] = partial[threadIdx.x][0];
    __syncthreads();  // partial is read above before the next plane overwrites it
  }
}

template <typename T>
cudaError_t forward(const void* x, const int64_t* xs, const void* mod, void* out, int64_t N,
                    int64_t C, int64_t h, int64_t w, cudaStream_t stream) {
  const int64_t total = N * C * h * w;
  if (total == 0) return cudaSuccess;
  modulated_idwt_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<const T*>(x), xs[0], xs[1], xs[2], xs[3], static_cast<const T*>(mod),
      static_cast<T*>(out), N, C, h, w);
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward(const void* grad, const void* x, const void* mod, void* grad_x,
                     void* grad_mod, int64_t N, int64_t C, int64_t h, int64_t w,
                     cudaStream_t stream) {
  if (N * C == 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>(N * C, 65536);
  modulated_idwt_backward_kernel<T><<<blocks, kThreads, 0, stream>>>(
      static_cast<const T*>(grad), static_cast<const T*>(x), static_cast<const T*>(mod),
      static_cast<T*>(grad_x), static_cast<typename AccOf<T>::type*>(grad_mod), N, C, h, w);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_modulated_idwt(DType dtype, const void* x, const int64_t xs[4], const void* mod,
                                  void* out, int64_t N, int64_t C, int64_t h, int64_t w,
                                  cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, forward<T>(x, xs, mod, out, N, C, h, w, stream));
}

cudaError_t launch_modulated_idwt_backward(DType dtype, const void* grad, const void* x,
                                           const void* mod, void* grad_x, void* grad_mod,
                                           int64_t N, int64_t C, int64_t h, int64_t w,
                                           cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, backward<T>(grad, x, mod, grad_x, grad_mod, N, C, h, w, stream));
}

}  // namespace hrops
