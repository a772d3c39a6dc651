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
#include "common/tensor_checks.h"
#include "cuda/dtype_map.h"

namespace hrops {
namespace {

at::Tensor checked_labels(const at::Tensor& labels, int64_t N, int64_t R, const at::Tensor& like) {
  check_dim(labels, 3, "labels", "(N, H, W)");
  TORCH_CHECK(labels.scalar_type() == at::kLong, "labels must be int64, got ", labels.scalar_type());
  TORCH_CHECK(labels.device() == like.device(), "labels must be on ", like.device(), ", got ",
              labels.device());
  TORCH_CHECK(labels.size(0) == N, "labels must have N = ", N, " images, got ", labels.sizes());
  TORCH_CHECK(R >= 0, "num_regions must be >= 0, got ", R);
  at::Tensor l = labels.contiguous();
  if (l.numel() > 0) {
    const auto [low, high] = at::aminmax(l);
    const int64_t lo = low.item<int64_t>(), hi = high.item<int64_t>();
    TORCH_CHECK(lo >= -1 && hi < R, "labels must be region ids in [0, ", R,
                ") or -1 (no region), got values in [", lo, ", ", hi, "]");
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
  check_dim(feat_in, 4, "feat", "(N, C, H, W)");
  check_floating(feat_in, "feat");
  const c10::cuda::CUDAGuard guard(feat_in.device());
  const at::Tensor labels = checked_labels(labels_in, feat_in.size(0), R, feat_in);
  TORCH_CHECK(labels.size(1) == feat_in.size(2) && labels.size(2) == feat_in.size(3),
              "labels must match feat in (H, W), got ", labels.sizes(), " and ", feat_in.sizes());
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

std::tuple<int64_t, int64_t> conv_out_size(const at::Tensor& labels, int64_t k, int64_t pad) {
  TORCH_CHECK(k >= 1 && pad >= 0, "kernel_size must be >= 1 and padding >= 0, got ", k, ", ", pad);
  const int64_t Ho = labels.size(1) + 2 * pad - k + 1, Wo = labels.size(2) + 2 * pad - k + 1;
  TORCH_CHECK(Ho >= 0 && Wo >= 0, "kernel ", k, " with padding ", pad, " does not fit labels ",
              labels.sizes());
  return {Ho, Wo};
}

at::Tensor region_conv_gather_cuda(const at::Tensor& proj_in, const at::Tensor& labels_in,
                                   const std::optional<at::Tensor>& bias_in, int64_t k,
                                   int64_t pad) {
  check_dim(proj_in, 4, "proj", "(N, R, k*k, O)");
  check_floating(proj_in, "proj");
  TORCH_CHECK(proj_in.size(2) == k * k, "proj must have k*k = ", k * k, " taps, got ",
              proj_in.sizes());
  TORCH_CHECK(k * k <= kRegionConvMaxTaps, "the CUDA region_conv2d supports kernels up to 7x7, got ",
              k, "x", k);
  const c10::cuda::CUDAGuard guard(proj_in.device());
  const int64_t N = proj_in.size(0), R = proj_in.size(1), O = proj_in.size(3);
  const at::Tensor labels = checked_labels(labels_in, N, R, proj_in);
  const auto [Ho, Wo] = conv_out_size(labels, k, pad);
  const at::Tensor proj = proj_in.contiguous();
  at::Tensor bias;
  if (bias_in.has_value()) {
    bias = bias_in->contiguous();
    check_same(proj, "proj", bias, "bias");
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == O, "bias must have shape (", O, "), got ",
                bias.sizes());
  }
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
  const auto [Ho, Wo] = conv_out_size(labels, k, pad);
  TORCH_CHECK(grad_in.size(2) == Ho && grad_in.size(3) == Wo, "grad must have spatial size ", Ho,
              "x", Wo, ", got ", grad_in.sizes());
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
  const auto [Ho, Wo] = conv_out_size(labels, k, pad);
  at::Tensor out = at::empty({labels.size(0), Ho, Wo, k * k}, labels.options());
  if (out.numel() == 0) return out;
  C10_CUDA_CHECK(launch_region_tap_labels(labels.const_data_ptr<int64_t>(),
                                          out.mutable_data_ptr<int64_t>(), labels.size(0),
                                          labels.size(1), labels.size(2), R, k, pad, Ho, Wo,
                                          c10::cuda::getCurrentCUDAStream()));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CUDA, m) {
  m.impl("region_sum", &region_sum_cuda);
  m.impl("region_fill", &region_fill_cuda);
  m.impl("region_conv_gather", &region_conv_gather_cuda);
  m.impl("region_conv_gather_backward", &region_conv_gather_backward_cuda);
  m.impl("region_tap_labels", &region_tap_labels_cuda);
}

}  // namespace hrops
