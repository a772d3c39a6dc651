// Host-only argument checks of the ACE epilogue kernels, shared by the CPU
// and CUDA glue.
#pragma once
#include <optional>
#include <vector>

#include "common/tensor_checks.h"

namespace hrops {

// The maps of ace_modulate, each contiguous: x, gamma_spade, beta_spade,
// then gamma_avg and beta_avg when `blend` (the region branch).
struct AceMaps {
  std::vector<at::Tensor> maps;
  bool blend;
};

// Every map of x's shape, device and dtype; gamma_avg, beta_avg and alpha
// (a_gamma, a_beta) given together, alpha of x's device and dtype.
inline AceMaps check_ace_args(const at::Tensor& x, const at::Tensor& gamma_spade,
                              const at::Tensor& beta_spade,
                              const std::optional<at::Tensor>& gamma_avg,
                              const std::optional<at::Tensor>& beta_avg,
                              const std::optional<at::Tensor>& alpha) {
  check_floating(x, "x");
  const bool blend = gamma_avg.has_value();
  TORCH_CHECK(blend == beta_avg.has_value() && blend == alpha.has_value(),
              "gamma_avg, beta_avg and alpha must be given together");
  std::vector<at::Tensor> maps = {x, gamma_spade, beta_spade};
  if (blend) {
    maps.push_back(*gamma_avg);
    maps.push_back(*beta_avg);
  }
  const char* names[] = {"x", "gamma_spade", "beta_spade", "gamma_avg", "beta_avg"};
  for (size_t i = 0; i < maps.size(); ++i) {
    check_same(x, "x", maps[i], names[i]);
    TORCH_CHECK(maps[i].sizes() == x.sizes(), names[i], " must have the shape of x ", x.sizes(),
                ", got ", maps[i].sizes());
    maps[i] = maps[i].contiguous();
  }
  if (blend) {
    check_same(x, "x", *alpha, "alpha");
    TORCH_CHECK(alpha->numel() == 2, "alpha must hold (a_gamma, a_beta), got shape ",
                alpha->sizes());
  }
  return {std::move(maps), blend};
}

}  // namespace hrops
