// The per-element epilogue of MobileStyleGAN's StyledConv2d, fused into the
// modulated conv kernels: v + noise_weight * noise + bias, then optionally
// LeakyReLU(slope) (no gain; bes-dev/MobileStyleGAN.pytorch,
// core/models/modules/styled_conv2d.py, StyledConv2d).
#pragma once
#include "hd.h"

namespace hrops {

// Branch-free (a select), so CPU loops over it vectorise.
template <typename Acc>
HROPS_HD Acc styled_epilogue(Acc v, Acc bias, Acc noise_term, bool activate, Acc slope) {
  v = v + noise_term + bias;
  const Acc scaled = v * (activate ? slope : Acc(1));
  return v < Acc(0) ? scaled : v;
}

// Gradient factor of the activation from the sign of its output (LeakyReLU
// with slope > 0 keeps the sign), so the input need not be saved.
template <typename Acc>
HROPS_HD Acc leaky_relu_grad_from_output(Acc y, Acc slope) {
  return y > Acc(0) ? Acc(1) : slope;
}

}  // namespace hrops
