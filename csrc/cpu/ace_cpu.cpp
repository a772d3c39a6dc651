// SEAN's ACE epilogue on CPU: one pass over the five (or three) maps instead
// of eager PyTorch's seven elementwise passes, and its backward in one pass
// (six maps read, five written, the alpha gradient's two sums on the way)
// instead of about a dozen. Math: csrc/common/ace.h.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include "cpu/parallel.h"
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "common/ace.h"
#include "common/ace_shapes.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"
#include "cpu/stream_store.h"

namespace hrops {
namespace {

template <typename scalar_t, bool kBlend>
HROPS_INLINE void modulate(const scalar_t* x, const scalar_t* gs, const scalar_t* bs,
                           const scalar_t* ga, const scalar_t* ba, double a_g, double a_b,
                           scalar_t* out, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t i = begin; i < end; ++i) {
    acc_t v;
    if constexpr (kBlend) {
      v = ace_modulate_value<acc_t>(x[i], gs[i], bs[i], ga[i], ba[i], acc_t(a_g), acc_t(a_b));
    } else {
      v = ace_modulate_value<acc_t>(x[i], gs[i], bs[i]);
    }
    out[i] = static_cast<scalar_t>(v);
  }
}

template <typename scalar_t, bool kBlend>
HROPS_TARGET_AVX2 void modulate_avx2(const scalar_t* x, const scalar_t* gs, const scalar_t* bs,
                                     const scalar_t* ga, const scalar_t* ba, double a_g, double a_b,
                                     scalar_t* out, int64_t begin, int64_t end) {
  modulate<scalar_t, kBlend>(x, gs, bs, ga, ba, a_g, a_b, out, begin, end);
}

at::Tensor ace_modulate_cpu(const at::Tensor& x_in, const at::Tensor& gamma_spade,
                            const at::Tensor& beta_spade, const std::optional<at::Tensor>& gamma_avg,
                            const std::optional<at::Tensor>& beta_avg,
                            const std::optional<at::Tensor>& alpha) {
  const AceMaps checked =
      check_ace_args(x_in, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha);
  const std::vector<at::Tensor>& maps = checked.maps;
  const bool blend = checked.blend;
  double a_g = 0, a_b = 0;  // double: exact for every input dtype
  if (blend) {
    const at::Tensor a = alpha->to(at::kDouble).contiguous();
    a_g = a.const_data_ptr<double>()[0];
    a_b = a.const_data_ptr<double>()[1];
  }
  at::Tensor out = empty_output(x_in.sizes(), x_in.options());
  const int64_t n = out.numel();
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_in.scalar_type(), "ace_modulate_cpu", [&] {
    const scalar_t* p[5] = {};
    for (size_t i = 0; i < maps.size(); ++i) p[i] = maps[i].const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const bool avx2 = cpu_has_avx2_fma();
    parallel_for(0, n, 65536, [&](int64_t b, int64_t e) {
      if (blend) {
        (avx2 ? modulate_avx2<scalar_t, true> : modulate<scalar_t, true>)(
            p[0], p[1], p[2], p[3], p[4], a_g, a_b, o, b, e);
      } else {
        (avx2 ? modulate_avx2<scalar_t, false> : modulate<scalar_t, false>)(
            p[0], p[1], p[2], p[3], p[4], a_g, a_b, o, b, e);
      }
    });
  });
  return out;
}

constexpr int kLanes = 16;  // independent partial sums: lets the reductions vectorise

