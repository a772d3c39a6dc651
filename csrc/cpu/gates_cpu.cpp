// LSTU / STU / GRU gating CPU kernels: one pass over memory per op (forward
// and backward), per-element math from csrc/common/gates.h. Operands are
// walked plane by plane ((n, c) planes of H*W contiguous elements), so the
// two gate halves of one (N, 2C, H, W) convolution output are read in place,
// and the gradient of such a tensor is written as one tensor. Planes that are
// not contiguous are copied first; the inner loops vectorise (with AVX2+FMA
// where the CPU has it, see isa.h).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <vector>

#include "common/gates.h"
#include "common/tensor_checks.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"

namespace hrops {
namespace {

// Where the planes of one operand live: plane (n, c) starts at
// ptr + n*sn + c*sc (element offsets).
struct Planes {
  void* ptr;
  int64_t sn, sc;
};

// Kernels: NI inputs and NO outputs per element, apply() does element i.
template <int64_t kAct>
struct LstuForward {
  static constexpr int NI = 5, NO = 2;
  template <typename s>
  static HROPS_INLINE void apply(const s* const* in, s* const* out, int64_t i) {
    using acc = at::opmath_type<s>;
    acc h, c;
    gates::lstu_forward<kAct, acc>(in[0][i], in[1][i], in[2][i], in[3][i], in[4][i], h, c);
    out[0][i] = h;
    out[1][i] = c;
  }
};

template <int64_t kAct>
struct LstuBackward {
  static constexpr int NI = 7, NO = 5;
  template <typename s>
  static HROPS_INLINE void apply(const s* const* in, s* const* out, int64_t i) {
    using acc = at::opmath_type<s>;
    acc gx, gxt, gf, gr, ge;
    gates::lstu_backward<kAct, acc>(in[0][i], in[1][i], in[2][i], in[3][i], in[4][i], in[5][i],
                                    in[6][i], gx, gxt, gf, gr, ge);
    out[0][i] = gx;
    out[1][i] = gxt;
    out[2][i] = gf;
    out[3][i] = gr;
    out[4][i] = ge;
  }
};

struct StuResetForward {
  static constexpr int NI = 2, NO = 1;
  template <typename s>
  static HROPS_INLINE void apply(const s* const* in, s* const* out, int64_t i) {
    using acc = at::opmath_type<s>;
    out[0][i] = gates::stu_reset_forward<acc>(in[0][i], in[1][i]);
  }
};

struct StuResetBackward {
  static constexpr int NI = 3, NO = 2;
  template <typename s>
  static HROPS_INLINE void apply(const s* const* in, s* const* out, int64_t i) {
    using acc = at::opmath_type<s>;
    acc gr, gs;
    gates::stu_reset_backward<acc>(in[0][i], in[1][i], in[2][i], gr, gs);
    out[0][i] = gr;
    out[1][i] = gs;
  }
};

struct GruUpdateForward {
  static constexpr int NI = 3, NO = 1;
  template <typename s>
  static HROPS_INLINE void apply(const s* const* in, s* const* out, int64_t i) {
    using acc = at::opmath_type<s>;
    out[0][i] = gates::gru_update_forward<acc>(in[0][i], in[1][i], in[2][i]);
  }
};

struct GruUpdateBackward {
  static constexpr int NI = 4, NO = 3;
  template <typename s>
  static HROPS_INLINE void apply(const s* const* in, s* const* out, int64_t i) {
    using acc = at::opmath_type<s>;
    acc gz, gh, gq;
    gates::gru_update_backward<acc>(in[0][i], in[1][i], in[2][i], in[3][i], gz, gh, gq);
    out[0][i] = gz;
    out[1][i] = gh;
    out[2][i] = gq;
  }
};

template <class K, typename s>
HROPS_INLINE void span(const s* const* in, s* const* out, int64_t len) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) K::apply(in, out, i);
}

template <class K, typename s>
HROPS_TARGET_AVX2 void span_avx2(const s* const* in, s* const* out, int64_t len) {
  span<K, s>(in, out, len);
}

template <class K, typename s>
void span_baseline(const s* const* in, s* const* out, int64_t len) {
  span<K, s>(in, out, len);
}

