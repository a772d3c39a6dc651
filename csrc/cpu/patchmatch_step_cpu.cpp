// CoCosNet v2's PatchMatch step on the CPU (microsoft/CoCosNet-v2,
// models/networks/patch_match.py, PropagationFaster + Evaluate): one
// propagation + evaluation step. B is read channels-last so every candidate
// costs one contiguous C-vector read (A is transposed block by block); the
// (N, C, candidates, H, W) gathers of the original are never built. Blocks
// and rows: patchmatch_rows.h; per-candidate kernels: patchmatch_candidates.h.
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <optional>
#include <tuple>
#include <vector>

#include "common/patchmatch_shapes.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/patchmatch_candidates.h"
#include "cpu/patchmatch_rows.h"
#include "cpu/simd.h"

namespace hrops {
namespace {

using namespace patchmatch_cpu;

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
          prefetch_bytes(bn + (int64_t(trow[m][i + 1]) * d.Wb + tcol[m][i + 1]) * C,
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

}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def(
      "patchmatch_step(Tensor feat_a, Tensor feat_b, Tensor offsets, int direction, float "
      "temperature, int topk, bool cocosnet_truncation, Tensor? random_offsets) -> (Tensor, "
      "Tensor)");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("patchmatch_step", &patchmatch_step_cpu);
}

}  // namespace hrops