// The blended backward over the elements of sum block `block`; its two alpha
// sums (in double: a float sum over a 512^2 map would lose ~1e-4) go to
// sums[2 * block], sums[2 * block + 1]. kStream: the five gradient maps are
// written with streaming stores (cpu/stream_store.h), through a small tile.
template <typename scalar_t, bool kStream>
HROPS_INLINE void backward_block(const scalar_t* const* in, scalar_t* const* out, double a_g,
                                 double a_b, int64_t n, int64_t block, double* sums) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t kTile = 512;
  const scalar_t *g = in[0], *x = in[1], *gs = in[2], *bs = in[3], *ga = in[4], *ba = in[5];
  const int64_t begin = block * kAceSumBlock, end = std::min(n, begin + kAceSumBlock);
  double lanes_g[kLanes] = {}, lanes_b[kLanes] = {};
  alignas(64) scalar_t tile[5][kStream ? kTile : 1];
  const auto one = [&](int64_t j, scalar_t* const* dst, int64_t k, double& sum_g,
                       double& sum_b) HROPS_INLINE_LAMBDA {
    const AceGrads<acc_t> d = ace_modulate_grads<acc_t>(g[j], x[j], gs[j], bs[j], ga[j], ba[j],
                                                        acc_t(a_g), acc_t(a_b));
    dst[0][k] = scalar_t(d.x);
    dst[1][k] = scalar_t(d.gamma_spade);
    dst[2][k] = scalar_t(d.beta_spade);
    dst[3][k] = scalar_t(d.gamma_avg);
    dst[4][k] = scalar_t(d.beta_avg);
    sum_g += d.alpha_gamma;
    sum_b += d.alpha_beta;
  };
  double sum_g = 0, sum_b = 0;
  if constexpr (kStream) {
    StreamWriter<scalar_t> writers[5] = {
        StreamWriter<scalar_t>(out[0] + begin), StreamWriter<scalar_t>(out[1] + begin),
        StreamWriter<scalar_t>(out[2] + begin), StreamWriter<scalar_t>(out[3] + begin),
        StreamWriter<scalar_t>(out[4] + begin)};
    scalar_t* dst[5] = {tile[0], tile[1], tile[2], tile[3], tile[4]};
    for (int64_t t0 = begin; t0 < end; t0 += kTile) {
      const int64_t len = std::min(kTile, end - t0);
      int64_t k = 0;
      for (; k + kLanes <= len; k += kLanes) {
        for (int l = 0; l < kLanes; ++l) one(t0 + k + l, dst, k + l, lanes_g[l], lanes_b[l]);
      }
      for (; k < len; ++k) one(t0 + k, dst, k, sum_g, sum_b);
      for (int m = 0; m < 5; ++m) writers[m].write(tile[m], len);
    }
    for (auto& w : writers) w.finish();
  } else {
    scalar_t* dst[5] = {out[0] + begin, out[1] + begin, out[2] + begin, out[3] + begin,
                        out[4] + begin};
    int64_t k = 0;
    for (; begin + k + kLanes <= end; k += kLanes) {
      for (int l = 0; l < kLanes; ++l) one(begin + k + l, dst, k + l, lanes_g[l], lanes_b[l]);
    }
    for (; begin + k < end; ++k) one(begin + k, dst, k, sum_g, sum_b);
  }
  for (int l = 0; l < kLanes; ++l) {
    sum_g += lanes_g[l];
    sum_b += lanes_b[l];
  }
  sums[2 * block] = sum_g;
  sums[2 * block + 1] = sum_b;
}

// Without the region branch: d x and d gamma_spade (d beta_spade is g itself).
template <typename scalar_t>
HROPS_INLINE void backward_plain(const scalar_t* g, const scalar_t* x, const scalar_t* gs,
                                 scalar_t* dx, scalar_t* dgs, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t i = begin; i < end; ++i) {
    const AcePlainGrads<acc_t> d = ace_modulate_grads<acc_t>(g[i], x[i], gs[i]);
    dx[i] = scalar_t(d.x);
    dgs[i] = scalar_t(d.gamma_spade);
  }
}

template <typename scalar_t, bool kStream>
void backward_blocks(const scalar_t* const* in, scalar_t* const* out, double a_g, double a_b,
                     int64_t n, int64_t b0, int64_t b1, double* sums) {
  for (int64_t b = b0; b < b1; ++b) backward_block<scalar_t, kStream>(in, out, a_g, a_b, n, b, sums);
}

template <typename scalar_t, bool kStream>
HROPS_TARGET_AVX2 HROPS_FLATTEN void backward_blocks_avx2(const scalar_t* const* in,
                                                          scalar_t* const* out, double a_g,
                                                          double a_b, int64_t n, int64_t b0,
                                                          int64_t b1, double* sums) {
  for (int64_t b = b0; b < b1; ++b) backward_block<scalar_t, kStream>(in, out, a_g, a_b, n, b, sums);
}

template <typename scalar_t, bool kStream>
HROPS_TARGET_AVX512_ZMM HROPS_FLATTEN void backward_blocks_avx512(const scalar_t* const* in,
                                                                  scalar_t* const* out,
                                                                  double a_g, double a_b,
                                                                  int64_t n, int64_t b0,
                                                                  int64_t b1, double* sums) {
  for (int64_t b = b0; b < b1; ++b) backward_block<scalar_t, kStream>(in, out, a_g, a_b, n, b, sums);
}

template <typename scalar_t>
void backward_plain_generic(const scalar_t* g, const scalar_t* x, const scalar_t* gs,
                            scalar_t* dx, scalar_t* dgs, int64_t begin, int64_t end) {
  backward_plain(g, x, gs, dx, dgs, begin, end);
}

template <typename scalar_t>
HROPS_TARGET_AVX2 HROPS_FLATTEN void backward_plain_avx2(const scalar_t* g, const scalar_t* x,
                                                         const scalar_t* gs, scalar_t* dx,
                                                         scalar_t* dgs, int64_t begin,
                                                         int64_t end) {
  backward_plain(g, x, gs, dx, dgs, begin, end);
}

