// SEAN's ACE epilogue (ZPdesu/SEAN, models/networks/normalization.py,
// ACE.forward: the final gamma/beta blend and modulation), per element,
// shared by the CPU and CUDA kernels:
//   gamma = a_g * gamma_avg + (1 - a_g) * gamma_spade   (region + SPADE branch)
//   beta  = a_b * beta_avg  + (1 - a_b) * beta_spade
//   out   = x * (1 + gamma) + beta
// Without the region branch (SEAN's up_3, use_rgb = False):
//   out = x * (1 + gamma_spade) + beta_spade.
#pragma once
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

}  // namespace hrops
