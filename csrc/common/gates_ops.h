// Tensor glue of the gating kernels shared by the CPU and CUDA backends
// (host only): argument checks, plane-contiguous operands, outputs, and the
// op bodies, parameterised by a Backend with
//   static at::Tensor alloc(at::IntArrayRef sizes, const at::TensorOptions&);
//   static void run(gates::Kernel, int64_t activation, const gates::Planes&,
//                   at::ScalarType, int64_t N, int64_t C, int64_t HW);
//   static constexpr bool kStridedSpans;  // run() takes Planes' se != 1
#pragma once
#include <ATen/core/Tensor.h>

#include <tuple>
#include <utility>
#include <vector>

#include "common/gates.h"
#include "common/tensor_checks.h"

namespace hrops {
namespace gates_ops {

using gates::Kernel;
using gates::kMaxInputs;
using gates::kMaxOutputs;
using gates::kRelu;
using gates::kTanh;
using gates::Planes;

// (n, c) planes of contiguous pixels.
inline bool walkable_planes(const at::Tensor& t) {
  const int64_t H = t.size(2), W = t.size(3);
  return (t.stride(3) == 1 || W <= 1) && (t.stride(2) == W || H <= 1);
}

// Pixels of contiguous channels, evenly spaced (a channels-last tensor or a
// channel slice of one).
inline bool walkable_pixels(const at::Tensor& t) {
  const int64_t H = t.size(2), W = t.size(3);
  return t.stride(1) == 1 && (t.stride(2) == W * t.stride(3) || H <= 1 || W <= 1);
}

// Validates the operands of one op (same device, dtype and (N, C|2C, H, W)
// shape as `like`), keeps walkable versions of them alive and records where
// their planes are.
//
// Layouts: the kernels walk (n, q) planes of `span` contiguous elements. For
// NCHW operands q is the channel and the span a channel's H*W pixels; when
// `like` is channels-last (walkable by pixels, not by planes) every operand
// is taken channels-last, q is the pixel and the span its C channels, so convolution
// outputs in that layout (faster on CPU for narrow layers) and channel
// slices of them are read in place, and the outputs are channels-last too.
// An NCHW operand in that mode is read in place where the backend walks
// strided spans (the CPU: it transposes tiles of pixels), else copied
// channels-last; an output_like() it is NCHW (the gradient of an NCHW
// encoder feature comes back NCHW, as autograd would store it).
template <class Backend>
class Operands {
 public:
  Operands(const at::Tensor& like, const char* like_name) : ref_(like), ref_name_(like_name) {
    check_dim(like, 4, like_name, "(N, C, H, W)");
    check_floating(like, like_name);
    N_ = like.size(0);
    C_ = like.size(1);
    H_ = like.size(2);
    W_ = like.size(3);
    channels_last_ = !walkable_planes(like) && walkable_pixels(like);
    kept_.reserve(kMaxInputs + kMaxOutputs + 1);
  }

  // An input with `groups` * C channels (the gate halves of one conv output);
  // records its groups as the next input operands. Returns whether it is
  // NCHW among channels-last operands (see output_like).
  bool input(const at::Tensor& t, const char* name, int64_t groups = 1) {
    check_dim(t, 4, name, "(N, C, H, W)");
    check_same(ref_, ref_name_, t, name);
    TORCH_CHECK(t.size(0) == N_ && t.size(1) == groups * C_ && t.size(2) == H_ && t.size(3) == W_,
                name, " must have shape ", at::IntArrayRef({N_, groups * C_, H_, W_}), " to match ",
                ref_name_, ", got ", t.sizes());
    const bool planar_among_last = channels_last_ && !walkable_pixels(t) && walkable_planes(t);
    if (planar_among_last && Backend::kStridedSpans) {
      kept_.push_back(t);
    } else if (channels_last_) {
      kept_.push_back(walkable_pixels(t) ? t : t.contiguous(at::MemoryFormat::ChannelsLast));
    } else {
      kept_.push_back(walkable_planes(t) ? t : t.contiguous());
    }
    for (int64_t g = 0; g < groups; ++g) {
      add(kept_.back(), g, planes_.in, planes_.in_sn, planes_.in_sc, planes_.in_se, n_in_);
    }
    return planar_among_last;
  }

  // A new output with `groups` * C channels in the operands' layout,
  // recorded group by group.
  at::Tensor output(int64_t groups = 1) {
    if (channels_last_) {
      kept_.push_back(Backend::alloc({N_, H_, W_, groups * C_}, ref_.options()).permute({0, 3, 1, 2}));
    } else {
      kept_.push_back(Backend::alloc({N_, groups * C_, H_, W_}, ref_.options()));
    }
    for (int64_t g = 0; g < groups; ++g) {
      add(kept_.back(), g, planes_.out, planes_.out_sn, planes_.out_sc, planes_.out_se, n_out_);
    }
    return kept_.back();
  }

  // A new output (C channels), NCHW if `planar` (an input() that returned
  // true), else as output(). A backend that walks no strided spans writes a
  // channels-last scratch that run() copies into it.
  at::Tensor output_like(bool planar) {
    if (!planar) return output();
    at::Tensor out = Backend::alloc({N_, C_, H_, W_}, ref_.options());
    if (Backend::kStridedSpans) {
      kept_.push_back(out);
      add(out, 0, planes_.out, planes_.out_sn, planes_.out_sc, planes_.out_se, n_out_);
    } else {
      planar_copy_ = {out, output()};
    }
    return out;
  }

