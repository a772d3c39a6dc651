// upfirdn2d on the CPU. Rank-1 (separable) kernels, such as every StyleGAN2
// blur kernel, take a row-wise fast path: for each output row, the input rows
// its vertical taps hit are combined (zero-inserted rows are skipped), then
// the combined row is zero-inserted, padded and filtered horizontally with
// unit-stride vector loops (down > 1: after splitting the row into its
// `down` phases). Other kernels use the per-output math of
// csrc/common/upfirdn2d.h, which the CUDA kernel runs too.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/upfirdn2d_shapes.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"

namespace hrops {
namespace {

// The kernel as col (kh) x row (kw) when it is rank-1 to within a few
// rounding errors of its dtype; empty vectors otherwise.
struct Separable {
  std::vector<double> col, row;
  bool ok() const { return !col.empty(); }
};

Separable factor_kernel(const at::Tensor& kernel) {
  const at::Tensor k = kernel.to(at::kDouble).contiguous();
  const double* kp = k.const_data_ptr<double>();
  const int64_t kh = k.size(0), kw = k.size(1);
  int64_t pi = 0, pj = 0;
  double peak = 0;
  for (int64_t i = 0; i < kh; ++i) {
    for (int64_t j = 0; j < kw; ++j) {
      if (std::abs(kp[i * kw + j]) > peak) peak = std::abs(kp[i * kw + j]), pi = i, pj = j;
    }
  }
  Separable s;
  if (peak == 0) return s;
  const double eps = kernel.scalar_type() == at::kDouble
                         ? std::numeric_limits<double>::epsilon()
                         : std::numeric_limits<float>::epsilon();
  std::vector<double> col(kh), row(kw);
  for (int64_t i = 0; i < kh; ++i) col[i] = kp[i * kw + pj];
  for (int64_t j = 0; j < kw; ++j) row[j] = kp[pi * kw + j] / kp[pi * kw + pj];
  for (int64_t i = 0; i < kh; ++i) {
    for (int64_t j = 0; j < kw; ++j) {
      if (std::abs(col[i] * row[j] - kp[i * kw + j]) > 8 * eps * peak) return s;
    }
  }
  s.col = std::move(col);
  s.row = std::move(row);
  return s;
}

// Scratch rows of one task, in the accumulation type. `up` has room for
// the padded row rounded up to whole phases (zero tail).
template <typename A>
struct RowBuffers {
  std::vector<A> tmp, up, phases, out;
  RowBuffers(const UpFirDn2dGeom& g, int64_t span_x)
      : tmp(g.in_w), up(span_x + g.down_x, A(0)), phases(span_x + g.down_x), out(g.out_w) {}
};

// out[o] = sum_t taps[t] * src[o + t], o < n, rounded into the output type.
// The 4-tap case (every StyleGAN2 blur) keeps the sum in registers.
template <typename A, typename T>
HROPS_INLINE void fir_row(const A* src, const A* taps, int64_t k, A* acc, T* out, int64_t n) {
  if (k == 4) {
    const A w0 = taps[0], w1 = taps[1], w2 = taps[2], w3 = taps[3];
    for (int64_t o = 0; o < n; ++o) {
      out[o] = T(w0 * src[o] + w1 * src[o + 1] + w2 * src[o + 2] + w3 * src[o + 3]);
    }
    return;
  }
  std::fill(acc, acc + n, A(0));
  for (int64_t t = 0; t < k; ++t) {
    const A w = taps[t];
    for (int64_t o = 0; o < n; ++o) acc[o] += w * src[o + t];
  }
  for (int64_t o = 0; o < n; ++o) out[o] = T(acc[o]);
}

// out[o] = sum_t taps[t] * u[o * down + t] for one padded, zero-inserted row
// u of length span (taps: the flipped kernel row).
template <typename A, typename T>
HROPS_INLINE void filter_row(const A* u, int64_t span, const A* taps, int64_t k, int64_t down,
                             A* phases, A* acc, T* out, int64_t out_len) {
  if (down == 1) {
    fir_row<A, T>(u, taps, k, acc, out, out_len);
    return;
  }
  // Phase r holds u[r], u[r + down], ...: tap t reads phase t % down at t / down.
  const int64_t plen = (span + down - 1) / down;
  if (down == 2) {
    A* even = phases;
    A* odd = phases + plen;
    for (int64_t m = 0; m < plen; ++m) {
      even[m] = u[2 * m];
      odd[m] = u[2 * m + 1];
    }
  } else {
    for (int64_t r = 0; r < down; ++r) {
      for (int64_t m = 0; m < plen; ++m) phases[r * plen + m] = u[m * down + r];
    }
  }
  std::fill(acc, acc + out_len, A(0));
  for (int64_t t = 0; t < k; ++t) {
    const A w = taps[t];
    const A* src = phases + (t % down) * plen + t / down;
    for (int64_t o = 0; o < out_len; ++o) acc[o] += w * src[o];
  }
  for (int64_t o = 0; o < out_len; ++o) out[o] = T(acc[o]);
}

template <typename scalar_t>
HROPS_INLINE void separable_planes(const scalar_t* x, scalar_t* out, const UpFirDn2dGeom& g,
                                   int64_t pad_x1, const at::opmath_type<scalar_t>* col_flip,
                                   const at::opmath_type<scalar_t>* row_flip, int64_t begin,
                                   int64_t end) {
  using A = at::opmath_type<scalar_t>;
  const int64_t span_x = g.in_w * g.up_x + g.pad_x0 + pad_x1;
  RowBuffers<A> buf(g, span_x);
  // Input columns that land inside the padded row: i*up + pad0 in [0, span).
  const int64_t i_lo = g.pad_x0 >= 0 ? 0 : (-g.pad_x0 + g.up_x - 1) / g.up_x;
  int64_t i_hi = g.in_w;
  while (i_hi > i_lo && (i_hi - 1) * g.up_x + g.pad_x0 >= span_x) --i_hi;
  i_hi = std::max(i_hi, i_lo);  // a crop wider than the input leaves no columns
  A* u = buf.up.data();
  // Without upsampling the vertical pass writes straight into the padded
  // row, whose zero margins are then never overwritten.
  const bool direct = g.up_x == 1;
  A* row = direct ? u : buf.tmp.data();
  const int64_t off = direct ? g.pad_x0 : 0;
  const int64_t j_lo = direct ? i_lo : 0, j_hi = direct ? i_hi : g.in_w;
  for (int64_t plane = begin; plane < end; ++plane) {
    const scalar_t* xp = x + plane * g.in_h * g.in_w;
    scalar_t* op = out + plane * g.out_h * g.out_w;
    for (int64_t oy = 0; oy < g.out_h; ++oy) {
      const int64_t sy = oy * g.down_y - g.pad_y0;
      std::fill(row + j_lo + off, row + j_hi + off, A(0));
      for (int64_t ky = upfirdn_first_tap(sy, g.up_y); ky < g.kh; ky += g.up_y) {
        const int64_t iy = (sy + ky) / g.up_y;
        if (iy >= g.in_h) break;
        const A w = col_flip[ky];
        const scalar_t* src = xp + iy * g.in_w;
        for (int64_t j = j_lo; j < j_hi; ++j) row[j + off] += w * A(src[j]);
      }
      if (!direct) {  // zero insertion; the zeros between samples stay from construction
        for (int64_t i = i_lo; i < i_hi; ++i) u[i * g.up_x + g.pad_x0] = row[i];
      }
      filter_row<A, scalar_t>(u, span_x, row_flip, g.kw, g.down_x, buf.phases.data(),
                              buf.out.data(), op + oy * g.out_w, g.out_w);
    }
  }
}

template <typename scalar_t>
HROPS_TARGET_AVX2 void separable_planes_avx2(const scalar_t* x, scalar_t* out,
                                             const UpFirDn2dGeom& g, int64_t pad_x1,
                                             const at::opmath_type<scalar_t>* col_flip,
                                             const at::opmath_type<scalar_t>* row_flip,
                                             int64_t begin, int64_t end) {
  separable_planes<scalar_t>(x, out, g, pad_x1, col_flip, row_flip, begin, end);
}

template <typename scalar_t>
void general_planes(const scalar_t* x, scalar_t* out, const UpFirDn2dGeom& g,
                    const at::opmath_type<scalar_t>* kernel, int64_t begin, int64_t end) {
  using A = at::opmath_type<scalar_t>;
  for (int64_t plane = begin; plane < end; ++plane) {
    const scalar_t* xp = x + plane * g.in_h * g.in_w;
    scalar_t* op = out + plane * g.out_h * g.out_w;
    for (int64_t oy = 0; oy < g.out_h; ++oy) {
      for (int64_t ox = 0; ox < g.out_w; ++ox) {
        op[oy * g.out_w + ox] = scalar_t(upfirdn2d_point<A>(xp, g.in_w, 1, kernel, g, oy, ox));
      }
    }
  }
}

at::Tensor upfirdn2d_cpu(const at::Tensor& x_in, const at::Tensor& kernel, int64_t up_x,
                         int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0,
                         int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
  const UpFirDn2dGeom g = upfirdn2d_geometry(x_in, kernel, up_x, up_y, down_x, down_y, pad_x0,
                                             pad_x1, pad_y0, pad_y1);
  const int64_t N = x_in.size(0), C = x_in.size(1);
  at::Tensor out = empty_output({N, C, g.out_h, g.out_w}, x_in.options());
  if (out.numel() == 0) return out;
  const at::Tensor x = x_in.contiguous();
  const Separable sep = factor_kernel(kernel);
  const int64_t planes = N * C;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(g.out_h * g.out_w, 1));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upfirdn2d_cpu", [&] {
    using A = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    if (sep.ok()) {
      std::vector<A> col_flip(g.kh), row_flip(g.kw);  // tap t uses kernel[k - 1 - t]
      for (int64_t t = 0; t < g.kh; ++t) col_flip[t] = A(sep.col[g.kh - 1 - t]);
      for (int64_t t = 0; t < g.kw; ++t) row_flip[t] = A(sep.row[g.kw - 1 - t]);
      at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
        if (cpu_has_avx2_fma()) {
          separable_planes_avx2<scalar_t>(xp, op, g, pad_x1, col_flip.data(), row_flip.data(),
                                          begin, end);
        } else {
          separable_planes<scalar_t>(xp, op, g, pad_x1, col_flip.data(), row_flip.data(), begin,
                                     end);
        }
      });
    } else {
      const at::Tensor k = kernel.to(c10::CppTypeToScalarType<A>::value).contiguous();
      const A* kp = k.const_data_ptr<A>();
      at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
        general_planes<scalar_t>(xp, op, g, kp, begin, end);
      });
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) { m.impl("upfirdn2d", &upfirdn2d_cpu); }

}  // namespace hrops
