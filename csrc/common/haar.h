// Single-level orthonormal Haar transform (pywt 'db1', mode 'zero'), the
// per-block math shared by the CPU and CUDA kernels. See SEEDS.md section 1.
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

// Forward transform of the block whose top-left element is x[0].
// sh/sw: row/column strides; bottom/right: whether the second row/column
// exists (false at the last row/column of an odd-sized input).
template <typename Acc, typename T>
HROPS_HD void haar_dwt_block(const T* x, int64_t sh, int64_t sw, bool bottom, bool right,
                             T* ll, T* lh, T* hl, T* hh) {
  using Cv = Convert<T>;
  const Acc a = Cv::template load<Acc>(x[0]);
  const Acc b = right ? Cv::template load<Acc>(x[sw]) : Acc(0);
  const Acc c = bottom ? Cv::template load<Acc>(x[sh]) : Acc(0);
  const Acc d = (bottom && right) ? Cv::template load<Acc>(x[sh + sw]) : Acc(0);
  Acc o0, o1, o2, o3;
  haar_butterfly<Acc>(a, b, c, d, o0, o1, o2, o3);
  *ll = Cv::template store<Acc>(o0);
  *lh = Cv::template store<Acc>(o1);
  *hl = Cv::template store<Acc>(o2);
  *hh = Cv::template store<Acc>(o3);
}

// Inverse transform of one coefficient quadruple into the block whose
// top-left element is y[0]; outputs outside an odd-sized (cropped) image are
// not written.
template <typename Acc, typename T>
HROPS_HD void haar_idwt_block(T ll, T lh, T hl, T hh, T* y, int64_t sh, int64_t sw,
                              bool bottom, bool right) {
  using Cv = Convert<T>;
  Acc a, b, c, d;
  haar_butterfly<Acc>(Cv::template load<Acc>(ll), Cv::template load<Acc>(lh),
                      Cv::template load<Acc>(hl), Cv::template load<Acc>(hh), a, b, c, d);
  y[0] = Cv::template store<Acc>(a);
  if (right) y[sw] = Cv::template store<Acc>(b);
  if (bottom) {
    y[sh] = Cv::template store<Acc>(c);
    if (right) y[sh + sw] = Cv::template store<Acc>(d);
  }
}

}  // namespace hrops
