// CoCosNet v2's PatchMatch, CUDA kernels: one thread per pixel of A (grid-
// stride: N*H*W may exceed what a grid of 128-thread blocks covers). Per-
// candidate math: csrc/common/patchmatch.h (also run by the CPU kernels).
#include <algorithm>

#include "common/patchmatch.h"
#include "cuda/launch_dtype.h"
#include "cuda/launch_config.cuh"

namespace hrops {
namespace {

constexpr int kPixelThreads = 128;  // per block: one thread per pixel of A

__device__ float dot_f32(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

__global__ void step_kernel(PatchMatchDims d, const float* __restrict__ a,
                            const float* __restrict__ b, const float* __restrict__ off,
                            int direction, float inv_t, int topk, bool trunc,
                            const float* __restrict__ rnd, int64_t R,
                            float* __restrict__ new_off, float* __restrict__ probs) {
  const int64_t HW = d.H * d.W;
  const int M = int((direction == 0 ? d.K : 3 * d.K) + R);
  for (int64_t np = grid_first(); np < d.N * HW; np += grid_stride()) {
    const int64_t n = np / HW, p = np % HW, r = p / d.W, c = p % d.W;
    float cost[kPatchMatchMaxCandidates], prob[kPatchMatchMaxCandidates];
    int64_t target[kPatchMatchMaxCandidates];
    int top[kPatchMatchMaxCandidates];
    int m = 0;
    for (int slot = 0; slot < pm_slots(direction); ++slot) {
      int64_t sr, sc;
      const bool inside = pm_slot_source(direction, slot, r, c, d.H, d.W, sr, sc);
      for (int64_t j = 0; j < d.K; ++j, ++m) {
        const int64_t s = ((n * 2) * d.K + j) * HW + sr * d.W + sc;
        const float dr = inside ? off[s] : 0.0f, dc = inside ? off[s + d.K * HW] : 0.0f;
        target[m] = pm_target(r, c, dr, dc, d.Hb, d.Wb, trunc);
        cost[m] = dot_f32(a + np * d.C, b + (n * d.Hb * d.Wb + target[m]) * d.C, d.C) * inv_t;
      }
    }
    for (int64_t j = 0; j < R; ++j, ++m) {  // random-search candidates
      const int64_t s = ((n * 2) * R + j) * HW + p;
      target[m] = pm_target(r, c, rnd[s], rnd[s + R * HW], d.Hb, d.Wb, trunc);
      cost[m] = dot_f32(a + np * d.C, b + (n * d.Hb * d.Wb + target[m]) * d.C, d.C) * inv_t;
    }
    pm_softmax(cost, M, prob);
    pm_topk(prob, M, topk, top);
    for (int i = 0; i < topk; ++i) {
      const int64_t t = target[top[i]];
      new_off[((n * 2) * topk + i) * HW + p] = float(t / d.Wb - r);
      new_off[((n * 2 + 1) * topk + i) * HW + p] = float(t % d.Wb - c);
      probs[(n * topk + i) * HW + p] = prob[top[i]];
    }
  }
}

// Targets and softmax weights of the K warp candidates of pixel np.
__device__ void warp_weights(const PatchMatchDims& d, const float* a, const float* b,
                             const float* off, int64_t np, float inv_t, bool trunc,
                             int64_t* target, float* w) {
  const int64_t HW = d.H * d.W, n = np / HW, p = np % HW, r = p / d.W, c = p % d.W;
  float cost[kPatchMatchMaxCandidates];
  for (int64_t j = 0; j < d.K; ++j) {
    const int64_t s = ((n * 2) * d.K + j) * HW + p;
    target[j] = pm_target(r, c, off[s], off[s + d.K * HW], d.Hb, d.Wb, trunc);
    cost[j] = dot_f32(a + np * d.C, b + (n * d.Hb * d.Wb + target[j]) * d.C, d.C) * inv_t;
  }
  pm_softmax(cost, int(d.K), w);
}

__global__ void warp_kernel(PatchMatchDims d, const float* __restrict__ a,
                            const float* __restrict__ b, const float* __restrict__ ref, int64_t Cr,
                            const float* __restrict__ off, float inv_t, bool trunc,
                            float* __restrict__ out) {
  const int64_t HW = d.H * d.W;
  for (int64_t np = grid_first(); np < d.N * HW; np += grid_stride()) {
    const int64_t n = np / HW, p = np % HW;
    int64_t target[kPatchMatchMaxCandidates];
    float w[kPatchMatchMaxCandidates];
    warp_weights(d, a, b, off, np, inv_t, trunc, target, w);
    for (int64_t j = 0; j < d.K; ++j) {
      const float* src = ref + (n * d.Hb * d.Wb + target[j]) * Cr;
      for (int64_t ch = 0; ch < Cr; ++ch) out[(n * Cr + ch) * HW + p] += w[j] * src[ch];
    }
  }
}

__global__ void warp_backward_kernel(PatchMatchDims d, const float* __restrict__ grad,
                                     const float* __restrict__ a, const float* __restrict__ b,
                                     const float* __restrict__ ref, int64_t Cr,
                                     const float* __restrict__ off, float inv_t, bool trunc,
                                     float* __restrict__ ga, float* gb, float* gref) {
  const int64_t HW = d.H * d.W, HWb = d.Hb * d.Wb;
  for (int64_t np = grid_first(); np < d.N * HW; np += grid_stride()) {
    const int64_t n = np / HW;
    int64_t target[kPatchMatchMaxCandidates];
    float w[kPatchMatchMaxCandidates], gw[kPatchMatchMaxCandidates];
    warp_weights(d, a, b, off, np, inv_t, trunc, target, w);
    const float* g = grad + np * Cr;
    float mean = 0.0f;
    for (int64_t j = 0; j < d.K; ++j) {
      gw[j] = dot_f32(g, ref + (n * HWb + target[j]) * Cr, Cr);
      mean += w[j] * gw[j];
    }
    for (int64_t j = 0; j < d.K; ++j) {
      const float gs = w[j] * (gw[j] - mean) * inv_t;
      const int64_t t = n * HWb + target[j];
      for (int64_t ch = 0; ch < d.C; ++ch) {
        ga[np * d.C + ch] += gs * b[t * d.C + ch];
        atomicAdd(gb + t * d.C + ch, gs * a[np * d.C + ch]);
      }
      for (int64_t ch = 0; ch < Cr; ++ch) atomicAdd(gref + t * Cr + ch, w[j] * g[ch]);
    }
  }
}

int64_t blocks(const PatchMatchDims& d) { return blocks_for(d.N * d.H * d.W, kPixelThreads); }

}  // namespace

cudaError_t launch_patchmatch_step(const PatchMatchDims& d, const float* a, const float* b,
                                   const float* offsets, int direction, float inv_temperature,
                                   int topk, bool cocosnet_truncation,
                                   const float* random_offsets, int64_t R, float* new_offsets,
                                   float* probs, cudaStream_t stream) {
  if (d.N * d.H * d.W == 0) return cudaSuccess;
  step_kernel<<<blocks(d), kPixelThreads, 0, stream>>>(d, a, b, offsets, direction,
                                                       inv_temperature, topk, cocosnet_truncation,
                                                       random_offsets, R, new_offsets, probs);
  return cudaGetLastError();
}

cudaError_t launch_patchmatch_warp(const PatchMatchDims& d, const float* a, const float* b,
                                   const float* ref, int64_t Cr, const float* offsets,
                                   float inv_temperature, bool cocosnet_truncation, float* out,
                                   cudaStream_t stream) {
  if (d.N * d.H * d.W == 0) return cudaSuccess;
  warp_kernel<<<blocks(d), kPixelThreads, 0, stream>>>(d, a, b, ref, Cr, offsets,
                                                       inv_temperature, cocosnet_truncation, out);
  return cudaGetLastError();
}

cudaError_t launch_patchmatch_warp_backward(const PatchMatchDims& d, const float* grad,
                                            const float* a, const float* b, const float* ref,
                                            int64_t Cr, const float* offsets,
                                            float inv_temperature, bool cocosnet_truncation,
                                            float* ga, float* gb, float* gref,
                                            cudaStream_t stream) {
  if (d.N * d.H * d.W == 0) return cudaSuccess;
  warp_backward_kernel<<<blocks(d), kPixelThreads, 0, stream>>>(
      d, grad, a, b, ref, Cr, offsets, inv_temperature, cocosnet_truncation, ga, gb, gref);
  return cudaGetLastError();
}

}  // namespace hrops