// Runs kernel K over N*C planes of HW elements.
template <class K>
void run(const std::array<Planes, K::NI>& in, const std::array<Planes, K::NO>& out,
         at::ScalarType dtype, int64_t N, int64_t C, int64_t HW) {
  if (N * C * HW == 0) return;
  const bool avx2 = cpu_has_avx2_fma();
  const int64_t grain = std::max<int64_t>(1, 32768 / HW);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "hrops_gates_cpu", [&] {
    at::parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
      const scalar_t* ip[K::NI];
      scalar_t* op[K::NO];
      for (int64_t q = begin; q < end; ++q) {
        const int64_t n = q / C, c = q % C;
        for (int k = 0; k < K::NI; ++k) {
          ip[k] = static_cast<const scalar_t*>(in[k].ptr) + n * in[k].sn + c * in[k].sc;
        }
        for (int k = 0; k < K::NO; ++k) {
          op[k] = static_cast<scalar_t*>(out[k].ptr) + n * out[k].sn + c * out[k].sc;
        }
        if (avx2) {
          span_avx2<K, scalar_t>(ip, op, HW);
        } else {
          span_baseline<K, scalar_t>(ip, op, HW);
        }
      }
    });
  });
}

// Validates the operands of one op (same device, dtype and (N, C|2C, H, W)
// shape) and keeps plane-contiguous versions of them alive.
class Operands {
 public:
  Operands(const at::Tensor& like, const char* like_name) : ref_(like), ref_name_(like_name) {
    check_dim(like, 4, like_name, "(N, C, H, W)");
    check_floating(like, like_name);
    N_ = like.size(0);
    C_ = like.size(1);
    H_ = like.size(2);
    W_ = like.size(3);
    kept_.reserve(8);  // add() hands out references into kept_
  }

  // An input with `groups` * C channels (the gate halves of one conv output).
  const at::Tensor& add(const at::Tensor& t, const char* name, int64_t groups = 1) {
    check_dim(t, 4, name, "(N, C, H, W)");
    check_same(ref_, ref_name_, t, name);
    TORCH_CHECK(t.size(0) == N_ && t.size(1) == groups * C_ && t.size(2) == H_ && t.size(3) == W_,
                name, " must have shape ", at::IntArrayRef({N_, groups * C_, H_, W_}), " to match ",
                ref_name_, ", got ", t.sizes());
    const bool planar = (t.stride(3) == 1 || W_ <= 1) && (t.stride(2) == W_ || H_ <= 1);
    kept_.push_back(planar ? t : t.contiguous());
    return kept_.back();
  }

  // Plane (n, c) of group `group` of an operand added above.
  Planes in(const at::Tensor& t, int64_t group = 0) const {
    auto p = Planes{const_cast<void*>(t.const_data_ptr()), t.stride(0), t.stride(1)};
    p.ptr = static_cast<char*>(p.ptr) + group * C_ * t.stride(1) * t.element_size();
    return p;
  }

  at::Tensor output(int64_t groups = 1) const {
    return empty_output({N_, groups * C_, H_, W_}, ref_.options());
  }

  Planes out(const at::Tensor& t, int64_t group = 0) const { return in(t, group); }

  int64_t N() const { return N_; }
  int64_t C() const { return C_; }
  int64_t HW() const { return H_ * W_; }
  at::ScalarType dtype() const { return ref_.scalar_type(); }

 private:
  const at::Tensor& ref_;
  const char* ref_name_;
  int64_t N_, C_, H_, W_;
  std::vector<at::Tensor> kept_;
};

void check_activation(int64_t activation) {
  TORCH_CHECK(activation == gates::kTanh || activation == gates::kRelu,
              "activation must be 0 (tanh) or 1 (relu), got ", activation);
}

