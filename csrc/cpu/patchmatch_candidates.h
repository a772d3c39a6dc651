// Per-candidate kernels of the PatchMatch CPU ops (patchmatch_step_cpu.cpp,
// patchmatch_warp_cpu.cpp): the candidates' targets in a pixel block, and
// the vector math on their rows (scores, softmax, top-k, weighted sums,
// scatters) in two ISAs. Ops = GenericOps<A> (any CPU, float or double) or
// Avx2Ops (float): the op files instantiate their block loops for each and
// pick one at run time. Per-candidate math: csrc/common/patchmatch.h. The
// AVX2 path scores 8 candidates at once and ranks them with vector compares
// (the header's ranks exactly; scores differ from the baseline path's by
// rounding only).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/patchmatch_shapes.h"
#include "cpu/isa.h"
#include "cpu/patchmatch_rows.h"
#include "cpu/plane_tiles.h"
#include "cpu/simd.h"

#if HROPS_X86
#include <immintrin.h>
#endif

namespace hrops::patchmatch_cpu {

constexpr int kGroup = 8;  // candidates scored together
constexpr int kPadded = kPatchMatchMaxCandidates + kGroup;

// out[c] = sum_j w[j] * v[j][c] for c < NC, the sums in registers
// (accumulating in memory would chain every candidate's add through a store
// and a reload).
template <int NC, typename A>
HROPS_INLINE void weighted_sum_fixed(const A* const* v, int64_t c0, const A* w, int K, A* out) {
  A acc[NC];
  for (int q = 0; q < NC; ++q) acc[q] = 0;
  for (int j = 0; j < K; ++j) {
    for (int q = 0; q < NC; ++q) acc[q] += w[j] * v[j][c0 + q];
  }
  for (int q = 0; q < NC; ++q) out[c0 + q] = acc[q];
}

// out[c] = sum_j w[j] * v[j][c] for c < C, 8 channels at a time.
template <typename A>
HROPS_INLINE void weighted_sum(const A* const* v, const A* w, int K, int64_t C, A* out) {
  int64_t c0 = 0;
  for (; c0 + 8 <= C; c0 += 8) weighted_sum_fixed<8>(v, c0, w, K, out);
  switch (C - c0) {
    case 1: return weighted_sum_fixed<1>(v, c0, w, K, out);
    case 2: return weighted_sum_fixed<2>(v, c0, w, K, out);
    case 3: return weighted_sum_fixed<3>(v, c0, w, K, out);
    case 4: return weighted_sum_fixed<4>(v, c0, w, K, out);
    case 5: return weighted_sum_fixed<5>(v, c0, w, K, out);
    case 6: return weighted_sum_fixed<6>(v, c0, w, K, out);
    case 7: return weighted_sum_fixed<7>(v, c0, w, K, out);
    default: return;
  }
}

template <typename A>
struct GenericBase {
  static constexpr bool kAvx2 = false;  // the layout transposes' register blocks
  static void dots(const A* a, const A* const* bt, int M, int64_t C, A scale, A* out) {
    for (int m = 0; m < M; ++m) out[m] = dot_inline(a, bt[m], C) * scale;
  }
  // dots() for the warp's few reference channels.
  static void small_dots(const A* a, const A* const* bt, int M, int64_t C, A* out) {
    dots(a, bt, M, C, A(1), out);
  }
  static void weighted_sum(const A* const* v, const A* w, int K, int64_t C, A* out) {
    patchmatch_cpu::weighted_sum(v, w, K, C, out);
  }
  static void axpy(A s, const A* x, A* y, int64_t C) {
    for (int64_t c = 0; c < C; ++c) y[c] += s * x[c];
  }
  static void store_row(const A* src, A* dst, int64_t count) { std::copy(src, src + count, dst); }
  static void store_fence() {}
  static bool block_to_planes(const A*, A*, int64_t, int64_t) { return false; }
};

template <typename A>
struct GenericOps : GenericBase<A> {
  static void softmax(const A* cost, int M, A* prob) {
    A mx = cost[0];
    for (int m = 1; m < M; ++m) mx = cost[m] > mx ? cost[m] : mx;
    A sum = 0;
    for (int m = 0; m < M; ++m) sum += (prob[m] = std::exp(cost[m] - mx));
    for (int m = 0; m < M; ++m) prob[m] /= sum;
  }
};

template <>
struct GenericOps<float> : GenericBase<float> {
  static void softmax(const float* cost, int M, float* prob) { pm_softmax(cost, M, prob); }
  static void topk(const float* prob, int M, int k, int* top) { pm_topk(prob, M, k, top); }
};

#if HROPS_X86
// Eight dot products at once: each candidate accumulates 8 lanes (the lanes
// of dot_inline), and the eight accumulators are reduced together by a
// transposing horizontal-add tree, in dot_inline's order.
HROPS_TARGET_AVX2 HROPS_INLINE __m256 dots8_avx2(const float* a, const float* const* bt,
                                                 int64_t C) {
  __m256 acc[kGroup];
  for (int j = 0; j < kGroup; ++j) acc[j] = _mm256_setzero_ps();
  int64_t q = 0;
  for (; q + 8 <= C; q += 8) {
    const __m256 av = _mm256_loadu_ps(a + q);
    for (int j = 0; j < kGroup; ++j) {
      acc[j] = _mm256_fmadd_ps(av, _mm256_loadu_ps(bt[j] + q), acc[j]);
    }
  }
  const __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
  const __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
  __m256 s = _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20),
                           _mm256_permute2f128_ps(h0, h1, 0x31));
  if (C % 8 != 0) {
    alignas(32) float t[kGroup];
    _mm256_store_ps(t, s);
    for (int j = 0; j < kGroup; ++j) {
      for (int64_t i = q; i < C; ++i) t[j] += a[i] * bt[j][i];
    }
    s = _mm256_load_ps(t);
  }
  return s;
}

