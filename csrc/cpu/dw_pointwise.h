// The pointwise (1x1) stage of the CPU modulated depthwise-separable conv as
// an AVX-512 register-blocked GEMM over one tile (fp32):
//   dst[o][q] = sum_i w[o][i] * t[i][q],  o < Cout, q < P.
// Why not MKL: it reaches the same FLOP rate, but the GEMM can then store the
// large output with streaming stores straight from registers (no
// read-for-ownership, and the stores drain while the FMAs run), and it
// spreads software prefetches of the next tile's input over its compute, so
// the memory traffic overlaps the arithmetic instead of following it.
#pragma once
#include <cstdint>
#include <vector>

namespace hrops {

// Pixels per register block; t's row stride must be a multiple of this, and
// t's rows readable (any values) up to it.
constexpr int64_t kPointwisePixels = 64;

// Memory to prefetch into L2 while a tile computes: `count` ranges of
// `floats` floats, `stride` floats apart, starting at `base` (say, the next
// tile's rows of every input channel).
struct PrefetchRanges {
  const float* base = nullptr;
  int64_t count = 0, stride = 0, floats = 0;
};

// Up to two sets of ranges, fetched one after the other (the backward
// prefetches the next tile's input rows and its output-gradient rows).
struct PrefetchPlan {
  PrefetchRanges first, second;
};

// A row stride for t: whole register blocks, plus one cache line so that the
// rows of a block do not all map to the same L1 sets (a block reads one
// 256-byte piece of every row).
inline int64_t pointwise_row_stride(int64_t P) {
  return (P + kPointwisePixels - 1) / kPointwisePixels * kPointwisePixels + 16;
}

// Whether pointwise_tile can run here (AVX-512F).
bool pointwise_tile_available();

// Weights w (Cout x Cin, row-major) packed for pointwise_tile.
std::vector<float> pack_pointwise_weights(const float* w, int64_t Cout, int64_t Cin);

// dst rows are ld_dst apart; stream: whole 64-byte-aligned lines are written
// with non-temporal stores (then fenced).
void pointwise_tile(float* dst, int64_t ld_dst, const float* packed_w, const float* t,
                    int64_t ld_t, int64_t Cin, int64_t Cout, int64_t P, bool stream,
                    const PrefetchPlan& prefetch);

}  // namespace hrops
