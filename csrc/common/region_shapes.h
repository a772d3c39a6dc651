// Host-only argument checks of the region kernels, shared by the CPU and CUDA
// glue. A label map's ids are range-checked by each backend before any of
// its kernels reads them (check_label_range): the CPU element by element
// (naming the first bad one), CUDA with one device min/max and a sync.
#pragma once
#include <optional>
#include <tuple>

#include "common/tensor_checks.h"

namespace hrops {

// The check that labels hold region ids in [0, R) or -1; `got` says what
// was found instead.
template <typename... Got>
inline void check_label_range(bool ok, int64_t R, const Got&... got) {
  TORCH_CHECK(ok, "labels must be region ids in [0, ", R, ") or -1 (no region), got ", got...);
}

// labels: int64 (N, H, W) with N images on like's device, R >= 0 regions.
// Returns them contiguous; their ids are not read here.
inline at::Tensor contiguous_labels(const at::Tensor& labels, int64_t N, int64_t R,
                                    const at::Tensor& like) {
  check_dim(labels, 3, "labels", "(N, H, W)");
  TORCH_CHECK(labels.scalar_type() == at::kLong, "labels must be int64, got ",
              labels.scalar_type());
  TORCH_CHECK(labels.device() == like.device(), "labels must be on ", like.device(), ", got ",
              labels.device());
  TORCH_CHECK(labels.size(0) == N, "labels must have N = ", N, " images, got ", labels.sizes());
  TORCH_CHECK(R >= 0, "num_regions must be >= 0, got ", R);
  return labels.contiguous();
}

// feat (N, C, H, W) and labels of its N, H and W.
inline void check_feat_labels(const at::Tensor& feat, const char* name, const at::Tensor& labels) {
  check_dim(feat, 4, name, "(N, C, H, W)");
  check_floating(feat, name);
  TORCH_CHECK(labels.dim() == 3 && labels.size(0) == feat.size(0) &&
                  labels.size(1) == feat.size(2) && labels.size(2) == feat.size(3),
              "labels must have shape (N, H, W) = (", feat.size(0), ", ", feat.size(2), ", ",
              feat.size(3), ") to match ", name, ", got ", labels.sizes());
}

// proj (N, R, k*k, O): the per-region, per-tap projection of a k x k kernel.
inline void check_region_proj(const at::Tensor& proj, int64_t k) {
  check_dim(proj, 4, "proj", "(N, R, k*k, O)");
  check_floating(proj, "proj");
  TORCH_CHECK(proj.size(2) == k * k, "proj must have k*k = ", k * k, " taps, got ",
              proj.sizes());
}

// (Ho, Wo) of the stride-1 k x k convolution with zero padding pad over
// labels (N, H, W).
inline std::tuple<int64_t, int64_t> region_conv_out_size(const at::Tensor& labels, int64_t k,
                                                         int64_t pad) {
  TORCH_CHECK(k >= 1 && pad >= 0, "kernel_size must be >= 1 and padding >= 0, got ", k, ", ",
              pad);
  const int64_t H = labels.size(1), W = labels.size(2);
  const int64_t Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1;
  TORCH_CHECK(Ho >= 0 && Wo >= 0, "kernel ", k, " with padding ", pad,
              " does not fit labels of size ", H, "x", W);
  return {Ho, Wo};
}

// The bias (O) of the convolution, contiguous (undefined without one).
inline at::Tensor region_conv_bias(const at::Tensor& proj, const std::optional<at::Tensor>& bias,
                                   int64_t O) {
  if (!bias.has_value()) return at::Tensor();
  at::Tensor b = bias->contiguous();
  check_same(proj, "proj", b, "bias");
  TORCH_CHECK(b.dim() == 1 && b.size(0) == O, "bias must have shape (", O, "), got ", b.sizes());
  return b;
}

// grad (N, O, Ho, Wo) of the convolution's output.
inline void check_region_conv_grad(const at::Tensor& grad, int64_t Ho, int64_t Wo) {
  TORCH_CHECK(grad.size(2) == Ho && grad.size(3) == Wo, "grad must have spatial size ", Ho, "x",
              Wo, ", got ", grad.sizes());
}

}  // namespace hrops
