// Vectorised loops of dw_stencil.h, compiled for AVX2+FMA and baseline x86-64
// (runtime dispatch, see isa.h).
#include "cpu/dw_stencil.h"

#include "cpu/isa.h"

#if HROPS_X86
#include <immintrin.h>
#endif

namespace hrops {
namespace {

// correlate3_same_rows, portable (x < 0 or >= W reads zero; null rows are zero).
template <typename A>
HROPS_INLINE void correlate3_same_row(A* o, const A* const s[3], int64_t W, const A* w) {
  for (int64_t x = 0; x < W; ++x) {
    A acc = 0;
    for (int kh = 0; kh < 3; ++kh) {
      if (s[kh] == nullptr) continue;
      if (x > 0) acc += w[kh * 3] * s[kh][x - 1];
      acc += w[kh * 3 + 1] * s[kh][x];
      if (x + 1 < W) acc += w[kh * 3 + 2] * s[kh][x + 1];
    }
    o[x] = acc;
  }
}

#if HROPS_X86
// 16 floats of row s from index `start`; zero where outside [0, W).
HROPS_TARGET_AVX512 HROPS_INLINE __m512 load_row16(const float* s, int64_t start, int64_t W) {
  if (start >= 0 && start + 16 <= W) return _mm512_loadu_ps(s + start);
  const int64_t lo = std::max<int64_t>(0, -start), hi = std::min<int64_t>(16, W - start);
  const uint32_t mask = hi > lo ? ((1u << hi) - 1) & ~((1u << lo) - 1) : 0;
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>(mask), s + start);
}

// Two output rows per pass: input rows s[0..3] (s[j] is plane row r - 1 + j)
// feed output rows r (s[0..2]) and r + 1 (s[1..3]), so each input vector is
// loaded once for both. A row outside the plane (null) is zero vectors, not
// another row times a zero weight: 0 * inf would make a NaN the reference
// does not have. Only the first vector and those reaching past W - 1 take
// masked loads. rows: 1 or 2.
// stream: full vectors at 64-byte-aligned addresses get non-temporal stores.
HROPS_TARGET_AVX512 void correlate3_same_pair_avx512(float* o, const float* const s[4],
                                                     int64_t W, const float* w, int rows,
                                                     bool stream) {
  __m512 wv[9];
  for (int k = 0; k < 9; ++k) wv[k] = _mm512_set1_ps(w[k]);
  auto vec = [&](int64_t x, bool masked) HROPS_TARGET_AVX512 {
    __m512 a[3], b[3];
    for (int j = 0; j < 4; ++j) {
      __m512 v[3];
      for (int kw = 0; kw < 3; ++kw) {
        v[kw] = s[j] == nullptr ? _mm512_setzero_ps()
                : masked        ? load_row16(s[j], x - 1 + kw, W)
                                : _mm512_loadu_ps(s[j] + x - 1 + kw);
      }
      if (j < 3) {
        const __m512 p = _mm512_fmadd_ps(wv[j * 3], v[0], _mm512_mul_ps(wv[j * 3 + 1], v[1]));
        a[j] = _mm512_fmadd_ps(wv[j * 3 + 2], v[2], p);
      }
      if (j > 0) {
        const int kh = j - 1;
        const __m512 p = _mm512_fmadd_ps(wv[kh * 3], v[0], _mm512_mul_ps(wv[kh * 3 + 1], v[1]));
        b[kh] = _mm512_fmadd_ps(wv[kh * 3 + 2], v[2], p);
      }
    }
    const __m512 ya = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), a[2]);
    const __m512 yb = _mm512_add_ps(_mm512_add_ps(b[0], b[1]), b[2]);
    const __mmask16 m = static_cast<__mmask16>((1u << std::min<int64_t>(16, W - x)) - 1);
    auto store = [&](float* dst, __m512 v) HROPS_TARGET_AVX512 {
      if (stream && m == 0xFFFF && reinterpret_cast<uintptr_t>(dst) % 64 == 0) {
        _mm512_stream_ps(dst, v);
      } else {
        _mm512_mask_storeu_ps(dst, m, v);
      }
    };
    store(o + x, ya);
    if (rows > 1) store(o + W + x, yb);
  };
  vec(0, true);
  int64_t x = 16;
  for (; x + 17 <= W; x += 16) vec(x, false);
  for (; x < W; x += 16) vec(x, true);
}

// gw[kh * 3 + kw] += sum g[r][x] * plane[r - 1 + kh][x - 1 + kw] over rows
// [r0, r1) (correlate3_same_weight_grad), the nine sums in registers. Rows
// outside the plane are zero vectors and still multiplied, as the reference
// does: an inf in g there makes the NaN that 0 * inf is.
HROPS_TARGET_AVX512 void weight_grad3_same_avx512(float* gw, const float* g, const float* plane,
                                                  int64_t H, int64_t W, int64_t r0, int64_t r1) {
  __m512 acc[9];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t r = r0; r < r1; ++r) {
    const float* gr = g + (r - r0) * W;
    const float* s[3];
    for (int kh = 0; kh < 3; ++kh) {
      const int64_t y = r - 1 + kh;
      s[kh] = y >= 0 && y < H ? plane + y * W : nullptr;
    }
    auto vec = [&](int64_t x, bool masked) HROPS_TARGET_AVX512 {
      const __m512 gv = masked ? load_row16(gr, x, W) : _mm512_loadu_ps(gr + x);
      for (int kh = 0; kh < 3; ++kh) {
        for (int kw = 0; kw < 3; ++kw) {
          const __m512 v = s[kh] == nullptr ? _mm512_setzero_ps()
                           : masked         ? load_row16(s[kh], x - 1 + kw, W)
                                            : _mm512_loadu_ps(s[kh] + x - 1 + kw);
          acc[kh * 3 + kw] = _mm512_fmadd_ps(gv, v, acc[kh * 3 + kw]);
        }
      }
    };
    vec(0, true);
    int64_t x = 16;
    for (; x + 17 <= W; x += 16) vec(x, false);
    for (; x < W; x += 16) vec(x, true);
  }
  for (int q = 0; q < 9; ++q) gw[q] += _mm512_reduce_add_ps(acc[q]);
}
#endif