std::tuple<at::Tensor, at::Tensor> lstu_gates_cpu(const at::Tensor& x_up, const at::Tensor& x_tilde,
                                                  const at::Tensor& pre_gates, const at::Tensor& enc,
                                                  int64_t activation) {
  check_activation(activation);
  Operands ops(x_up, "x_up");
  const at::Tensor& x = ops.add(x_up, "x_up");
  const at::Tensor& xt = ops.add(x_tilde, "x_tilde");
  const at::Tensor& pre = ops.add(pre_gates, "pre_gates", 2);
  const at::Tensor& e = ops.add(enc, "enc");
  at::Tensor h = ops.output(), c = ops.output();
  const std::array<Planes, 5> in = {ops.in(x), ops.in(xt), ops.in(pre, 0), ops.in(pre, 1), ops.in(e)};
  const std::array<Planes, 2> out = {ops.out(h), ops.out(c)};
  if (activation == gates::kTanh) {
    run<LstuForward<gates::kTanh>>(in, out, ops.dtype(), ops.N(), ops.C(), ops.HW());
  } else {
    run<LstuForward<gates::kRelu>>(in, out, ops.dtype(), ops.N(), ops.C(), ops.HW());
  }
  return {h, c};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstu_gates_backward_cpu(
    const at::Tensor& grad_h, const at::Tensor& grad_c, const at::Tensor& x_up,
    const at::Tensor& x_tilde, const at::Tensor& pre_gates, const at::Tensor& enc,
    int64_t activation) {
  check_activation(activation);
  Operands ops(x_up, "x_up");
  const at::Tensor& gh = ops.add(grad_h, "grad_h");
  const at::Tensor& gc = ops.add(grad_c, "grad_c");
  const at::Tensor& x = ops.add(x_up, "x_up");
  const at::Tensor& xt = ops.add(x_tilde, "x_tilde");
  const at::Tensor& pre = ops.add(pre_gates, "pre_gates", 2);
  const at::Tensor& e = ops.add(enc, "enc");
  at::Tensor gx = ops.output(), gxt = ops.output(), gpre = ops.output(2), ge = ops.output();
  const std::array<Planes, 7> in = {ops.in(gh), ops.in(gc),     ops.in(x), ops.in(xt),
                                    ops.in(pre, 0), ops.in(pre, 1), ops.in(e)};
  const std::array<Planes, 5> out = {ops.out(gx), ops.out(gxt), ops.out(gpre, 0), ops.out(gpre, 1),
                                     ops.out(ge)};
  if (activation == gates::kTanh) {
    run<LstuBackward<gates::kTanh>>(in, out, ops.dtype(), ops.N(), ops.C(), ops.HW());
  } else {
    run<LstuBackward<gates::kRelu>>(in, out, ops.dtype(), ops.N(), ops.C(), ops.HW());
  }
  return {gx, gxt, gpre, ge};
}

at::Tensor stu_reset_cpu(const at::Tensor& pre_r, const at::Tensor& s_hat) {
  Operands ops(s_hat, "s_hat");
  const at::Tensor& r = ops.add(pre_r, "pre_r");
  const at::Tensor& s = ops.add(s_hat, "s_hat");
  at::Tensor out = ops.output();
  run<StuResetForward>({ops.in(r), ops.in(s)}, {ops.out(out)}, ops.dtype(), ops.N(), ops.C(),
                       ops.HW());
  return out;
}

std::tuple<at::Tensor, at::Tensor> stu_reset_backward_cpu(const at::Tensor& grad,
                                                          const at::Tensor& pre_r,
                                                          const at::Tensor& s_hat) {
  Operands ops(s_hat, "s_hat");
  const at::Tensor& g = ops.add(grad, "grad");
  const at::Tensor& r = ops.add(pre_r, "pre_r");
  const at::Tensor& s = ops.add(s_hat, "s_hat");
  at::Tensor gr = ops.output(), gs = ops.output();
  run<StuResetBackward>({ops.in(g), ops.in(r), ops.in(s)}, {ops.out(gr), ops.out(gs)}, ops.dtype(),
                        ops.N(), ops.C(), ops.HW());
  return {gr, gs};
}

at::Tensor gru_update_cpu(const at::Tensor& pre_z, const at::Tensor& h, const at::Tensor& pre_q) {
  Operands ops(h, "h");
  const at::Tensor& z = ops.add(pre_z, "pre_z");
  const at::Tensor& hh = ops.add(h, "h");
  const at::Tensor& q = ops.add(pre_q, "pre_q");
  at::Tensor out = ops.output();
  run<GruUpdateForward>({ops.in(z), ops.in(hh), ops.in(q)}, {ops.out(out)}, ops.dtype(), ops.N(),
                        ops.C(), ops.HW());
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gru_update_backward_cpu(const at::Tensor& grad,
                                                                       const at::Tensor& pre_z,
                                                                       const at::Tensor& h,
                                                                       const at::Tensor& pre_q) {
  Operands ops(h, "h");
  const at::Tensor& g = ops.add(grad, "grad");
  const at::Tensor& z = ops.add(pre_z, "pre_z");
  const at::Tensor& hh = ops.add(h, "h");
  const at::Tensor& q = ops.add(pre_q, "pre_q");
  at::Tensor gz = ops.output(), gh = ops.output(), gq = ops.output();
  run<GruUpdateBackward>({ops.in(g), ops.in(z), ops.in(hh), ops.in(q)},
                         {ops.out(gz), ops.out(gh), ops.out(gq)}, ops.dtype(), ops.N(), ops.C(),
                         ops.HW());
  return {gz, gh, gq};
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("lstu_gates", &lstu_gates_cpu);
  m.impl("lstu_gates_backward", &lstu_gates_backward_cpu);
  m.impl("stu_reset", &stu_reset_cpu);
  m.impl("stu_reset_backward", &stu_reset_backward_cpu);
  m.impl("gru_update", &gru_update_cpu);
  m.impl("gru_update_backward", &gru_update_backward_cpu);
}

}  // namespace hrops
