// SEAN's ACE epilogue on CPU: one pass over the five (or three) maps instead
// of eager PyTorch's seven elementwise passes. Math: csrc/common/ace.h.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "cpu/parallel.h"
#include <torch/library.h>

#include "common/ace.h"
#include "common/ace_shapes.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"

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

}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def(
      "ace_modulate(Tensor x, Tensor gamma_spade, Tensor beta_spade, Tensor? gamma_avg, "
      "Tensor? beta_avg, Tensor? alpha) -> Tensor");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("ace_modulate", &ace_modulate_cpu);
}

}  // namespace hrops
