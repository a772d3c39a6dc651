// Region (segmentation) ops of SEAN (SEAN, Zhu et al. CVPR 2020; ZPdesu/SEAN
// models/networks/architecture.py, Zencoder, and
// models/networks/normalization.py, ACE): the per-pixel math
// shared by the CPU and CUDA kernels.
//
// A label map holds one region id per pixel: 0 <= id < R, or -1 for a pixel in
// no region. Every read of a label goes through region_label_at, which maps
// ids outside [0, R) and pixels outside the map (zero padding) to -1, so no
// kernel indexes a table out of bounds whatever the labels hold (the glue
// additionally rejects out-of-range ids with an error before launching).
#pragma once
#include <cstdint>
#include "haar.h"  // Convert<T>: storage <-> accumulation type
#include "hd.h"

namespace hrops {

// The region of pixel (y, x) of an H x W label map, or -1 (unlabelled, an
// invalid id, or outside the map).
HROPS_HD int64_t region_label_at(const int64_t* labels, int64_t H, int64_t W, int64_t R, int64_t y,
                                 int64_t x) {
  if (y < 0 || y >= H || x < 0 || x >= W) return -1;
  const int64_t r = labels[y * W + x];
  return (r >= 0 && r < R) ? r : -1;
}

// A pixel's value in a region fill: table[r, c] (scaled by 1/count[r] for a
// mean), 0 for a pixel in no region.
template <typename Acc, typename T>
HROPS_HD Acc region_fill_value(const T* table, int64_t r, int64_t C, int64_t c, Acc scale) {
  return r < 0 ? Acc(0) : scale * Convert<T>::template load<Acc>(table[r * C + c]);
}

// The label under tap t (row-major in a k x k kernel) of output pixel (y, x)
// of a stride-1 convolution with zero padding `pad`.
HROPS_HD int64_t region_tap_label(const int64_t* labels, int64_t H, int64_t W, int64_t R,
                                  int64_t k, int64_t pad, int64_t y, int64_t x, int64_t t) {
  return region_label_at(labels, H, W, R, y + t / k - pad, x + t % k - pad);
}

// The contribution of one tap to a region-constant convolution: row
// (r, t) of the per-image projection P (R, T, O), i.e.
// P[r, t, o] = sum_d weight[o, d, t] * codes[r, d]; an unlabelled tap (r < 0)
// contributes 0 (zero padding, pixels in no region).
template <typename Acc, typename T>
HROPS_HD Acc region_tap_value(const T* proj, int64_t r, int64_t t, int64_t taps, int64_t O,
                              int64_t o) {
  return r < 0 ? Acc(0) : Convert<T>::template load<Acc>(proj[(r * taps + t) * O + o]);
}

// One output value of the region-constant convolution, channel o, at a
// pixel whose taps lie on regions sig[0 .. taps) (region_tap_label, -1 for
// none): bias + the taps' projections in order t = 0, 1, ... . The CPU kernel
// evaluates it once per distinct signature, the CUDA kernel per pixel.
template <typename Acc, typename T>
HROPS_HD Acc region_conv_value(const T* proj, const int64_t* sig, int64_t taps, int64_t O,
                               int64_t o, Acc bias) {
  Acc acc = bias;
  for (int64_t t = 0; t < taps; ++t) acc += region_tap_value<Acc>(proj, sig[t], t, taps, O, o);
  return acc;
}

// The CUDA kernel keeps a pixel's signature in a local array of this size.
constexpr int64_t kRegionConvMaxTaps = 49;  // kernels up to 7 x 7

}  // namespace hrops
