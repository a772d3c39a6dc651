// SEAN's ACE epilogue CUDA kernels: the forward, one thread per element in a
// grid-stride loop; the backward, one block per kAceSumBlock elements, which
// also reduces the alpha gradient's two terms to one partial per block.
// Per-element math: csrc/common/ace.h (also run by the CPU kernels).
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

// Blended: one block per kAceSumBlock elements; block b writes its alpha sums
// to partials[2b], partials[2b + 1] (double).
template <typename T>
__global__ void ace_modulate_backward_kernel(
    const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ gs,
    const T* __restrict__ bs, const T* __restrict__ ga, const T* __restrict__ ba,
    const typename AccOf<T>::type* __restrict__ alpha, T* __restrict__ dx, T* __restrict__ dgs,
    T* __restrict__ dbs, T* __restrict__ dga, T* __restrict__ dba, double* __restrict__ partials,
    int64_t n) {
  using Acc = typename AccOf<T>::type;
  using Cv = Convert<T>;
  __shared__ double sums[2][kThreads];
  const int64_t begin = blockIdx.x * kAceSumBlock;
  const int64_t end = begin + kAceSumBlock < n ? begin + kAceSumBlock : n;
  double sum_g = 0, sum_b = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const AceGrads<Acc> d = ace_modulate_grads<Acc>(
        Cv::template load<Acc>(g[i]), Cv::template load<Acc>(x[i]), Cv::template load<Acc>(gs[i]),
        Cv::template load<Acc>(bs[i]), Cv::template load<Acc>(ga[i]),
        Cv::template load<Acc>(ba[i]), alpha[0], alpha[1]);
    dx[i] = Cv::template store<Acc>(d.x);
    dgs[i] = Cv::template store<Acc>(d.gamma_spade);
    dbs[i] = Cv::template store<Acc>(d.beta_spade);
    dga[i] = Cv::template store<Acc>(d.gamma_avg);
    dba[i] = Cv::template store<Acc>(d.beta_avg);
    sum_g += d.alpha_gamma;
    sum_b += d.alpha_beta;
  }
  sums[0][threadIdx.x] = sum_g;
  sums[1][threadIdx.x] = sum_b;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {  // a fixed order: deterministic
    if (threadIdx.x < half) {
      sums[0][threadIdx.x] += sums[0][threadIdx.x + half];
      sums[1][threadIdx.x] += sums[1][threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = sums[0][0];
    partials[2 * blockIdx.x + 1] = sums[1][0];
  }
}

// Without the region branch: d x and d gamma_spade (d beta_spade is g itself).
template <typename T>
__global__ void ace_modulate_backward_plain_kernel(const T* __restrict__ g,
                                                   const T* __restrict__ x,
                                                   const T* __restrict__ gs, T* __restrict__ dx,
                                                   T* __restrict__ dgs, int64_t n) {
  using Acc = typename AccOf<T>::type;
  using Cv = Convert<T>;
  for (int64_t i = grid_first(); i < n; i += grid_stride()) {
    const AcePlainGrads<Acc> d = ace_modulate_grads<Acc>(
        Cv::template load<Acc>(g[i]), Cv::template load<Acc>(x[i]), Cv::template load<Acc>(gs[i]));
    dx[i] = Cv::template store<Acc>(d.x);
    dgs[i] = Cv::template store<Acc>(d.gamma_spade);
  }
}

template <typename T>
cudaError_t modulate_backward(const void* g, const void* x, const void* gs, const void* bs,
                              const void* ga, const void* ba, const void* alpha, void* dx,
                              void* dgs, void* dbs, void* dga, void* dba, double* partials,
                              int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const auto c = [](const void* p) { return static_cast<const T*>(p); };
  const auto m = [](void* p) { return static_cast<T*>(p); };
  if (alpha == nullptr) {
    ace_modulate_backward_plain_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(
        c(g), c(x), c(gs), m(dx), m(dgs), n);
  } else {
    ace_modulate_backward_kernel<T><<<ace_sum_blocks(n), kThreads, 0, stream>>>(
        c(g), c(x), c(gs), c(bs), c(ga), c(ba),
        static_cast<const typename AccOf<T>::type*>(alpha), m(dx), m(dgs), m(dbs), m(dga),
        m(dba), partials, n);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_ace_modulate_backward(DType dtype, const void* grad, const void* x,
                                         const void* gamma_spade, const void* beta_spade,
                                         const void* gamma_avg, const void* beta_avg,
                                         const void* alpha, void* grad_x, void* grad_gamma_spade,
                                         void* grad_beta_spade, void* grad_gamma_avg,
                                         void* grad_beta_avg, double* partials, int64_t n,
                                         cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, modulate_backward<T>(
        grad, x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha, grad_x, grad_gamma_spade,
        grad_beta_spade, grad_gamma_avg, grad_beta_avg, partials, n, stream));
}

cudaError_t launch_ace_modulate(DType dtype, const void* x, const void* gamma_spade,
                                const void* beta_spade, const void* gamma_avg,
                                const void* beta_avg, const void* alpha, void* out, int64_t n,
                                cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, modulate<T>(
        x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha, out, n, stream));
}

}  // namespace hrops
