// CoCosNet v2's PatchMatch on the CPU (SEEDS.md section 4): one propagation +
// evaluation step, and the soft warp with its backward. B is read
// channels-last so every candidate costs one contiguous C-vector read (A is
// transposed block by block); the (N, C, candidates, H, W) gathers of the
// original are never built.
// Per-candidate math (targets, exp, softmax, top-k order):
// csrc/common/patchmatch.h. The AVX2 path scores 8 candidates at once and
// ranks them with vector compares (the header's ranks exactly; scores differ
// from the baseline path's by rounding only).
#include <ATen/Dispatch.h>
#include "cpu/parallel.h"
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/patchmatch_shapes.h"
#include "cpu/dw_stencil.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"
#include "cpu/plane_tiles.h"

#if HROPS_X86
#include <immintrin.h>
#endif

namespace hrops {
namespace {

// The ISA entry points inline everything below them (the per-candidate
// kernels are target functions, which a generic template cannot inline).
#define HROPS_FLATTEN __attribute__((flatten))

constexpr int kGroup = 8;  // candidates scored together

// Blocks of up to 64 consecutive pixels of one image (four cache lines of
// a plane). A's C-vectors are transposed out of the (N, C, H, W) input into a
// small buffer (and grad_A back into it), so A never needs a channels-last
// copy. The offsets, and the step's outputs, are read and written plane by
// plane for the whole block: the planes are HW apart, all in the same L1
// set for power-of-two maps, so touching each plane once per pixel would
// evict and refetch a line for each of its 16 pixels.
constexpr int64_t kBlock = 64;
constexpr int kPadded = kPatchMatchMaxCandidates + kGroup;

HROPS_INLINE void prefetch_vector(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);
}

HROPS_INLINE void prefetch_vector_for_write(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 1);
}

// Pixels [p0, pe) of image n: (N, C, P) -> rows (N, P, L) of which the
// first C elements are the channels, or back.
template <typename A>
HROPS_INLINE void transpose_tile(const A* src, A* dst, int64_t n, int64_t C, int64_t P, int64_t L,
                                 int64_t p0, int64_t pe, bool to_last, bool avx2) {
  int64_t p = p0;
#if HROPS_X86
  if constexpr (std::is_same_v<A, float>) {
    // Planes outer: the planes are P apart, often in one cache set, so a
    // plane's line must be used up before the other planes evict it.
    const int64_t pv = avx2 && C % 8 == 0 ? p0 + (pe - p0) / 8 * 8 : p0;
    if (!to_last && pe == p0 + kPlaneTile && streams_to_planes(C, P, dst + n * C * P + p0)) {
      return tile_to_planes_stream_avx2(src + (n * P + p0) * L, L, dst + n * C * P + p0, C, P);
    }
    for (int64_t ch = 0; ch < C && pv > p0; ch += 8) {
      for (int64_t q = p0; q < pv; q += 8) {
        const int64_t planar = (n * C + ch) * P + q, last = (n * P + q) * L + ch;
        if (to_last) {
          transpose8x8_avx2(src + planar, P, dst + last, L);
        } else {
          transpose8x8_avx2(src + last, L, dst + planar, P);
        }
      }
    }
    p = pv;
  }
#endif
  for (int64_t ch = 0; ch < C; ++ch) {
    for (int64_t q = p; q < pe; ++q) {
      const int64_t planar = (n * C + ch) * P + q, last = (n * P + q) * L + ch;
      dst[to_last ? last : planar] = src[to_last ? planar : last];
    }
  }
}

#if HROPS_X86
HROPS_TARGET_AVX2 HROPS_FLATTEN void transpose_tile_avx2(const float* src, float* dst, int64_t n,
                                                         int64_t C, int64_t P, int64_t L,
                                                         int64_t p0, int64_t pe, bool to_last) {
  transpose_tile(src, dst, n, C, P, L, p0, pe, to_last, true);
}
#endif

// (N, C, P) -> rows (N, P, L) or back (see transpose_tile), in tiles of 64
// pixels: a tile's reads and writes stay in L1 (ATen's permuted copy is
// slower here). to_last with L > C zeroes the rows' other L - C elements.
template <typename A>
void transpose_planes(const A* src, A* dst, int64_t N, int64_t C, int64_t P, int64_t L,
                      bool to_last) {
  constexpr int64_t kTile = kPlaneTile;
  const int64_t tiles = (P + kTile - 1) / kTile;
  [[maybe_unused]] const bool avx2 = cpu_has_avx2_fma();
  parallel_for(0, N * tiles, 8, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / tiles, p0 = (t % tiles) * kTile, pe = std::min(P, p0 + kTile);
      if (to_last && C < 8) {  // a few planes (RGB): whole rows, zeros included
        for (int64_t q = p0; q < pe; ++q) {
          A* row = dst + (n * P + q) * L;
          for (int64_t ch = 0; ch < L; ++ch) row[ch] = ch < C ? src[(n * C + ch) * P + q] : A(0);
        }
        continue;
      }
#if HROPS_X86
      if constexpr (std::is_same_v<A, float>) {
        if (avx2) {
          transpose_tile_avx2(src, dst, n, C, P, L, p0, pe, to_last);
        } else {
          transpose_tile(src, dst, n, C, P, L, p0, pe, to_last, false);
        }
      } else
#endif
      {
        transpose_tile(src, dst, n, C, P, L, p0, pe, to_last, false);
      }
      if (to_last && L > C) {
        for (int64_t q = p0; q < pe; ++q) std::fill_n(dst + (n * P + q) * L + C, L - C, A(0));
      }
    }
#if HROPS_X86
    if (!to_last) _mm_sfence();  // after this thread's streaming stores
#endif
  });
}

