// LSTU / STU / GRU gating CPU kernels: one pass over memory per op (forward
// and backward), per-element math from csrc/common/gates.h, tensor glue from
// csrc/common/gates_ops.h (shared with CUDA). Operands are walked span by
// span ((n, c) planes of H*W contiguous elements, or channels-last pixels'
// C channels), so the two gate halves of one (N, 2C, H, W) convolution output
// are read in place, and the gradient of such a tensor is written as one
// tensor. NCHW operands among channels-last ones are transposed through
// small tiles instead of whole copies. The inner loops vectorise (with
// AVX2+FMA where the CPU has it, see isa.h).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "cpu/parallel.h"
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/gates.h"
#include "common/gates_ops.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"
#include "cpu/plane_tiles.h"
#include "cpu/stream_store.h"

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
HROPS_TARGET_AVX512_ZMM void span_avx512(const s* const* in, s* const* out, int64_t len) {
  span<K, s>(in, out, len);
}

template <class K, typename s>
void span_baseline(const s* const* in, s* const* out, int64_t len) {
  span<K, s>(in, out, len);
}

// The widest span the CPU runs (AVX-512: ~10% faster than AVX2 on the
// LSTU gates, whose exps make them partly compute-bound).
template <class K, typename s>
HROPS_INLINE void span_best(bool avx2, const s* const* in, s* const* out, int64_t len) {
  if (avx2 && cpu_has_avx512f()) {
    span_avx512<K, s>(in, out, len);
  } else if (avx2) {
    span_avx2<K, s>(in, out, len);
  } else {
    span_baseline<K, s>(in, out, len);
  }
}

bool has_strided_spans(const gates::Planes& p, int ni, int no) {
  for (int k = 0; k < ni; ++k) {
    if (p.in_se[k] != 1) return true;
  }
  for (int k = 0; k < no; ++k) {
    if (p.out_se[k] != 1) return true;
  }
  return false;
}

// The strided inputs' rows of a later tile (L rows of P pixels, se apart,
// per input), fetched into L2 a few lines per span while this tile computes:
// the rows are too short for the hardware prefetcher, and their loads
// otherwise stall the transposes. Measured (1 thread, the LSTU backward at
// B8, 32 ch, 128^2 with NCHW output gradients among channels-last operands):
// 23.0 ms without, 20.4 one tile ahead, 19.2 two ahead, 19.7 four ahead.
constexpr int64_t kPrefetchTilesAhead = 2;

template <int NI, typename scalar_t>
class PlaneRowPrefetcher {
 public:
  PlaneRowPrefetcher(const gates::Planes& p, int64_t tile, int64_t tiles, int64_t P, int64_t S,
                     int64_t L)
      : L_(L) {
    if (tile < 0) return;
    const int64_t n = tile / tiles, q0 = (tile % tiles) * P, count = std::min(P, S - q0);
    lines_ = (count * int64_t(sizeof(scalar_t)) + 63) / 64;
    for (int k = 0; k < NI; ++k) {
      if (p.in_se[k] == 1) continue;
      base_[inputs_] = reinterpret_cast<const char*>(static_cast<const scalar_t*>(p.in[k]) +
                                                     n * p.in_sn[k] + q0 * p.in_sc[k]);
      stride_[inputs_++] = p.in_se[k] * int64_t(sizeof(scalar_t));
    }
  }

  // Before span j of `count`: this span's share of the lines.
  void step(int64_t j, int64_t count) {
    const int64_t total = inputs_ * L_ * lines_;
    const int64_t end = total * (j + 1) / count;
    for (; next_ < end; ++next_) {
      const int64_t line = next_ % lines_, row = next_ / lines_;
      __builtin_prefetch(base_[row / L_] + (row % L_) * stride_[row / L_] + line * 64, 0, 2);
    }
  }

 private:
  const int64_t L_;
  int64_t lines_ = 0, inputs_ = 0, next_ = 0;
  const char* base_[NI] = {};
  int64_t stride_[NI] = {};
};

