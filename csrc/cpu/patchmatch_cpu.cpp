// CoCosNet v2's PatchMatch on the CPU (SEEDS.md section 4): one propagation +
// evaluation step, and the soft warp with its backward. Features are read
// channels-last so every candidate costs one contiguous C-vector read; the
// (N, C, candidates, H, W) gathers of the original are never built.
// Per-candidate math: csrc/common/patchmatch.h.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <vector>

#include "common/patchmatch_shapes.h"
#include "cpu/dw_stencil.h"

namespace hrops {
namespace {

template <typename T>
void prefetch_vector(const T* p, int64_t n) {
  const char* bytes = reinterpret_cast<const char*>(p);
  for (int64_t b = 0; b < n * int64_t(sizeof(T)); b += 64) __builtin_prefetch(bytes + b);
}

// (N, C, H, W) -> contiguous (N, H, W, C) in `acc` (float, or double for
// double inputs: the warp's gradients are checked in float64).
at::Tensor channels_last(const at::Tensor& t, at::ScalarType acc = at::kFloat) {
  return t.permute({0, 2, 3, 1}).to(acc).contiguous();
}

at::ScalarType warp_acc(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

struct StepArgs {
  PmDims d;
  int direction, k;
  float inv_t;
  bool trunc;
  const float *a, *b, *offsets;  // a, b channels-last
  float *new_offsets, *probs;
  const float* random_offsets;  // (N, 2, R, H, W): random-search candidates
  int64_t R;
};

// Evaluates pixels [begin, end) of the flattened (N, H, W) grid.
HROPS_INLINE void step_pixels(const StepArgs& s, int64_t begin, int64_t end) {
  const PmDims& d = s.d;
  const int64_t HW = d.H * d.W, C = d.C, k = s.k;
  const int M = int((s.direction == 0 ? d.K : 3 * d.K) + s.R);
  float cost[kPatchMatchMaxCandidates], prob[kPatchMatchMaxCandidates];
  int64_t target[kPatchMatchMaxCandidates];
  int top[kPatchMatchMaxCandidates];
  for (int64_t np = begin; np < end; ++np) {
    const int64_t n = np / HW, p = np % HW, r = p / d.W, c = p % d.W;
    const float* bn = s.b + n * d.Hb * d.Wb * C;
    int m = 0;
    for (int slot = 0; slot < pm_slots(s.direction); ++slot) {
      int64_t sr, sc;
      const bool inside = pm_slot_source(s.direction, slot, r, c, d.H, d.W, sr, sc);
      const float* src = s.offsets + (n * 2 * d.K) * HW + sr * d.W + sc;
      for (int64_t j = 0; j < d.K; ++j, ++m) {
        const float dr = inside ? src[j * HW] : 0.0f, dc = inside ? src[(d.K + j) * HW] : 0.0f;
        target[m] = pm_target(r, c, dr, dc, d.Hb, d.Wb, s.trunc);
        prefetch_vector(bn + target[m] * C, C);
      }
    }
    for (int64_t j = 0; j < s.R; ++j, ++m) {
      const float* rnd = s.random_offsets + ((n * 2) * s.R + j) * HW + p;
      target[m] = pm_target(r, c, rnd[0], rnd[s.R * HW], d.Hb, d.Wb, s.trunc);
      prefetch_vector(bn + target[m] * C, C);
    }
    // Scores after all targets are known: the B reads are random, and the
    // prefetches above let their cache misses overlap.
    for (int m = 0; m < M; ++m) cost[m] = dot_inline(s.a + np * C, bn + target[m] * C, C) * s.inv_t;
    pm_softmax_topk(cost, M, int(k), prob, top);
    for (int64_t i = 0; i < k; ++i) {
      const int64_t t = target[top[i]];
      s.new_offsets[((n * 2) * k + i) * HW + p] = float(t / d.Wb - r);
      s.new_offsets[((n * 2 + 1) * k + i) * HW + p] = float(t % d.Wb - c);
      s.probs[(n * k + i) * HW + p] = prob[top[i]];
    }
  }
}

HROPS_TARGET_AVX2 void step_pixels_avx2(const StepArgs& s, int64_t begin, int64_t end) {
  step_pixels(s, begin, end);
}

void step_pixels_baseline(const StepArgs& s, int64_t begin, int64_t end) {
  step_pixels(s, begin, end);
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
  if (d.N * d.H * d.W == 0) return {new_offsets, probs};
  const at::Tensor acl = channels_last(a), bcl = channels_last(b);
  const at::Tensor off = offsets.to(at::kFloat).contiguous();
  const at::Tensor rnd = R > 0 ? random_offsets->to(at::kFloat).contiguous() : at::Tensor();
  const float* ap = acl.const_data_ptr<float>();
  const float* bp = bcl.const_data_ptr<float>();
  const float* op = off.const_data_ptr<float>();
  float* nop = new_offsets.mutable_data_ptr<float>();
  float* pp = probs.mutable_data_ptr<float>();
  const int64_t HW = d.H * d.W, k = topk;
  const float inv_t = float(1.0 / temperature);
  const StepArgs args{d, int(direction), int(k), inv_t, cocosnet_truncation, ap, bp, op, nop, pp,
                      R > 0 ? rnd.const_data_ptr<float>() : nullptr, R};
  const bool avx2 = cpu_has_avx2_fma();
  at::parallel_for(0, d.N * HW, 256, [&](int64_t begin, int64_t end) {
    if (avx2) {
      step_pixels_avx2(args, begin, end);
    } else {
      step_pixels_baseline(args, begin, end);
    }
  });
  return {new_offsets.to(offsets.scalar_type()), probs.to(a.scalar_type())};
}

// Targets, softmax weights (and for the backward the per-candidate
// gradients) of the warp's K candidates at every pixel.
template <typename A>
struct WarpPixel {
  int64_t target[kPatchMatchMaxCandidates];
  A prob[kPatchMatchMaxCandidates];
};

template <typename A>
void warp_candidates(const PmDims& d, const A* av, const A* bp, const float* op, int64_t n,
                     int64_t p, A inv_t, bool trunc, WarpPixel<A>& w) {
  const int64_t HW = d.H * d.W, r = p / d.W, c = p % d.W;
  A mx = 0;
  for (int64_t j = 0; j < d.K; ++j) {
    const int64_t s = ((n * 2) * d.K + j) * HW + p;
    w.target[j] = pm_target(r, c, op[s], op[s + d.K * HW], d.Hb, d.Wb, trunc);
    prefetch_vector(bp + (n * d.Hb * d.Wb + w.target[j]) * d.C, d.C);
  }
  for (int64_t j = 0; j < d.K; ++j) {
    w.prob[j] = dot(av, bp + (n * d.Hb * d.Wb + w.target[j]) * d.C, d.C) * inv_t;
    mx = j == 0 || w.prob[j] > mx ? w.prob[j] : mx;
  }
  A sum = 0;
  for (int64_t j = 0; j < d.K; ++j) sum += (w.prob[j] = std::exp(w.prob[j] - mx));
  for (int64_t j = 0; j < d.K; ++j) w.prob[j] /= sum;
}

template <typename A>
void warp_forward(const PmDims& d, const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
                  const at::Tensor& offsets, double temperature, bool trunc, at::Tensor& out) {
  const auto acc = c10::CppTypeToScalarType<A>::value;
  const int64_t Cr = ref.size(1), HW = d.H * d.W;
  const at::Tensor acl = channels_last(a, acc), bcl = channels_last(b, acc);
  const at::Tensor rcl = channels_last(ref, acc), off = offsets.to(at::kFloat).contiguous();
  const A *ap = acl.const_data_ptr<A>(), *bp = bcl.const_data_ptr<A>();
  const A* rp = rcl.const_data_ptr<A>();
  const float* op = off.const_data_ptr<float>();
  A* outp = out.mutable_data_ptr<A>();
  const A inv_t = A(1.0 / temperature);
  at::parallel_for(0, d.N * HW, 256, [&](int64_t begin, int64_t end) {
    WarpPixel<A> w;
    for (int64_t np = begin; np < end; ++np) {
      const int64_t n = np / HW, p = np % HW;
      warp_candidates(d, ap + np * d.C, bp, op, n, p, inv_t, trunc, w);
      for (int64_t j = 0; j < d.K; ++j) {
        const A* src = rp + (n * d.Hb * d.Wb + w.target[j]) * Cr;
        for (int64_t ch = 0; ch < Cr; ++ch) outp[(n * Cr + ch) * HW + p] += w.prob[j] * src[ch];
      }
    }
  });
}

at::Tensor patchmatch_warp_cpu(const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
                               const at::Tensor& offsets, double temperature,
                               bool cocosnet_truncation) {
  const PmDims d = check_patchmatch_args(a, b, offsets);
  check_patchmatch_warp_args(d, a, ref, temperature);
  const auto acc = warp_acc(a);
  at::Tensor out = at::zeros({d.N, ref.size(1), d.H, d.W}, ref.options().dtype(acc));
  if (out.numel() > 0) {
    if (acc == at::kDouble) {
      warp_forward<double>(d, a, b, ref, offsets, temperature, cocosnet_truncation, out);
    } else {
      warp_forward<float>(d, a, b, ref, offsets, temperature, cocosnet_truncation, out);
    }
  }
  return out.to(ref.scalar_type());
}

// Backward of the warp. Per pixel p and candidate j (target t, weight w_j,
// score s_j = <A_p, B_t> / T):
//   dL/dw_j = <g_p, ref_t>;  dL/ds_j = w_j (dL/dw_j - sum_i w_i dL/dw_i)
//   grad_A_p = sum_j dL/ds_j B_t / T;  grad_B_t += dL/ds_j A_p / T;  grad_ref_t += w_j g_p.
// The scatters into B and ref are done by row bands of B, each band owned by
// one thread, visiting pixels in order: deterministic for any thread count.
template <typename A>
void warp_backward(const PmDims& d, const at::Tensor& grad, const at::Tensor& a,
                   const at::Tensor& b, const at::Tensor& ref, const at::Tensor& offsets,
                   double temperature, bool trunc, at::Tensor& ga, at::Tensor& gb, at::Tensor& gr) {
  const auto acc = c10::CppTypeToScalarType<A>::value;
  const int64_t Cr = ref.size(1), HW = d.H * d.W, HWb = d.Hb * d.Wb, K = d.K;
  const at::Tensor acl = channels_last(a, acc), bcl = channels_last(b, acc);
  const at::Tensor rcl = channels_last(ref, acc), gcl = channels_last(grad, acc);
  const at::Tensor off = offsets.to(at::kFloat).contiguous();
  const A *ap = acl.const_data_ptr<A>(), *bp = bcl.const_data_ptr<A>();
  const A *rp = rcl.const_data_ptr<A>(), *gp = gcl.const_data_ptr<A>();
  const float* op = off.const_data_ptr<float>();
  const A inv_t = A(1.0 / temperature);
  // Phase 1 (per pixel): grad_A, and each candidate's target, weight and
  // dL/ds_j / T for the scatters.
  std::vector<int64_t> tgt(d.N * HW * K);
  std::vector<A> wgt(d.N * HW * K), gsc(d.N * HW * K);
  A* gap = ga.mutable_data_ptr<A>();
  at::parallel_for(0, d.N * HW, 256, [&](int64_t begin, int64_t end) {
    WarpPixel<A> w;
    A gw[kPatchMatchMaxCandidates];
    for (int64_t np = begin; np < end; ++np) {
      const int64_t n = np / HW, p = np % HW;
      warp_candidates(d, ap + np * d.C, bp, op, n, p, inv_t, trunc, w);
      A mean = 0;
      for (int64_t j = 0; j < K; ++j) {
        gw[j] = dot(gp + np * Cr, rp + (n * HWb + w.target[j]) * Cr, Cr);
        mean += w.prob[j] * gw[j];
      }
      for (int64_t j = 0; j < K; ++j) {
        const A gs = w.prob[j] * (gw[j] - mean) * inv_t;
        const A* bt = bp + (n * HWb + w.target[j]) * d.C;
        for (int64_t ch = 0; ch < d.C; ++ch) gap[np * d.C + ch] += gs * bt[ch];
        tgt[np * K + j] = w.target[j];
        wgt[np * K + j] = w.prob[j];
        gsc[np * K + j] = gs;
      }
    }
  });
  // Phase 2: scatters, parallel over bands of B's rows.
  A* gbp = gb.mutable_data_ptr<A>();
  A* grp = gr.mutable_data_ptr<A>();
  const int64_t bands = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads() * 4, d.Hb));
  at::parallel_for(0, bands, 1, [&](int64_t begin, int64_t end) {
    const int64_t lo = begin * d.Hb / bands * d.Wb, hi = end * d.Hb / bands * d.Wb;
    for (int64_t np = 0; np < d.N * HW; ++np) {
      const int64_t n = np / HW;
      for (int64_t j = 0; j < K; ++j) {
        const int64_t t = tgt[np * K + j];
        if (t < lo || t >= hi) continue;
        A* gbt = gbp + (n * HWb + t) * d.C;
        const A* apx = ap + np * d.C;
        const A gs = gsc[np * K + j];
        for (int64_t ch = 0; ch < d.C; ++ch) gbt[ch] += gs * apx[ch];
        A* grt = grp + (n * HWb + t) * Cr;
        const A wj = wgt[np * K + j];
        for (int64_t ch = 0; ch < Cr; ++ch) grt[ch] += wj * gp[np * Cr + ch];
      }
    }
  });
}

// Backward of the warp. Per pixel p and candidate j (target t, weight w_j,
// score s_j = <A_p, B_t> / T):
//   dL/dw_j = <g_p, ref_t>;  dL/ds_j = w_j (dL/dw_j - sum_i w_i dL/dw_i)
//   grad_A_p = sum_j dL/ds_j B_t / T;  grad_B_t += dL/ds_j A_p / T;  grad_ref_t += w_j g_p.
// The scatters into B and ref are done by row bands of B, each band owned by
// one thread, visiting pixels in order: deterministic for any thread count.
std::tuple<at::Tensor, at::Tensor, at::Tensor> patchmatch_warp_backward_cpu(
    const at::Tensor& grad, const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
    const at::Tensor& offsets, double temperature, bool cocosnet_truncation) {
  const PmDims d = check_patchmatch_args(a, b, offsets);
  check_patchmatch_warp_args(d, a, ref, temperature);
  const int64_t Cr = ref.size(1);
  check_grad(grad, a, "feat_a", {d.N, Cr, d.H, d.W});
  const auto acc = warp_acc(a);
  at::Tensor ga = at::zeros({d.N, d.H, d.W, d.C}, a.options().dtype(acc));
  at::Tensor gb = at::zeros({d.N, d.Hb, d.Wb, d.C}, a.options().dtype(acc));
  at::Tensor gr = at::zeros({d.N, d.Hb, d.Wb, Cr}, a.options().dtype(acc));
  if (d.N * d.H * d.W > 0) {
    if (acc == at::kDouble) {
      warp_backward<double>(d, grad, a, b, ref, offsets, temperature, cocosnet_truncation, ga, gb, gr);
    } else {
      warp_backward<float>(d, grad, a, b, ref, offsets, temperature, cocosnet_truncation, ga, gb, gr);
    }
  }
  auto finish = [](const at::Tensor& t, const at::Tensor& like) {
    return t.permute({0, 3, 1, 2}).to(like.scalar_type()).contiguous();
  };
  return {finish(ga, a), finish(gb, b), finish(gr, ref)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("patchmatch_step", &patchmatch_step_cpu);
  m.impl("patchmatch_warp", &patchmatch_warp_cpu);
  m.impl("patchmatch_warp_backward", &patchmatch_warp_backward_cpu);
}

}  // namespace hrops
