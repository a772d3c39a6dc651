// Layout changes between planes (NCHW) and pixel rows (channels-last), by
// 8x8 blocks in AVX2 registers, shared by the CPU kernels that read or write
// one layout while walking the other (gates, PatchMatch).
#pragma once
#include <cstdint>
#include <type_traits>

#include "cpu/isa.h"

#if HROPS_X86
#include <immintrin.h>
#endif

namespace hrops {

constexpr int64_t kPlaneTile = 64;  // pixels per transposed tile

#if HROPS_X86

// Rows [0, 8) x columns [0, 8) of src (row stride ls) into dst transposed
// (row stride ld).
HROPS_TARGET_AVX2 inline void transpose8x8_avx2(const float* src, int64_t ls, float* dst,
                                               int64_t ld) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ls);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ld, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ld, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

// kPlaneTile rows (C channels of L) -> the rows of C planes (P apart,
// 32-byte aligned; C % 8 == 0), through a small buffer, so that the planes'
// rows leave in whole lines that bypass the cache (written-once outputs).
// The caller fences (_mm_sfence) before the planes are read.
HROPS_TARGET_AVX2 inline void tile_to_planes_stream_avx2(const float* rows, int64_t L,
                                                         float* planes, int64_t C, int64_t P) {
  alignas(32) float buf[8][kPlaneTile];
  for (int64_t ch = 0; ch < C; ch += 8) {
    for (int64_t q = 0; q < kPlaneTile; q += 8) {
      transpose8x8_avx2(rows + q * L + ch, L, &buf[0][q], kPlaneTile);
    }
    for (int64_t c = 0; c < 8; ++c) {
      float* row = planes + (ch + c) * P;
      for (int64_t q = 0; q < kPlaneTile; q += 8) {
        _mm256_stream_ps(row + q, _mm256_load_ps(&buf[c][q]));
      }
    }
  }
}

// Whether tile_to_planes_stream_avx2 takes a tile of C channels at planes.
inline bool streams_to_planes(int64_t C, int64_t P, const float* planes) {
  return C % 8 == 0 && P % 8 == 0 && reinterpret_cast<uintptr_t>(planes) % 32 == 0;
}
#endif

// transpose8x8_avx2 element by element, for any type (the fixed-size loops
// unroll).
template <typename T>
HROPS_INLINE void transpose8x8(const T* src, int64_t ls, T* dst, int64_t ld) {
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) dst[j * ld + i] = src[i * ls + j];
  }
}

// The whole 8x8 blocks [0, rv) x [0, cv) of transpose_block.
template <bool kAvx2, typename T>
HROPS_INLINE void transpose_blocks8(const T* src, int64_t ls, T* dst, int64_t ld, int64_t rv,
                                    int64_t cv, bool src_rows_outer) {
  auto block = [&](int64_t r, int64_t c) HROPS_INLINE_LAMBDA {
#if HROPS_X86
    if constexpr (kAvx2) return transpose8x8_avx2(src + r * ls + c, ls, dst + c * ld + r, ld);
#endif
    transpose8x8(src + r * ls + c, ls, dst + c * ld + r, ld);
  };
  if (src_rows_outer) {
    for (int64_t r = 0; r < rv; r += 8) {
      for (int64_t c = 0; c < cv; c += 8) block(r, c);
    }
  } else {
    for (int64_t c = 0; c < cv; c += 8) {
      for (int64_t r = 0; r < rv; r += 8) block(r, c);
    }
  }
}

// dst[c * ld + r] = src[r * ls + c * sc] for r < rows, c < cols: whole 8x8
// blocks in AVX2 registers where they fit (float, unit column stride,
// avx2), else (unit column stride, scalar_blocks) by transpose8x8; the rest
// element by element. src_rows_outer: the loops run over src's rows outside
// (else over dst's). Put the planar side's rows (planes HW apart, often in
// one cache set) outside, so that a plane's lines are used up before the
// other planes evict them. Inlined: in a HROPS_TARGET_AVX2 caller the 8x8
// transposes inline too.
template <typename T>
HROPS_INLINE void transpose_block(const T* src, int64_t ls, int64_t sc, T* dst, int64_t ld,
                                  int64_t rows, int64_t cols, [[maybe_unused]] bool avx2,
                                  bool src_rows_outer = true, bool scalar_blocks = false) {
  const int64_t rv = rows / 8 * 8, cv = cols / 8 * 8;  // the whole blocks
  bool blocked = false;
#if HROPS_X86
  if constexpr (std::is_same_v<T, float>) {
    if (avx2 && sc == 1) {
      transpose_blocks8<true>(src, ls, dst, ld, rv, cv, src_rows_outer);
      blocked = true;
    }
  }
#endif
  if (!blocked && scalar_blocks && sc == 1) {
    transpose_blocks8<false>(src, ls, dst, ld, rv, cv, src_rows_outer);
    blocked = true;
  }
  const int64_t rb = blocked ? rv : 0, cb = blocked ? cv : 0;  // done: [0, rb) x [0, cb)
  if (src_rows_outer) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = r < rb ? cb : 0; c < cols; ++c) dst[c * ld + r] = src[r * ls + c * sc];
    }
  } else {
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t r = c < cb ? rb : 0; r < rows; ++r) dst[c * ld + r] = src[r * ls + c * sc];
    }
  }
}

}  // namespace hrops
