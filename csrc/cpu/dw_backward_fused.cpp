// dw_backward_fused.h's one-pass backward. With t = m * (w_dw (*) x) the
// modulated depthwise output, gy the output gradient and P the effective
// pointwise weights, per band of rows:
//   gt = P^T gy                      (pointwise_tile: the gradient of t)
//   s[tap] = sum gt * x shifted      (nine sums per channel)
//   grad_mod += sum_tap w_dw[tap] s[tap],  grad_dw += m * s
//   grad_x = gt (*) (m * flipped w_dw)     (the adjoint 3x3 stencil)
//   grad_P += gy t^T
// The modulation scales stencil weights and sums instead of gt, so gt is
// never rescaled in memory. grad_x row y needs gt rows y - 1 .. y + 1: a band
// keeps the last two gt rows of the band before it (its halo) and writes
// grad_x rows [r0 - 1, r1 - 1); a thread's first band, when it is not the
// top of an image, computes its halo rows first.
#include "cpu/dw_backward_fused.h"

#include "cpu/parallel.h"
#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/dw_pointwise.h"
#include "cpu/dw_stencil.h"
#include "cpu/stream_store.h"

namespace hrops {
namespace {

// Elements per band buffer, about 256 KiB as in the forward's fused tile: the
// three buffers, the next band's prefetched rows and the weights share L2.
constexpr int64_t kBandElements = int64_t(1) << 16;

// Gradient rows kept above a band for the adjoint stencil.
constexpr int64_t kHalo = 2;

// A thread's partial sums of the weight and modulation gradients.
struct Partial {
  std::vector<float> pw, mod, dw;
};

class BandWorker {
 public:
  BandWorker(const Dw3BackwardArgs& a, int64_t R, const float* packed_pw_t)
      : a_(a),
        stream_(a.N * a.Cin * a.H * a.W * int64_t(sizeof(float)) >= kStreamOutputBytes),
        R_(R),
        plane_(a.H * a.W),
        ld_(pointwise_row_stride(std::max(R, kHalo) * a.W)),  // a band or a halo
        ld_gt_((R + kHalo) * a.W + 16),
        packed_pw_t_(packed_pw_t),
        g_(a.Cout * ld_),
        t_(a.Cin * ld_),
        gt_(a.Cin * ld_gt_) {}

  // Bands [begin, end) in order (band b: image b / bands_per_image).
  void run(int64_t begin, int64_t end, int64_t bands_per_image, Partial& sums) {
    for (int64_t band = begin; band < end; ++band) {
      const int64_t n = band / bands_per_image, r0 = (band % bands_per_image) * R_;
      const int64_t r1 = std::min(r0 + R_, a_.H);
      if (band == begin && r0 > 0) {
        const int64_t h0 = std::max<int64_t>(r0 - kHalo, 0);
        gradient_rows(n, h0, r0, gt_.data() + (h0 - (r0 - kHalo)) * a_.W, PrefetchPlan{});
      }
      const PrefetchPlan next =
          band + 1 < end ? band_rows(band + 1, bands_per_image) : PrefetchPlan{};
      gradient_rows(n, r0, r1, gt_.data() + kHalo * a_.W, next);
      channels(n, r0, r1, sums);
      const int64_t P = (r1 - r0) * a_.W;
      at::Tensor G = at::from_blob(sums.pw.data(), {a_.Cout, a_.Cin}, at::kFloat);
      G.addmm_(matrix(g_.data(), a_.Cout, P), matrix(t_.data(), a_.Cin, P).t());
    }
    if (stream_) stream_fence();
  }

 private:
  at::Tensor matrix(float* data, int64_t rows, int64_t cols) const {
    return at::from_blob(data, {rows, cols}, {ld_, 1}, at::kFloat);
  }

  // gt rows [y0, y1) of image n into dst (channel rows ld_gt_ apart), via
  // gy's rows copied into g_ (the GEMM reads rows ld_ apart).
  void gradient_rows(int64_t n, int64_t y0, int64_t y1, float* dst, const PrefetchPlan& next) {
    const int64_t P = (y1 - y0) * a_.W;
    const float* gy = a_.grad + n * a_.Cout * plane_ + y0 * a_.W;
    for (int64_t o = 0; o < a_.Cout; ++o) {
      std::memcpy(g_.data() + o * ld_, gy + o * plane_, P * sizeof(float));
    }
    pointwise_tile(dst, ld_gt_, packed_pw_t_, g_.data(), ld_, a_.Cout, a_.Cin, P, false, next);
  }

