// Fused modulated depthwise-separable convolution (MobileStyleGAN's
// ModulatedDWConv2d; bes-dev/MobileStyleGAN.pytorch,
// core/models/modules/modulated_conv2d.py, ModulatedDWConv2d) on the CPU:
//   y[n,o] = d[o] * sum_i Wpw[o,i] * (m[n,i] * (Wdw[i] (*) x[n,i]))
// Forward: per (sample, band of output rows) the depthwise output of every
// input channel is built in a cache-resident tile and fed to one GEMM with
// the pointwise weights (demodulation folded in). The (N, Cin, H, W)
// intermediate is never materialised. fp32 with AVX-512 (Cin <= 256) uses
// dw_pointwise.h's tile GEMM: it streams the output from registers and
// prefetches the next tile's input rows while it computes, so the memory
// traffic overlaps the arithmetic (3x3 "same" depthwise then reads those rows
// in place); other cases use MKL.
// Backward recomputes the depthwise tile instead of saving it. fp32 3x3
// "same" convs of up to 256 channels on AVX-512 take the one-pass backward of
// dw_backward_fused.h; elsewhere, phase 1 (per row band) forms the
// pointwise-weight and modulation gradients and the depthwise-output
// gradient, and phase 2 (per channel) applies the adjoint stencil for the
// input gradient and reduces the depthwise-weight gradient.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "cpu/parallel.h"
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <vector>

#include "common/styled_epilogue.h"
#include "common/tensor_checks.h"
#include "cpu/dw_backward_fused.h"
#include "cpu/dw_pointwise.h"
#include "cpu/dw_stencil.h"
#include "cpu/output_alloc.h"
#include "cpu/stream_store.h"

