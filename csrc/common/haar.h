// Single-level orthonormal Haar transform (pywt 'db1', mode 'zero'), the
// per-block math shared by the CPU and CUDA kernels. See
// fbcotter/pytorch_wavelets, pytorch_wavelets/dwt/lowlevel.py (afb1d, sfb1d),
// and the channel packing of bes-dev/MobileStyleGAN.pytorch,
// core/loss/distiller_loss.py (img_to_dwt, dwt_to_img).
//
// For the 2x2 block     a b
//                       c d
//   LL = (a+b+c+d)/2, LH = (a+b-c-d)/2 (top minus bottom, pywt cH),
//   HL = (a-b+c-d)/2 (left minus right, pywt cV), HH = (a-b-c+d)/2 (pywt cD).
// The 4x4 matrix is symmetric and orthonormal, so the inverse is the same map
// (LL, LH, HL, HH) -> (a, b, c, d). Odd sizes: the missing row/column is zero
// (pytorch_wavelets' mode 'zero' pads one zero at the bottom/right).
//
// Packed layout (MobileStyleGAN): for C input channels the 4C output channels
// are [LL of channel 0..C-1 | LH, HL, HH of channel 0 | ... of channel C-1].
#pragma once
#include <cstdint>
#include "hd.h"

namespace hrops {

// Storage <-> accumulation conversion. Specialised for CUDA's __half and
// __nv_bfloat16 in csrc/cuda (torch's nvcc flags disable their implicit casts).
template <typename T>
struct Convert {
  template <typename Acc>
  HROPS_HD static Acc load(T v) { return static_cast<Acc>(v); }
  template <typename Acc>
  HROPS_HD static T store(Acc v) { return static_cast<T>(v); }
};

// Channel of `band` (0 = LL, 1 = LH, 2 = HL, 3 = HH) of input channel c in the
// packed layout.
HROPS_HD int64_t haar_packed_channel(int64_t C, int64_t c, int band) {
  return band == 0 ? c : C + 3 * c + (band - 1);
}

template <typename Acc>
HROPS_HD void haar_butterfly(Acc p, Acc q, Acc r, Acc s, Acc& o0, Acc& o1, Acc& o2, Acc& o3) {
  const Acc s0 = p + q, d0 = p - q, s1 = r + s, d1 = r - s;
  o0 = Acc(0.5) * (s0 + s1);
  o1 = Acc(0.5) * (s0 - s1);
  o2 = Acc(0.5) * (d0 + d1);
  o3 = Acc(0.5) * (d0 - d1);
}

// Forward transform of the block whose top-left element is x[0], into
// o[0..3] = (LL, LH, HL, HH). sh/sw: row/column strides; bottom/right:
// whether the second row/column exists (false at the last row/column of an
// odd-sized input).
template <typename Acc, typename T>
HROPS_HD void haar_dwt_values(const T* x, int64_t sh, int64_t sw, bool bottom, bool right,
                              Acc o[4]) {
  using Cv = Convert<T>;
  const Acc a = Cv::template load<Acc>(x[0]);
  const Acc b = right ? Cv::template load<Acc>(x[sw]) : Acc(0);
  const Acc c = bottom ? Cv::template load<Acc>(x[sh]) : Acc(0);
  const Acc d = (bottom && right) ? Cv::template load<Acc>(x[sh + sw]) : Acc(0);
  haar_butterfly<Acc>(a, b, c, d, o[0], o[1], o[2], o[3]);
}

template <typename Acc, typename T>
HROPS_HD void haar_dwt_block(const T* x, int64_t sh, int64_t sw, bool bottom, bool right,
                             T* ll, T* lh, T* hl, T* hh) {
  using Cv = Convert<T>;
  Acc o[4];
  haar_dwt_values<Acc>(x, sh, sw, bottom, right, o);
  *ll = Cv::template store<Acc>(o[0]);
  *lh = Cv::template store<Acc>(o[1]);
  *hl = Cv::template store<Acc>(o[2]);
  *hh = Cv::template store<Acc>(o[3]);
}

// Inverse transform of the coefficients (LL, LH, HL, HH) = c[0..3] into the
// block whose top-left element is y[0]; outputs outside an odd-sized
// (cropped) image are not written.
template <typename Acc, typename T>
HROPS_HD void haar_idwt_store(const Acc c[4], T* y, int64_t sh, int64_t sw, bool bottom,
                              bool right) {
  using Cv = Convert<T>;
  Acc a, b, cc, d;
  haar_butterfly<Acc>(c[0], c[1], c[2], c[3], a, b, cc, d);
  y[0] = Cv::template store<Acc>(a);
  if (right) y[sw] = Cv::template store<Acc>(b);
  if (bottom) {
    y[sh] = Cv::template store<Acc>(cc);
    if (right) y[sh + sw] = Cv::template store<Acc>(d);
  }
}

template <typename Acc, typename T>
HROPS_HD void haar_idwt_block(T ll, T lh, T hl, T hh, T* y, int64_t sh, int64_t sw, bool bottom,
                              bool right) {
  using Cv = Convert<T>;
  const Acc c[4] = {Cv::template load<Acc>(ll), Cv::template load<Acc>(lh),
                    Cv::template load<Acc>(hl), Cv::template load<Acc>(hh)};
  haar_idwt_store<Acc>(c, y, sh, sw, bottom, right);
}

// MobileStyleGAN's modulated IDWT upsampling (bes-dev/MobileStyleGAN.pytorch,
// core/models/modules/idwt_upsample.py, IDWTUpsaplme.forward) of one block:
// the four coefficients are first scaled by their channels' modulation s[0..3].
template <typename Acc, typename T>
HROPS_HD void modulated_idwt_block(T ll, T lh, T hl, T hh, const Acc s[4], T* y, int64_t sh,
                                   int64_t sw, bool bottom, bool right) {
  using Cv = Convert<T>;
  const Acc c[4] = {s[0] * Cv::template load<Acc>(ll), s[1] * Cv::template load<Acc>(lh),
                    s[2] * Cv::template load<Acc>(hl), s[3] * Cv::template load<Acc>(hh)};
  haar_idwt_store<Acc>(c, y, sh, sw, bottom, right);
}

// Its backward for one block: with g = DWT of the output gradient block,
// grad_x[q] = s[q] * g[q] and the modulation gradient gains x[q] * g[q].
template <typename Acc, typename T>
HROPS_HD void modulated_idwt_block_backward(const T* gy, int64_t sh, int64_t sw, bool bottom,
                                            bool right, const T x[4], const Acc s[4],
                                            T grad_x[4], Acc grad_s[4]) {
  using Cv = Convert<T>;
  Acc g[4];
  haar_dwt_values<Acc>(gy, sh, sw, bottom, right, g);
  for (int q = 0; q < 4; ++q) {
    grad_x[q] = Cv::template store<Acc>(s[q] * g[q]);
    grad_s[q] += Cv::template load<Acc>(x[q]) * g[q];
  }
}

}  // namespace hrops
