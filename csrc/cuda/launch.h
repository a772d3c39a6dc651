// Raw-pointer launchers implemented in the .cu files. This header is shared by
// the .cu kernels and the .cpp tensor glue, so it includes no torch headers
// (torch headers in a .cu cost ~100 s of compile time each).
#pragma once
#include <cuda_runtime_api.h>
#include <cstdint>

namespace hrops {

enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };

// x: (N, C, H, W) with strides xs; out: contiguous (N, 4C, ceil(H/2), ceil(W/2)).
cudaError_t launch_haar_dwt(DType dtype, const void* x, const int64_t xs[4], void* out, int64_t N,
                            int64_t C, int64_t H, int64_t W, cudaStream_t stream);

// low: (N, C, h, w) strides ls; high: (N, C, 3, h, w) strides hs;
// out: contiguous (N, C, H, W) with h = ceil(H/2), w = ceil(W/2).
cudaError_t launch_haar_idwt(DType dtype, const void* low, const int64_t ls[4], const void* high,
                             const int64_t hs[5], void* out, int64_t N, int64_t C, int64_t H,
                             int64_t W, cudaStream_t stream);

// x: (N, 4C, h, w) with strides xs; mod: contiguous (N, 4C);
// out: contiguous (N, C, 2h, 2w).
cudaError_t launch_modulated_idwt(DType dtype, const void* x, const int64_t xs[4], const void* mod,
                                  void* out, int64_t N, int64_t C, int64_t h, int64_t w,
                                  cudaStream_t stream);

// grad: contiguous (N, C, 2h, 2w); x: contiguous (N, 4C, h, w); mod: contiguous
// (N, 4C). grad_x: contiguous like x; grad_mod: contiguous (N, 4C) in float
// (double for double inputs).
cudaError_t launch_modulated_idwt_backward(DType dtype, const void* grad, const void* x,
                                           const void* mod, void* grad_x, void* grad_mod,
                                           int64_t N, int64_t C, int64_t h, int64_t w,
                                           cudaStream_t stream);

// Region ops (labels: contiguous int64 (N, H, W), ids in [0, R) or -1).
// Per-region, per-tap sums: for every pixel (y, x) of src (N, C, Ho, Wo,
// contiguous) and tap t of a k x k kernel with zero padding pad, src is added
// to bin (region under the tap, t). out: contiguous (N, R, k*k, C); bins are
// scaled by scale[n * R + r] (Acc = float, double for double) if scale is not
// null. k = 1, pad = 0 gives plain region sums (N, R, C). Deterministic.
cudaError_t launch_region_tap_sum(DType dtype, const void* src, const int64_t* labels,
                                  const void* scale, void* out, int64_t N, int64_t C, int64_t Ho,
                                  int64_t Wo, int64_t H, int64_t W, int64_t R, int64_t k,
                                  int64_t pad, cudaStream_t stream);

// codes: contiguous (N, R, C); scale as above or null; out: contiguous (N, C, H, W).
cudaError_t launch_region_fill(DType dtype, const void* codes, const int64_t* labels,
                               const void* scale, void* out, int64_t N, int64_t R, int64_t C,
                               int64_t H, int64_t W, cudaStream_t stream);

// proj: contiguous (N, R, k*k, O); bias: (O) or null; out: contiguous (N, O, Ho, Wo).
cudaError_t launch_region_conv_gather(DType dtype, const void* proj, const int64_t* labels,
                                      const void* bias, void* out, int64_t N, int64_t R, int64_t O,
                                      int64_t H, int64_t W, int64_t k, int64_t pad,
                                      cudaStream_t stream);

// SEAN's ACE epilogue over n contiguous elements; gamma_avg, beta_avg and
// alpha (2 values of the accumulation type: float, double for double) are
// all null for the SPADE-only form.
cudaError_t launch_ace_modulate(DType dtype, const void* x, const void* gamma_spade,
                                const void* beta_spade, const void* gamma_avg,
                                const void* beta_avg, const void* alpha, void* out, int64_t n,
                                cudaStream_t stream);

}  // namespace hrops