namespace hrops {
namespace {

struct DwDims {
  int64_t N, Cin, Cout, H, W, k, p, Ho, Wo;
};

DwDims check_dwconv_args(const at::Tensor& x, const at::Tensor& mod, const at::Tensor& wdw,
                         const at::Tensor& wpw, const std::optional<at::Tensor>& demod,
                         int64_t padding) {
  check_dim(x, 4, "x", "(N, Cin, H, W)");
  check_floating(x, "x");
  check_dim(mod, 2, "modulation", "(N, Cin)");
  check_dim(wdw, 4, "weight_dw", "(Cin, 1, k, k)");
  check_dim(wpw, 4, "weight_pw", "(Cout, Cin, 1, 1)");
  check_same(x, "x", mod, "modulation");
  check_same(x, "x", wdw, "weight_dw");
  check_same(x, "x", wpw, "weight_pw");
  const int64_t N = x.size(0), Cin = x.size(1), k = wdw.size(2), Cout = wpw.size(0);
  TORCH_CHECK(mod.size(0) == N && mod.size(1) == Cin, "modulation must have shape (N, Cin) = (",
              N, ", ", Cin, "), got ", mod.sizes());
  TORCH_CHECK(wdw.size(0) == Cin && wdw.size(1) == 1 && wdw.size(3) == k && k % 2 == 1,
              "weight_dw must have shape (Cin, 1, k, k) with Cin = ", Cin, " and odd k, got ",
              wdw.sizes());
  TORCH_CHECK(wpw.size(1) == Cin && wpw.size(2) == 1 && wpw.size(3) == 1,
              "weight_pw must have shape (Cout, Cin, 1, 1) with Cin = ", Cin, ", got ", wpw.sizes());
  if (demod.has_value()) {
    check_same(x, "x", *demod, "demod");
    TORCH_CHECK(demod->dim() == 1 && demod->size(0) == Cout, "demod must have shape (Cout,) = (",
                Cout, ",), got ", demod->sizes());
  }
  TORCH_CHECK(padding >= 0, "padding must be >= 0, got ", padding);
  const int64_t Ho = x.size(2) + 2 * padding - k + 1, Wo = x.size(3) + 2 * padding - k + 1;
  TORCH_CHECK(Ho >= 0 && Wo >= 0, "input (", x.size(2), ", ", x.size(3),
              ") is smaller than the kernel ", k, " with padding ", padding);
  return DwDims{N, Cin, Cout, x.size(2), x.size(3), k, padding, Ho, Wo};
}

// Output rows per tile: a (channels x tile) fp32 buffer of about 256 KiB for
// the fused pointwise tile, so that the tile, the input rows of the next tile
// (prefetched while this one computes) and the weights share L2 (measured, 1
// thread: 1 MiB tiles were 20-30% slower at 64->64 @512^2 and 128->128
// @256^2), and of about 1 MiB where MKL does the GEMM (as tuned before).
int64_t rows_per_tile(const DwDims& d, int64_t tile_elements) {
  const int64_t pixels = tile_elements / std::max<int64_t>({d.Cin, d.Cout, 1});
  return std::clamp<int64_t>(pixels / std::max<int64_t>(d.Wo, 1), 1, std::max<int64_t>(d.Ho, 1));
}
constexpr int64_t kFusedTileElements = int64_t(1) << 16, kGemmTileElements = int64_t(1) << 18;

// Largest Cin for the fused tile: at 512 its (Cin x 64)-pixel block no longer
// fits in L1 and MKL measured faster (~32 vs ~35 ms, 512->512 @64^2).
constexpr int64_t kFusedMaxCin = 256;

// The input rows of every channel that tile `tile` reads (none past the last
// tile), for prefetching while the tile before it computes.
template <typename T>
PrefetchPlan next_tile_rows(const DwDims& d, const T* x, int64_t tile, int64_t R,
                            int64_t tiles_per_n) {
  PrefetchPlan plan;
  if constexpr (std::is_same_v<T, float>) {
    if (tile >= d.N * tiles_per_n) return plan;
    const int64_t n = tile / tiles_per_n, r0 = (tile % tiles_per_n) * R;
    const int64_t rb = std::max<int64_t>(r0 - d.p, 0);
    const int64_t re = std::min<int64_t>(std::min(r0 + R, d.Ho) - d.p + d.k - 1, d.H);
    if (re <= rb) return plan;
    plan.first = {x + n * d.Cin * d.H * d.W + rb * d.W, d.Cin, d.H * d.W, (re - rb) * d.W};
  }
  return plan;
}

template <typename A>
at::Tensor matrix(A* data, int64_t rows, int64_t cols, int64_t ld) {
  return at::from_blob(data, {rows, cols}, {ld, 1}, at::TensorOptions().dtype(c10::CppTypeToScalarType<A>::value));
}

// Pointwise weights with the demodulation folded in, in the accumulation type.
at::Tensor effective_pw(const at::Tensor& wpw, const std::optional<at::Tensor>& demod,
                        at::ScalarType acc) {
  at::Tensor pw = wpw.reshape({wpw.size(0), wpw.size(1)}).to(acc);
  if (demod.has_value()) pw = pw.mul(demod->to(acc).unsqueeze(1));
  return pw.contiguous();
}

// StyledConv2d's epilogue (bias, scaled noise, LeakyReLU), applied to each
// output tile while it is in cache. Tensors are converted to the
// accumulation type; noise is (1 or N, 1, Ho, Wo).
template <typename A>
struct Epilogue {
  at::Tensor bias, noise;
  A noise_weight = 0, slope = 0;
  bool activate = false;

  bool active() const { return bias.defined() || noise.defined() || activate; }

  // row: output channel o of sample n, tile pixels [q0, q0 + P).
  void apply(A* row, int64_t n, int64_t o, int64_t q0, int64_t P) const {
    const A b = bias.defined() ? bias.const_data_ptr<A>()[o] : A(0);
    if (noise.defined()) {
      const int64_t plane = noise.size(2) * noise.size(3);
      const A* nz = noise.const_data_ptr<A>() + (noise.size(0) == 1 ? 0 : n) * plane + q0;
      if (activate) {
        loop<true, true>(row, nz, b, P);
      } else {
        loop<true, false>(row, nz, b, P);
      }
    } else if (activate) {
      loop<false, true>(row, nullptr, b, P);
    } else {
      loop<false, false>(row, nullptr, b, P);
    }
  }

