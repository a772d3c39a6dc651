// Host-only argument checks of the PatchMatch kernels.
#pragma once
#include <optional>

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
  // Coordinates are exact in float32 and flat targets fit 32 bits.
  TORCH_CHECK(H <= (1 << 24) && W <= (1 << 24) && b.size(2) * b.size(3) < (int64_t(1) << 31),
              "feat_a and feat_b must have fewer than 2^24 rows and columns and feat_b fewer "
              "than 2^31 positions, got ", a.sizes(), " and ", b.sizes());
  return PmDims{N, C, H, W, b.size(2), b.size(3), offsets.size(2)};
}

inline void check_patchmatch_warp_args(const PmDims& d, const at::Tensor& a, const at::Tensor& ref,
                                       double temperature) {
  check_dim(ref, 4, "ref", "(N, Cr, Hb, Wb)");
  check_same(a, "feat_a", ref, "ref");
  TORCH_CHECK(ref.size(0) == d.N && ref.size(2) == d.Hb && ref.size(3) == d.Wb,
              "ref must have shape (N, Cr, Hb, Wb) = (", d.N, ", Cr, ", d.Hb, ", ", d.Wb,
              "), got ", ref.sizes());
  TORCH_CHECK(d.K >= 1 && d.K <= kPatchMatchMaxCandidates, "offsets must hold 1 to ",
              kPatchMatchMaxCandidates, " candidates, got ", d.K);
  TORCH_CHECK(temperature > 0, "temperature must be > 0, got ", temperature);
}

// random_offsets: the optional random-search candidates (N, 2, R, H, W),
// evaluated after the propagated ones. Returns R (0 without them).
inline int64_t check_patchmatch_random_offsets(const PmDims& d, const at::Tensor& a,
                                               const std::optional<at::Tensor>& random_offsets) {
  if (!random_offsets.has_value()) return 0;
  const at::Tensor& t = *random_offsets;
  check_dim(t, 5, "random_offsets", "(N, 2, R, H, W)");
  check_floating(t, "random_offsets");
  TORCH_CHECK(t.device() == a.device(), "random_offsets must be on feat_a's device");
  TORCH_CHECK(t.size(0) == d.N && t.size(1) == 2 && t.size(3) == d.H && t.size(4) == d.W,
              "random_offsets must have shape (N, 2, R, H, W) = (", d.N, ", 2, R, ", d.H, ", ",
              d.W, "), got ", t.sizes());
  return t.size(2);
}

inline void check_patchmatch_step_args(const PmDims& d, int64_t direction, double temperature,
                                       int64_t topk, int64_t R = 0) {
  TORCH_CHECK(direction >= 0 && direction <= 2, "direction must be 0, 1 or 2, got ", direction);
  const int64_t M = (direction == 0 ? d.K : 3 * d.K) + R;
  TORCH_CHECK(M <= kPatchMatchMaxCandidates, "at most ", kPatchMatchMaxCandidates,
              " candidates after propagation (and random search) are supported, got ", M);
  TORCH_CHECK(topk >= 1 && topk <= M, "topk must be in [1, ", M, "], got ", topk);
  TORCH_CHECK(temperature > 0, "temperature must be > 0, got ", temperature);
}

}  // namespace hrops