// (N, C, H, W) -> contiguous rows (N, H, W, L), L >= C, in `acc` (float, or
// double for double inputs: the warp's gradients are checked in float64):
// the C channels, then zeros (padding, or room for a gradient).
at::Tensor channels_last(const at::Tensor& t, at::ScalarType acc = at::kFloat, int64_t L = -1) {
  const at::Tensor view = t.permute({0, 2, 3, 1});
  if (L < 0) L = t.size(1);
  if (L == t.size(1) && view.is_contiguous() && t.scalar_type() == acc) return view;
  const at::Tensor planar = t.to(acc).contiguous();
  at::Tensor out = empty_output({t.size(0), t.size(2), t.size(3), L}, planar.options());
  AT_DISPATCH_FLOATING_TYPES(acc, "channels_last", [&] {
    transpose_planes(planar.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                     t.size(0), t.size(1), t.size(2) * t.size(3), L, true);
  });
  return out;
}

// Elements [c0, c0 + C) of the rows of contiguous (N, H, W, L) -> contiguous
// (N, C, H, W) in `dtype`.
at::Tensor channels_first(const at::Tensor& t, at::ScalarType dtype, int64_t c0 = 0,
                          int64_t C = -1) {
  const int64_t L = t.size(3);
  if (C < 0) C = L - c0;
  at::Tensor out = empty_output({t.size(0), C, t.size(1), t.size(2)}, t.options());
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "channels_first", [&] {
    transpose_planes(t.const_data_ptr<scalar_t>() + c0, out.mutable_data_ptr<scalar_t>(),
                     t.size(0), C, t.size(1) * t.size(2), L, false);
  });
  return out.to(dtype);
}

