// Region (segmentation) CUDA kernels of SEAN. Per-pixel math:
// csrc/common/region.h (also run by the CPU kernels, which is how it is tested
// without a GPU).
//
// Sums are deterministic without atomics: a block takes one (image, channel,
// tap) and a chunk of regions at a time; each thread accumulates its strided pixels
// into its own column of a shared-memory table (one row per region), then
// one thread per region adds its row in thread order.
#include <algorithm>

#include "common/region.h"
#include "cuda/convert.cuh"
#include "cuda/launch_dtype.h"
#include "cuda/launch_config.cuh"

namespace hrops {
namespace {

constexpr int kSumThreads = 128;
constexpr int kRegionChunk = 16;  // regions per pass of the sum kernel (shared table rows)

template <typename T>
__global__ void region_tap_sum_kernel(const T* __restrict__ src, const int64_t* __restrict__ labels,
                                      const typename AccOf<T>::type* __restrict__ scale,
                                      T* __restrict__ out, int64_t N, int64_t C, int64_t Ho,
                                      int64_t Wo, int64_t H, int64_t W, int64_t R, int64_t k,
                                      int64_t pad) {
  using Acc = typename AccOf<T>::type;
  __shared__ Acc table[kRegionChunk * kSumThreads];
  const int64_t taps = k * k;
  // (n, c, t) blocks strided over gridDim.x and chunks of regions over
  // gridDim.y: either count may exceed a grid's limit (2^31 - 1, 65535).
  for (int64_t block = blockIdx.x; block < N * C * taps; block += gridDim.x) {
    const int64_t t = block % taps, c = (block / taps) % C, n = block / (taps * C);
    const T* plane = src + (n * C + c) * Ho * Wo;
    const int64_t* lab = labels + n * H * W;
    for (int64_t r0 = int64_t(blockIdx.y) * kRegionChunk; r0 < R;
         r0 += int64_t(gridDim.y) * kRegionChunk) {
      for (int j = 0; j < kRegionChunk; ++j) table[j * kSumThreads + threadIdx.x] = Acc(0);
      for (int64_t p = threadIdx.x; p < Ho * Wo; p += kSumThreads) {
        const int64_t r = region_tap_label(lab, H, W, R, k, pad, p / Wo, p % Wo, t) - r0;
        if (r >= 0 && r < kRegionChunk) {
          table[r * kSumThreads + threadIdx.x] += Convert<T>::template load<Acc>(plane[p]);
        }
      }
      __syncthreads();
      const int64_t r = r0 + threadIdx.x;
      if (threadIdx.x < kRegionChunk && r < R) {
        Acc s = 0;
        for (int i = 0; i < kSumThreads; ++i) s += table[threadIdx.x * kSumThreads + i];
        if (scale) s *= scale[n * R + r];
        out[((n * R + r) * taps + t) * C + c] = Convert<T>::template store<Acc>(s);
      }
      __syncthreads();  // the table is cleared for the next chunk
    }
  }
}

template <typename T>
__global__ void region_fill_kernel(const T* __restrict__ codes, const int64_t* __restrict__ labels,
                                   const typename AccOf<T>::type* __restrict__ scale,
                                   T* __restrict__ out, int64_t N, int64_t R, int64_t C, int64_t H,
                                   int64_t W) {
  using Acc = typename AccOf<T>::type;
  const int64_t plane = H * W, total = N * C * plane;
  for (int64_t i = grid_first(); i < total; i += grid_stride()) {
    const int64_t p = i % plane, c = (i / plane) % C, n = i / (plane * C);
    const int64_t r = region_label_at(labels + n * plane, H, W, R, p / W, p % W);
    const Acc s = (scale && r >= 0) ? scale[n * R + r] : Acc(1);
    out[i] = Convert<T>::template store<Acc>(region_fill_value<Acc>(codes + n * R * C, r, C, c, s));
  }
}

template <typename T>
__global__ void region_conv_gather_kernel(const T* __restrict__ proj,
                                          const int64_t* __restrict__ labels,
                                          const T* __restrict__ bias, T* __restrict__ out,
                                          int64_t N, int64_t R, int64_t O, int64_t H, int64_t W,
                                          int64_t k, int64_t pad) {
  using Acc = typename AccOf<T>::type;
  const int64_t Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1, plane = Ho * Wo;
  const int64_t total = N * O * plane;
  for (int64_t i = grid_first(); i < total; i += grid_stride()) {
    const int64_t p = i % plane, o = (i / plane) % O, n = i / (plane * O);
    const Acc b = bias ? Convert<T>::template load<Acc>(bias[o]) : Acc(0);
    int64_t sig[kRegionConvMaxTaps];
    for (int64_t t = 0; t < k * k; ++t) {
      sig[t] = region_tap_label(labels + n * H * W, H, W, R, k, pad, p / Wo, p % Wo, t);
    }
    out[i] = Convert<T>::template store<Acc>(
        region_conv_value<Acc>(proj + n * R * k * k * O, sig, k * k, O, o, b));
  }
}

template <typename T>
cudaError_t tap_sum(const void* src, const int64_t* labels, const void* scale, void* out,
                    int64_t N, int64_t C, int64_t Ho, int64_t Wo, int64_t H, int64_t W, int64_t R,
                    int64_t k, int64_t pad, cudaStream_t stream) {
  const int64_t blocks = N * C * k * k;
  if (blocks == 0 || R == 0) return cudaSuccess;
  const int64_t chunks = std::min<int64_t>((R + kRegionChunk - 1) / kRegionChunk, 65535);
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(blocks, 0x7fffffff)),
                  static_cast<unsigned>(chunks));
  region_tap_sum_kernel<T><<<grid, kSumThreads, 0, stream>>>(
      static_cast<const T*>(src), labels, static_cast<const typename AccOf<T>::type*>(scale),
      static_cast<T*>(out), N, C, Ho, Wo, H, W, R, k, pad);
  return cudaGetLastError();
}

