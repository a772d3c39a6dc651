// upfirdn2d (StyleGAN2; rosinality/stylegan2-pytorch op/upfirdn2d.py, as
// copied in Yan98/S2FGAN op/upfirdn2d.py): zero-insertion upsampling, padding
// (negative pads crop), FIR filtering by true 2-D convolution (correlation
// with the flipped kernel), downsampling. Per-output math shared by the CUDA
// kernel and the CPU kernel's general (non-separable) path.
//
// With the upsampled + padded signal u[p] = x[(p - pad0) / up] where
// p - pad0 is a non-negative multiple of up below in * up, and 0 elsewhere,
//   out[o] = sum_t u[o * down + t] * kernel[k - 1 - t],   t in [0, k),
// in each dimension; out = (in * up + pad0 + pad1 - k) / down + 1 samples.
#pragma once
#include <cstdint>

#include "common/haar.h"  // Convert<T>: storage <-> accumulation type
#include "hd.h"

namespace hrops {

struct UpFirDn2dGeom {
  int64_t in_h, in_w, out_h, out_w, kh, kw;
  int64_t up_x, up_y, down_x, down_y, pad_x0, pad_y0;
};

// Output length of one dimension (0 when the padded signal is shorter than
// the kernel).
HROPS_HD int64_t upfirdn_out_len(int64_t in, int64_t k, int64_t up, int64_t down, int64_t pad0,
                                 int64_t pad1) {
  const int64_t span = in * up + pad0 + pad1 - k;
  return span < 0 ? 0 : span / down + 1;
}

// The first tap t >= 0 at which start + t is a non-negative multiple of up:
// the taps that hit an input sample are t, t + up, t + 2 up, ...
HROPS_HD int64_t upfirdn_first_tap(int64_t start, int64_t up) {
  const int64_t t = start < 0 ? -start : 0;
  const int64_t r = (start + t) % up;
  return r == 0 ? t : t + (up - r);
}

// One output sample of one (n, c) plane. x: the plane, strides sh, sw;
// kernel: kh x kw row-major in its original (unflipped) orientation.
template <typename Acc, typename T>
HROPS_HD Acc upfirdn2d_point(const T* x, int64_t sh, int64_t sw, const Acc* kernel,
                             const UpFirDn2dGeom& g, int64_t oy, int64_t ox) {
  using Cv = Convert<T>;
  const int64_t sy = oy * g.down_y - g.pad_y0, sx = ox * g.down_x - g.pad_x0;
  const int64_t kx0 = upfirdn_first_tap(sx, g.up_x);
  Acc acc = Acc(0);
  for (int64_t ky = upfirdn_first_tap(sy, g.up_y); ky < g.kh; ky += g.up_y) {
    const int64_t iy = (sy + ky) / g.up_y;
    if (iy >= g.in_h) break;
    const Acc* krow = kernel + (g.kh - 1 - ky) * g.kw + (g.kw - 1);
    for (int64_t kx = kx0; kx < g.kw; kx += g.up_x) {
      const int64_t ix = (sx + kx) / g.up_x;
      if (ix >= g.in_w) break;
      acc += Cv::template load<Acc>(x[iy * sh + ix * sw]) * krow[-kx];
    }
  }
  return acc;
}

}  // namespace hrops