// dots8_avx2 for C = 4: the eight 4-vectors are transposed in registers
// (candidates j and j + 4 share a register), so four FMAs score all eight.
HROPS_TARGET_AVX2 HROPS_INLINE __m256 dots8_c4_avx2(const float* a, const float* const* bt) {
  __m256 r[4];
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(bt[j])),
                                _mm_loadu_ps(bt[j + 4]), 1);
  }
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 s = _mm256_mul_ps(_mm256_set1_ps(a[0]), _mm256_shuffle_ps(t0, t2, 0x44));
  s = _mm256_fmadd_ps(_mm256_set1_ps(a[1]), _mm256_shuffle_ps(t0, t2, 0xee), s);
  s = _mm256_fmadd_ps(_mm256_set1_ps(a[2]), _mm256_shuffle_ps(t1, t3, 0x44), s);
  return _mm256_fmadd_ps(_mm256_set1_ps(a[3]), _mm256_shuffle_ps(t1, t3, 0xee), s);
}

struct Avx2Ops {
  static constexpr bool kAvx2 = true;
  HROPS_TARGET_AVX2 static void dots(const float* a, const float* const* bt, int M, int64_t C,
                                     float scale, float* out) {
    for (int m = 0; m < M; m += kGroup) {
      _mm256_storeu_ps(out + m, _mm256_mul_ps(dots8_avx2(a, bt + m, C), _mm256_set1_ps(scale)));
    }
  }
  HROPS_TARGET_AVX2 static void small_dots(const float* a, const float* const* bt, int M,
                                           int64_t C, float* out) {
    if (C != 4) return dots(a, bt, M, C, 1.0f, out);
    for (int m = 0; m < M; m += kGroup) _mm256_storeu_ps(out + m, dots8_c4_avx2(a, bt + m));
  }
  HROPS_TARGET_AVX2 static void softmax(const float* cost, int M, float* prob) {
    pm_softmax(cost, M, prob);
  }
  // Two accumulators per 8 channels (even and odd candidates) halve the
  // dependency chain.
  HROPS_TARGET_AVX2 static void weighted_sum(const float* const* v, const float* w, int K,
                                             int64_t C, float* out) {
    int64_t c0 = 0;
    for (; c0 + 8 <= C; c0 += 8) {
      __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
      int j = 0;
      for (; j + 2 <= K; j += 2) {
        even = _mm256_fmadd_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(v[j] + c0), even);
        odd = _mm256_fmadd_ps(_mm256_set1_ps(w[j + 1]), _mm256_loadu_ps(v[j + 1] + c0), odd);
      }
      if (j < K) even = _mm256_fmadd_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(v[j] + c0), even);
      _mm256_storeu_ps(out + c0, _mm256_add_ps(even, odd));
    }
    for (; c0 + 4 <= C; c0 += 4) {  // a warp's padded reference channels
      __m128 even = _mm_setzero_ps(), odd = _mm_setzero_ps();
      int j = 0;
      for (; j + 2 <= K; j += 2) {
        even = _mm_fmadd_ps(_mm_set1_ps(w[j]), _mm_loadu_ps(v[j] + c0), even);
        odd = _mm_fmadd_ps(_mm_set1_ps(w[j + 1]), _mm_loadu_ps(v[j + 1] + c0), odd);
      }
      if (j < K) even = _mm_fmadd_ps(_mm_set1_ps(w[j]), _mm_loadu_ps(v[j] + c0), even);
      _mm_storeu_ps(out + c0, _mm_add_ps(even, odd));
    }
    if (c0 < C) {
      const float* tail[kPatchMatchMaxCandidates];
      for (int j = 0; j < K; ++j) tail[j] = v[j] + c0;
      patchmatch_cpu::weighted_sum(tail, w, K, C - c0, out + c0);  // fewer than 8 channels
    }
  }
  // A block's row of an output plane: whole aligned rows bypass the cache.
  // The step's output planes are HW apart, often in one cache set, and
  // written once: ordinary stores would read every line in first (and
  // evict each other).
  HROPS_TARGET_AVX2 static void store_row(const float* src, float* dst, int64_t count) {
    if (count == kBlock && reinterpret_cast<uintptr_t>(dst) % 32 == 0) {
      for (int64_t i = 0; i < kBlock; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
    } else {
      std::copy(src, src + count, dst);
    }
  }
  HROPS_TARGET_AVX2 static void store_fence() { _mm_sfence(); }
  // A whole block's rows to planes with streaming stores, where possible.
  HROPS_TARGET_AVX2 static bool block_to_planes(const float* rows, float* planes, int64_t C,
                                                int64_t P) {
    if (!streams_to_planes(C, P, planes)) return false;
    tile_to_planes_stream_avx2(rows, C, planes, C, P);
    return true;
  }
  HROPS_TARGET_AVX2 static void axpy(float s, const float* x, float* y, int64_t C) {
    int64_t c = 0;
    const __m256 sv = _mm256_set1_ps(s);
    for (; c + 8 <= C; c += 8) {
      _mm256_storeu_ps(y + c, _mm256_fmadd_ps(sv, _mm256_loadu_ps(x + c), _mm256_loadu_ps(y + c)));
    }
    for (; c + 4 <= C; c += 4) {
      _mm_storeu_ps(y + c, _mm_fmadd_ps(_mm256_castps256_ps128(sv), _mm_loadu_ps(x + c),
                                        _mm_loadu_ps(y + c)));
    }
    for (; c < C; ++c) y[c] += s * x[c];
  }
  // pm_topk's ranks, 8 candidates per vector: candidate i precedes m if its
  // key is greater, or equal with i < m (key >= key_m, i.e. > key_m - 1).
  HROPS_TARGET_AVX2 static void topk(const float* prob, int M, int k, int* top) {
    alignas(32) int32_t key[kPadded];
    alignas(32) int32_t rank[kPadded];
    for (int m = 0; m < M; ++m) key[m] = pm_prob_key(prob[m]);
    for (int m = M; m < kPadded; ++m) key[m] = -1;  // padding precedes nothing
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i one = _mm256_set1_epi32(1);
    for (int g = 0; g < M; g += kGroup) {
      const __m256i km = _mm256_load_si256(reinterpret_cast<const __m256i*>(key + g));
      const __m256i km1 = _mm256_sub_epi32(km, one);
      __m256i cnt = _mm256_setzero_si256();
      for (int i = 0; i < g; ++i) {
        cnt = _mm256_sub_epi32(cnt, _mm256_cmpgt_epi32(_mm256_set1_epi32(key[i]), km1));
      }
      for (int i = 0; i < kGroup; ++i) {
        const __m256i before = _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(i));  // i < m
        const __m256i thr = _mm256_blendv_epi8(km, km1, before);
        cnt = _mm256_sub_epi32(cnt, _mm256_cmpgt_epi32(_mm256_set1_epi32(key[g + i]), thr));
      }
      for (int i = g + kGroup; i < M; ++i) {
        cnt = _mm256_sub_epi32(cnt, _mm256_cmpgt_epi32(_mm256_set1_epi32(key[i]), km));
      }
      _mm256_store_si256(reinterpret_cast<__m256i*>(rank + g), cnt);
    }
    int slot[kPatchMatchMaxCandidates + 1];  // slot k collects the rest
    for (int m = 0; m < M; ++m) slot[std::min(rank[m], k)] = m;
    for (int i = 0; i < k; ++i) top[i] = slot[i];
  }
};
#endif

