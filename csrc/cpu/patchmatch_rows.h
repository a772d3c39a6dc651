// Pixel blocks and channels-last rows of the PatchMatch CPU kernels
// (patchmatch_step_cpu.cpp, patchmatch_warp_cpu.cpp). B (and the warp's ref)
// is read as rows, so every candidate costs one contiguous C-vector read; A
// is transposed block by block into a small buffer (and grad_A back out of
// one), so A never needs a channels-last copy.
#pragma once
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>

#include "common/patchmatch_shapes.h"
#include "cpu/isa.h"
#include "cpu/plane_tiles.h"

namespace hrops::patchmatch_cpu {

// Blocks of up to 64 consecutive pixels of one image (four cache lines of
// a plane). The offsets, and the step's outputs, are read and written plane
// by plane for the whole block: the planes are HW apart, all in the same L1
// set for power-of-two maps, so touching each plane once per pixel would
// evict and refetch a line for each of its 16 pixels.
constexpr int64_t kBlock = 64;

struct Block {
  int64_t n, p0, count;
};

HROPS_INLINE Block pixel_block(int64_t index, int64_t HW) {
  const int64_t per_image = (HW + kBlock - 1) / kBlock;
  const int64_t n = index / per_image, p0 = (index % per_image) * kBlock;
  return Block{n, p0, std::min(kBlock, HW - p0)};
}

// The pixel blocks of all images.
inline int64_t blocks(const PmDims& d) { return d.N * ((d.H * d.W + kBlock - 1) / kBlock); }

// buf[i * C + ch] = planar[ch * P + p0 + i] for i < count, by 8x8 blocks
// (in registers where Ops, the candidate kernels' ISA in
// patchmatch_candidates.h, has AVX2).
template <typename Ops, typename A>
HROPS_INLINE void block_to_last(const Block& blk, int64_t C, int64_t P, const A* planar, A* buf) {
  transpose_block(planar + blk.p0, P, 1, buf, C, C, blk.count, Ops::kAvx2,
                  /*src_rows_outer=*/true, /*scalar_blocks=*/true);
}

// planar[ch * P + p0 + i] = buf[i * C + ch] for i < count: a whole block
// with streaming stores where Ops can, else by 8x8 blocks, plane by plane.
template <typename Ops, typename A>
HROPS_INLINE void block_to_planar(const Block& blk, int64_t C, int64_t P, const A* buf, A* planar) {
  static_assert(kBlock == kPlaneTile, "a block is one transposed tile");
  if (blk.count == kBlock && Ops::block_to_planes(buf, planar + blk.p0, C, P)) return;
  transpose_block(buf, C, 1, planar + blk.p0, P, blk.count, C, Ops::kAvx2,
                  /*src_rows_outer=*/false, /*scalar_blocks=*/true);
}

// (N, C, H, W) -> contiguous rows (N, H, W, L), L >= C, in `acc` (float, or
// double for double inputs: the warp's gradients are checked in float64):
// the C channels, then zeros (padding, or room for a gradient). A view of t
// when it already is such rows.
at::Tensor channels_last(const at::Tensor& t, at::ScalarType acc = at::kFloat, int64_t L = -1);

// Elements [c0, c0 + C) of the rows of contiguous (N, H, W, L) -> contiguous
// (N, C, H, W) in `dtype`.
at::Tensor channels_first(const at::Tensor& t, at::ScalarType dtype, int64_t c0 = 0,
                          int64_t C = -1);

}  // namespace hrops::patchmatch_cpu