// Runs kernel K over N*S spans of L elements where some operands' elements
// are se apart (NCHW operands among channels-last ones: a span is a pixel,
// se the plane size). Tiles of P consecutive spans: each strided input is
// transposed into a contiguous P x L tile (reading P consecutive pixels per
// channel), each strided output is computed into one and transposed back
// (gates_ops.h allocates those as contiguous NCHW: unit pixel stride).
template <class K, typename scalar_t>
void run_strided(const gates::Planes& p, int64_t N, int64_t S, int64_t L) {
  const int64_t P = std::clamp<int64_t>(4096 / L, 1, kPlaneTile);
  const int64_t tiles = (S + P - 1) / P;
  const bool avx2 = cpu_has_avx2_fma();
  parallel_for(0, N * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> tile((K::NI + K::NO) * P * L);
    scalar_t* in_tile[K::NI];
    scalar_t* out_tile[K::NO];
    for (int k = 0; k < K::NI; ++k) in_tile[k] = tile.data() + k * P * L;
    for (int k = 0; k < K::NO; ++k) out_tile[k] = tile.data() + (K::NI + k) * P * L;
    const scalar_t* ip[K::NI];
    scalar_t* op[K::NO];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / tiles, q0 = (t % tiles) * P, count = std::min(P, S - q0);
      for (int k = 0; k < K::NI; ++k) {
        if (p.in_se[k] == 1) continue;
        const scalar_t* src = static_cast<const scalar_t*>(p.in[k]) + n * p.in_sn[k] +
                              q0 * p.in_sc[k];
        transpose_block(src, p.in_se[k], p.in_sc[k], in_tile[k], L, L, count, avx2);
      }
      const int64_t ahead = t + kPrefetchTilesAhead;
      PlaneRowPrefetcher<K::NI, scalar_t> prefetch(p, ahead < end ? ahead : -1, tiles, P, S, L);
      for (int64_t j = 0; j < count; ++j) {
        prefetch.step(j, count);
        const int64_t q = q0 + j;
        for (int k = 0; k < K::NI; ++k) {
          ip[k] = p.in_se[k] != 1 ? in_tile[k] + j * L
                                  : static_cast<const scalar_t*>(p.in[k]) + n * p.in_sn[k] +
                                        q * p.in_sc[k];
        }
        for (int k = 0; k < K::NO; ++k) {
          op[k] = p.out_se[k] != 1 ? out_tile[k] + j * L
                                   : static_cast<scalar_t*>(p.out[k]) + n * p.out_sn[k] +
                                         q * p.out_sc[k];
        }
        span_best<K, scalar_t>(avx2, ip, op, L);
      }
      for (int k = 0; k < K::NO; ++k) {
        if (p.out_se[k] == 1) continue;
        scalar_t* dst = static_cast<scalar_t*>(p.out[k]) + n * p.out_sn[k] + q0 * p.out_sc[k];
#if HROPS_X86
        if constexpr (std::is_same_v<scalar_t, float>) {
          if (avx2 && count == kPlaneTile && streams_to_planes(L, p.out_se[k], dst)) {
            tile_to_planes_stream_avx2(out_tile[k], L, dst, L, p.out_se[k]);
            continue;
          }
        }
#endif
        transpose_block(out_tile[k], L, 1, dst, p.out_se[k], count, L, avx2);
      }
    }
    if (avx2) stream_fence();  // after this thread's streaming stores
  });
}

// Runs kernel K over N*C spans of HW elements (planes, or pixels' channels).
template <class K>
void run(const gates::Planes& p, at::ScalarType dtype, int64_t N, int64_t C, int64_t HW) {
  if (has_strided_spans(p, K::NI, K::NO)) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "hrops_gates_cpu", [&] {
      run_strided<K, scalar_t>(p, N, C, HW);
    });
    return;
  }
  const bool avx2 = cpu_has_avx2_fma();
  const int64_t grain = std::max<int64_t>(1, 32768 / HW);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "hrops_gates_cpu", [&] {
    parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
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
        span_best<K, scalar_t>(avx2, ip, op, HW);
      }
    });
  });
}

struct Cpu {
  static constexpr bool kStridedSpans = true;
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

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def(
      "lstu_gates(Tensor x_up, Tensor x_tilde, Tensor pre_gates, Tensor enc, int activation) "
      "-> (Tensor, Tensor)");
  m.def(
      "_lstu_gates_backward(Tensor grad_h, Tensor grad_c, Tensor x_up, Tensor x_tilde, Tensor "
      "pre_gates, Tensor enc, int activation) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("stu_reset(Tensor pre_r, Tensor s_hat) -> Tensor");
  m.def("_stu_reset_backward(Tensor grad, Tensor pre_r, Tensor s_hat) -> (Tensor, Tensor)");
  m.def("gru_update(Tensor pre_z, Tensor h, Tensor pre_q) -> Tensor");
  m.def(
      "_gru_update_backward(Tensor grad, Tensor pre_z, Tensor h, Tensor pre_q) -> (Tensor, "
      "Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("lstu_gates", &gates_ops::lstu_gates<Cpu>);
  m.impl("_lstu_gates_backward", &gates_ops::lstu_gates_backward<Cpu>);
  m.impl("stu_reset", &gates_ops::stu_reset<Cpu>);
  m.impl("_stu_reset_backward", &gates_ops::stu_reset_backward<Cpu>);
  m.impl("gru_update", &gates_ops::gru_update<Cpu>);
  m.impl("_gru_update_backward", &gates_ops::gru_update_backward<Cpu>);
}

}  // namespace hrops
