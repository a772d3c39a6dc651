// StyleGAN2's fused bias + leaky ReLU (rosinality/stylegan2-pytorch
// op/fused_act.py, FusedLeakyReLU / fused_leaky_relu, as copied in
// Yan98/S2FGAN op/fused_act.py), per-element math shared by the CPU and CUDA
// kernels:
//   out = leaky_relu(x + b, slope) * scale
// and its gradient, taken from the sign of the output (no saved input): with
// slope >= 0 and scale > 0, out > 0 exactly where x + b > 0, so
//   d out / d x = (out > 0 ? 1 : slope) * scale,
// matching torch's leaky_relu (whose gradient at 0 is the slope). The
// backward kernel also adds an optional per-channel `shift` to the incoming
// gradient, which makes it its own adjoint (double backward; see
// hrops/ops/fused_bias_leaky_relu.py).
#pragma once
#include "hd.h"

namespace hrops {

// The same operation order as leaky_relu(v) * scale in PyTorch (the slope
// product is rounded before the scale product). Both branches are computed
// and then selected, a branch-free form that vectorises.
template <typename Acc>
HROPS_HD Acc leaky_relu_scaled(Acc v, Acc slope, Acc scale) {
  const Acc negative = v * slope;
  return (v > Acc(0) ? v : negative) * scale;
}

template <typename Acc>
HROPS_HD Acc leaky_relu_scaled_grad(Acc g, Acc out, Acc slope, Acc scale) {
  const Acc negative = g * slope;
  return (out > Acc(0) ? g : negative) * scale;
}

}  // namespace hrops
