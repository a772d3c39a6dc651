// Recurrent-cell gating math shared by the CPU (g++) and CUDA (nvcc) kernels:
// CooGAN's LSTU (SRU_modify / SRU_modify_relu), STGAN's STU and the ConvGRU
// update of CoCosNet v2 (csmliu/STGAN models.py, ConvGRUCell; neuralchen/CooGAN
// components/STU/SRU_modify.py and SRU_modify_relu.py; microsoft/CoCosNet-v2
// models/networks/convgru.py, SepConvGRU). Each function maps
// one element's pre-activations to its outputs (forward) or its output
// gradients to input gradients (backward, recomputing the gates from the
// inputs so that nothing but the inputs is saved). T is the compute type:
// float (half/bfloat16 are computed in float) or double.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/fast_exp.h"
#include "common/hd.h"

namespace hrops {
namespace gates {

// g of the LSTU output h = r*g(c) + (1-r)*x.
enum Activation : int64_t { kTanh = 0, kRelu = 1 };

// The kernels built on the functions below, as the CPU and CUDA tensor glue
// names them (csrc/common/gates_ops.h).
enum class Kernel : int { kLstu, kLstuBackward, kStuReset, kStuResetBackward, kGruUpdate,
                          kGruUpdateBackward };
constexpr int kMaxInputs = 7, kMaxOutputs = 5;

// Operand k's plane (n, c) starts at ptr[k] + n*sn[k] + c*sc[k] (elements);
// its elements are se[k] apart: 1 (planes of H*W contiguous elements, or a
// pixel's contiguous channels), except for the NCHW operands that a CPU
// kernel walking channels-last pixels reads in place (se = the plane size).
// The CUDA glue never passes se != 1 (csrc/common/gates_ops.h).
struct Planes {
  const void* in[kMaxInputs];
  int64_t in_sn[kMaxInputs], in_sc[kMaxInputs], in_se[kMaxInputs];
  void* out[kMaxOutputs];
  int64_t out_sn[kMaxOutputs], out_sc[kMaxOutputs], out_se[kMaxOutputs];
};

#if !defined(__CUDA_ARCH__)
// tanh(x) for float on the host, vectorisable: an odd polynomial for
// |x| < 0.625 (Cephes tanhf), else 1 - 2/(exp(2|x|) + 1) with the sign of x.
// Both are computed and blended arithmetically (a select makes GCC branch and
// give up vectorising); the polynomial's argument is clamped so that it stays
// finite where it is not used.
HROPS_HD_INLINE float host_tanhf(float x) {
  const float a = std::fabs(x);
  const float s = x < -0.625f ? -0.625f : (x > 0.625f ? 0.625f : x);
  const float z = s * s;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * s + s;
  const float big = std::copysign(1.f - 2.f / (fast_expf(2.f * a) + 1.f), x);
  const float use_small = a < 0.625f ? 1.f : 0.f;
  return big + use_small * (small - big);
}
#endif

// The same exp formula on the host and the GPU (fast_exp.h: equal to about an
// ulp). tanh: CUDA's tanhf on the GPU, a vectorisable polynomial on the host;
// the GPU tests compare both with the reference to float rounding.
HROPS_HD_INLINE float exp_(float x) { return fast_expf(x); }
HROPS_HD_INLINE double exp_(double x) { return exp(x); }

HROPS_HD_INLINE float tanh_(float x) {
#if defined(__CUDA_ARCH__)
  return tanhf(x);
#else
  return host_tanhf(x);
#endif
}
HROPS_HD_INLINE double tanh_(double x) { return tanh(x); }

template <typename T>
HROPS_HD_INLINE T sigmoid(T x) {
  return T(1) / (T(1) + exp_(-x));
}

// g(c) and g'(c) of the LSTU activation. relu as torch's: a NaN passes
// (c <= 0 is false for it), forward and backward.
template <int64_t kAct, typename T>
HROPS_HD_INLINE void activation(T c, T& g, T& dg) {
  if constexpr (kAct == kTanh) {
    g = tanh_(c);
    dg = T(1) - g * g;
  } else {
    g = c <= T(0) ? T(0) : c;
    dg = c <= T(0) ? T(0) : T(1);
  }
}

// LSTU (neuralchen/CooGAN, components/STU/SRU_modify.py and
// SRU_modify_relu.py): f = sigmoid(pre_f), r = sigmoid(pre_r),
// c = f*enc + (1-f)*x_tilde, h = r*g(c) + (1-r)*x.
template <int64_t kAct, typename T>
HROPS_HD_INLINE void lstu_forward(T x, T x_tilde, T pre_f, T pre_r, T enc, T& h, T& c) {
  const T f = sigmoid(pre_f), r = sigmoid(pre_r);
  c = f * enc + (T(1) - f) * x_tilde;
  T g, dg;
  activation<kAct>(c, g, dg);
  h = r * g + (T(1) - r) * x;
}

template <int64_t kAct, typename T>
HROPS_HD_INLINE void lstu_backward(T grad_h, T grad_c, T x, T x_tilde, T pre_f, T pre_r, T enc, T& grad_x,
                            T& grad_x_tilde, T& grad_pre_f, T& grad_pre_r, T& grad_enc) {
  const T f = sigmoid(pre_f), r = sigmoid(pre_r);
  const T c = f * enc + (T(1) - f) * x_tilde;
  T g, dg;
  activation<kAct>(c, g, dg);
  grad_x = grad_h * (T(1) - r);
  grad_pre_r = grad_h * (g - x) * r * (T(1) - r);
  // c reaches the loss directly and through h. relu's gradient is selected,
  // not multiplied (torch's threshold_backward): an inf grad_h where c <= 0 adds 0.
  const T through_h = kAct == kTanh || dg != T(0) ? grad_h * r * dg : T(0);
  const T dc = grad_c + through_h;
  grad_enc = dc * f;
  grad_x_tilde = dc * (T(1) - f);
  grad_pre_f = dc * (enc - x_tilde) * f * (T(1) - f);
}

// STU reset (csmliu/STGAN models.py, ConvGRUCell with pass_state 'stu'):
// s_new = sigmoid(pre_r) * s_hat.
template <typename T>
HROPS_HD_INLINE T stu_reset_forward(T pre_r, T s_hat) {
  return sigmoid(pre_r) * s_hat;
}

template <typename T>
HROPS_HD_INLINE void stu_reset_backward(T grad, T pre_r, T s_hat, T& grad_pre_r, T& grad_s_hat) {
  const T r = sigmoid(pre_r);
  grad_pre_r = grad * s_hat * r * (T(1) - r);
  grad_s_hat = grad * r;
}

// Gated update h' = (1-z)*h + z*tanh(pre_q) with z = sigmoid(pre_z): STGAN's
// STU output out = (1-u)*s_hat + u*info (csmliu/STGAN models.py, ConvGRUCell)
// and the ConvGRU step of CoCosNet v2 (microsoft/CoCosNet-v2
// models/networks/convgru.py, SepConvGRU; RAFT's SepConvGRU) are both this.
template <typename T>
HROPS_HD_INLINE T gru_update_forward(T pre_z, T h, T pre_q) {
  const T z = sigmoid(pre_z);
  return (T(1) - z) * h + z * tanh_(pre_q);
}

template <typename T>
HROPS_HD_INLINE void gru_update_backward(T grad, T pre_z, T h, T pre_q, T& grad_pre_z, T& grad_h,
                                  T& grad_pre_q) {
  const T z = sigmoid(pre_z), q = tanh_(pre_q);
  grad_pre_z = grad * (q - h) * z * (T(1) - z);
  grad_h = grad * (T(1) - z);
  grad_pre_q = grad * z * (T(1) - q * q);
}

}  // namespace gates
}  // namespace hrops