at::ScalarType warp_acc(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

template <typename A>
HROPS_INLINE void transpose8x8(const A* src, int64_t ls, A* dst, int64_t ld) {
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) dst[j * ld + i] = src[i * ls + j];
  }
}

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
  static void transpose8(const A* src, int64_t ls, A* dst, int64_t ld) {
    transpose8x8(src, ls, dst, ld);
  }
  static void dots(const A* a, const A* const* bt, int M, int64_t C, A scale, A* out) {
    for (int m = 0; m < M; ++m) out[m] = dot_inline(a, bt[m], C) * scale;
  }
  // dots() for the warp's few reference channels.
  static void small_dots(const A* a, const A* const* bt, int M, int64_t C, A* out) {
    dots(a, bt, M, C, A(1), out);
  }
  static void weighted_sum(const A* const* v, const A* w, int K, int64_t C, A* out) {
    hrops::weighted_sum(v, w, K, C, out);
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
  HROPS_TARGET_AVX2 static void transpose8(const float* src, int64_t ls, float* dst, int64_t ld) {
    transpose8x8_avx2(src, ls, dst, ld);
  }
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
      hrops::weighted_sum(tail, w, K, C - c0, out + c0);  // fewer than 8 channels
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

struct Block {
  int64_t n, p0, count;
};

HROPS_INLINE Block pixel_block(int64_t index, int64_t HW) {
  const int64_t per_image = (HW + kBlock - 1) / kBlock;
  const int64_t n = index / per_image, p0 = (index % per_image) * kBlock;
  return Block{n, p0, std::min(kBlock, HW - p0)};
}

// buf[i * C + ch] = planar[ch * P + p0 + i] for i < count.
template <typename Ops, typename A>
HROPS_INLINE void block_to_last(const Block& blk, int64_t C, int64_t P, const A* planar, A* buf) {
  int64_t ch = 0;
  for (; blk.count == kBlock && ch + 8 <= C; ch += 8) {
    for (int64_t i = 0; i < kBlock; i += 8) {
      Ops::transpose8(planar + ch * P + blk.p0 + i, P, buf + i * C + ch, C);
    }
  }
  for (; ch < C; ++ch) {
    for (int64_t i = 0; i < blk.count; ++i) buf[i * C + ch] = planar[ch * P + blk.p0 + i];
  }
}

// planar[ch * P + p0 + i] = buf[i * C + ch] for i < count.
template <typename Ops, typename A>
HROPS_INLINE void block_to_planar(const Block& blk, int64_t C, int64_t P, const A* buf, A* planar) {
  static_assert(kBlock == kPlaneTile, "a block is one transposed tile");
  if (blk.count == kBlock && Ops::block_to_planes(buf, planar + blk.p0, C, P)) return;
  int64_t ch = 0;
  for (; blk.count == kBlock && ch + 8 <= C; ch += 8) {
    for (int64_t i = 0; i < kBlock; i += 8) {
      Ops::transpose8(buf + i * C + ch, C, planar + ch * P + blk.p0 + i, P);
    }
  }
  for (; ch < C; ++ch) {
    for (int64_t i = 0; i < blk.count; ++i) planar[ch * P + blk.p0 + i] = buf[i * C + ch];
  }
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

struct StepArgs {
  PmDims d;
  int direction, k;
  float inv_t;
  bool trunc;
  const float *a, *b, *offsets;  // a planar, b channels-last
  float *new_offsets, *probs;
  const float* random_offsets;  // (N, 2, R, H, W): random-search candidates
  int64_t R;
};

// Evaluates the pixel blocks [begin, end).
template <typename Ops>
HROPS_INLINE void step_blocks(const StepArgs& s, int64_t begin, int64_t end) {
  const PmDims& d = s.d;
  const int64_t HW = d.H * d.W, C = d.C, K = d.K, k = s.k;
  const int M = int((s.direction == 0 ? K : 3 * K) + s.R);
  alignas(32) float cost[kPadded], prob[kPadded];
  const float* bt[kPadded];
  int top[kPatchMatchMaxCandidates];
  // Per pixel of the block: targets (row, col) of every candidate, and the
  // outputs (plane-major, written out after the block).
  int32_t trow[kPatchMatchMaxCandidates][kBlock], tcol[kPatchMatchMaxCandidates][kBlock];
  std::vector<float> abuf(kBlock * C), out(kBlock * 3 * k);
  for (int64_t index = begin; index < end; ++index) {
    const Block blk = pixel_block(index, HW);
    const int64_t n = blk.n;
    block_to_last<Ops>(blk, C, HW, s.a + n * C * HW, abuf.data());
    const float* on = s.offsets + n * 2 * K * HW;
    for (int slot = 0; slot < pm_slots(s.direction); ++slot) {
      int64_t src[kBlock];
      bool inside[kBlock];
      for (int64_t i = 0; i < blk.count; ++i) {
        const int64_t p = blk.p0 + i;
        int64_t sr, sc;
        inside[i] = pm_slot_source(s.direction, slot, p / d.W, p % d.W, d.H, d.W, sr, sc);
        src[i] = inside[i] ? sr * d.W + sc : 0;
      }
      block_targets(d, s.trunc, blk, on, K, src, inside, int(slot * K), trow, tcol);
    }
    if (s.R > 0) {  // random-search candidates: each pixel's own R offsets, last
      int64_t own[kBlock];
      bool all[kBlock];
      for (int64_t i = 0; i < blk.count; ++i) {
        own[i] = blk.p0 + i;
        all[i] = true;
      }
      block_targets(d, s.trunc, blk, s.random_offsets + n * 2 * s.R * HW, s.R, own, all,
                    int(M - s.R), trow, tcol);
    }
    const float* bn = s.b + n * d.Hb * d.Wb * C;
    for (int64_t i = 0; i < blk.count; ++i) {
      const int64_t r = (blk.p0 + i) / d.W, c = (blk.p0 + i) % d.W;
      for (int m = 0; m < M; ++m) bt[m] = bn + (int64_t(trow[m][i]) * d.Wb + tcol[m][i]) * C;
      pad_candidates(bt, M);
      // The next pixel's B reads are random: prefetching them now lets
      // their cache misses overlap this pixel's work.
      if (i + 1 < blk.count) {
        for (int m = 0; m < M; ++m) {
          prefetch_vector(bn + (int64_t(trow[m][i + 1]) * d.Wb + tcol[m][i + 1]) * C,
                          C * int64_t(sizeof(float)));
        }
      }
      Ops::dots(abuf.data() + i * C, bt, M, C, s.inv_t, cost);
      Ops::softmax(cost, M, prob);
      Ops::topk(prob, M, int(k), top);
      for (int64_t t = 0; t < k; ++t) {
        out[t * kBlock + i] = float(trow[top[t]][i] - r);
        out[(k + t) * kBlock + i] = float(tcol[top[t]][i] - c);
        out[(2 * k + t) * kBlock + i] = prob[top[t]];
      }
    }
    for (int64_t t = 0; t < k; ++t) {
      Ops::store_row(out.data() + t * kBlock, s.new_offsets + ((n * 2) * k + t) * HW + blk.p0,
                     blk.count);
      Ops::store_row(out.data() + (k + t) * kBlock,
                     s.new_offsets + ((n * 2 + 1) * k + t) * HW + blk.p0, blk.count);
      Ops::store_row(out.data() + (2 * k + t) * kBlock, s.probs + (n * k + t) * HW + blk.p0,
                     blk.count);
    }
  }
  Ops::store_fence();
}

#if HROPS_X86
HROPS_TARGET_AVX2 HROPS_FLATTEN void step_blocks_avx2(const StepArgs& s, int64_t begin,
                                                      int64_t end) {
  step_blocks<Avx2Ops>(s, begin, end);
}
#endif

void step_blocks_baseline(const StepArgs& s, int64_t begin, int64_t end) {
  step_blocks<GenericOps<float>>(s, begin, end);
}

int64_t blocks(const PmDims& d) { return d.N * ((d.H * d.W + kBlock - 1) / kBlock); }

std::tuple<at::Tensor, at::Tensor> patchmatch_step_cpu(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& offsets, int64_t direction,
    double temperature, int64_t topk, bool cocosnet_truncation,
    const std::optional<at::Tensor>& random_offsets) {
  const PmDims d = check_patchmatch_args(a, b, offsets);
  const int64_t R = check_patchmatch_random_offsets(d, a, random_offsets);
  check_patchmatch_step_args(d, direction, temperature, topk, R);
  at::Tensor new_offsets = at::empty({d.N, 2, topk, d.H, d.W}, offsets.options().dtype(at::kFloat));
  at::Tensor probs = at::empty({d.N, topk, d.H, d.W}, a.options().dtype(at::kFloat));
  if (d.N * d.H * d.W == 0) {
    return {new_offsets.to(offsets.scalar_type()), probs.to(a.scalar_type())};
  }
  const at::Tensor ap = a.to(at::kFloat).contiguous(), bcl = channels_last(b);
  const at::Tensor off = offsets.to(at::kFloat).contiguous();
  const at::Tensor rnd = R > 0 ? random_offsets->to(at::kFloat).contiguous() : at::Tensor();
  const StepArgs args{d,
                      int(direction),
                      int(topk),
                      float(1.0 / temperature),
                      cocosnet_truncation,
                      ap.const_data_ptr<float>(),
                      bcl.const_data_ptr<float>(),
                      off.const_data_ptr<float>(),
                      new_offsets.mutable_data_ptr<float>(),
                      probs.mutable_data_ptr<float>(),
                      R > 0 ? rnd.const_data_ptr<float>() : nullptr,
                      R};
  [[maybe_unused]] const bool avx2 = cpu_has_avx2_fma();
  parallel_for(0, blocks(d), 32, [&](int64_t begin, int64_t end) {
#if HROPS_X86
    if (avx2) return step_blocks_avx2(args, begin, end);
#endif
    step_blocks_baseline(args, begin, end);
  });
  return {new_offsets.to(offsets.scalar_type()), probs.to(a.scalar_type())};
}

// The soft warp, in the accumulation type A; per pixel p and candidate j
// (target t, weight w_j, score s_j = <A_p, B_t> / T):
//   forward:  out_p = sum_j w_j ref_t
//   backward: dL/dw_j = <g_p, ref_t>;  dL/ds_j = w_j (dL/dw_j - sum_i w_i dL/dw_i)
//             grad_A_p = sum_j dL/ds_j B_t / T;  grad_B_t += dL/ds_j A_p / T;
//             grad_ref_t += w_j g_p.
// B and ref are gathered from rows (channels-last copies); ref's rows hold
// its Cr channels zero-padded to Cp, a multiple of 4, so an RGB candidate is
// one 16-byte vector. The forward can write the weights (N, K, H, W) for the
// backward, which then skips the scores and softmax. The kernels are
// instantiated for common feature widths (NC; 0: any C): a constant C
// unrolls the per-candidate vector loops.
template <typename A>
struct WarpArgs {
  PmDims d;
  int64_t Cr, Cp;
  A inv_t;
  bool trunc;
  const A *a, *grad;  // planar
  const A *b, *ref;   // rows of C, ldr elements
  int64_t ldr;
  const float* offsets;
  A* out;            // forward: (N, Cr, H, W)
  A* weights_out;    // forward: (N, K, H, W) or null
  const A* weights;  // backward: the forward's weights, or null (recomputed)
  A* ga;             // backward: grad_A planar
};

// Flat targets row * Wb + col of the K candidates of every pixel of the
// block. Each pixel's own offsets: the rounding case reads the offset planes
// as contiguous rows (block_targets' per-pixel source indices would make
// every load a gather).
template <typename A>
HROPS_INLINE void warp_block_targets(const WarpArgs<A>& w, const Block& blk,
                                     int32_t (*target)[kBlock]) {
  const PmDims& d = w.d;
  const int32_t Wb = int32_t(d.Wb);
  const float* on = w.offsets + blk.n * 2 * d.K * d.H * d.W + blk.p0;
  if (!w.trunc) {
    float rf[kBlock], cf[kBlock];
    for (int64_t i = 0; i < blk.count; ++i) {
      rf[i] = float((blk.p0 + i) / d.W);
      cf[i] = float((blk.p0 + i) % d.W);
    }
    const float hb1 = float(d.Hb - 1), wb1 = float(d.Wb - 1);
    for (int64_t j = 0; j < d.K; ++j) {
      const float* dr = on + j * d.H * d.W;
      const float* dc = on + (d.K + j) * d.H * d.W;
#pragma omp simd
      for (int64_t i = 0; i < blk.count; ++i) {
        target[j][i] = pm_round_coord(pm_clamped_coord(rf[i], dr[i], hb1)) * Wb +
                       pm_round_coord(pm_clamped_coord(cf[i], dc[i], wb1));
      }
    }
    return;
  }
  int64_t src[kBlock];
  bool inside[kBlock];
  for (int64_t i = 0; i < blk.count; ++i) {
    src[i] = blk.p0 + i;
    inside[i] = true;
  }
  int32_t trow[kPatchMatchMaxCandidates][kBlock], tcol[kPatchMatchMaxCandidates][kBlock];
  block_targets(d, w.trunc, blk, w.offsets + blk.n * 2 * d.K * d.H * d.W, d.K, src, inside, 0,
                trow, tcol);
  for (int64_t j = 0; j < d.K; ++j) {
#pragma omp simd
    for (int64_t i = 0; i < blk.count; ++i) target[j][i] = trow[j][i] * Wb + tcol[j][i];
  }
}

// Part i of kBlock of prefetching a block's rows [p0, p0 + kBlock) of P
// planes (HW apart) of a planar tensor. Called at every pixel of the block
// before, it spreads the next block's plane rows (each its own stream, too
// many for the hardware prefetcher) over that block's pixel loop.
template <typename T>
HROPS_INLINE void prefetch_plane_rows(const T* planes, int64_t P, int64_t HW, int64_t p0,
                                      int64_t i) {
  constexpr int64_t kLine = 64 / sizeof(T), kLines = kBlock / kLine;  // lines per row
  const int64_t lines = P * kLines;
  for (int64_t l = i * lines / kBlock; l < (i + 1) * lines / kBlock; ++l) {
    __builtin_prefetch(planes + (l / kLines) * HW + p0 + (l % kLines) * kLine);
  }
}

// The next block's planar inputs, prefetched over the current block's pixels.
template <typename A>
struct NextBlockRows {
  const A *a = nullptr, *grad = nullptr, *weights = nullptr;
  const float* offsets = nullptr;
  int64_t p0 = 0;

  NextBlockRows(const WarpArgs<A>& w, int64_t index, int64_t end, int64_t C) {
    const int64_t HW = w.d.H * w.d.W;
    if (index + 1 >= end) return;
    const Block next = pixel_block(index + 1, HW);
    if (next.count != kBlock) return;
    p0 = next.p0;
    a = w.a + next.n * C * HW;
    offsets = w.offsets + next.n * 2 * w.d.K * HW;
    if (w.grad) grad = w.grad + next.n * w.Cr * HW;
    if (w.weights) weights = w.weights + next.n * w.d.K * HW;
  }
  HROPS_INLINE void part(const WarpArgs<A>& w, int64_t C, int64_t i) const {
    if (!a) return;
    const int64_t HW = w.d.H * w.d.W;
    prefetch_plane_rows(a, C, HW, p0, i);
    prefetch_plane_rows(offsets, 2 * w.d.K, HW, p0, i);
    if (grad) prefetch_plane_rows(grad, w.Cr, HW, p0, i);
    if (weights) prefetch_plane_rows(weights, w.d.K, HW, p0, i);
  }
};

// The B rows of pixel i's candidates (padded to a whole group), after
// prefetching pixel i + 1's: their cache misses overlap this pixel's work.
template <typename A>
HROPS_INLINE void warp_b_rows(const WarpArgs<A>& w, const Block& blk, int64_t i, int64_t C,
                              const int32_t (*target)[kBlock], const A** bt) {
  const A* bn = w.b + blk.n * w.d.Hb * w.d.Wb * C;
  for (int64_t j = 0; j < w.d.K; ++j) bt[j] = bn + int64_t(target[j][i]) * C;
  pad_candidates(bt, int(w.d.K));
  if (i + 1 < blk.count) {
    for (int64_t j = 0; j < w.d.K; ++j) {
      prefetch_vector(bn + int64_t(target[j][i + 1]) * C, C * int64_t(sizeof(A)));
    }
  }
}

// The ref rows of pixel i's candidates (padded to a whole group), after
// prefetching pixel i + 1's (for_write: the backward's grad_ref follows ref
// in the same row).
template <typename A>
HROPS_INLINE void warp_ref_rows(const WarpArgs<A>& w, const Block& blk, const A* rn,
                                const int32_t (*target)[kBlock], int64_t i, const A** rt,
                                bool for_write) {
  for (int64_t j = 0; j < w.d.K; ++j) rt[j] = rn + int64_t(target[j][i]) * w.ldr;
  pad_candidates(rt, int(w.d.K));
  if (i + 1 < blk.count) {
    for (int64_t j = 0; j < w.d.K; ++j) {
      const A* next = rn + int64_t(target[j][i + 1]) * w.ldr;
      if (for_write) {
        prefetch_vector_for_write(next, w.ldr * int64_t(sizeof(A)));
      } else {
        prefetch_vector(next, w.ldr * int64_t(sizeof(A)));
      }
    }
  }
}

template <typename Ops, int NC, typename A>
HROPS_INLINE void warp_forward_blocks(const WarpArgs<A>& w, int64_t begin, int64_t end) {
  const PmDims& d = w.d;
  const int64_t HW = d.H * d.W, C = NC > 0 ? NC : d.C, Cr = w.Cr, K = d.K;
  const int64_t Kp = (K + kGroup - 1) / kGroup * kGroup;
  int32_t target[kPatchMatchMaxCandidates][kBlock];
  const A *bt[kPadded], *rt[kPadded];
  alignas(32) A prob[kPadded];
  std::vector<A> abuf(kBlock * C), obuf(w.Cp), wbuf(w.weights_out ? K * kBlock : 0);
  std::vector<A> costs(kBlock * Kp);
  for (int64_t index = begin; index < end; ++index) {
    const Block blk = pixel_block(index, HW);
    const int64_t n = blk.n;
    block_to_last<Ops>(blk, C, HW, w.a + n * C * HW, abuf.data());
    warp_block_targets(w, blk, target);
    const A* rn = w.ref + n * d.Hb * d.Wb * w.ldr;
    const NextBlockRows<A> next(w, index, end, C);
    // The scores of the whole block first: each pixel's are independent
    // loads and FMAs, so the out-of-order core overlaps pixels; scoring and
    // softmax-weighting pixel by pixel made one long dependency chain each.
    for (int64_t i = 0; i < blk.count; ++i) {
      next.part(w, C, i);
      warp_b_rows(w, blk, i, C, target, bt);
      Ops::dots(abuf.data() + i * C, bt, int(K), C, w.inv_t, costs.data() + i * Kp);
    }
    for (int64_t i = 0; i < blk.count; ++i) {
      const int64_t p = blk.p0 + i;
      Ops::softmax(costs.data() + i * Kp, int(K), prob);
      warp_ref_rows(w, blk, rn, target, i, rt, false);
      Ops::weighted_sum(rt, prob, int(K), w.Cp, obuf.data());
      for (int64_t ch = 0; ch < Cr; ++ch) w.out[(n * Cr + ch) * HW + p] = obuf[ch];
      if (w.weights_out) {
        for (int64_t j = 0; j < K; ++j) wbuf[j * kBlock + i] = prob[j];
      }
    }
    if (w.weights_out) {  // plane by plane (see kBlock)
      for (int64_t j = 0; j < K; ++j) {
        Ops::store_row(wbuf.data() + j * kBlock, w.weights_out + (n * K + j) * HW + blk.p0,
                       blk.count);
      }
    }
  }
  Ops::store_fence();
}

// Backward of the pixel blocks [begin, end); grad_B and grad_ref accumulate
// into gb, gr (rows of C, ldgr elements).
template <typename Ops, int NC, typename A>
HROPS_INLINE void warp_backward_blocks(const WarpArgs<A>& w, int64_t begin, int64_t end, A* gb,
                                       A* gr, int64_t ldgr) {
  const PmDims& d = w.d;
  const int64_t HW = d.H * d.W, HWb = d.Hb * d.Wb, C = NC > 0 ? NC : d.C, Cr = w.Cr, K = d.K;
  const int64_t Cp = w.Cp;
  int32_t target[kPatchMatchMaxCandidates][kBlock];
  const A *bt[kPadded], *rt[kPadded];
  alignas(32) A cost[kPadded], prob[kPadded], gs[kPadded];
  std::vector<A> abuf(kBlock * C), gabuf(kBlock * C), gbuf(Cp, A(0));
  std::vector<A> wbuf(w.weights ? K * kBlock : 0);
  for (int64_t index = begin; index < end; ++index) {
    const Block blk = pixel_block(index, HW);
    const int64_t n = blk.n;
    block_to_last<Ops>(blk, C, HW, w.a + n * C * HW, abuf.data());
    warp_block_targets(w, blk, target);
    if (w.weights) {  // plane by plane (see kBlock)
      for (int64_t j = 0; j < K; ++j) {
        const A* row = w.weights + (n * K + j) * HW + blk.p0;
        std::copy(row, row + blk.count, wbuf.data() + j * kBlock);
      }
    }
    const A* rn = w.ref + n * HWb * w.ldr;
    A* gbn = gb + n * HWb * C;
    A* grn = gr + n * HWb * ldgr;
    const NextBlockRows<A> next(w, index, end, C);
    for (int64_t i = 0; i < blk.count; ++i) {
      const int64_t p = blk.p0 + i;
      const A* ap = abuf.data() + i * C;
      next.part(w, C, i);
      warp_b_rows(w, blk, i, C, target, bt);
      if (w.weights) {
        for (int64_t j = 0; j < K; ++j) prob[j] = wbuf[j * kBlock + i];
      } else {
        Ops::dots(ap, bt, int(K), C, w.inv_t, cost);
        Ops::softmax(cost, int(K), prob);
      }
      A* g = gbuf.data();  // grad of the output at p (zero-padded to Cp)
      for (int64_t ch = 0; ch < Cr; ++ch) g[ch] = w.grad[(n * Cr + ch) * HW + p];
      warp_ref_rows(w, blk, rn, target, i, rt, true);
      Ops::small_dots(g, rt, int(K), Cp, gs);  // dL/dw_j
      A mean = 0;
      for (int64_t j = 0; j < K; ++j) mean += prob[j] * gs[j];
      for (int64_t j = 0; j < K; ++j) gs[j] = prob[j] * (gs[j] - mean) * w.inv_t;
      // grad_A first, then the scatters: B and grad_B may be a multiple of
      // 4 KiB apart, and interleaving loads of one with stores to the other
      // would stall on false store-forwarding (4K aliasing).
      Ops::weighted_sum(bt, gs, int(K), C, gabuf.data() + i * C);
      if (i + 1 < blk.count) {
        for (int64_t j = 0; j < K; ++j) {
          prefetch_vector_for_write(gbn + int64_t(target[j][i + 1]) * C, C * int64_t(sizeof(A)));
        }
      }
      for (int64_t j = 0; j < K; ++j) {
        Ops::axpy(gs[j], ap, gbn + int64_t(target[j][i]) * C, C);
        Ops::axpy(prob[j], g, grn + int64_t(target[j][i]) * ldgr, Cp);
      }
    }
    block_to_planar<Ops>(blk, C, HW, gabuf.data(), w.ga + n * C * HW);
  }
  Ops::store_fence();
}

#if HROPS_X86
template <int NC>
HROPS_TARGET_AVX2 HROPS_FLATTEN void warp_forward_avx2(const WarpArgs<float>& w, int64_t begin,
                                                       int64_t end) {
  warp_forward_blocks<Avx2Ops, NC>(w, begin, end);
}
template <int NC>
HROPS_TARGET_AVX2 HROPS_FLATTEN void warp_backward_avx2(const WarpArgs<float>& w, int64_t begin,
                                                        int64_t end, float* gb, float* gr,
                                                        int64_t ldgr) {
  warp_backward_blocks<Avx2Ops, NC>(w, begin, end, gb, gr, ldgr);
}
#endif

// The kernel instantiation for feature width C: a specialised NC, or 0 (any).
template <typename Kernel>
Kernel for_width(int64_t C, Kernel k32, Kernel k64, Kernel any) {
  return C == 32 ? k32 : (C == 64 ? k64 : any);
}

template <typename A>
void warp_forward(const WarpArgs<A>& w, int64_t begin, int64_t end) {
#if HROPS_X86
  if constexpr (std::is_same_v<A, float>) {
    if (cpu_has_avx2_fma()) {
      return for_width(w.d.C, &warp_forward_avx2<32>, &warp_forward_avx2<64>,
                       &warp_forward_avx2<0>)(w, begin, end);
    }
  }
#endif
  warp_forward_blocks<GenericOps<A>, 0>(w, begin, end);
}

template <typename A>
void warp_backward(const WarpArgs<A>& w, int64_t begin, int64_t end, A* gb, A* gr,
                   int64_t ldgr) {
#if HROPS_X86
  if constexpr (std::is_same_v<A, float>) {
    if (cpu_has_avx2_fma()) {
      return for_width(w.d.C, &warp_backward_avx2<32>, &warp_backward_avx2<64>,
                       &warp_backward_avx2<0>)(w, begin, end, gb, gr, ldgr);
    }
  }
#endif
  warp_backward_blocks<GenericOps<A>, 0>(w, begin, end, gb, gr, ldgr);
}

int64_t padded_ref_channels(int64_t Cr) { return (Cr + 3) / 4 * 4; }

template <typename A>
WarpArgs<A> warp_args(const PmDims& d, const at::Tensor& a, const at::Tensor& brows,
                      const at::Tensor& rrows, int64_t Cr, const at::Tensor& off,
                      double temperature, bool trunc) {
  WarpArgs<A> w{};
  w.d = d;
  w.Cr = Cr;
  w.Cp = padded_ref_channels(Cr);
  w.inv_t = A(1.0 / temperature);
  w.trunc = trunc;
  w.a = a.const_data_ptr<A>();
  w.b = brows.const_data_ptr<A>();
  w.ref = rrows.const_data_ptr<A>();
  w.ldr = rrows.size(3);
  w.offsets = off.const_data_ptr<float>();
  return w;
}

// Whether B's rows (channels_last(b)) are a copy: the forward then returns
// them for the backward; otherwise they are a view of B, and empty stands in.
bool b_rows_are_copied(const at::Tensor& b, at::ScalarType acc) {
  return !(b.scalar_type() == acc && b.permute({0, 2, 3, 1}).is_contiguous());
}

template <typename A>
void warp_forward_all(const PmDims& d, const at::Tensor& a, const at::Tensor& b,
                      const at::Tensor& ref, const at::Tensor& offsets, double temperature,
                      bool trunc, at::Tensor& out, at::Tensor* weights, at::Tensor* b_rows) {
  const auto acc = c10::CppTypeToScalarType<A>::value;
  const int64_t Cr = ref.size(1);
  const at::Tensor ap = a.to(acc).contiguous(), brows = channels_last(b, acc);
  if (b_rows && b_rows_are_copied(b, acc)) *b_rows = brows;
  const at::Tensor rrows = channels_last(ref, acc, padded_ref_channels(Cr));
  const at::Tensor off = offsets.to(at::kFloat).contiguous();
  WarpArgs<A> w = warp_args<A>(d, ap, brows, rrows, Cr, off, temperature, trunc);
  w.out = out.mutable_data_ptr<A>();
  w.weights_out = weights ? weights->mutable_data_ptr<A>() : nullptr;
  parallel_for(0, blocks(d), 32,
                   [&](int64_t begin, int64_t end) { warp_forward(w, begin, end); });
}

// The forward; with `weights` and `b_rows`, also what the backward reuses:
// the candidates' weights and B's rows (empty where they are a view of B).
at::Tensor warp_forward_any(const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
                            const at::Tensor& offsets, double temperature,
                            bool cocosnet_truncation, at::Tensor* weights, at::Tensor* b_rows) {
  const PmDims d = check_patchmatch_args(a, b, offsets);
  check_patchmatch_warp_args(d, a, ref, temperature);
  const auto acc = warp_acc(a);
  at::Tensor out = at::empty({d.N, ref.size(1), d.H, d.W}, ref.options().dtype(acc));
  if (weights) *weights = empty_output({d.N, d.K, d.H, d.W}, a.options().dtype(acc));
  const bool runs = d.N * d.H * d.W > 0;
  if (b_rows && !(runs && b_rows_are_copied(b, acc))) {  // else the kernel's copy
    *b_rows = at::empty({b_rows_are_copied(b, acc) ? d.N : 0, d.Hb, d.Wb, d.C},
                        b.options().dtype(acc));
  }
  if (runs) {
    if (acc == at::kDouble) {
      warp_forward_all<double>(d, a, b, ref, offsets, temperature, cocosnet_truncation, out,
                               weights, b_rows);
    } else {
      warp_forward_all<float>(d, a, b, ref, offsets, temperature, cocosnet_truncation, out,
                              weights, b_rows);
    }
  }
  return out.to(ref.scalar_type());
}

at::Tensor patchmatch_warp_cpu(const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
                               const at::Tensor& offsets, double temperature,
                               bool cocosnet_truncation) {
  return warp_forward_any(a, b, ref, offsets, temperature, cocosnet_truncation, nullptr,
                          nullptr);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> patchmatch_warp_weights_cpu(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref, const at::Tensor& offsets,
    double temperature, bool cocosnet_truncation) {
  at::Tensor weights, b_rows;
  at::Tensor out = warp_forward_any(a, b, ref, offsets, temperature, cocosnet_truncation, &weights,
                                    &b_rows);
  return {out, weights, b_rows};
}

// The backward in one pass over the pixels. grad_ref accumulates in the rows
// of ref's copy, after ref (one cache line per candidate for both). The
// pixel blocks are split into one contiguous chunk per thread; chunk 0
// scatters into grad_B and grad_ref directly, every other chunk into its own
// zeroed rows, added in chunk order at the end: deterministic for a given
// thread count, and no extra memory with one thread. b_rows: the forward's
// copy of B's rows, or null (made here). Returns grad_A, grad_B, grad_ref.
template <typename A>
std::tuple<at::Tensor, at::Tensor, at::Tensor> warp_backward_all(
    const PmDims& d, const at::Tensor& grad, const at::Tensor& a, const at::Tensor& b,
    const at::Tensor& ref, const at::Tensor& offsets, const at::Tensor* weights,
    const at::Tensor* b_rows, double temperature, bool trunc) {
  const auto acc = c10::CppTypeToScalarType<A>::value;
  const int64_t C = d.C, Cr = ref.size(1), Cp = padded_ref_channels(Cr);
  const at::Tensor ap = a.to(acc).contiguous();
  at::Tensor brows = b_rows ? *b_rows : channels_last(b, acc);
  at::Tensor rrows = channels_last(ref, acc, 2 * Cp);
  const at::Tensor gp = grad.to(acc).contiguous();
  const at::Tensor off = offsets.to(at::kFloat).contiguous();
  const at::Tensor wp = weights ? weights->to(acc).contiguous() : at::Tensor();
  at::Tensor ga = empty_output({d.N, C, d.H, d.W}, a.options().dtype(acc));
  at::Tensor gb = empty_output({d.N, d.Hb, d.Wb, C}, brows.options()).zero_();
  WarpArgs<A> w = warp_args<A>(d, ap, brows, rrows, Cr, off, temperature, trunc);
  w.grad = gp.const_data_ptr<A>();
  w.weights = weights ? wp.const_data_ptr<A>() : nullptr;
  w.ga = ga.mutable_data_ptr<A>();
  const int64_t total = blocks(d);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), total / 32));
  std::vector<at::Tensor> gbs{gb}, grs{rrows.narrow(3, Cp, Cp)};
  for (int64_t i = 1; i < chunks; ++i) {
    gbs.push_back(at::zeros_like(gb));
    grs.push_back(at::zeros({d.N, d.Hb, d.Wb, Cp}, rrows.options()));
  }
  parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      warp_backward(w, i * total / chunks, (i + 1) * total / chunks, gbs[i].mutable_data_ptr<A>(),
                    grs[i].mutable_data_ptr<A>(), grs[i].stride(2));
    }
  });
  for (int64_t i = 1; i < chunks; ++i) {
    gb.add_(gbs[i]);
    grs[0].add_(grs[i]);
  }
  // B's copy and the chunks' scratch are done with: the transposes below can
  // reuse their memory.
  brows.reset();
  gbs.clear();
  grs.clear();
  return {ga.to(a.scalar_type()), channels_first(gb, b.scalar_type()),
          channels_first(rrows, ref.scalar_type(), Cp, Cr)};
}

