// One-pass CPU backward of the modulated depthwise-separable conv for its
// common case (fp32, 3x3 "same" depthwise, at most kFusedBackwardMaxChannels
// channels, AVX-512): per band of rows it recomputes the modulated depthwise
// output, forms the gradient of that output with the pointwise tile GEMM of
// dw_pointwise.h, and turns it into the input, depthwise-weight and
// modulation gradients while the band is in cache. Nothing the size of the
// activations is written besides grad_x (the two-phase backward in
// modulated_dwconv_cpu.cpp writes and rereads an (N, Cin, H, W) gradient).
#pragma once
#include <cstdint>

namespace hrops {

constexpr int64_t kFusedBackwardMaxChannels = 256;

// Whether dw3_backward_fused serves these sizes on this CPU.
bool dw3_backward_fused_applies(int64_t Cin, int64_t Cout, int64_t k, int64_t padding);

// All arrays contiguous fp32. pw: the effective pointwise weights (Cout x Cin,
// demodulation folded in); dw: (Cin x 9). grad_x is overwritten; grad_pw
// (Cout x Cin), grad_mod (N x Cin) and grad_dw (Cin x 9) are accumulated into.
struct Dw3BackwardArgs {
  const float *x, *grad, *mod, *dw, *pw;
  int64_t N, Cin, Cout, H, W;
  float *grad_x, *grad_pw, *grad_mod, *grad_dw;
};

void dw3_backward_fused(const Dw3BackwardArgs& a);

}  // namespace hrops
