// Depthwise k x k correlation kernels (zero padding, stride 1) for the
// modulated depthwise-separable conv CPU kernels.
//
// The input rows a tile needs are first copied, zero-padded and converted to
// the accumulation type, into a small buffer; every output vector then
// accumulates all k*k taps in registers (k = 3 is unrolled) before one store.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/isa.h"
#include "cpu/simd.h"

namespace hrops {

// Copies rows [r_begin, r_end) of an H x W plane (row r of the buffer holds
// plane row r_begin + r; rows outside [0, H) are zero) into a buffer of row
// stride W + 2p: buffer column c holds plane column c - p, zero outside the
// plane. p < 0 crops -p columns on each side (the input gradient of a
// convolution padded by more than k - 1 correlates a cropped gradient).
//
// next_plane (optional): the plane the caller reads next. Its same rows are
// prefetched one row per copied row: the kernels visit one short band of
// rows per channel, too short for the hardware prefetcher to ramp up, and
// spreading the requests keeps the fill buffers from stalling.
template <typename A, typename T>
inline void pad_rows(A* buf, const T* plane, int64_t H, int64_t W, int64_t r_begin, int64_t r_end,
                     int64_t p, const T* next_plane = nullptr) {
  const int64_t Wp = W + 2 * p;
  const int64_t c_lo = std::max<int64_t>(p, 0), c_hi = std::min(Wp, p + W);
  for (int64_t r = r_begin; r < r_end; ++r) {
    A* dst = buf + (r - r_begin) * Wp;
    if (r < 0 || r >= H) {
      std::fill(dst, dst + Wp, A(0));
      continue;
    }
    if (next_plane != nullptr) prefetch_bytes(next_plane + r * W, W * int64_t(sizeof(T)));
    std::fill(dst, dst + c_lo, A(0));
    std::fill(dst + c_hi, dst + Wp, A(0));
    const T* src = plane + r * W - p;
    for (int64_t c = c_lo; c < c_hi; ++c) dst[c] = static_cast<A>(src[c]);
  }
}

// out[r][c] = sum_{kh,kw} w[kh*k+kw] * buf[r+kh][c+kw] for r < rows, c < Wo,
// with buf of row stride ld (a padded buffer from pad_rows) and out of row
// stride Wo. Declared for float and double in dw_stencil.cpp.
void correlate_rows(float* out, const float* buf, int64_t ld, int64_t rows, int64_t Wo,
                    const float* w, int64_t k);
void correlate_rows(double* out, const double* buf, int64_t ld, int64_t rows, int64_t Wo,
                    const double* w, int64_t k);

// Rows [r0, r1) of the 3x3 correlation of an H x W fp32 plane with zero
// padding 1 (output H x W) straight from the plane, no padded copy: out row
// r - r0 at out + (r - r0) * W. For the forward's fused tile, whose input
// rows were prefetched into L2 while the tile before it computed.
void correlate3_same_rows(float* out, const float* plane, int64_t H, int64_t W, int64_t r0,
                          int64_t r1, const float* w);

// correlate3_same_rows over a window of the plane held elsewhere: `window`
// holds plane rows from `first` on (row stride W), and output rows [r0, r1)
// read plane rows [r0 - 1, r1] (those outside [0, H) read as zero), which
// the window must hold. The backward computes input-gradient rows from a
// band of output-gradient rows this way. stream: write whole aligned vectors
// with non-temporal stores (the caller fences).
void correlate3_window_rows(float* out, const float* window, int64_t first, int64_t H, int64_t W,
                            int64_t r0, int64_t r1, const float* w, bool stream);

// The weight gradient of correlate3_same_rows over rows [r0, r1):
// gw[kh*3+kw] += sum_{r,c} g[r - r0][c] * plane[r - 1 + kh][c - 1 + kw]
// (zero outside the plane), g of row stride W; straight from the plane, on
// AVX-512 CPUs. Returns false (and does nothing) on others: the caller takes
// correlate_rows_weight_grad.
bool correlate3_same_weight_grad(float* gw, const float* g, const float* plane, int64_t H,
                                 int64_t W, int64_t r0, int64_t r1);

// gw[kh*k+kw] += sum_{r,c} g[r][c] * buf[r+kh][c+kw] (the weight gradient of
// correlate_rows), g of row stride Wo.
void correlate_rows_weight_grad(float* gw, const float* g, const float* buf, int64_t ld,
                                int64_t rows, int64_t Wo, int64_t k);
void correlate_rows_weight_grad(double* gw, const double* g, const double* buf, int64_t ld,
                                int64_t rows, int64_t Wo, int64_t k);

// sum_q a[q] * b[q] (runtime AVX2 dispatch).
float dot(const float* a, const float* b, int64_t n);
double dot(const double* a, const double* b, int64_t n);

}  // namespace hrops
