// Fused bias + leaky ReLU, CUDA kernels (elementwise, grid-stride). Per-element
// math: csrc/common/fused_bias_leaky_relu.h, shared with the CPU kernels.
#include <algorithm>

#include "common/fused_bias_leaky_relu.h"
#include "cuda/convert.cuh"
#include "cuda/launch_dtype.h"
#include "cuda/launch_config.cuh"

namespace hrops {
namespace {

template <typename T>
__global__ void fused_bias_leaky_relu_kernel(const T* __restrict__ x, const T* __restrict__ bias,
                                T* __restrict__ out, int64_t total, int64_t C, int64_t inner,
                                typename AccOf<T>::type slope, typename AccOf<T>::type scale) {
  using Acc = typename AccOf<T>::type;
  using Cv = Convert<T>;
  for (int64_t k = grid_first(); k < total; k += grid_stride()) {
    const Acc b = bias ? Cv::template load<Acc>(bias[(k / inner) % C]) : Acc(0);
    out[k] = Cv::template store<Acc>(
        leaky_relu_scaled<Acc>(Cv::template load<Acc>(x[k]) + b, slope, scale));
  }
}

template <typename T>
__global__ void fused_bias_leaky_relu_backward_kernel(const T* __restrict__ grad, const T* __restrict__ out,
                                         const T* __restrict__ shift, T* __restrict__ grad_x,
                                         int64_t total, int64_t C, int64_t inner,
                                         typename AccOf<T>::type slope,
                                         typename AccOf<T>::type scale) {
  using Acc = typename AccOf<T>::type;
  using Cv = Convert<T>;
  for (int64_t k = grid_first(); k < total; k += grid_stride()) {
    const Acc s = shift ? Cv::template load<Acc>(shift[(k / inner) % C]) : Acc(0);
    grad_x[k] = Cv::template store<Acc>(leaky_relu_scaled_grad<Acc>(
        Cv::template load<Acc>(grad[k]) + s, Cv::template load<Acc>(out[k]), slope, scale));
  }
}

template <typename T>
cudaError_t forward(const void* x, const void* bias, void* out, int64_t outer, int64_t C,
                    int64_t inner, double slope, double scale, cudaStream_t stream) {
  using Acc = typename AccOf<T>::type;
  const int64_t total = outer * C * inner;
  if (total == 0) return cudaSuccess;
  fused_bias_leaky_relu_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<T*>(out), total, C, inner,
      Acc(slope), Acc(scale));
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward(const void* grad, const void* out, const void* shift, void* grad_x,
                     int64_t outer, int64_t C, int64_t inner, double slope, double scale,
                     cudaStream_t stream) {
  using Acc = typename AccOf<T>::type;
  const int64_t total = outer * C * inner;
  if (total == 0) return cudaSuccess;
  fused_bias_leaky_relu_backward_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<const T*>(grad), static_cast<const T*>(out), static_cast<const T*>(shift),
      static_cast<T*>(grad_x), total, C, inner, Acc(slope), Acc(scale));
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_fused_bias_leaky_relu(DType dtype, const void* x, const void* bias, void* out,
                                         int64_t outer, int64_t C, int64_t inner, double slope,
                                         double scale, cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, forward<T>(x, bias, out, outer, C, inner, slope, scale, stream));
}

cudaError_t launch_fused_bias_leaky_relu_backward(DType dtype, const void* grad, const void* out,
                                                  const void* shift, void* grad_x, int64_t outer,
                                                  int64_t C, int64_t inner, double slope,
                                                  double scale, cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, backward<T>(
        grad, out, shift, grad_x, outer, C, inner, slope, scale, stream));
}

}  // namespace hrops
