// Whole-tensor layout changes of the PatchMatch CPU kernels: planar
// (N, C, H, W) <-> channels-last rows (N, H, W, L); see patchmatch_rows.h.
#include "cpu/patchmatch_rows.h"

#include <ATen/Dispatch.h>

#include <algorithm>
#include <type_traits>

#include "cpu/output_alloc.h"
#include "cpu/parallel.h"

namespace hrops::patchmatch_cpu {
namespace {

// Pixels [p0, pe) of image n: (N, C, P) -> rows (N, P, L) of which the
// first C elements are the channels, or back. The planes' side runs outer
// (see transpose_block).
template <typename A>
HROPS_INLINE void transpose_tile(const A* src, A* dst, int64_t n, int64_t C, int64_t P, int64_t L,
                                 int64_t p0, int64_t pe, bool to_last, bool avx2) {
#if HROPS_X86
  if constexpr (std::is_same_v<A, float>) {
    if (avx2 && !to_last && pe == p0 + kPlaneTile &&
        streams_to_planes(C, P, dst + n * C * P + p0)) {
      return tile_to_planes_stream_avx2(src + (n * P + p0) * L, L, dst + n * C * P + p0, C, P);
    }
  }
#endif
  if (to_last) {
    transpose_block(src + n * C * P + p0, P, 1, dst + (n * P + p0) * L, L, C, pe - p0, avx2);
  } else {
    transpose_block(src + (n * P + p0) * L, L, 1, dst + n * C * P + p0, P, pe - p0, C, avx2,
                    /*src_rows_outer=*/false);
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

}  // namespace

at::Tensor channels_last(const at::Tensor& t, at::ScalarType acc, int64_t L) {
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

at::Tensor channels_first(const at::Tensor& t, at::ScalarType dtype, int64_t c0, int64_t C) {
  const int64_t L = t.size(3);
  if (C < 0) C = L - c0;
  at::Tensor out = empty_output({t.size(0), C, t.size(1), t.size(2)}, t.options());
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "channels_first", [&] {
    transpose_planes(t.const_data_ptr<scalar_t>() + c0, out.mutable_data_ptr<scalar_t>(),
                     t.size(0), C, t.size(1) * t.size(2), L, false);
  });
  return out.to(dtype);
}

}  // namespace hrops::patchmatch_cpu
