// Raw-pointer launchers implemented in the .cu files. This header is shared by
// the .cu kernels and the .cpp tensor glue, so it includes no torch headers
// (torch headers in a .cu cost ~100 s of compile time each).
#pragma once
#include <cuda_runtime_api.h>
#include <cstdint>

#include "common/gates.h"

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

// PatchMatch (float32, channels-last features: a (N, H, W, C), b and ref
// (N, Hb, Wb, C|Cr); offsets contiguous (N, 2, K, H, W)).
struct PatchMatchDims {
  int64_t N, C, H, W, Hb, Wb, K;
};

// new_offsets (N, 2, topk, H, W), probs (N, topk, H, W).
// random_offsets: contiguous (N, 2, R, H, W) random-search candidates (null when R = 0).
cudaError_t launch_patchmatch_step(const PatchMatchDims& d, const float* a, const float* b,
                                   const float* offsets, int direction, float inv_temperature,
                                   int topk, bool cocosnet_truncation,
                                   const float* random_offsets, int64_t R, float* new_offsets,
                                   float* probs, cudaStream_t stream);

// out: (N, Cr, H, W), zero-initialised by the caller.
cudaError_t launch_patchmatch_warp(const PatchMatchDims& d, const float* a, const float* b,
                                   const float* ref, int64_t Cr, const float* offsets,
                                   float inv_temperature, bool cocosnet_truncation, float* out,
                                   cudaStream_t stream);

// grad: channels-last (N, H, W, Cr); ga (N, H, W, C), gb (N, Hb, Wb, C),
// gref (N, Hb, Wb, Cr) zero-initialised; gb and gref accumulate with atomics.
cudaError_t launch_patchmatch_warp_backward(const PatchMatchDims& d, const float* grad,
                                            const float* a, const float* b, const float* ref,
                                            int64_t Cr, const float* offsets,
                                            float inv_temperature, bool cocosnet_truncation,
                                            float* ga, float* gb, float* gref, cudaStream_t stream);
// Fused bias + leaky ReLU over a tensor walked as contiguous (outer, C, inner);
// bias: contiguous (C,) or null. out: same layout as x.
cudaError_t launch_fused_bias_leaky_relu(DType dtype, const void* x, const void* bias, void* out,
                                         int64_t outer, int64_t C, int64_t inner, double slope,
                                         double scale, cudaStream_t stream);

// grad_x = (grad + shift[c]) * (out > 0 ? 1 : slope) * scale; grad, out and
// grad_x in the same (outer, C, inner) layout, shift contiguous (C,) or null.
cudaError_t launch_fused_bias_leaky_relu_backward(DType dtype, const void* grad, const void* out,
                                                  const void* shift, void* grad_x, int64_t outer,
                                                  int64_t C, int64_t inner, double slope,
                                                  double scale, cudaStream_t stream);

// upfirdn2d: x (N, C, in_h, in_w) with strides xs; kernel: contiguous kh x kw
// in float (double for double x) on the device; out: contiguous
// (N, C, out_h, out_w). Geometry in the order of UpFirDn2dGeom: in_h, in_w,
// out_h, out_w, kh, kw, up_x, up_y, down_x, down_y, pad_x0, pad_y0.
cudaError_t launch_upfirdn2d(DType dtype, const void* x, const int64_t xs[4], const void* kernel,
                             void* out, int64_t N, int64_t C, const int64_t geom[12],
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

// out: contiguous (N, Ho, Wo, k*k), the label under each tap of each output
// pixel (region_tap_label).
cudaError_t launch_region_tap_labels(const int64_t* labels, int64_t* out, int64_t N, int64_t H,
                                     int64_t W, int64_t R, int64_t k, int64_t pad, int64_t Ho,
                                     int64_t Wo, cudaStream_t stream);

// SEAN's ACE epilogue over n contiguous elements; gamma_avg, beta_avg and
// alpha (2 values of the accumulation type: float, double for double) are
// all null for the SPADE-only form.
cudaError_t launch_ace_modulate(DType dtype, const void* x, const void* gamma_spade,
                                const void* beta_spade, const void* gamma_avg,
                                const void* beta_avg, const void* alpha, void* out, int64_t n,
                                cudaStream_t stream);
// Gating kernel `kernel` (csrc/common/gates.h) over N*C planes of HW elements
// whose locations `planes` gives; activation: gates::kTanh or kRelu (LSTU).
cudaError_t launch_gates(gates::Kernel kernel, int64_t activation, DType dtype,
                         const gates::Planes& planes, int64_t N, int64_t C, int64_t HW,
                         cudaStream_t stream);

}  // namespace hrops