// The backward; `weights` (N, K, H, W) and `b_rows` (N, Hb, Wb, C): the
// forward's, or null to recompute (an empty b_rows: B is its own rows).
std::tuple<at::Tensor, at::Tensor, at::Tensor> warp_backward_any(
    const at::Tensor& grad, const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
    const at::Tensor& offsets, const at::Tensor* weights, const at::Tensor* b_rows,
    double temperature, bool cocosnet_truncation) {
  const PmDims d = check_patchmatch_args(a, b, offsets);
  check_patchmatch_warp_args(d, a, ref, temperature);
  const int64_t Cr = ref.size(1);
  check_grad(grad, a, "feat_a", {d.N, Cr, d.H, d.W});
  if (weights) {
    check_floating(*weights, "weights");
    TORCH_CHECK(weights->device() == a.device() &&
                    weights->sizes() == at::IntArrayRef({d.N, d.K, d.H, d.W}),
                "weights must be the forward's (N, K, H, W) = (", d.N, ", ", d.K, ", ", d.H, ", ",
                d.W, ") on feat_a's device, got ", weights->sizes());
  }
  if (b_rows && b_rows->numel() == 0) b_rows = nullptr;
  if (b_rows) {
    TORCH_CHECK(b_rows->device() == a.device() && b_rows->scalar_type() == warp_acc(a) &&
                    b_rows->is_contiguous() &&
                    b_rows->sizes() == at::IntArrayRef({d.N, d.Hb, d.Wb, d.C}),
                "b_rows must be the forward's contiguous (N, Hb, Wb, C) = (", d.N, ", ", d.Hb,
                ", ", d.Wb, ", ", d.C, ") in ", warp_acc(a), " on feat_a's device, got ",
                b_rows->sizes(), " ", b_rows->scalar_type());
  }
  if (d.N * d.H * d.W == 0) {
    return {at::zeros_like(a, at::MemoryFormat::Contiguous),
            at::zeros_like(b, at::MemoryFormat::Contiguous),
            at::zeros_like(ref, at::MemoryFormat::Contiguous)};
  }
  if (warp_acc(a) == at::kDouble) {
    return warp_backward_all<double>(d, grad, a, b, ref, offsets, weights, b_rows, temperature,
                                     cocosnet_truncation);
  }
  return warp_backward_all<float>(d, grad, a, b, ref, offsets, weights, b_rows, temperature,
                                  cocosnet_truncation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> patchmatch_warp_backward_cpu(
    const at::Tensor& grad, const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
    const at::Tensor& offsets, double temperature, bool cocosnet_truncation) {
  return warp_backward_any(grad, a, b, ref, offsets, nullptr, nullptr, temperature,
                           cocosnet_truncation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> patchmatch_warp_backward_weights_cpu(
    const at::Tensor& grad, const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
    const at::Tensor& offsets, const at::Tensor& weights, const at::Tensor& b_rows,
    double temperature, bool cocosnet_truncation) {
  return warp_backward_any(grad, a, b, ref, offsets, &weights, &b_rows, temperature,
                           cocosnet_truncation);
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("patchmatch_step", &patchmatch_step_cpu);
  m.impl("patchmatch_warp", &patchmatch_warp_cpu);
  m.impl("patchmatch_warp_backward", &patchmatch_warp_backward_cpu);
  m.impl("patchmatch_warp_weights", &patchmatch_warp_weights_cpu);
  m.impl("patchmatch_warp_backward_weights", &patchmatch_warp_backward_weights_cpu);
}

}  // namespace hrops
