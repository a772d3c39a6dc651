// CoCosNet v2's soft warp on the CPU (microsoft/CoCosNet-v2,
// models/networks/patch_match.py): the softmax-weighted sum of the
// candidates' reference pixels, and its backward in one pass. B and ref are
// gathered from channels-last rows; blocks and rows: patchmatch_rows.h;
// per-candidate kernels: patchmatch_candidates.h.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <type_traits>
#include <vector>

#include "common/patchmatch_shapes.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"
#include "cpu/parallel.h"
#include "cpu/patchmatch_candidates.h"
#include "cpu/patchmatch_rows.h"
#include "cpu/simd.h"

namespace hrops {
namespace {

using namespace patchmatch_cpu;

at::ScalarType warp_acc(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
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
      prefetch_bytes(bn + int64_t(target[j][i + 1]) * C, C * int64_t(sizeof(A)));
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
        prefetch_bytes_for_write(next, w.ldr * int64_t(sizeof(A)));
      } else {
        prefetch_bytes(next, w.ldr * int64_t(sizeof(A)));
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
          prefetch_bytes_for_write(gbn + int64_t(target[j][i + 1]) * C, C * int64_t(sizeof(A)));
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

// (warped, weights, b_rows) with save_weights: what the backward would
// otherwise recompute (see warp_backward_any); else (warped, empty, empty).
std::tuple<at::Tensor, at::Tensor, at::Tensor> patchmatch_warp_cpu(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref, const at::Tensor& offsets,
    double temperature, bool cocosnet_truncation, bool save_weights) {
  if (!save_weights) {
    at::Tensor out = warp_forward_any(a, b, ref, offsets, temperature, cocosnet_truncation,
                                      nullptr, nullptr);
    return {out, out.new_empty({0}), out.new_empty({0})};
  }
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

// weights, b_rows: the forward's (patchmatch_warp with save_weights), or
// empty tensors to recompute them.
std::tuple<at::Tensor, at::Tensor, at::Tensor> patchmatch_warp_backward_cpu(
    const at::Tensor& grad, const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
    const at::Tensor& offsets, const at::Tensor& weights, const at::Tensor& b_rows,
    double temperature, bool cocosnet_truncation) {
  const bool saved = weights.dim() == 4;
  return warp_backward_any(grad.contiguous(), a, b, ref, offsets, saved ? &weights : nullptr,
                           saved ? &b_rows : nullptr, temperature, cocosnet_truncation);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def(
      "patchmatch_warp(Tensor feat_a, Tensor feat_b, Tensor ref, Tensor offsets, float "
      "temperature, bool cocosnet_truncation, bool save_weights) -> (Tensor, Tensor, Tensor)");
  m.def(
      "_patchmatch_warp_backward(Tensor grad, Tensor feat_a, Tensor feat_b, Tensor ref, Tensor "
      "offsets, Tensor weights, Tensor b_rows, float temperature, bool cocosnet_truncation) -> "
      "(Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("patchmatch_warp", &patchmatch_warp_cpu);
  m.impl("_patchmatch_warp_backward", &patchmatch_warp_backward_cpu);
}

}  // namespace hrops