// Pads a candidate pointer list to a multiple of kGroup with its first entry.
template <typename A>
HROPS_INLINE void pad_candidates(const A** bt, int M) {
  for (int m = M; m % kGroup != 0; ++m) bt[m] = bt[0];
}

// Targets (row, col) of candidates [m0, m0 + K) at the block's pixels: the
// candidates' offsets are those of pixel src[i] of the 2 x K offset planes `on`
// (inside[i] false: zero offsets). The rounding case is a vectorised loop
// over the block's pixels through the header's per-coordinate math.
HROPS_INLINE void block_targets(const PmDims& d, bool trunc, const Block& blk, const float* on,
                                int64_t K, const int64_t* src, const bool* inside, int m0,
                                int32_t (*trow)[kBlock], int32_t (*tcol)[kBlock]) {
  const int64_t HW = d.H * d.W;
  float rf[kBlock], cf[kBlock], dr[kBlock], dc[kBlock];
  for (int64_t i = 0; i < blk.count; ++i) {
    rf[i] = float((blk.p0 + i) / d.W);
    cf[i] = float((blk.p0 + i) % d.W);
  }
  const float hb1 = float(d.Hb - 1), wb1 = float(d.Wb - 1);
  constexpr int64_t kAhead = 4;  // planes; see kBlock on why not further
  for (int64_t j = 0; j < K; ++j) {
    if (j + kAhead < K) {
      for (int64_t i = 0; i < blk.count; i += 16) {
        __builtin_prefetch(on + (j + kAhead) * HW + src[i]);
        __builtin_prefetch(on + (K + j + kAhead) * HW + src[i]);
      }
    }
    for (int64_t i = 0; i < blk.count; ++i) {
      dr[i] = inside[i] ? on[j * HW + src[i]] : 0.0f;
      dc[i] = inside[i] ? on[(K + j) * HW + src[i]] : 0.0f;
    }
    int32_t* rows = trow[m0 + j];
    int32_t* cols = tcol[m0 + j];
    if (!trunc) {
#pragma omp simd
      for (int64_t i = 0; i < blk.count; ++i) {
        rows[i] = pm_round_coord(pm_clamped_coord(rf[i], dr[i], hb1));
        cols[i] = pm_round_coord(pm_clamped_coord(cf[i], dc[i], wb1));
      }
    } else {
      for (int64_t i = 0; i < blk.count; ++i) {
        int64_t row, col;
        pm_target_rc(int64_t(rf[i]), int64_t(cf[i]), dr[i], dc[i], d.Hb, d.Wb, true, row, col);
        rows[i] = int32_t(row);
        cols[i] = int32_t(col);
      }
    }
  }
}

}  // namespace hrops::patchmatch_cpu
