// SEAN's ACE epilogue (ZPdesu/SEAN, models/networks/normalization.py,
// ACE.forward: the final gamma/beta blend and modulation), per element,
// shared by the CPU and CUDA kernels:
//   gamma = a_g * gamma_avg + (1 - a_g) * gamma_spade   (region + SPADE branch)
//   beta  = a_b * beta_avg  + (1 - a_b) * beta_spade
//   out   = x * (1 + gamma) + beta
// Without the region branch (SEAN's up_3, use_rgb = False):
//   out = x * (1 + gamma_spade) + beta_spade.
// The backward, per element, for an output gradient g:
//   d x = g * (1 + gamma),  d gamma_spade = (1 - a_g) * g * x,  d gamma_avg = a_g * g * x,
//   d beta_spade = (1 - a_b) * g,  d beta_avg = a_b * g,
// and the terms g * x * (gamma_avg - gamma_spade), g * (beta_avg - beta_spade)
// whose sums over all elements are d a_g and d a_b.
#pragma once
#include <cstdint>

#include "hd.h"

namespace hrops {

template <typename Acc>
HROPS_HD Acc ace_modulate_value(Acc x, Acc gamma_spade, Acc beta_spade, Acc gamma_avg,
                                Acc beta_avg, Acc a_gamma, Acc a_beta) {
  const Acc gamma = a_gamma * gamma_avg + (Acc(1) - a_gamma) * gamma_spade;
  const Acc beta = a_beta * beta_avg + (Acc(1) - a_beta) * beta_spade;
  return x * (Acc(1) + gamma) + beta;
}

template <typename Acc>
HROPS_HD Acc ace_modulate_value(Acc x, Acc gamma_spade, Acc beta_spade) {
  return x * (Acc(1) + gamma_spade) + beta_spade;
}

template <typename Acc>
struct AceGrads {
  Acc x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha_gamma, alpha_beta;
};

template <typename Acc>
HROPS_HD AceGrads<Acc> ace_modulate_grads(Acc g, Acc x, Acc gamma_spade, Acc beta_spade,
                                          Acc gamma_avg, Acc beta_avg, Acc a_gamma,
                                          Acc a_beta) {
  const Acc gx = g * x;
  return {g * (Acc(1) + a_gamma * gamma_avg + (Acc(1) - a_gamma) * gamma_spade),
          (Acc(1) - a_gamma) * gx,
          (Acc(1) - a_beta) * g,
          a_gamma * gx,
          a_beta * g,
          gx * (gamma_avg - gamma_spade),
          g * (beta_avg - beta_spade)};
}

// Without the region branch: (d x, d gamma_spade) = (g * (1 + gamma_spade), g * x);
// d beta_spade is g itself.
template <typename Acc>
struct AcePlainGrads {
  Acc x, gamma_spade;
};

template <typename Acc>
HROPS_HD AcePlainGrads<Acc> ace_modulate_grads(Acc g, Acc x, Acc gamma_spade) {
  return {g * (Acc(1) + gamma_spade), g * x};
}

// The backward's alpha sums are reduced per block of this many elements, in
// a fixed order, so they do not depend on the thread count (CPU) or on the
// grid (CUDA: one partial per block of kAceSumBlock elements at most).
constexpr int64_t kAceSumBlock = 16384;

inline int64_t ace_sum_blocks(int64_t n) { return (n + kAceSumBlock - 1) / kAceSumBlock; }

}  // namespace hrops
