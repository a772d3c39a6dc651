// upfirdn2d on the CPU. Rank-1 (separable) kernels, such as every StyleGAN2
// blur kernel, take a row-wise fast path: for each output row, the input rows
// its vertical taps hit are combined (zero-inserted rows are skipped) into one
// row in L1, which is then filtered horizontally with unit-stride vector
// loops: by output phase when upsampling (only the taps that hit samples),
// computing only the kept outputs when downsampling. Large outputs are
// written with streaming stores and the input is prefetched in software
// (both memory-bound). Other kernels use the per-output math of
// csrc/common/upfirdn2d.h, which the CUDA kernel runs too.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "cpu/parallel.h"
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/upfirdn2d_shapes.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"
#include "cpu/stream_store.h"

namespace hrops {
namespace {

// The kernel as col (kh) x row (kw) when it is finite and rank-1 to within
// a few rounding errors of its dtype; empty vectors otherwise (a NaN or inf
// tap would slip through the rank test, which compares with >).
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
  Separable s;
  for (int64_t i = 0; i < kh; ++i) {
    for (int64_t j = 0; j < kw; ++j) {
      if (!std::isfinite(kp[i * kw + j])) return s;
      if (std::abs(kp[i * kw + j]) > peak) peak = std::abs(kp[i * kw + j]), pi = i, pj = j;
    }
  }
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

// Scratch rows of one task, in the accumulation type. `padded` holds the
// vertical pass's row r (in_w samples) between zero margins wide enough for
// every pad, tap and phase, so the horizontal passes read r[j] for j < 0 or
// j >= in_w as padding zeros without bounds checks. `up` and `phases` serve
// the zero-insertion path (up and down both > 1) and down > 2; `staged`
// holds an output row on its way to streaming stores.
template <typename A>
struct RowBuffers {
  int64_t margin;
  std::vector<A> padded, up, phases, out, staged;
  RowBuffers(const UpFirDn2dGeom& g, int64_t pad_x1, int64_t span_x)
      : margin(std::max<int64_t>({g.pad_x0, pad_x1, 0}) + g.kw + g.down_x + 8),
        padded(g.in_w + 2 * margin, A(0)),
        up(span_x + g.down_x, A(0)),
        phases(span_x + g.down_x),
        out(g.out_w),
        staged(g.out_w) {}
  A* row() { return padded.data() + margin; }
};

// dst[j] = sum_i w[i] * src[i][j], j < n: the vertical taps of one output
// row in one pass for up to 4 taps (StyleGAN2's blur: 2 when upsampling, 4
// otherwise), summed in tap order.
template <typename A, typename T>
HROPS_INLINE void combine_rows(const T* const* src, const A* w, int64_t taps, A* dst, int64_t n) {
  if (taps == 0) {
    std::fill(dst, dst + n, A(0));
    return;
  }
  const T* s0 = src[0];
  const A w0 = w[0];
  if (taps == 1) {
    for (int64_t j = 0; j < n; ++j) dst[j] = w0 * A(s0[j]);
    return;
  }
  const T* s1 = src[1];
  const A w1 = w[1];
  if (taps == 2) {
    for (int64_t j = 0; j < n; ++j) dst[j] = w0 * A(s0[j]) + w1 * A(s1[j]);
    return;
  }
  const T* s2 = src[2];
  const A w2 = w[2];
  if (taps == 3) {
    for (int64_t j = 0; j < n; ++j) dst[j] = w0 * A(s0[j]) + w1 * A(s1[j]) + w2 * A(s2[j]);
    return;
  }
  const T* s3 = src[3];
  const A w3 = w[3];
  for (int64_t j = 0; j < n; ++j) {
    dst[j] = w0 * A(s0[j]) + w1 * A(s1[j]) + w2 * A(s2[j]) + w3 * A(s3[j]);
  }
  for (int64_t i = 4; i < taps; ++i) {
    const T* s = src[i];
    const A wi = w[i];
    for (int64_t j = 0; j < n; ++j) dst[j] += wi * A(s[j]);
  }
}

template <typename A>
HROPS_INLINE A dot(const A* src, const A* w, int64_t n) {
  A acc = A(0);
  for (int64_t j = 0; j < n; ++j) acc += w[j] * src[j];
  return acc;
}

// The horizontal taps of upsampling by `up` without downsampling, by output
// phase: output up * m + ph sums only the taps t that hit a real sample
// (ph + t - pad0 a multiple of up), tap j of the phase reading
// r[m + off[ph] + j]; the inserted zeros are never touched.
template <typename A>
struct UpPhases {
  std::vector<int64_t> off, taps;
  std::vector<std::vector<A>> w;
  UpPhases(const UpFirDn2dGeom& g, const A* row_flip) : off(g.up_x), taps(g.up_x), w(g.up_x) {
    const int64_t U = g.up_x;
    for (int64_t ph = 0; ph < U; ++ph) {
      const int64_t t0 = ((g.pad_x0 - ph) % U + U) % U;
      off[ph] = (ph + t0 - g.pad_x0) / U;  // exact
      for (int64_t t = t0; t < g.kw; t += U) w[ph].push_back(row_flip[t]);
      taps[ph] = int64_t(w[ph].size());
    }
  }
};

template <typename A, typename T>
HROPS_INLINE void up_row(const A* r, const UpPhases<A>& p, int64_t up, T* out, int64_t out_w) {
  const int64_t groups = out_w / up;
  if (up == 2 && p.taps[0] == 2 && p.taps[1] == 2) {  // StyleGAN2's 4-tap blur
    const A* e = r + p.off[0];
    const A* o = r + p.off[1];
    const A e0 = p.w[0][0], e1 = p.w[0][1], o0 = p.w[1][0], o1 = p.w[1][1];
    for (int64_t m = 0; m < groups; ++m) {
      out[2 * m] = T(e0 * e[m] + e1 * e[m + 1]);
      out[2 * m + 1] = T(o0 * o[m] + o1 * o[m + 1]);
    }
  } else {
    for (int64_t m = 0; m < groups; ++m) {
      for (int64_t ph = 0; ph < up; ++ph) {
        out[up * m + ph] = T(dot(r + p.off[ph] + m, p.w[ph].data(), p.taps[ph]));
      }
    }
  }
  for (int64_t ph = 0; groups * up + ph < out_w; ++ph) {
    out[groups * up + ph] = T(dot(r + p.off[ph] + groups, p.w[ph].data(), p.taps[ph]));
  }
}

// out[o] = sum_t taps[t] * src[2 * o + t], o < n (downsampling by 2).
template <typename A, typename T>
HROPS_INLINE void down2_row(const A* src, const A* taps, int64_t k, T* out, int64_t n) {
  if (k == 4) {
    const A w0 = taps[0], w1 = taps[1], w2 = taps[2], w3 = taps[3];
    for (int64_t o = 0; o < n; ++o) {
      out[o] = T(w0 * src[2 * o] + w1 * src[2 * o + 1] + w2 * src[2 * o + 2] +
                 w3 * src[2 * o + 3]);
    }
    return;
  }
  for (int64_t o = 0; o < n; ++o) out[o] = T(dot(src + 2 * o, taps, k));
}

// out[o] = sum_t taps[t] * src[o + t], o < n.
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
  for (int64_t r = 0; r < down; ++r) {
    for (int64_t m = 0; m < plen; ++m) phases[r * plen + m] = u[m * down + r];
  }
  std::fill(acc, acc + out_len, A(0));
  for (int64_t t = 0; t < k; ++t) {
    const A w = taps[t];
    const A* src = phases + (t % down) * plen + t / down;
    for (int64_t o = 0; o < out_len; ++o) acc[o] += w * src[o];
  }
  for (int64_t o = 0; o < out_len; ++o) out[o] = T(acc[o]);
}

// Software prefetch of the input, which the kernel reads in increasing
// address order a few rows at a time: keeps the next kPrefetchBytes past the
// furthest byte read so far on their way into the cache. The hardware
// prefetchers alone leave the loads waiting on memory (they stop at page
// boundaries, and one output row reads several input rows).
class InputPrefetcher {
 public:
  static constexpr int64_t kPrefetchBytes = 8192;
  InputPrefetcher(const void* begin, const void* end)
      : next_(static_cast<const char*>(begin)), end_(static_cast<const char*>(end)) {}
  HROPS_INLINE void ahead_of(const void* read_end) {
    const char* target = static_cast<const char*>(read_end) + kPrefetchBytes;
    if (target > end_) target = end_;
    for (; next_ < target; next_ += 64) __builtin_prefetch(next_, 0, 3);
  }