  // What band `band` reads from memory: x rows r0 - 1 .. r1 and gy rows
  // [r0, r1), prefetched while the band before it multiplies.
  PrefetchPlan band_rows(int64_t band, int64_t bands_per_image) const {
    const int64_t n = band / bands_per_image, r0 = (band % bands_per_image) * R_;
    const int64_t r1 = std::min(r0 + R_, a_.H);
    const int64_t xb = std::max<int64_t>(r0 - 1, 0), xe = std::min(r1 + 1, a_.H);
    PrefetchPlan plan;
    plan.first = {a_.x + n * a_.Cin * plane_ + xb * a_.W, a_.Cin, plane_, (xe - xb) * a_.W};
    plan.second = {a_.grad + n * a_.Cout * plane_ + r0 * a_.W, a_.Cout, plane_, (r1 - r0) * a_.W};
    return plan;
  }

  // Per input channel: t, the nine sums, grad_x rows; then the halo of the
  // next band.
  void channels(int64_t n, int64_t r0, int64_t r1, Partial& sums) {
    const int64_t H = a_.H, W = a_.W;
    const int64_t y0 = r0 == 0 ? 0 : r0 - 1, y1 = r1 == H ? H : r1 - 1;
    for (int64_t i = 0; i < a_.Cin; ++i) {
      const float m = a_.mod[n * a_.Cin + i];
      const float* w = a_.dw + i * 9;
      float wk[9], flipped[9], s[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
      for (int q = 0; q < 9; ++q) {
        wk[q] = w[q] * m;
        flipped[q] = w[8 - q] * m;
      }
      const float* xi = a_.x + (n * a_.Cin + i) * plane_;
      float* gt = gt_.data() + i * ld_gt_;  // rows from r0 - kHalo
      correlate3_same_rows(t_.data() + i * ld_, xi, H, W, r0, r1, wk);
      correlate3_same_weight_grad(s, gt + kHalo * W, xi, H, W, r0, r1);
      float gm = 0;
      for (int q = 0; q < 9; ++q) {
        gm += w[q] * s[q];
        sums.dw[i * 9 + q] += m * s[q];
      }
      sums.mod[n * a_.Cin + i] += gm;
      correlate3_window_rows(a_.grad_x + (n * a_.Cin + i) * plane_ + y0 * W, gt, r0 - kHalo, H, W,
                             y0, y1, flipped, stream_);
      if (r1 < H) std::memmove(gt, gt + (r1 - r0) * W, kHalo * W * sizeof(float));
    }
  }

  const Dw3BackwardArgs& a_;
  const bool stream_;  // grad_x with non-temporal stores: it is not read back soon
  const int64_t R_, plane_, ld_, ld_gt_;
  const float* packed_pw_t_;
  std::vector<float> g_, t_, gt_;  // gy rows, t rows, gt rows (with halo)
};

}  // namespace

bool dw3_backward_fused_applies(int64_t Cin, int64_t Cout, int64_t k, int64_t padding) {
  return k == 3 && padding == 1 && Cin <= kFusedBackwardMaxChannels &&
         Cout <= kFusedBackwardMaxChannels && pointwise_tile_available();
}

void dw3_backward_fused(const Dw3BackwardArgs& a) {
  const int64_t R = std::clamp<int64_t>(
      kBandElements / std::max<int64_t>({a.Cin, a.Cout, 1}) / std::max<int64_t>(a.W, 1), 1, a.H);
  const int64_t bands_per_image = (a.H + R - 1) / R;
  std::vector<float> pw_t(a.Cin * a.Cout);
  for (int64_t o = 0; o < a.Cout; ++o) {
    for (int64_t i = 0; i < a.Cin; ++i) pw_t[i * a.Cout + o] = a.pw[o * a.Cin + i];
  }
  const std::vector<float> packed_pw_t = pack_pointwise_weights(pw_t.data(), a.Cin, a.Cout);
  std::vector<Partial> partials(at::get_num_threads());
  parallel_for(0, a.N * bands_per_image, 1, [&](int64_t begin, int64_t end) {
    Partial& sums = partials[at::get_thread_num()];
    if (sums.pw.empty()) {
      sums.pw.assign(a.Cout * a.Cin, 0.f);
      sums.mod.assign(a.N * a.Cin, 0.f);
      sums.dw.assign(a.Cin * 9, 0.f);
    }
    BandWorker(a, R, packed_pw_t.data()).run(begin, end, bands_per_image, sums);
  });
  for (const Partial& p : partials) {
    if (p.pw.empty()) continue;
    for (size_t j = 0; j < p.pw.size(); ++j) a.grad_pw[j] += p.pw[j];
    for (size_t j = 0; j < p.mod.size(); ++j) a.grad_mod[j] += p.mod[j];
    for (size_t j = 0; j < p.dw.size(); ++j) a.grad_dw[j] += p.dw[j];
  }
}

}  // namespace hrops
