// Vectorised loops of dw_stencil.h, compiled for AVX2+FMA and baseline x86-64
// (runtime dispatch, see isa.h).
#include "cpu/dw_stencil.h"

#include "cpu/isa.h"

namespace hrops {
namespace {

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

}  // namespace hrops