template <typename T>
cudaError_t fill(const void* codes, const int64_t* labels, const void* scale, void* out, int64_t N,
                 int64_t R, int64_t C, int64_t H, int64_t W, cudaStream_t stream) {
  const int64_t total = N * C * H * W;
  if (total == 0) return cudaSuccess;
  region_fill_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<const T*>(codes), labels, static_cast<const typename AccOf<T>::type*>(scale),
      static_cast<T*>(out), N, R, C, H, W);
  return cudaGetLastError();
}

template <typename T>
cudaError_t conv_gather(const void* proj, const int64_t* labels, const void* bias, void* out,
                        int64_t N, int64_t R, int64_t O, int64_t H, int64_t W, int64_t k,
                        int64_t pad, cudaStream_t stream) {
  const int64_t total = N * O * (H + 2 * pad - k + 1) * (W + 2 * pad - k + 1);
  if (total == 0) return cudaSuccess;
  region_conv_gather_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<const T*>(proj), labels, static_cast<const T*>(bias), static_cast<T*>(out), N, R,
      O, H, W, k, pad);
  return cudaGetLastError();
}

// out[n, y, x, t] = the label under tap t of output pixel (y, x).
__global__ void region_tap_labels_kernel(const int64_t* __restrict__ labels,
                                         int64_t* __restrict__ out, int64_t total, int64_t H,
                                         int64_t W, int64_t R, int64_t k, int64_t pad, int64_t Ho,
                                         int64_t Wo) {
  const int64_t taps = k * k;
  for (int64_t i = grid_first(); i < total; i += grid_stride()) {
    const int64_t t = i % taps, p = i / taps;
    const int64_t x = p % Wo, y = (p / Wo) % Ho, n = p / (Ho * Wo);
    out[i] = region_tap_label(labels + n * H * W, H, W, R, k, pad, y, x, t);
  }
}

}  // namespace

cudaError_t launch_region_tap_sum(DType dtype, const void* src, const int64_t* labels,
                                  const void* scale, void* out, int64_t N, int64_t C, int64_t Ho,
                                  int64_t Wo, int64_t H, int64_t W, int64_t R, int64_t k,
                                  int64_t pad, cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, tap_sum<T>(
        src, labels, scale, out, N, C, Ho, Wo, H, W, R, k, pad, stream));
}

cudaError_t launch_region_fill(DType dtype, const void* codes, const int64_t* labels,
                               const void* scale, void* out, int64_t N, int64_t R, int64_t C,
                               int64_t H, int64_t W, cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, fill<T>(codes, labels, scale, out, N, R, C, H, W, stream));
}

cudaError_t launch_region_conv_gather(DType dtype, const void* proj, const int64_t* labels,
                                      const void* bias, void* out, int64_t N, int64_t R, int64_t O,
                                      int64_t H, int64_t W, int64_t k, int64_t pad,
                                      cudaStream_t stream) {
  HROPS_DISPATCH_DTYPE(dtype, T, conv_gather<T>(
        proj, labels, bias, out, N, R, O, H, W, k, pad, stream));
}

cudaError_t launch_region_tap_labels(const int64_t* labels, int64_t* out, int64_t N, int64_t H,
                                     int64_t W, int64_t R, int64_t k, int64_t pad, int64_t Ho,
                                     int64_t Wo, cudaStream_t stream) {
  const int64_t total = N * Ho * Wo * k * k;
  region_tap_labels_kernel<<<blocks_for(total), kThreads, 0, stream>>>(labels, out, total, H, W,
                                                                       R, k, pad, Ho, Wo);
  return cudaGetLastError();
}

}  // namespace hrops
