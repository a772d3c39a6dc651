// Host-only argument checks of the PatchMatch kernels.
#pragma once
#include "common/patchmatch.h"
#include "common/tensor_checks.h"

namespace hrops {

struct PmDims {
  int64_t N, C, H, W, Hb, Wb, K;
};

// feat_a (N, C, H, W), feat_b (N, C, Hb, Wb), offsets (N, 2, K, H, W).
inline PmDims check_patchmatch_args(const at::Tensor& a, const at::Tensor& b,
                                    const at::Tensor& offsets) {
  check_dim(a, 4, "feat_a", "(N, C, H, W)");
  check_dim(b, 4, "feat_b", "(N, C, Hb, Wb)");
  check_dim(offsets, 5, "offsets", "(N, 2, K, H, W)");
  check_floating(a, "feat_a");
  check_same(a, "feat_a", b, "feat_b");
  check_floating(offsets, "offsets");
  TORCH_CHECK(offsets.device() == a.device(), "offsets must be on feat_a's device");
  const int64_t N = a.size(0), C = a.size(1), H = a.size(2), W = a.size(3);
  TORCH_CHECK(b.size(0) == N && b.size(1) == C, "feat_b must have shape (N, C, Hb, Wb) = (", N,
              ", ", C, ", Hb, Wb), got ", b.sizes());
  TORCH_CHECK(offsets.size(0) == N && offsets.size(1) == 2 && offsets.size(3) == H &&
                  offsets.size(4) == W,
              "offsets must have shape (N, 2, K, H, W) = (", N, ", 2, K, ", H, ", ", W, "), got ",
              offsets.sizes());
  TORCH_CHECK(N == 0 || H * W == 0 || (b.size(2) > 0 && b.size(3) > 0),
              "feat_b must not be empty when feat_a is not");
  return PmDims{N, C, H, W, b.size(2), b.size(3), offsets.size(2)};
}

}  // namespace hrops