 private:
  const char* next_;
  const char* end_;
};

// Each output row: the vertical taps (only the input rows they hit) combine
// into one row r, which the horizontal pass filters. Without upsampling the
// horizontal pass reads r through its zero margins as the padded row; with
// upsampling and no downsampling it runs by output phase; otherwise r is
// zero-inserted into a padded row first.
template <typename scalar_t>
HROPS_INLINE void separable_planes(const scalar_t* x, scalar_t* out, const UpFirDn2dGeom& g,
                                   int64_t pad_x1, const at::opmath_type<scalar_t>* col_flip,
                                   const at::opmath_type<scalar_t>* row_flip, bool stream,
                                   int64_t begin, int64_t end) {
  using A = at::opmath_type<scalar_t>;
  const int64_t span_x = g.in_w * g.up_x + g.pad_x0 + pad_x1;
  RowBuffers<A> buf(g, pad_x1, span_x);
  A* r = buf.row();
  const UpPhases<A> phases(g, row_flip);
  std::vector<const scalar_t*> src(g.kh);
  std::vector<A> w(g.kh);
  // Zero insertion path: input columns that land inside the padded row,
  // i*up + pad0 in [0, span).
  const int64_t i_lo = g.pad_x0 >= 0 ? 0 : (-g.pad_x0 + g.up_x - 1) / g.up_x;
  int64_t i_hi = g.in_w;
  while (i_hi > i_lo && (i_hi - 1) * g.up_x + g.pad_x0 >= span_x) --i_hi;
  i_hi = std::max(i_hi, i_lo);  // a crop wider than the input leaves no columns
  InputPrefetcher pf(x + begin * g.in_h * g.in_w, x + end * g.in_h * g.in_w);
  StreamWriter<scalar_t> writer(out + begin * g.out_h * g.out_w);  // used if stream
  for (int64_t plane = begin; plane < end; ++plane) {
    const scalar_t* xp = x + plane * g.in_h * g.in_w;
    scalar_t* op = out + plane * g.out_h * g.out_w;
    for (int64_t oy = 0; oy < g.out_h; ++oy) {
      const int64_t sy = oy * g.down_y - g.pad_y0;
      int64_t taps = 0;
      for (int64_t ky = upfirdn_first_tap(sy, g.up_y); ky < g.kh; ky += g.up_y, ++taps) {
        const int64_t iy = (sy + ky) / g.up_y;
        if (iy >= g.in_h) break;
        src[taps] = xp + iy * g.in_w;
        w[taps] = col_flip[ky];
      }
      if (taps > 0) pf.ahead_of(src[taps - 1] + g.in_w);
      combine_rows<A, scalar_t>(src.data(), w.data(), taps, r, g.in_w);
      scalar_t* orow = op + oy * g.out_w;
      if constexpr (kStreamable<scalar_t>) {
        if (stream) orow = buf.staged.data();
      }
      if (g.up_x == 1) {
        const A* padded = r - g.pad_x0;  // padded[p] = r[p - pad0]
        if (g.down_x == 1) {
          fir_row<A, scalar_t>(padded, row_flip, g.kw, buf.out.data(), orow, g.out_w);
        } else if (g.down_x == 2) {
          down2_row<A, scalar_t>(padded, row_flip, g.kw, orow, g.out_w);
        } else {
          filter_row<A, scalar_t>(padded, span_x, row_flip, g.kw, g.down_x, buf.phases.data(),
                                  buf.out.data(), orow, g.out_w);
        }
      } else if (g.down_x == 1) {
        up_row<A, scalar_t>(r, phases, g.up_x, orow, g.out_w);
      } else {  // the zeros between samples stay from construction
        A* u = buf.up.data();
        for (int64_t i = i_lo; i < i_hi; ++i) u[i * g.up_x + g.pad_x0] = r[i];
        filter_row<A, scalar_t>(u, span_x, row_flip, g.kw, g.down_x, buf.phases.data(),
                                buf.out.data(), orow, g.out_w);
      }
      if constexpr (kStreamable<scalar_t>) {
        if (stream) writer.write(orow, g.out_w);
      }
    }
  }
  if constexpr (kStreamable<scalar_t>) {
    if (stream) writer.finish();
  }
}

template <typename scalar_t>
HROPS_TARGET_AVX2 void separable_planes_avx2(const scalar_t* x, scalar_t* out,
                                             const UpFirDn2dGeom& g, int64_t pad_x1,
                                             const at::opmath_type<scalar_t>* col_flip,
                                             const at::opmath_type<scalar_t>* row_flip,
                                             bool stream, int64_t begin, int64_t end) {
  separable_planes<scalar_t>(x, out, g, pad_x1, col_flip, row_flip, stream, begin, end);
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
      const bool stream = out.nbytes() >= kStreamOutputBytes;
      parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
        if (cpu_has_avx2_fma()) {
          separable_planes_avx2<scalar_t>(xp, op, g, pad_x1, col_flip.data(), row_flip.data(),
                                          stream, begin, end);
        } else {
          separable_planes<scalar_t>(xp, op, g, pad_x1, col_flip.data(), row_flip.data(),
                                     stream, begin, end);
        }
      });
    } else {
      const at::Tensor k = kernel.to(c10::CppTypeToScalarType<A>::value).contiguous();
      const A* kp = k.const_data_ptr<A>();
      parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
        general_planes<scalar_t>(xp, op, g, kp, begin, end);
      });
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def(
      "upfirdn2d(Tensor x, Tensor kernel, int up_x, int up_y, int down_x, int down_y, int "
      "pad_x0, int pad_x1, int pad_y0, int pad_y1) -> Tensor");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) { m.impl("upfirdn2d", &upfirdn2d_cpu); }

}  // namespace hrops
