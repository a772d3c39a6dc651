// Host-only shape checks of the Haar kernels, shared by the CPU and CUDA glue.
#pragma once
#include <utility>

#include "common/tensor_checks.h"

namespace hrops {

// Image (N, C, H, W) and coefficient grid (h, w) = (ceil(H/2), ceil(W/2)).
struct HaarDims {
  int64_t N, C, H, W, h, w;
};

inline HaarDims haar_dims_from_input(const at::Tensor& x) {
  const int64_t H = x.size(2), W = x.size(3);
  return HaarDims{x.size(0), x.size(1), H, W, (H + 1) / 2, (W + 1) / 2};
}

// low: (N, C, h, w); high: (N, C, 3, h, w); output (N, C, out_h, out_w) with
// out_h in {2h - 1, 2h} (and the same for w) when h > 0.
inline HaarDims haar_dims_from_coeffs(const at::Tensor& low, const at::Tensor& high, int64_t out_h,
                                      int64_t out_w) {
  check_dim(low, 4, "low", "(N, C, h, w)");
  check_dim(high, 5, "high", "(N, C, 3, h, w)");
  check_floating(low, "low");
  check_same(low, "low", high, "high");
  const int64_t N = low.size(0), C = low.size(1), h = low.size(2), w = low.size(3);
  TORCH_CHECK(high.size(0) == N && high.size(1) == C && high.size(2) == 3 && high.size(3) == h &&
                  high.size(4) == w,
              "high must have shape (N, C, 3, h, w) = (", N, ", ", C, ", 3, ", h, ", ", w,
              ") to match low, got ", high.sizes());
  TORCH_CHECK((out_h + 1) / 2 == h && out_h >= 0 && (out_w + 1) / 2 == w && out_w >= 0,
              "output size (", out_h, ", ", out_w, ") does not fit coefficients of size (", h, ", ",
              w, "): expected (2h or 2h-1, 2w or 2w-1)");
  return HaarDims{N, C, out_h, out_w, h, w};
}

// Packed coefficients y (N, 4C, h, w) as haar_idwt's views: low (N, C, h, w)
// and high (N, C, 3, h, w) (channel C + 3c + b holds band b of channel c).
inline std::pair<at::Tensor, at::Tensor> split_packed_coeffs(const at::Tensor& y) {
  check_dim(y, 4, "y", "(N, 4C, h, w)");
  TORCH_CHECK(y.size(1) % 4 == 0, "y must have 4C channels (packed LL | LH, HL, HH), got ",
              y.size(1));
  const int64_t C = y.size(1) / 4;
  return {y.narrow(1, 0, C), y.narrow(1, C, 3 * C).unflatten(1, {C, 3})};
}

}  // namespace hrops
