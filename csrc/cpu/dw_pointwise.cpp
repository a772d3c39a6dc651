// AVX-512 pointwise tile GEMM of dw_pointwise.h.
#include "cpu/dw_pointwise.h"

#include <algorithm>

#include "cpu/isa.h"

#if HROPS_X86
#include <immintrin.h>
#endif

namespace hrops {
namespace {

// Output channels per register block: kRows x 4 zmm accumulators (24 of 32
// registers), 4 loads of t and kRows broadcasts per 4 * kRows FMAs.
constexpr int64_t kRows = 6;

#if HROPS_X86
// Spreads a prefetch plan over the tile: one line per step, at most
// `per_block` steps per register block (issued one per weight row inside the
// block's loop: issued in a burst, they would stall on the fill buffers).
class Prefetcher {
 public:
  Prefetcher(const PrefetchPlan& plan, int64_t blocks)
      : next_(plan.second),
        per_block_(blocks > 0 ? (plan.first.count * lines(plan.first) +
                                 plan.second.count * lines(plan.second) + blocks - 1) / blocks
                              : 0) {
    start(plan.first);
  }

  int64_t per_block() const { return per_block_; }

  HROPS_TARGET_AVX512 HROPS_INLINE void step() {
    if (range_ >= count_) {
      if (next_.count == 0) return;
      start(next_);
      next_.count = 0;
    }
    _mm_prefetch(line_ptr_, _MM_HINT_T1);
    line_ptr_ += 64;
    if (++line_ == lines_) {
      line_ = 0;
      line_ptr_ = base_ + (++range_) * stride_;
    }
  }

 private:
  static int64_t lines(const PrefetchRanges& r) {
    return (r.floats * int64_t(sizeof(float)) + 63) / 64;
  }

  void start(const PrefetchRanges& r) {
    base_ = line_ptr_ = reinterpret_cast<const char*>(r.base);
    stride_ = r.stride * int64_t(sizeof(float));
    lines_ = lines(r);
    count_ = lines_ > 0 ? r.count : 0;
    range_ = line_ = 0;
  }

  PrefetchRanges next_;  // the second set, until it starts
  const int64_t per_block_;
  const char* base_ = nullptr;
  const char* line_ptr_ = nullptr;
  int64_t stride_ = 0, count_ = 0, lines_ = 0, range_ = 0, line_ = 0;
};

// dst[r][q0 + c] for r < rows (<= kRows) and the 64 pixels from q0 (of which
// `valid` are stored).
template <int R>
HROPS_TARGET_AVX512 HROPS_INLINE void block(float* dst, int64_t ld_dst, const float* w,
                                            const float* t, int64_t ld_t, int64_t Cin,
                                            int64_t valid, bool stream, Prefetcher& prefetcher) {
  // One prefetch every `every` weight rows; the rest of the block's share
  // (when it exceeds Cin) after the loop.
  const int64_t share = prefetcher.per_block();
  const int64_t every = std::max<int64_t>(1, Cin / std::max<int64_t>(1, share));
  int64_t countdown = every, issued = 0;
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < Cin; ++i) {
    if (--countdown == 0) {
      countdown = every;
      prefetcher.step();
      ++issued;
    }
    const float* ti = t + i * ld_t;
    const __m512 t0 = _mm512_loadu_ps(ti), t1 = _mm512_loadu_ps(ti + 16),
                 t2 = _mm512_loadu_ps(ti + 32), t3 = _mm512_loadu_ps(ti + 48);
    const float* wi = w + i * kRows;
    for (int r = 0; r < R; ++r) {
      const __m512 wr = _mm512_set1_ps(wi[r]);
      acc[r][0] = _mm512_fmadd_ps(wr, t0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(wr, t1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(wr, t2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(wr, t3, acc[r][3]);
    }
  }
  for (; issued < share; ++issued) prefetcher.step();
  for (int r = 0; r < R; ++r) {
    float* d = dst + r * ld_dst;
    const bool aligned = stream && reinterpret_cast<uintptr_t>(d) % 64 == 0;
    for (int c = 0; c < 4; ++c) {
      const int64_t n = valid - 16 * c;
      if (n >= 16) {
        if (aligned) {
          _mm512_stream_ps(d + 16 * c, acc[r][c]);
        } else {
          _mm512_storeu_ps(d + 16 * c, acc[r][c]);
        }
      } else if (n > 0) {
        _mm512_mask_storeu_ps(d + 16 * c, static_cast<__mmask16>((1u << n) - 1), acc[r][c]);
      }
    }
  }
}

HROPS_TARGET_AVX512 void tile_avx512(float* dst, int64_t ld_dst, const float* packed_w,
                                     const float* t, int64_t ld_t, int64_t Cin, int64_t Cout,
                                     int64_t P, bool stream, const PrefetchPlan& plan) {
  const int64_t oblocks = (Cout + kRows - 1) / kRows;
  const int64_t pblocks = (P + kPointwisePixels - 1) / kPointwisePixels;
  Prefetcher prefetcher(plan, pblocks * oblocks);
  for (int64_t q = 0; q < P; q += kPointwisePixels) {
    const int64_t valid = std::min(kPointwisePixels, P - q);
    for (int64_t ob = 0; ob < oblocks; ++ob) {
      const int64_t o = ob * kRows;
      const float* w = packed_w + ob * Cin * kRows;
      float* d = dst + o * ld_dst + q;
      switch (std::min(kRows, Cout - o)) {
        case 6: block<6>(d, ld_dst, w, t + q, ld_t, Cin, valid, stream, prefetcher); break;
        case 5: block<5>(d, ld_dst, w, t + q, ld_t, Cin, valid, stream, prefetcher); break;
        case 4: block<4>(d, ld_dst, w, t + q, ld_t, Cin, valid, stream, prefetcher); break;
        case 3: block<3>(d, ld_dst, w, t + q, ld_t, Cin, valid, stream, prefetcher); break;
        case 2: block<2>(d, ld_dst, w, t + q, ld_t, Cin, valid, stream, prefetcher); break;
        default: block<1>(d, ld_dst, w, t + q, ld_t, Cin, valid, stream, prefetcher); break;
      }
    }
  }
  if (stream) _mm_sfence();
}
#endif

}  // namespace

bool pointwise_tile_available() { return cpu_has_avx512f(); }

std::vector<float> pack_pointwise_weights(const float* w, int64_t Cout, int64_t Cin) {
  // Block ob holds w[ob*kRows + r][i] at [ob][i][r] (zero past Cout).
  const int64_t oblocks = (Cout + kRows - 1) / kRows;
  std::vector<float> packed(oblocks * Cin * kRows, 0.f);
  for (int64_t o = 0; o < Cout; ++o) {
    for (int64_t i = 0; i < Cin; ++i) packed[((o / kRows) * Cin + i) * kRows + o % kRows] = w[o * Cin + i];
  }
  return packed;
}

void pointwise_tile(float* dst, int64_t ld_dst, const float* packed_w, const float* t,
                    int64_t ld_t, int64_t Cin, int64_t Cout, int64_t P, bool stream,
                    const PrefetchPlan& prefetch) {
#if HROPS_X86
  tile_avx512(dst, ld_dst, packed_w, t, ld_t, Cin, Cout, P, stream, prefetch);
#else
  (void)dst, (void)ld_dst, (void)packed_w, (void)t, (void)ld_t, (void)Cin, (void)Cout, (void)P,
      (void)stream, (void)prefetch;
#endif
}

}  // namespace hrops