template <typename A>
HROPS_INLINE void correlate3(A* out, const A* buf, int64_t ld, int64_t rows, int64_t Wo,
                             const A* w) {
  const A w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7],
          w8 = w[8];
  for (int64_t r = 0; r < rows; ++r) {
    const A* a = buf + r * ld;
    const A* b = a + ld;
    const A* c = b + ld;
    A* o = out + r * Wo;
    for (int64_t x = 0; x < Wo; ++x) {
      o[x] = w0 * a[x] + w1 * a[x + 1] + w2 * a[x + 2] + w3 * b[x] + w4 * b[x + 1] +
             w5 * b[x + 2] + w6 * c[x] + w7 * c[x + 1] + w8 * c[x + 2];
    }
  }
}

template <typename A>
HROPS_INLINE void correlate_generic(A* out, const A* buf, int64_t ld, int64_t rows, int64_t Wo,
                                    const A* w, int64_t k) {
  for (int64_t r = 0; r < rows; ++r) {
    A* o = out + r * Wo;
    std::fill(o, o + Wo, A(0));
    for (int64_t kh = 0; kh < k; ++kh) {
      const A* s = buf + (r + kh) * ld;
      for (int64_t kw = 0; kw < k; ++kw) {
        const A wv = w[kh * k + kw];
        for (int64_t x = 0; x < Wo; ++x) o[x] += wv * s[x + kw];
      }
    }
  }
}

template <typename A>
HROPS_INLINE void correlate_impl(A* out, const A* buf, int64_t ld, int64_t rows, int64_t Wo,
                                 const A* w, int64_t k) {
  if (k == 3) {
    correlate3(out, buf, ld, rows, Wo, w);
  } else {
    correlate_generic(out, buf, ld, rows, Wo, w, k);
  }
}

template <typename A>
HROPS_INLINE void weight_grad_impl(A* gw, const A* g, const A* buf, int64_t ld, int64_t rows,
                                   int64_t Wo, int64_t k) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t kh = 0; kh < k; ++kh) {
      for (int64_t kw = 0; kw < k; ++kw) {
        gw[kh * k + kw] += dot_inline(g + r * Wo, buf + (r + kh) * ld + kw, Wo);
      }
    }
  }
}

}  // namespace

// Each entry point: an AVX2+FMA build and a baseline build of the same
// inline template, chosen at run time.
#define HROPS_DISPATCHED(RET, NAME, PARAMS, ARGS, IMPL)                        \
  namespace {                                                                  \
  HROPS_TARGET_AVX2 RET NAME##_avx2 PARAMS { return IMPL ARGS; }               \
  RET NAME##_baseline PARAMS { return IMPL ARGS; }                             \
  }                                                                            \
  RET NAME PARAMS { return cpu_has_avx2_fma() ? NAME##_avx2 ARGS : NAME##_baseline ARGS; }

#define HROPS_STENCILS(A)                                                                    \
  HROPS_DISPATCHED(void, correlate_rows,                                                     \
                   (A * out, const A* buf, int64_t ld, int64_t rows, int64_t Wo, const A* w, \
                    int64_t k),                                                              \
                   (out, buf, ld, rows, Wo, w, k), correlate_impl<A>)                        \
  HROPS_DISPATCHED(void, correlate_rows_weight_grad,                                         \
                   (A * gw, const A* g, const A* buf, int64_t ld, int64_t rows, int64_t Wo,  \
                    int64_t k),                                                              \
                   (gw, g, buf, ld, rows, Wo, k), weight_grad_impl<A>)                       \
  HROPS_DISPATCHED(A, dot, (const A* a, const A* b, int64_t n), (a, b, n), dot_inline<A>)

HROPS_STENCILS(float)
HROPS_STENCILS(double)

void correlate3_same_rows(float* out, const float* plane, int64_t H, int64_t W, int64_t r0,
                          int64_t r1, const float* w) {
  correlate3_window_rows(out, plane, 0, H, W, r0, r1, w, false);
}

void correlate3_window_rows(float* out, const float* window, int64_t first, int64_t H, int64_t W,
                            int64_t r0, int64_t r1, const float* w, bool stream) {
  auto row = [&](int64_t y) { return y >= 0 && y < H ? window + (y - first) * W : nullptr; };
#if HROPS_X86
  if (cpu_has_avx512f()) {
    for (int64_t r = r0; r < r1; r += 2) {
      const float* s[4] = {row(r - 1), row(r), row(r + 1), r + 1 < r1 ? row(r + 2) : nullptr};
      correlate3_same_pair_avx512(out + (r - r0) * W, s, W, w, r + 1 < r1 ? 2 : 1, stream);
    }
    return;
  }
#endif
  for (int64_t r = r0; r < r1; ++r) {
    const float* s[3] = {row(r - 1), row(r), row(r + 1)};
    correlate3_same_row(out + (r - r0) * W, s, W, w);
  }
}

bool correlate3_same_weight_grad(float* gw, const float* g, const float* plane, int64_t H,
                                 int64_t W, int64_t r0, int64_t r1) {
#if HROPS_X86
  if (cpu_has_avx512f()) {
    weight_grad3_same_avx512(gw, g, plane, H, W, r0, r1);
    return true;
  }
#endif
  return false;
}

}  // namespace hrops
