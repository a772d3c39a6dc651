// Fused bias + leaky ReLU on the CPU: one pass forward; one pass backward
// that also reduces the bias gradient (no second read of grad_x). Per-element
// math: csrc/common/fused_bias_leaky_relu.h. The compare-and-select loops vectorise
// because setup.py compiles with -fno-trapping-math.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "cpu/parallel.h"
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <vector>

#include "common/fused_bias_leaky_relu.h"
#include "common/fused_bias_leaky_relu_shapes.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"

namespace hrops {
namespace {

constexpr int kLanes = 16;  // independent partial sums: lets the reductions vectorise

at::Tensor alloc_like_layout(const at::Tensor& t) {
  if (fused_bias_leaky_relu_channels_last(t)) {
    return at::empty(t.sizes(), t.options().memory_format(at::MemoryFormat::ChannelsLast));
  }
  return empty_output(t.sizes(), t.options());
}

template <typename scalar_t>
HROPS_INLINE void forward_rows(const scalar_t* x, const scalar_t* bias, scalar_t* out,
                               const FusedBiasLeakyReluDims& d, double slope_f, double scale_f, int64_t begin,
                               int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t slope = acc_t(slope_f), scale = acc_t(scale_f);
  if (d.inner == 1) {  // rows of C: (N, C) or channels_last
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* xr = x + r * d.C;
      scalar_t* o = out + r * d.C;
      if (bias) {
        for (int64_t c = 0; c < d.C; ++c) {
          o[c] = scalar_t(leaky_relu_scaled<acc_t>(acc_t(xr[c]) + acc_t(bias[c]), slope, scale));
        }
      } else {
        for (int64_t c = 0; c < d.C; ++c) {
          o[c] = scalar_t(leaky_relu_scaled<acc_t>(acc_t(xr[c]), slope, scale));
        }
      }
    }
    return;
  }
  for (int64_t r = begin; r < end; ++r) {  // rows of one (n, c) plane
    const acc_t b = bias ? acc_t(bias[r % d.C]) : acc_t(0);
    const scalar_t* xr = x + r * d.inner;
    scalar_t* o = out + r * d.inner;
    for (int64_t j = 0; j < d.inner; ++j) {
      o[j] = scalar_t(leaky_relu_scaled<acc_t>(acc_t(xr[j]) + b, slope, scale));
    }
  }
}

template <typename scalar_t>
HROPS_TARGET_AVX2 void forward_rows_avx2(const scalar_t* x, const scalar_t* bias, scalar_t* out,
                                         const FusedBiasLeakyReluDims& d, double slope, double scale,
                                         int64_t begin, int64_t end) {
  forward_rows<scalar_t>(x, bias, out, d, slope, scale, begin, end);
}

int64_t grain_rows(int64_t row_len) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(row_len, 1));
}

at::Tensor fused_bias_leaky_relu_cpu(const at::Tensor& x_in, const c10::optional<at::Tensor>& bias,
                                     double slope, double scale) {
  check_fused_bias_leaky_relu_args(x_in, bias, "x", slope, scale);
  const at::Tensor x = fused_bias_leaky_relu_layout(x_in);
  at::Tensor out = alloc_like_layout(x);
  if (out.numel() == 0) return out;
  const FusedBiasLeakyReluDims d = fused_bias_leaky_relu_dims(x);
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                  "fused_bias_leaky_relu_cpu", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const int64_t rows = d.inner == 1 ? d.outer : d.outer * d.C;
    const int64_t len = d.inner == 1 ? d.C : d.inner;
    parallel_for(0, rows, grain_rows(len), [&](int64_t begin, int64_t end) {
      if (cpu_has_avx2_fma()) {
        forward_rows_avx2<scalar_t>(xp, bp, op, d, slope, scale, begin, end);
      } else {
        forward_rows<scalar_t>(xp, bp, op, d, slope, scale, begin, end);
      }
    });
  });
  return out;
}

// grad_x = (grad + shift[c]) * (out > 0 ? 1 : slope) * scale over one row of
// n elements of channel-constant shift; returns the row's sum of grad_x.
// Sums are kept in double: a float sum over a 256^2 plane would lose ~1e-5.
template <typename scalar_t, typename acc_t>
HROPS_INLINE double backward_row(const scalar_t* g, const scalar_t* out, scalar_t* gx, int64_t n,
                                acc_t shift, acc_t slope, acc_t scale) {
  double lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const acc_t v = leaky_relu_scaled_grad<acc_t>(acc_t(g[j + l]) + shift, acc_t(out[j + l]),
                                                    slope, scale);
      gx[j + l] = scalar_t(v);
      lanes[l] += v;
    }
  }
  double sum = 0;
  for (; j < n; ++j) {
    const acc_t v = leaky_relu_scaled_grad<acc_t>(acc_t(g[j]) + shift, acc_t(out[j]), slope, scale);
    gx[j] = scalar_t(v);
    sum += v;
  }
  for (int l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

// Planes (inner > 1): rows [begin, end) of `inner` elements; row sums go to
// row_sums[r] (reduced over N afterwards, in a fixed order).
template <typename scalar_t>
HROPS_INLINE void backward_planes(const scalar_t* g, const scalar_t* out, const scalar_t* shift,
                                  scalar_t* gx, double* row_sums,
                                  const FusedBiasLeakyReluDims& d, double slope_f, double scale_f,
                                  int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t r = begin; r < end; ++r) {
    const acc_t s = shift ? acc_t(shift[r % d.C]) : acc_t(0);
    const int64_t o = r * d.inner;
    const double sum = backward_row<scalar_t, acc_t>(g + o, out + o, gx + o, d.inner, s,
                                                    acc_t(slope_f), acc_t(scale_f));
    if (row_sums) row_sums[r] = sum;
  }
}