  // The flags are template parameters so each variant is a branch-free,
  // vectorised loop.
  template <bool kNoise, bool kActivate>
  void loop(A* row, const A* nz, A b, int64_t P) const {
    for (int64_t q = 0; q < P; ++q) {
      row[q] = styled_epilogue<A>(row[q], b, kNoise ? noise_weight * nz[q] : A(0), kActivate, slope);
    }
  }
};

// Copies one output tile row (converting to the output type); streams it
// past the cache when the whole output is large.
template <typename T, typename A>
void store_row(T* dst, const A* src, int64_t n, bool stream) {
  if constexpr (kStreamable<T> && std::is_same_v<T, A>) {
    if (stream) {
      StreamWriter<T> writer(dst);
      writer.write(src, n);
      writer.finish();
      return;
    }
  }
  for (int64_t q = 0; q < n; ++q) dst[q] = static_cast<T>(src[q]);
}

template <typename A>
Epilogue<A> make_epilogue(const DwDims& d, const at::Tensor& x,
                          const std::optional<at::Tensor>& bias,
                          const std::optional<at::Tensor>& noise,
                          const std::optional<at::Tensor>& noise_weight,
                          std::optional<double> negative_slope) {
  const auto acc = c10::CppTypeToScalarType<A>::value;
  Epilogue<A> e;
  if (bias.has_value()) {
    check_same(x, "x", *bias, "bias");
    TORCH_CHECK(bias->numel() == d.Cout, "bias must have Cout = ", d.Cout, " elements, got ",
                bias->sizes());
    e.bias = bias->reshape({d.Cout}).to(acc).contiguous();
  }
  if (noise.has_value()) {
    check_same(x, "x", *noise, "noise");
    TORCH_CHECK(noise_weight.has_value() && noise_weight->numel() == 1,
                "noise needs a one-element noise_weight");
    TORCH_CHECK(noise->dim() == 4 && (noise->size(0) == 1 || noise->size(0) == d.N) &&
                    noise->size(1) == 1 && noise->size(2) == d.Ho && noise->size(3) == d.Wo,
                "noise must have shape (1 or N, 1, Ho, Wo) = (1 or ", d.N, ", 1, ", d.Ho, ", ",
                d.Wo, "), got ", noise->sizes());
    e.noise = noise->to(acc).contiguous();
    e.noise_weight = static_cast<A>(noise_weight->item<double>());
  }
  if (negative_slope.has_value()) {
    e.activate = true;
    e.slope = static_cast<A>(*negative_slope);
  }
  return e;
}

at::Tensor modulated_dwconv2d_cpu(const at::Tensor& x_in, const at::Tensor& mod,
                                  const at::Tensor& wdw, const at::Tensor& wpw,
                                  const std::optional<at::Tensor>& demod, int64_t padding,
                                  const std::optional<at::Tensor>& bias,
                                  const std::optional<at::Tensor>& noise,
                                  const std::optional<at::Tensor>& noise_weight,
                                  std::optional<double> negative_slope) {
  const DwDims d = check_dwconv_args(x_in, mod, wdw, wpw, demod, padding);
  at::Tensor out = empty_output({d.N, d.Cout, d.Ho, d.Wo}, x_in.options());
  if (out.numel() == 0) return out;
  const at::Tensor x = x_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "modulated_dwconv2d_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
    const Epilogue<acc_t> epilogue =
        make_epilogue<acc_t>(d, x, bias, noise, noise_weight, negative_slope);
    const at::Tensor pw = effective_pw(wpw, demod, acc_type);
    const at::Tensor dw = wdw.reshape({d.Cin, d.k * d.k}).to(acc_type).contiguous();
    const at::Tensor m = mod.to(acc_type).contiguous();
    const acc_t* dwp = dw.const_data_ptr<acc_t>();
    const acc_t* mp = m.const_data_ptr<acc_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    // fp32 on AVX-512: the fused pointwise tile (dw_pointwise.h); else MKL.
    constexpr bool kFloat = std::is_same_v<scalar_t, float>;
    const bool fused = kFloat && pointwise_tile_available() && d.Cin > 0 && d.Cin <= kFusedMaxCin;
    const int64_t R = rows_per_tile(d, fused ? kFusedTileElements : kGemmTileElements);
    const int64_t tiles_per_n = (d.Ho + R - 1) / R, kk = d.k * d.k;
    const int64_t plane = d.Ho * d.Wo;
    const bool stream = out.nbytes() >= kStreamOutputBytes;
    // ... and for 3x3 "same" convs the depthwise stage reads the (prefetched)
    // input rows directly.
    const bool direct = fused && d.k == 3 && d.p == 1;
    std::vector<float> packed_pw;
    if constexpr (kFloat) {
      if (fused) packed_pw = pack_pointwise_weights(pw.const_data_ptr<float>(), d.Cout, d.Cin);
    }
    const int64_t ld_t_max = fused ? pointwise_row_stride(R * d.Wo) : R * d.Wo;
    parallel_for(0, d.N * tiles_per_n, 1, [&](int64_t begin, int64_t end) {
      // t: the modulated depthwise output (row stride ld_t), y: the GEMM's
      // output tile when an epilogue or a conversion follows; both stay in L2.
      std::vector<acc_t> t(d.Cin * ld_t_max), y(d.Cout * R * d.Wo);
      std::vector<acc_t> wk(kk), rows((R + d.k - 1) * (d.W + 2 * d.p));
      for (int64_t tile = begin; tile < end; ++tile) {
        const int64_t n = tile / tiles_per_n, r0 = (tile % tiles_per_n) * R;
        const int64_t r1 = std::min(r0 + R, d.Ho), P = (r1 - r0) * d.Wo;
        const int64_t ld_t = fused ? pointwise_row_stride(P) : P;
        for (int64_t i = 0; i < d.Cin; ++i) {
          const acc_t mi = mp[n * d.Cin + i];
          for (int64_t q = 0; q < kk; ++q) wk[q] = dwp[i * kk + q] * mi;  // modulation folded in
          const scalar_t* plane = xp + (n * d.Cin + i) * d.H * d.W;
          if (direct) {
            correlate3_same_rows(reinterpret_cast<float*>(t.data()) + i * ld_t,
                                 reinterpret_cast<const float*>(plane), d.H, d.W, r0, r1,
                                 reinterpret_cast<const float*>(wk.data()));
            continue;
          }
          pad_rows(rows.data(), plane, d.H, d.W, r0 - d.p, r1 - d.p + d.k - 1, d.p,
                   fused || i + 1 >= d.Cin ? nullptr : plane + d.H * d.W);
          correlate_rows(t.data() + i * ld_t, rows.data(), d.W + 2 * d.p, r1 - r0, d.Wo,
                         wk.data(), d.k);
        }
        scalar_t* dst = op + n * d.Cout * plane + r0 * d.Wo;
        if constexpr (kFloat) {
          if (fused) {
            const PrefetchPlan next = next_tile_rows(d, xp, tile + 1, R, tiles_per_n);
            if (!epilogue.active()) {
              // (The casts only keep the other instantiations compiling.)
              pointwise_tile(reinterpret_cast<float*>(dst), plane, packed_pw.data(),
                             reinterpret_cast<const float*>(t.data()), ld_t, d.Cin, d.Cout, P,
                             stream, next);
              continue;
            }
            pointwise_tile(reinterpret_cast<float*>(y.data()), P, packed_pw.data(),
                           reinterpret_cast<const float*>(t.data()), ld_t, d.Cin, d.Cout, P, false,
                           next);
          }
        }
        if (!fused) {
          // MKL; in the accumulation type it writes the output itself.
          constexpr bool kDirect = std::is_same_v<acc_t, scalar_t>;
          acc_t* base = kDirect ? reinterpret_cast<acc_t*>(dst) : y.data();
          at::Tensor ym = matrix(base, d.Cout, P, kDirect ? plane : P);
          if (d.Cin > 0) {
            at::mm_out(ym, pw, matrix(t.data(), d.Cin, P, P));
          } else {
            ym.zero_();
          }
          if constexpr (kDirect) {
            if (epilogue.active()) {
              for (int64_t o = 0; o < d.Cout; ++o) epilogue.apply(base + o * plane, n, o, r0 * d.Wo, P);
            }
            continue;
          }
        }
        for (int64_t o = 0; o < d.Cout; ++o) {
          acc_t* src = y.data() + o * P;
          if (epilogue.active()) epilogue.apply(src, n, o, r0 * d.Wo, P);
          store_row(dst + o * plane, src, P, stream);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> modulated_dwconv2d_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& mod, const at::Tensor& wdw,
    const at::Tensor& wpw, const std::optional<at::Tensor>& demod, int64_t padding) {
  const DwDims d = check_dwconv_args(x_in, mod, wdw, wpw, demod, padding);
  check_same(x_in, "x", grad_in, "grad");
  TORCH_CHECK(grad_in.sizes() == at::IntArrayRef({d.N, d.Cout, d.Ho, d.Wo}),
              "grad must have the output's shape (", d.N, ", ", d.Cout, ", ", d.Ho, ", ", d.Wo,
              "), got ", grad_in.sizes());
  const at::Tensor x = x_in.contiguous(), grad = grad_in.contiguous();
  const auto acc_type = at::toOpMathType(x.scalar_type());
  at::Tensor grad_x = empty_output(x.sizes(), x.options());
  at::Tensor grad_pw_eff = at::zeros({d.Cout, d.Cin}, x.options().dtype(acc_type));
  at::Tensor grad_mod = at::zeros({d.N, d.Cin}, x.options().dtype(acc_type));
  at::Tensor grad_dw = at::zeros({d.Cin, d.k * d.k}, x.options().dtype(acc_type));
  const at::Tensor pw = effective_pw(wpw, demod, acc_type);
  const bool nonempty = x.numel() > 0 && grad.numel() > 0 && d.Cout > 0;
  if (nonempty && x.scalar_type() == at::kFloat &&
      dw3_backward_fused_applies(d.Cin, d.Cout, d.k, d.p)) {
    const at::Tensor dw = wdw.reshape({d.Cin, 9}).contiguous(), m = mod.contiguous();
    dw3_backward_fused({x.const_data_ptr<float>(), grad.const_data_ptr<float>(),
                        m.const_data_ptr<float>(), dw.const_data_ptr<float>(),
                        pw.const_data_ptr<float>(), d.N, d.Cin, d.Cout, d.H, d.W,
                        grad_x.mutable_data_ptr<float>(), grad_pw_eff.mutable_data_ptr<float>(),
                        grad_mod.mutable_data_ptr<float>(), grad_dw.mutable_data_ptr<float>()});
  } else if (nonempty) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "modulated_dwconv2d_backward_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const at::Tensor dw = wdw.reshape({d.Cin, d.k * d.k}).to(acc_type).contiguous();
      const at::Tensor m = mod.to(acc_type).contiguous();
      const at::Tensor pw_t = pw.t();
      const acc_t* dwp = dw.const_data_ptr<acc_t>();
      const acc_t* mp = m.const_data_ptr<acc_t>();
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      const scalar_t* gp = grad.const_data_ptr<scalar_t>();
      const int64_t R = rows_per_tile(d, kGemmTileElements), tiles_per_n = (d.Ho + R - 1) / R, kk = d.k * d.k;
      const int64_t plane = d.Ho * d.Wo;
      // fp32 3x3 "same" convs: both depthwise correlations (the recomputed
      // output, and the input gradient: the flipped kernel, padding 1 too)
      // read the planes directly with the forward's stencil.
      const bool direct = std::is_same_v<scalar_t, float> && d.k == 3 && d.p == 1;
      // Gradient w.r.t. the depthwise output, consumed by phase 2.
      at::Tensor gu = empty_output({d.N, d.Cin, d.Ho, d.Wo}, x.options().dtype(acc_type));
      acc_t* gup = gu.mutable_data_ptr<acc_t>();
      const bool stream_gu = gu.nbytes() >= kStreamOutputBytes;
      const int nthreads = at::get_num_threads();
      std::vector<at::Tensor> partial_pw(nthreads), partial_mod(nthreads);

      // Phase 1: per (sample, row band).
      parallel_for(0, d.N * tiles_per_n, 1, [&](int64_t begin, int64_t end) {
        const int tid = at::get_thread_num();
        if (!partial_pw[tid].defined()) {
          partial_pw[tid] = at::zeros({d.Cout, d.Cin}, pw.options());
          partial_mod[tid] = at::zeros({d.N, d.Cin}, pw.options());
        }
        acc_t* pmod = partial_mod[tid].mutable_data_ptr<acc_t>();
        std::vector<acc_t> u(d.Cin * R * d.Wo), gt(d.Cin * R * d.Wo), gy(d.Cout * R * d.Wo);
        std::vector<acc_t> rows((R + d.k - 1) * (d.W + 2 * d.p));
        for (int64_t tile = begin; tile < end; ++tile) {
          const int64_t n = tile / tiles_per_n, r0 = (tile % tiles_per_n) * R;
          const int64_t r1 = std::min(r0 + R, d.Ho), P = (r1 - r0) * d.Wo;
          for (int64_t i = 0; i < d.Cin; ++i) {
            const scalar_t* plane = xp + (n * d.Cin + i) * d.H * d.W;
            if (direct) {  // (the casts only keep the other instantiations compiling)
              correlate3_same_rows(reinterpret_cast<float*>(u.data()) + i * P,
                                   reinterpret_cast<const float*>(plane), d.H, d.W, r0, r1,
                                   reinterpret_cast<const float*>(dwp) + i * kk);
              continue;
            }
            pad_rows(rows.data(), plane, d.H, d.W, r0 - d.p, r1 - d.p + d.k - 1, d.p,
                     i + 1 < d.Cin ? plane + d.H * d.W : nullptr);
            correlate_rows(u.data() + i * P, rows.data(), d.W + 2 * d.p, r1 - r0, d.Wo,
                           dwp + i * kk, d.k);
          }
          at::Tensor gy_m;
          if constexpr (std::is_same_v<acc_t, scalar_t>) {
            // Same type here; the cast only keeps the other instantiation compiling.
            gy_m = matrix(reinterpret_cast<acc_t*>(const_cast<scalar_t*>(gp)) + n * d.Cout * plane +
                              r0 * d.Wo,
                          d.Cout, P, plane);
          } else {
            for (int64_t o = 0; o < d.Cout; ++o) {
              const scalar_t* row = gp + (n * d.Cout + o) * plane + r0 * d.Wo;
              for (int64_t q = 0; q < P; ++q) gy[o * P + q] = static_cast<acc_t>(row[q]);
            }
            gy_m = matrix(gy.data(), d.Cout, P, P);
          }
          at::Tensor gt_m = matrix(gt.data(), d.Cin, P, P);
          at::mm_out(gt_m, pw_t, gy_m);  // gradient of the modulated depthwise output
          for (int64_t i = 0; i < d.Cin; ++i) {
            acc_t* ui = u.data() + i * P;
            acc_t* gti = gt.data() + i * P;
            const acc_t mi = mp[n * d.Cin + i];
            pmod[n * d.Cin + i] += dot(gti, ui, P);
            for (int64_t q = 0; q < P; ++q) {
              gti[q] *= mi;  // the gradient of the depthwise output
              ui[q] *= mi;   // u becomes the modulated depthwise output t
            }
            // Phase 2 reads it back plane by plane, long after: past the cache.
            store_row(gup + (n * d.Cin + i) * plane + r0 * d.Wo, gti, P, stream_gu);
          }
          partial_pw[tid].addmm_(gy_m, matrix(u.data(), d.Cin, P, P).t());
        }
      });
      for (int t = 0; t < nthreads; ++t) {
        if (partial_pw[t].defined()) {
          grad_pw_eff += partial_pw[t];
          grad_mod += partial_mod[t];
        }
      }

      // Phase 2: per input channel (owns its depthwise-weight gradient). The
      // input gradient is the correlation of the padded depthwise-output
      // gradient with the flipped kernel (padding k - 1 - p).
      scalar_t* gxp = grad_x.mutable_data_ptr<scalar_t>();
      acc_t* gdwp = grad_dw.mutable_data_ptr<acc_t>();
      const int64_t pa = d.k - 1 - d.p;
      parallel_for(0, d.Cin, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> flipped(kk), gx_rows(R * d.W);
        std::vector<acc_t> grows((R + d.k - 1) * (d.Wo + 2 * pa)), xrows((R + d.k - 1) * (d.W + 2 * d.p));
        for (int64_t i = begin; i < end; ++i) {
          for (int64_t q = 0; q < kk; ++q) flipped[q] = dwp[i * kk + kk - 1 - q];
          for (int64_t n = 0; n < d.N; ++n) {
            const acc_t* g = gup + (n * d.Cin + i) * plane;
            const scalar_t* src = xp + (n * d.Cin + i) * d.H * d.W;
            scalar_t* gx = gxp + (n * d.Cin + i) * d.H * d.W;
            for (int64_t y0 = 0; y0 < d.H; y0 += R) {
              const int64_t y1 = std::min(y0 + R, d.H);
              if (direct) {
                correlate3_same_rows(reinterpret_cast<float*>(gx) + y0 * d.W,
                                     reinterpret_cast<const float*>(g), d.Ho, d.Wo, y0, y1,
                                     reinterpret_cast<const float*>(flipped.data()));
                continue;
              }
              pad_rows(grows.data(), g, d.Ho, d.Wo, y0 - pa, y1 - pa + d.k - 1, pa);
              correlate_rows(gx_rows.data(), grows.data(), d.Wo + 2 * pa, y1 - y0, d.W,
                             flipped.data(), d.k);
              for (int64_t q = 0; q < (y1 - y0) * d.W; ++q) {
                gx[y0 * d.W + q] = static_cast<scalar_t>(gx_rows[q]);
              }
            }
            for (int64_t r0 = 0; r0 < d.Ho; r0 += R) {
              const int64_t r1 = std::min(r0 + R, d.Ho);
              if (direct && correlate3_same_weight_grad(
                                reinterpret_cast<float*>(gdwp) + i * kk,
                                reinterpret_cast<const float*>(g) + r0 * d.Wo,
                                reinterpret_cast<const float*>(src), d.H, d.W, r0, r1)) {
                continue;
              }
              pad_rows(xrows.data(), src, d.H, d.W, r0 - d.p, r1 - d.p + d.k - 1, d.p);
              correlate_rows_weight_grad(gdwp + i * kk, g + r0 * d.Wo, xrows.data(),
                                         d.W + 2 * d.p, r1 - r0, d.Wo, d.k);
            }
          }
        }
      });
    });
  } else {
    grad_x.zero_();
  }
  // y = d[o] * sum_i Wpw[o,i] t[i]: with G = dL/d(d*Wpw), dL/dWpw = d*G and dL/dd[o] = sum_i Wpw[o,i] G[o,i].
  const at::Tensor wpw2 = wpw.reshape({d.Cout, d.Cin}).to(acc_type);
  at::Tensor grad_pw = grad_pw_eff;
  at::Tensor grad_demod = x.new_empty({0});  // no demod
  if (demod.has_value()) {
    grad_pw = grad_pw_eff.mul(demod->to(acc_type).unsqueeze(1));
    grad_demod = grad_pw_eff.mul(wpw2).sum(1).to(demod->scalar_type());
  }
  return {grad_x, grad_mod.to(mod.scalar_type()), grad_dw.view(wdw.sizes()).to(wdw.scalar_type()),
          grad_pw.view(wpw.sizes()).to(wpw.scalar_type()), grad_demod};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def(
      "modulated_dwconv2d(Tensor x, Tensor modulation, Tensor weight_dw, Tensor weight_pw, "
      "Tensor? demod, int padding, Tensor? bias, Tensor? noise, Tensor? noise_weight, float? "
      "negative_slope) -> Tensor");
  m.def(
      "_modulated_dwconv2d_backward(Tensor grad, Tensor x, Tensor modulation, Tensor "
      "weight_dw, Tensor weight_pw, Tensor? demod, int padding) -> (Tensor, Tensor, Tensor, "
      "Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("modulated_dwconv2d", &modulated_dwconv2d_cpu);
  m.impl("_modulated_dwconv2d_backward", &modulated_dwconv2d_backward_cpu);
}

}  // namespace hrops
