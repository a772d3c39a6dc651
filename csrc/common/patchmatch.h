// PatchMatch candidate math shared by the CPU and CUDA kernels (CoCosNet v2,
// SEEDS.md section 4). Offsets are (row, column) displacements from the
// pixel (r, c) of map A to a position of map B (Hb x Wb); a candidate's
// score is the inner product of A's and B's feature vectors there, divided
// by the temperature.
#pragma once
#include <cmath>
#include <cstdint>

#include "hd.h"

namespace hrops {

constexpr int kPatchMatchMaxCandidates = 96;

HROPS_HD float pm_clamp(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// row * width + col in float32 with the two roundings of CoCosNet's torch
// code: never a fused multiply-add, whose single rounding truncates some
// fractional indices differently (the host compiler contracts a * b + c
// under -O3 unless the product is forced through memory).
HROPS_HD float pm_flat_index_f32(float row, float width, float col) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(__fmul_rn(row, width), col);
#else
  volatile float product = row * width;
  return product + col;
#endif
}

// Flat index in B of the candidate (dr, dc) at A's pixel (r, c). The target
// is clamped into B. Fractional offsets: each coordinate is rounded to the
// nearest integer (halves up), or, with cocosnet_truncation, the clamped
// float row * Wb + col is truncated as CoCosNet v2 does (which lets a
// fractional row leak into the column). Non-finite offsets count as 0, so
// an index is always inside B.
HROPS_HD int64_t pm_target(int64_t r, int64_t c, float dr, float dc, int64_t Hb, int64_t Wb,
                           bool cocosnet_truncation) {
  dr = (dr - dr == 0.0f) ? dr : 0.0f;  // NaN and +-inf -> 0
  dc = (dc - dc == 0.0f) ? dc : 0.0f;
  const float tr = pm_clamp(float(r) + dr, 0.0f, float(Hb - 1));
  const float tc = pm_clamp(float(c) + dc, 0.0f, float(Wb - 1));
  if (cocosnet_truncation) {
    const int64_t idx = int64_t(pm_flat_index_f32(tr, float(Wb), tc));
    return idx < Hb * Wb ? idx : Hb * Wb - 1;
  }
  const int64_t ir = int64_t(tr + 0.5f), ic = int64_t(tc + 0.5f);
  return ir * Wb + ic;
}

// Softmax of cost[0..M) into prob, then the k most probable candidates in
// descending order, ties to the lower candidate index: top[0..k).
HROPS_HD void pm_softmax_topk(const float* cost, int M, int k, float* prob, int* top) {
  float mx = cost[0];
  for (int m = 1; m < M; ++m) mx = cost[m] > mx ? cost[m] : mx;
  float sum = 0.0f;
#if !defined(__CUDACC__)
#pragma omp simd reduction(+ : sum)
#endif
  for (int m = 0; m < M; ++m) {
    prob[m] = expf(cost[m] - mx);
    sum += prob[m];
  }
  const float inv = 1.0f / sum;
  for (int m = 0; m < M; ++m) prob[m] *= inv;
  // Insertion into a sorted top-k list: one compare for most candidates.
  // Strict ">" keeps earlier (lower-index) candidates first among ties.
  int count = 0;
  for (int m = 0; m < M; ++m) {
    const float v = prob[m];
    if (count == k && !(v > prob[top[k - 1]])) continue;
    int pos = count < k ? count : k - 1;  // a full list drops its last entry
    while (pos > 0 && v > prob[top[pos - 1]]) {
      top[pos] = top[pos - 1];
      --pos;
    }
    top[pos] = m;
    count += count < k ? 1 : 0;
  }
}

// Candidates after propagation in `direction` (0: none, 1: horizontal, 2:
// vertical) come in slots of K: [previous neighbour's K | own K | next
// neighbour's K] (one slot, the own K, without propagation). The pixel
// whose offsets fill `slot` of pixel (r, c) is (sr, sc); false when it lies
// outside the map: CoCosNet v2 pads with zero offsets there.
HROPS_HD int pm_slots(int direction) { return direction == 0 ? 1 : 3; }

HROPS_HD bool pm_slot_source(int direction, int slot, int64_t r, int64_t c, int64_t H, int64_t W,
                             int64_t& sr, int64_t& sc) {
  const int64_t delta = direction == 0 ? 0 : slot - 1;  // -1, 0, +1
  sr = direction == 2 ? r + delta : r;
  sc = direction == 1 ? c + delta : c;
  return sr >= 0 && sr < H && sc >= 0 && sc < W;
}

}  // namespace hrops