template <typename scalar_t>
HROPS_TARGET_AVX2 void backward_planes_avx2(const scalar_t* g, const scalar_t* out,
                                            const scalar_t* shift, scalar_t* gx,
                                            double* row_sums,
                                            const FusedBiasLeakyReluDims& d, double slope, double scale,
                                            int64_t begin, int64_t end) {
  backward_planes<scalar_t>(g, out, shift, gx, row_sums, d, slope, scale, begin, end);
}

// Rows of C (inner == 1): each task owns channels [c0, c1) over all rows, so
// its bias-gradient sums need no merging (deterministic).
template <typename scalar_t>
void backward_channels(const scalar_t* g, const scalar_t* out, const scalar_t* shift,
                       scalar_t* gx, double* bias_sums, const FusedBiasLeakyReluDims& d,
                       double slope_f, double scale_f, int64_t c0, int64_t c1) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t slope = acc_t(slope_f), scale = acc_t(scale_f);
  std::vector<double> sums(c1 - c0, 0.0);
  for (int64_t r = 0; r < d.outer; ++r) {
    const int64_t o = r * d.C;
    for (int64_t c = c0; c < c1; ++c) {
      const acc_t s = shift ? acc_t(shift[c]) : acc_t(0);
      const acc_t v = leaky_relu_scaled_grad<acc_t>(acc_t(g[o + c]) + s, acc_t(out[o + c]), slope,
                                                    scale);
      gx[o + c] = scalar_t(v);
      sums[c - c0] += v;
    }
  }
  if (bias_sums) {
    for (int64_t c = c0; c < c1; ++c) bias_sums[c] = sums[c - c0];
  }
}

std::tuple<at::Tensor, at::Tensor> fused_bias_leaky_relu_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& out_in, const c10::optional<at::Tensor>& shift,
    double slope, double scale, bool bias_grad) {
  check_fused_bias_leaky_relu_args(out_in, shift, "out", slope, scale);
  check_grad(grad_in, out_in, "out", out_in.sizes());
  const at::Tensor out = fused_bias_leaky_relu_layout(out_in);
  const at::Tensor grad = fused_bias_leaky_relu_layout_like(grad_in, out);
  const at::Tensor sh = shift.has_value() ? shift->contiguous() : at::Tensor();
  at::Tensor grad_x = alloc_like_layout(out);
  const FusedBiasLeakyReluDims d = fused_bias_leaky_relu_dims(out);
  at::Tensor grad_bias = bias_grad ? at::zeros({d.C}, out.options().dtype(at::kDouble))
                                   : at::empty({0}, out.options());
  if (out.numel() == 0) {
    return {grad_x, bias_grad ? grad_bias.to(out.scalar_type()) : grad_bias};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(),
                                  "fused_bias_leaky_relu_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* op = out.const_data_ptr<scalar_t>();
    const scalar_t* sp = sh.defined() ? sh.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* gxp = grad_x.mutable_data_ptr<scalar_t>();
    if (d.inner == 1) {
      double* bsp = bias_grad ? grad_bias.mutable_data_ptr<double>() : nullptr;
      const int64_t grain = std::max<int64_t>(16, 32768 / std::max<int64_t>(d.outer, 1));
      parallel_for(0, d.C, grain, [&](int64_t c0, int64_t c1) {
        backward_channels<scalar_t>(gp, op, sp, gxp, bsp, d, slope, scale, c0, c1);
      });
    } else {
      at::Tensor row_sums;
      double* rsp = nullptr;
      if (bias_grad) {
        row_sums = at::empty({d.outer, d.C}, out.options().dtype(at::kDouble));
        rsp = row_sums.mutable_data_ptr<double>();
      }
      parallel_for(0, d.outer * d.C, grain_rows(d.inner), [&](int64_t begin, int64_t end) {
        if (cpu_has_avx2_fma()) {
          backward_planes_avx2<scalar_t>(gp, op, sp, gxp, rsp, d, slope, scale,
                                         begin, end);
        } else {
          backward_planes<scalar_t>(gp, op, sp, gxp, rsp, d, slope, scale, begin,
                                    end);
        }
      });
      if (bias_grad) {
        double* bsp = grad_bias.mutable_data_ptr<double>();
        for (int64_t n = 0; n < d.outer; ++n) {
          for (int64_t c = 0; c < d.C; ++c) bsp[c] += rsp[n * d.C + c];
        }
      }
    }
  });
  return {grad_x, bias_grad ? grad_bias.to(out.scalar_type()) : grad_bias};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def(
      "fused_bias_leaky_relu(Tensor x, Tensor? bias, float negative_slope, float scale) -> "
      "Tensor");
  m.def(
      "_fused_bias_leaky_relu_backward(Tensor grad, Tensor out, Tensor? shift, float "
      "negative_slope, float scale, bool bias_grad) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("fused_bias_leaky_relu", &fused_bias_leaky_relu_cpu);
  m.impl("_fused_bias_leaky_relu_backward", &fused_bias_leaky_relu_backward_cpu);
}

}  // namespace hrops
