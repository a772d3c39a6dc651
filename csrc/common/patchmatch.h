// PatchMatch candidate math shared by the CPU and CUDA kernels (CoCosNet v2,
// microsoft/CoCosNet-v2, models/networks/patch_match.py). Offsets are
// (row, column) displacements from the pixel (r, c) of map A to a position of
// map B (Hb x Wb); a candidate's score is the inner product of A's and B's
// feature vectors there, divided by the temperature.
#pragma once
#include <cmath>
#include <cstdint>

#include "fast_exp.h"
#include "hd.h"

namespace hrops {

constexpr int kPatchMatchMaxCandidates = 96;

// Sizes the CUDA launchers take: features a (N, H, W, C), b and ref
// (N, Hb, Wb, C|Cr) channels-last float32; offsets (N, 2, K, H, W).
struct PatchMatchDims {
  int64_t N, C, H, W, Hb, Wb, K;
};

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

// A's coordinate r plus an offset d, clamped into B's [0, hi]; a non-finite
// offset (NaN, +-inf) counts as 0, so a target is always inside B.
HROPS_HD float pm_clamped_coord(float r, float d, float hi) {
  d = (d - d == 0.0f) ? d : 0.0f;
  return pm_clamp(r + d, 0.0f, hi);
}

// The nearest integer of a clamped coordinate, halves up.
HROPS_HD int32_t pm_round_coord(float t) { return int32_t(t + 0.5f); }

// Row and column in B of the candidate (dr, dc) at A's pixel (r, c). The
// target is clamped into B. Fractional offsets: each coordinate is rounded
// to the nearest integer (halves up), or, with cocosnet_truncation, the
// clamped float row * Wb + col is truncated as CoCosNet v2 does (which lets
// a fractional row leak into the column). (The CPU kernels vectorise the
// rounding case from pm_clamped_coord and pm_round_coord directly.)
HROPS_HD void pm_target_rc(int64_t r, int64_t c, float dr, float dc, int64_t Hb, int64_t Wb,
                           bool cocosnet_truncation, int64_t& row, int64_t& col) {
  const float tr = pm_clamped_coord(float(r), dr, float(Hb - 1));
  const float tc = pm_clamped_coord(float(c), dc, float(Wb - 1));
  if (cocosnet_truncation) {
    int64_t idx = int64_t(pm_flat_index_f32(tr, float(Wb), tc));
    idx = idx < Hb * Wb ? idx : Hb * Wb - 1;
    row = idx / Wb;
    col = idx - row * Wb;
    return;
  }
  row = pm_round_coord(tr);
  col = pm_round_coord(tc);
}

// The same target as a flat index row * Wb + col.
HROPS_HD int64_t pm_target(int64_t r, int64_t c, float dr, float dc, int64_t Hb, int64_t Wb,
                           bool cocosnet_truncation) {
  int64_t row, col;
  pm_target_rc(r, c, dr, dc, Hb, Wb, cocosnet_truncation, row, col);
  return row * Wb + col;
}

// Softmax of cost[0..M) into prob.
HROPS_HD void pm_softmax(const float* cost, int M, float* prob) {
  float mx = cost[0];
#if defined(_OPENMP)  // the CPU build; not nvcc
#pragma omp simd reduction(max : mx)
#endif
  for (int m = 1; m < M; ++m) mx = cost[m] > mx ? cost[m] : mx;
  float sum = 0.0f;
#if defined(_OPENMP)  // the CPU build; not nvcc
#pragma omp simd reduction(+ : sum)
#endif
  for (int m = 0; m < M; ++m) {
    prob[m] = fast_expf(cost[m] - mx);
    sum += prob[m];
  }
  const float inv = 1.0f / sum;
#if defined(_OPENMP)  // the CPU build; not nvcc
#pragma omp simd
#endif
  for (int m = 0; m < M; ++m) prob[m] *= inv;
}

// Sort key of a probability: non-negative floats order as their bits, and a
// NaN (any sign) ranks above everything, so keys are totally ordered.
HROPS_HD int32_t pm_prob_key(float p) { return float_bits(p) & 0x7fffffff; }

// Candidate m's place in the descending order of the keys, ties to the lower
// candidate index: the number of candidates before it. Ranks form a
// permutation, so a top-k needs no sorted list and no data-dependent branch
// (the CPU kernel vectorises this same count).
HROPS_HD int pm_rank(const int32_t* key, int M, int m) {
  int rank = 0;
  for (int i = 0; i < m; ++i) rank += key[i] >= key[m] ? 1 : 0;
  for (int i = m + 1; i < M; ++i) rank += key[i] > key[m] ? 1 : 0;
  return rank;
}

// The k most probable of prob[0..M), in that order: top[0..k).
HROPS_HD void pm_topk(const float* prob, int M, int k, int* top) {
  int32_t key[kPatchMatchMaxCandidates];
  for (int m = 0; m < M; ++m) key[m] = pm_prob_key(prob[m]);
  for (int m = 0; m < M; ++m) {
    const int rank = pm_rank(key, M, m);
    if (rank < k) top[rank] = m;
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