  void run(Kernel kernel, int64_t activation = kTanh) const {
    if (N_ * C_ * H_ * W_ == 0) return;
    if (channels_last_) {
      Backend::run(kernel, activation, planes_, ref_.scalar_type(), N_, H_ * W_, C_);
    } else {
      Backend::run(kernel, activation, planes_, ref_.scalar_type(), N_, C_, H_ * W_);
    }
    if (planar_copy_.first.defined()) planar_copy_.first.copy_(planar_copy_.second);
  }

 private:
  template <typename P>
  void add(const at::Tensor& t, int64_t group, P* ptrs, int64_t* sn, int64_t* sq, int64_t* se,
           int& count) {
    auto* base = static_cast<char*>(const_cast<void*>(t.const_data_ptr()));
    ptrs[count] = base + group * C_ * t.stride(1) * t.element_size();
    sn[count] = t.stride(0);
    // Pixel p = y * W + x is at p * stride(3), or y * stride(2) in a 1-wide map.
    sq[count] = !channels_last_ ? t.stride(1) : (W_ > 1 ? t.stride(3) : t.stride(2));
    se[count] = channels_last_ ? t.stride(1) : 1;  // 1 but for NCHW among channels-last
    ++count;
  }

  const at::Tensor& ref_;
  const char* ref_name_;
  int64_t N_, C_, H_, W_;
  bool channels_last_;
  std::vector<at::Tensor> kept_;
  std::pair<at::Tensor, at::Tensor> planar_copy_;  // (NCHW output, its scratch)
  Planes planes_{};
  int n_in_ = 0, n_out_ = 0;
};

inline void check_activation(int64_t activation) {
  TORCH_CHECK(activation == kTanh || activation == kRelu,
              "activation must be 0 (tanh) or 1 (relu), got ", activation);
}

template <class B>
std::tuple<at::Tensor, at::Tensor> lstu_gates(const at::Tensor& x_up, const at::Tensor& x_tilde,
                                              const at::Tensor& pre_gates, const at::Tensor& enc,
                                              int64_t activation) {
  check_activation(activation);
  Operands<B> ops(x_up, "x_up");
  ops.input(x_up, "x_up");
  ops.input(x_tilde, "x_tilde");
  ops.input(pre_gates, "pre_gates", 2);
  ops.input(enc, "enc");
  at::Tensor h = ops.output(), c = ops.output();
  ops.run(Kernel::kLstu, activation);
  return {h, c};
}

template <class B>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstu_gates_backward(
    const at::Tensor& grad_h, const at::Tensor& grad_c, const at::Tensor& x_up,
    const at::Tensor& x_tilde, const at::Tensor& pre_gates, const at::Tensor& enc,
    int64_t activation) {
  check_activation(activation);
  Operands<B> ops(x_up, "x_up");
  ops.input(grad_h, "grad_h");
  ops.input(grad_c, "grad_c");
  ops.input(x_up, "x_up");
  ops.input(x_tilde, "x_tilde");
  ops.input(pre_gates, "pre_gates", 2);
  const bool planar_enc = ops.input(enc, "enc");
  at::Tensor gx = ops.output(), gxt = ops.output(), gpre = ops.output(2);
  at::Tensor ge = ops.output_like(planar_enc);
  ops.run(Kernel::kLstuBackward, activation);
  return {gx, gxt, gpre, ge};
}

template <class B>
at::Tensor stu_reset(const at::Tensor& pre_r, const at::Tensor& s_hat) {
  Operands<B> ops(s_hat, "s_hat");
  ops.input(pre_r, "pre_r");
  ops.input(s_hat, "s_hat");
  at::Tensor out = ops.output();
  ops.run(Kernel::kStuReset);
  return out;
}

template <class B>
std::tuple<at::Tensor, at::Tensor> stu_reset_backward(const at::Tensor& grad,
                                                      const at::Tensor& pre_r,
                                                      const at::Tensor& s_hat) {
  Operands<B> ops(s_hat, "s_hat");
  ops.input(grad, "grad");
  ops.input(pre_r, "pre_r");
  ops.input(s_hat, "s_hat");
  at::Tensor gr = ops.output(), gs = ops.output();
  ops.run(Kernel::kStuResetBackward);
  return {gr, gs};
}

template <class B>
at::Tensor gru_update(const at::Tensor& pre_z, const at::Tensor& h, const at::Tensor& pre_q) {
  Operands<B> ops(h, "h");
  ops.input(pre_z, "pre_z");
  ops.input(h, "h");
  ops.input(pre_q, "pre_q");
  at::Tensor out = ops.output();
  ops.run(Kernel::kGruUpdate);
  return out;
}

template <class B>
std::tuple<at::Tensor, at::Tensor, at::Tensor> gru_update_backward(const at::Tensor& grad,
                                                                   const at::Tensor& pre_z,
                                                                   const at::Tensor& h,
                                                                   const at::Tensor& pre_q) {
  Operands<B> ops(h, "h");
  ops.input(grad, "grad");
  ops.input(pre_z, "pre_z");
  ops.input(h, "h");
  ops.input(pre_q, "pre_q");
  at::Tensor gz = ops.output(), gh = ops.output(), gq = ops.output();
  ops.run(Kernel::kGruUpdateBackward);
  return {gz, gh, gq};
}

}  // namespace gates_ops
}  // namespace hrops
