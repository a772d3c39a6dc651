// LSTU / STU / GRU gating CPU kernels: one pass over memory per op (forward
// and backward), per-element math from csrc/common/gates.h, tensor glue from
// csrc/common/gates_ops.h (shared with CUDA). Operands are walked plane by
// plane ((n, c) planes of H*W contiguous elements), so the two gate halves of
// one (N, 2C, H, W) convolution output are read in place, and the gradient
// of such a tensor is written as one tensor. The inner loops vectorise (with
// AVX2+FMA where the CPU has it, see isa.h).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "common/gates.h"
#include "common/gates_ops.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"

namespace hrops {
namespace {

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
void run(const gates::Planes& p, at::ScalarType dtype, int64_t N, int64_t C, int64_t HW) {
  const bool avx2 = cpu_has_avx2_fma();
  const int64_t grain = std::max<int64_t>(1, 32768 / HW);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "hrops_gates_cpu", [&] {
    at::parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
      const scalar_t* ip[K::NI];
      scalar_t* op[K::NO];
      for (int64_t q = begin; q < end; ++q) {
        const int64_t n = q / C, c = q % C;
        for (int k = 0; k < K::NI; ++k) {
          ip[k] = static_cast<const scalar_t*>(p.in[k]) + n * p.in_sn[k] + c * p.in_sc[k];
        }
        for (int k = 0; k < K::NO; ++k) {
          op[k] = static_cast<scalar_t*>(p.out[k]) + n * p.out_sn[k] + c * p.out_sc[k];
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

struct Cpu {
  static at::Tensor alloc(at::IntArrayRef sizes, const at::TensorOptions& options) {
    return empty_output(sizes, options);
  }
  static void run(gates::Kernel kernel, int64_t act, const gates::Planes& p, at::ScalarType dtype,
                  int64_t N, int64_t C, int64_t HW) {
    using gates::Kernel;
    const bool tanh = act == gates::kTanh;
    switch (kernel) {
      case Kernel::kLstu:
        return tanh ? hrops::run<LstuForward<gates::kTanh>>(p, dtype, N, C, HW)
                    : hrops::run<LstuForward<gates::kRelu>>(p, dtype, N, C, HW);
      case Kernel::kLstuBackward:
        return tanh ? hrops::run<LstuBackward<gates::kTanh>>(p, dtype, N, C, HW)
                    : hrops::run<LstuBackward<gates::kRelu>>(p, dtype, N, C, HW);
      case Kernel::kStuReset: return hrops::run<StuResetForward>(p, dtype, N, C, HW);
      case Kernel::kStuResetBackward: return hrops::run<StuResetBackward>(p, dtype, N, C, HW);
      case Kernel::kGruUpdate: return hrops::run<GruUpdateForward>(p, dtype, N, C, HW);
      case Kernel::kGruUpdateBackward: return hrops::run<GruUpdateBackward>(p, dtype, N, C, HW);
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("lstu_gates", &gates_ops::lstu_gates<Cpu>);
  m.impl("lstu_gates_backward", &gates_ops::lstu_gates_backward<Cpu>);
  m.impl("stu_reset", &gates_ops::stu_reset<Cpu>);
  m.impl("stu_reset_backward", &gates_ops::stu_reset_backward<Cpu>);
  m.impl("gru_update", &gates_ops::gru_update<Cpu>);
  m.impl("gru_update_backward", &gates_ops::gru_update_backward<Cpu>);
}

}  // namespace hrops
