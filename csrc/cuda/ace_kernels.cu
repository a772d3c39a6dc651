// SEAN's ACE epilogue CUDA kernel: one thread per element, grid-stride loop.
// Per-element math: csrc/common/ace.h (also run by the CPU kernel).
#include <algorithm>

#include "common/ace.h"
#include "cuda/convert.cuh"
#include "cuda/launch_dtype.h"
#include "cuda/launch_config.cuh"

namespace hrops {
namespace {

template <typename T>
__global__ void ace_modulate_kernel(const T* __restrict__ x, const T* __restrict__ gs,
                                    const T* __restrict__ bs, const T* __restrict__ ga,
                                    const T* __restrict__ ba,
                                    const typename AccOf<T>::type* __restrict__ alpha,
                                    T* __restrict__ out, int64_t n) {
  using Acc = typename AccOf<T>::type;
  using Cv = Convert<T>;
  for (int64_t i = grid_first(); i < n; i += grid_stride()) {
    const Acc xv = Cv::template load<Acc>(x[i]), g = Cv::template load<Acc>(gs[i]),
              b = Cv::template load<Acc>(bs[i]);
    const Acc v = alpha ? ace_modulate_value<Acc>(xv, g, b, Cv::template load<Acc>(ga[i]),
                                                  Cv::template load<Acc>(ba[i]), alpha[0], alpha[1])
                        : ace_modulate_value<Acc>(xv, g, b);
    out[i] = Cv::template store<Acc>(v);
  }
}

template <typename T>
cudaError_t modulate(const void* x, const void* gs, const void* bs, const void* ga,
                     const void* ba, const void* alpha, void* out, int64_t n,
                     cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ace_modulate_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(
      static_cast<const T*>(x), static_cast<const T*>(gs), static_cast<const T*>(bs),
      static_cast<const T*>(ga), static_cast<const T*>(ba),
      static_cast<const typename AccOf<T>::type*>(alpha), static_cast<T*>(out), n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_ace_modulate(DType dtype, const void* x, const void* gamma_spade,
                                const void* beta_spade, const void* gamma_avg,
                                const void* beta_avg, const void* alpha, void* out, int64_t n,
                                cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, modulate<T>(
        x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha, out, n, stream));
}

}  // namespace hrops
