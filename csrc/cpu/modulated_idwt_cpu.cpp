// MobileStyleGAN's modulated IDWT upsampling on the CPU
// (bes-dev/MobileStyleGAN.pytorch, core/models/modules/idwt_upsample.py,
// IDWTUpsaplme):
// y = haar_idwt(modulation * x) in one pass, and its backward in one pass
// (DWT of the output gradient, scaled for grad_x, reduced against x for the
// modulation gradient). Per-block math: csrc/common/haar.h.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "cpu/parallel.h"
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "common/haar.h"
#include "common/modulated_idwt_shapes.h"
#include "cpu/output_alloc.h"

namespace hrops {
namespace {

at::Tensor modulated_idwt_upsample_cpu(const at::Tensor& x, const at::Tensor& mod_in) {
  check_modulated_idwt_args(x, mod_in);
  const int64_t N = x.size(0), C = x.size(1) / 4, h = x.size(2), w = x.size(3);
  at::Tensor out = empty_output({N, C, 2 * h, 2 * w}, x.options());
  if (out.numel() == 0) return out;
  const at::Tensor mod = mod_in.contiguous();
  const int64_t sN = x.stride(0), sC = x.stride(1), sH = x.stride(2), sW = x.stride(3);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "modulated_idwt_upsample_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* mp = mod.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const int64_t W = 2 * w;
    parallel_for(0, N * C * h, std::max<int64_t>(1, 16384 / std::max<int64_t>(w, 1)),
                     [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t i = r % h, c = (r / h) % C, n = r / (h * C);
        const scalar_t* m = mp + n * 4 * C;
        const acc_t s[4] = {acc_t(m[c]), acc_t(m[C + 3 * c]), acc_t(m[C + 3 * c + 1]),
                            acc_t(m[C + 3 * c + 2])};
        const scalar_t* ll = xp + n * sN + c * sC + i * sH;
        const scalar_t* lh = xp + n * sN + (C + 3 * c) * sC + i * sH;
        scalar_t* y = op + ((n * C + c) * 2 * h + 2 * i) * W;
        for (int64_t j = 0; j < w; ++j) {
          modulated_idwt_block<acc_t>(ll[j * sW], lh[j * sW], lh[sC + j * sW], lh[2 * sC + j * sW],
                                      s, y + 2 * j, W, 1, true, true);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> modulated_idwt_upsample_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& mod_in) {
  check_modulated_idwt_backward_args(grad_in, x_in, mod_in);
  const int64_t N = x_in.size(0), C = x_in.size(1) / 4, h = x_in.size(2), w = x_in.size(3);
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous(), mod = mod_in.contiguous();
  at::Tensor grad_x = empty_output(x.sizes(), x.options());
  at::Tensor grad_mod = at::empty(mod.sizes(), mod.options().dtype(at::toOpMathType(mod.scalar_type())));
  if (x.numel() == 0) return {grad_x, grad_mod.zero_().to(mod.scalar_type())};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "modulated_idwt_upsample_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* mp = mod.const_data_ptr<scalar_t>();
    scalar_t* gxp = grad_x.mutable_data_ptr<scalar_t>();
    acc_t* gmp = grad_mod.mutable_data_ptr<acc_t>();
    const int64_t plane = h * w, W = 2 * w;
    // One task per (n, c): it owns the four modulation gradients of channel c.
    parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t c = nc % C, n = nc / C;
        const int64_t ch[4] = {c, C + 3 * c, C + 3 * c + 1, C + 3 * c + 2};
        acc_t s[4], gs[4] = {0, 0, 0, 0};
        const scalar_t* xq[4];
        scalar_t* gq[4];
        for (int q = 0; q < 4; ++q) {
          s[q] = acc_t(mp[n * 4 * C + ch[q]]);
          xq[q] = xp + (n * 4 * C + ch[q]) * plane;
          gq[q] = gxp + (n * 4 * C + ch[q]) * plane;
        }
        const scalar_t* gy = gp + nc * 4 * plane;
        for (int64_t i = 0; i < h; ++i) {
          for (int64_t j = 0; j < w; ++j) {
            const int64_t k = i * w + j;
            const scalar_t xv[4] = {xq[0][k], xq[1][k], xq[2][k], xq[3][k]};
            scalar_t gx[4];
            modulated_idwt_block_backward<acc_t>(gy + 2 * i * W + 2 * j, W, 1, true, true, xv, s,
                                                 gx, gs);
            for (int q = 0; q < 4; ++q) gq[q][k] = gx[q];
          }
        }
        for (int q = 0; q < 4; ++q) gmp[n * 4 * C + ch[q]] = gs[q];
      }
    });
  });
  return {grad_x, grad_mod.to(mod.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def("modulated_idwt_upsample(Tensor x, Tensor modulation) -> Tensor");
  m.def(
      "_modulated_idwt_upsample_backward(Tensor grad, Tensor x, Tensor modulation) -> (Tensor, "
      "Tensor)");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("modulated_idwt_upsample", &modulated_idwt_upsample_cpu);
  m.impl("_modulated_idwt_upsample_backward", &modulated_idwt_upsample_backward_cpu);
}

}  // namespace hrops