// (d x, d gamma_spade, d beta_spade, d gamma_avg, d beta_avg, d alpha); without
// the region branch the last four are empty (d beta_spade is grad).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
ace_modulate_backward_cpu(const at::Tensor& grad_in, const at::Tensor& x_in,
                          const at::Tensor& gamma_spade, const at::Tensor& beta_spade,
                          const std::optional<at::Tensor>& gamma_avg,
                          const std::optional<at::Tensor>& beta_avg,
                          const std::optional<at::Tensor>& alpha) {
  const AceMaps checked =
      check_ace_args(x_in, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha);
  const bool blend = checked.blend;
  check_grad(grad_in, x_in, "x", x_in.sizes());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t n = x_in.numel();
  const auto map = [&] { return empty_output(x_in.sizes(), x_in.options()); };
  const auto none = [&] { return at::empty({0}, x_in.options()); };
  at::Tensor dx = map(), dgs = map();
  at::Tensor dbs = blend ? map() : none(), dga = blend ? map() : none(),
             dba = blend ? map() : none();
  at::Tensor dalpha = blend ? at::zeros({2}, x_in.options()) : none();  // n == 0: no terms
  if (n == 0) return {dx, dgs, dbs, dga, dba, dalpha};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_in.scalar_type(),
                                  "ace_modulate_backward_cpu", [&] {
    const std::vector<at::Tensor>& m = checked.maps;
    if (!blend) {
      const auto run = cpu_has_avx2_fma() ? backward_plain_avx2<scalar_t>
                                          : backward_plain_generic<scalar_t>;
      const scalar_t *g = grad.const_data_ptr<scalar_t>(), *x = m[0].const_data_ptr<scalar_t>(),
                     *gs = m[1].const_data_ptr<scalar_t>();
      scalar_t *pdx = dx.mutable_data_ptr<scalar_t>(), *pdgs = dgs.mutable_data_ptr<scalar_t>();
      parallel_for(0, n, 65536, [&](int64_t b, int64_t e) { run(g, x, gs, pdx, pdgs, b, e); });
      return;
    }
    const at::Tensor a = alpha->to(at::kDouble).contiguous();
    const double a_g = a.const_data_ptr<double>()[0], a_b = a.const_data_ptr<double>()[1];
    const scalar_t* in[6] = {grad.const_data_ptr<scalar_t>(), m[0].const_data_ptr<scalar_t>(),
                             m[1].const_data_ptr<scalar_t>(), m[2].const_data_ptr<scalar_t>(),
                             m[3].const_data_ptr<scalar_t>(), m[4].const_data_ptr<scalar_t>()};
    scalar_t* out[5] = {dx.mutable_data_ptr<scalar_t>(), dgs.mutable_data_ptr<scalar_t>(),
                        dbs.mutable_data_ptr<scalar_t>(), dga.mutable_data_ptr<scalar_t>(),
                        dba.mutable_data_ptr<scalar_t>()};
    const int64_t blocks = ace_sum_blocks(n);
    std::vector<double> sums(2 * blocks);
    // Streaming stores when the five outputs pass kStreamOutputBytes: they
    // would otherwise be read into the cache before being written.
    const bool stream =
        kStreamable<scalar_t> && 5 * n * int64_t(sizeof(scalar_t)) >= kStreamOutputBytes;
    constexpr bool kS = kStreamable<scalar_t>;
    const auto run = cpu_has_avx512f()
                         ? (stream ? backward_blocks_avx512<scalar_t, kS>
                                   : backward_blocks_avx512<scalar_t, false>)
                     : cpu_has_avx2_fma()
                         ? (stream ? backward_blocks_avx2<scalar_t, kS>
                                   : backward_blocks_avx2<scalar_t, false>)
                         : (stream ? backward_blocks<scalar_t, kS> : backward_blocks<scalar_t, false>);
    parallel_for(0, blocks, 4, [&](int64_t b0, int64_t b1) {
      run(in, out, a_g, a_b, n, b0, b1, sums.data());
    });
    at::Tensor totals = at::zeros({2}, a.options());
    double* t = totals.mutable_data_ptr<double>();
    for (int64_t b = 0; b < blocks; ++b) {
      t[0] += sums[2 * b];
      t[1] += sums[2 * b + 1];
    }
    dalpha = totals.to(x_in.scalar_type());
  });
  return {dx, dgs, dbs, dga, dba, dalpha};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def(
      "ace_modulate(Tensor x, Tensor gamma_spade, Tensor beta_spade, Tensor? gamma_avg, "
      "Tensor? beta_avg, Tensor? alpha) -> Tensor");
  m.def(
      "_ace_modulate_backward(Tensor grad, Tensor x, Tensor gamma_spade, Tensor beta_spade, "
      "Tensor? gamma_avg, Tensor? beta_avg, Tensor? alpha) -> (Tensor, Tensor, Tensor, Tensor, "
      "Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("ace_modulate", &ace_modulate_cpu);
  m.impl("_ace_modulate_backward", &ace_modulate_backward_cpu);
}

}  // namespace hrops
