// Tensor glue of the region CUDA kernels: checks (labels are validated with
// one device min/max reduction and a sync before any kernel reads them),
// region pixel counts for means, allocation, device guard, current stream;
// the kernels are in region_kernels.cu.
#include <ATen/ops/aminmax.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "common/region.h"
#include "common/region_shapes.h"
#include "common/tensor_checks.h"
#include "cuda/dtype_map.h"

namespace hrops {

// Raw-pointer launchers, defined in the .cu file next to the kernels.
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

namespace {

// Labels: int64 (N, H, W), every id in [-1, R) (see region_shapes.h): one
// device min/max reduction and a sync, before any kernel reads them.
at::Tensor checked_labels(const at::Tensor& labels, int64_t N, int64_t R, const at::Tensor& like) {
  at::Tensor l = contiguous_labels(labels, N, R, like);
  if (l.numel() > 0) {
    const auto [low, high] = at::aminmax(l);
    const int64_t lo = low.item<int64_t>(), hi = high.item<int64_t>();
    check_label_range(lo >= -1 && hi < R, R, "values in [", lo, ", ", hi, "]");
  }
  return l;
}

// 1 / (pixels of each region) per image, 0 for an empty region: (N, R) in
// the accumulation type. The counts are region sums of a plane of ones (exact
// in float up to 2^24 pixels), by the same deterministic kernel.
at::Tensor inverse_counts(const at::Tensor& labels, int64_t R, c10::ScalarType dtype) {
  const int64_t N = labels.size(0), H = labels.size(1), W = labels.size(2);
  const auto acc = dtype == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor ones = at::ones({N, 1, H, W}, labels.options().dtype(acc));
  at::Tensor counts = at::empty({N, R}, ones.options());
  C10_CUDA_CHECK(launch_region_tap_sum(to_launch_dtype(acc), ones.const_data_ptr(),
                                       labels.const_data_ptr<int64_t>(), nullptr,
                                       counts.mutable_data_ptr(), N, 1, H, W, H, W, R, 1, 0,
                                       c10::cuda::getCurrentCUDAStream()));
  return at::where(counts.gt(0), counts.reciprocal(), at::zeros_like(counts));
}

at::Tensor region_sum_cuda(const at::Tensor& feat_in, const at::Tensor& labels_in, int64_t R,
                           bool mean) {
  check_feat_labels(feat_in, "feat", labels_in);
  const c10::cuda::CUDAGuard guard(feat_in.device());
  const at::Tensor labels = checked_labels(labels_in, feat_in.size(0), R, feat_in);
  const at::Tensor feat = feat_in.contiguous();
  const int64_t N = feat.size(0), C = feat.size(1), H = feat.size(2), W = feat.size(3);
  at::Tensor out = at::empty({N, R, C}, feat.options());
  if (out.numel() == 0) return out;
  if (H * W == 0) return out.zero_();
  const at::Tensor scale = mean ? inverse_counts(labels, R, feat.scalar_type()) : at::Tensor();
  C10_CUDA_CHECK(launch_region_tap_sum(
      to_launch_dtype(feat.scalar_type()), feat.const_data_ptr(), labels.const_data_ptr<int64_t>(),
      scale.defined() ? scale.const_data_ptr() : nullptr, out.mutable_data_ptr(), N, C, H, W, H, W,
      R, 1, 0, c10::cuda::getCurrentCUDAStream()));
  return out;
}

at::Tensor region_fill_cuda(const at::Tensor& codes_in, const at::Tensor& labels_in, bool mean) {
  check_dim(codes_in, 3, "codes", "(N, R, C)");
  check_floating(codes_in, "codes");
  const c10::cuda::CUDAGuard guard(codes_in.device());
  const int64_t N = codes_in.size(0), R = codes_in.size(1), C = codes_in.size(2);
  const at::Tensor labels = checked_labels(labels_in, N, R, codes_in);
  const at::Tensor codes = codes_in.contiguous();
  const int64_t H = labels.size(1), W = labels.size(2);
  at::Tensor out = at::empty({N, C, H, W}, codes.options());
  if (out.numel() == 0) return out;
  const at::Tensor scale = mean ? inverse_counts(labels, R, codes.scalar_type()) : at::Tensor();
  C10_CUDA_CHECK(launch_region_fill(
      to_launch_dtype(codes.scalar_type()), codes.const_data_ptr(),
      labels.const_data_ptr<int64_t>(), scale.defined() ? scale.const_data_ptr() : nullptr,
      out.mutable_data_ptr(), N, R, C, H, W, c10::cuda::getCurrentCUDAStream()));
  return out;
}

at::Tensor region_conv_gather_cuda(const at::Tensor& proj_in, const at::Tensor& labels_in,
                                   const std::optional<at::Tensor>& bias_in, int64_t k,
                                   int64_t pad) {
  check_region_proj(proj_in, k);
  TORCH_CHECK(k * k <= kRegionConvMaxTaps, "the CUDA region_conv2d supports kernels up to 7x7, got ",
              k, "x", k);
  const c10::cuda::CUDAGuard guard(proj_in.device());
  const int64_t N = proj_in.size(0), R = proj_in.size(1), O = proj_in.size(3);
  const at::Tensor labels = checked_labels(labels_in, N, R, proj_in);
  const auto [Ho, Wo] = region_conv_out_size(labels, k, pad);
  const at::Tensor proj = proj_in.contiguous();
  const at::Tensor bias = region_conv_bias(proj, bias_in, O);
  at::Tensor out = at::empty({N, O, Ho, Wo}, proj.options());
  if (out.numel() == 0) return out;
  C10_CUDA_CHECK(launch_region_conv_gather(
      to_launch_dtype(proj.scalar_type()), proj.const_data_ptr(), labels.const_data_ptr<int64_t>(),
      bias.defined() ? bias.const_data_ptr() : nullptr, out.mutable_data_ptr(), N, R, O,
      labels.size(1), labels.size(2), k, pad, c10::cuda::getCurrentCUDAStream()));
  return out;
}

at::Tensor region_conv_gather_backward_cuda(const at::Tensor& grad_in, const at::Tensor& labels_in,
                                            int64_t R, int64_t k, int64_t pad) {
  check_dim(grad_in, 4, "grad", "(N, O, Ho, Wo)");
  check_floating(grad_in, "grad");
  const c10::cuda::CUDAGuard guard(grad_in.device());
  const int64_t N = grad_in.size(0), O = grad_in.size(1);
  const at::Tensor labels = checked_labels(labels_in, N, R, grad_in);
  const auto [Ho, Wo] = region_conv_out_size(labels, k, pad);
  check_region_conv_grad(grad_in, Ho, Wo);
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor out = at::empty({N, R, k * k, O}, grad.options());
  if (out.numel() == 0) return out;
  if (Ho * Wo == 0) return out.zero_();
  C10_CUDA_CHECK(launch_region_tap_sum(
      to_launch_dtype(grad.scalar_type()), grad.const_data_ptr(), labels.const_data_ptr<int64_t>(),
      nullptr, out.mutable_data_ptr(), N, O, Ho, Wo, labels.size(1), labels.size(2), R, k, pad,
      c10::cuda::getCurrentCUDAStream()));
  return out;
}

at::Tensor region_tap_labels_cuda(const at::Tensor& labels_in, int64_t R, int64_t k, int64_t pad) {
  check_dim(labels_in, 3, "labels", "(N, H, W)");
  const c10::cuda::CUDAGuard guard(labels_in.device());
  const at::Tensor labels = checked_labels(labels_in, labels_in.size(0), R, labels_in);
  const auto [Ho, Wo] = region_conv_out_size(labels, k, pad);
  at::Tensor out = at::empty({labels.size(0), Ho, Wo, k * k}, labels.options());
  if (out.numel() == 0) return out;
  C10_CUDA_CHECK(launch_region_tap_labels(labels.const_data_ptr<int64_t>(),
                                          out.mutable_data_ptr<int64_t>(), labels.size(0),
                                          labels.size(1), labels.size(2), R, k, pad, Ho, Wo,
                                          c10::cuda::getCurrentCUDAStream()));
  return out;
}

// SEAN's region ops and their backwards: a region's mean pools, the
// broadcast fills, and each is the other's adjoint (with or without the
// 1 / area scale).
at::Tensor region_avg_pool_cuda(const at::Tensor& feat, const at::Tensor& labels, int64_t R) {
  return region_sum_cuda(feat, labels, R, true);
}

at::Tensor region_avg_pool_backward_cuda(const at::Tensor& grad, const at::Tensor& labels) {
  return region_fill_cuda(grad, labels, true);
}

at::Tensor region_broadcast_cuda(const at::Tensor& codes, const at::Tensor& labels) {
  return region_fill_cuda(codes, labels, false);
}

at::Tensor region_broadcast_backward_cuda(const at::Tensor& grad, const at::Tensor& labels,
                                          int64_t R) {
  return region_sum_cuda(grad, labels, R, false);
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CUDA, m) {
  m.impl("region_avg_pool", &region_avg_pool_cuda);
  m.impl("_region_avg_pool_backward", &region_avg_pool_backward_cuda);
  m.impl("region_broadcast", &region_broadcast_cuda);
  m.impl("_region_broadcast_backward", &region_broadcast_backward_cuda);
  m.impl("region_conv_gather", &region_conv_gather_cuda);
  m.impl("_region_conv_gather_backward", &region_conv_gather_backward_cuda);
  m.impl("region_tap_labels", &region_tap_labels_cuda);
}

}  // namespace hrops
