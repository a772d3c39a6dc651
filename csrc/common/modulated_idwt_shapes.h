// Host-only shape checks of the modulated IDWT upsampling kernels.
#pragma once
#include "common/tensor_checks.h"

namespace hrops {

// x: (N, 4C, h, w) packed Haar coefficients; modulation: (N, 4C).
inline void check_modulated_idwt_args(const at::Tensor& x, const at::Tensor& mod) {
  check_dim(x, 4, "x", "(N, 4C, h, w)");
  check_floating(x, "x");
  check_dim(mod, 2, "modulation", "(N, 4C)");
  check_same(x, "x", mod, "modulation");
  TORCH_CHECK(x.size(1) % 4 == 0, "x must have 4C channels (packed LL | LH, HL, HH), got ",
              x.size(1));
  TORCH_CHECK(mod.size(0) == x.size(0) && mod.size(1) == x.size(1),
              "modulation must have shape (N, 4C) = (", x.size(0), ", ", x.size(1), "), got ",
              mod.sizes());
}

inline void check_modulated_idwt_backward_args(const at::Tensor& grad, const at::Tensor& x,
                                               const at::Tensor& mod) {
  check_modulated_idwt_args(x, mod);
  check_grad(grad, x, "x", {x.size(0), x.size(1) / 4, 2 * x.size(2), 2 * x.size(3)});
}

}  // namespace hrops
