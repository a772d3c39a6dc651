// exp(x) in float without a libm call, shared by the CPU and CUDA kernels
// (PatchMatch's softmax, the recurrent-cell gates): the same formula on both,
// and on the host a branch-free function that loops vectorise. Results agree
// to about an ulp, not bitwise: nvcc contracts its multiply-adds into FMAs,
// as GCC does in the AVX2/AVX-512 code but not in baseline x86-64 code.
#pragma once
#include <cstdint>
#include <cstring>

#include "hd.h"

namespace hrops {

// The bits of a float and back (host and device).
HROPS_HD_INLINE int32_t float_bits(float v) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(v);
#else
  int32_t i;
  std::memcpy(&i, &v, sizeof(i));
  return i;
#endif
}

HROPS_HD_INLINE float bits_float(uint32_t i) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(i);
#else
  float v;
  std::memcpy(&v, &i, sizeof(v));
  return v;
#endif
}

// exp(x) within ~1 ulp of expf (Cephes' polynomial), branch-free so that a
// loop over candidates vectorises. x = n ln2 + r with |r| <= ln2 / 2; 2^n is
// applied as two normal powers of two, so results down in the subnormal
// range are rounded once, like expf's. NaN stays NaN.
HROPS_HD_INLINE float fast_expf(float x) {
  x = x < -110.0f ? -110.0f : x;  // exp(-110) rounds to 0, exp(89) to inf
  x = x > 89.0f ? 89.0f : x;
  const float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + round_magic;
  const float n = t - round_magic;
  const int32_t ni = float_bits(t) - float_bits(round_magic);
  // Cody-Waite reduction: n * 0.693359375 is exact.
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  return y * bits_float(uint32_t(n1 + 127) << 23) * bits_float(uint32_t(n2 + 127) << 23);
}

}  // namespace hrops
