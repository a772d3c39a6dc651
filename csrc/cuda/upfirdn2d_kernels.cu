// upfirdn2d, CUDA kernel: one thread per output sample (grid-stride), the
// per-output math of csrc/common/upfirdn2d.h shared with the CPU kernel.
#include <algorithm>

#include "common/upfirdn2d.h"
#include "cuda/convert.cuh"
#include "cuda/launch_dtype.h"
#include "cuda/launch_config.cuh"

namespace hrops {
namespace {

template <typename T>
__global__ void upfirdn2d_kernel(const T* __restrict__ x, int64_t sn, int64_t sc, int64_t sh,
                                 int64_t sw, const typename AccOf<T>::type* __restrict__ kernel,
                                 T* __restrict__ out, int64_t C, UpFirDn2dGeom g, int64_t total) {
  using Acc = typename AccOf<T>::type;
  for (int64_t k = grid_first(); k < total; k += grid_stride()) {
    const int64_t ox = k % g.out_w, oy = (k / g.out_w) % g.out_h, nc = k / (g.out_w * g.out_h);
    const T* plane = x + (nc / C) * sn + (nc % C) * sc;
    out[k] = Convert<T>::template store<Acc>(upfirdn2d_point<Acc>(plane, sh, sw, kernel, g, oy, ox));
  }
}

template <typename T>
cudaError_t run(const void* x, const int64_t* xs, const void* kernel, void* out, int64_t N,
                int64_t C, const UpFirDn2dGeom& g, cudaStream_t stream) {
  const int64_t total = N * C * g.out_h * g.out_w;
  if (total == 0) return cudaSuccess;
  upfirdn2d_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<const T*>(x), xs[0], xs[1], xs[2], xs[3],
      static_cast<const typename AccOf<T>::type*>(kernel), static_cast<T*>(out), C, g, total);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_upfirdn2d(DType dtype, const void* x, const int64_t xs[4], const void* kernel,
                             void* out, int64_t N, int64_t C, const int64_t geom[12],
                             cudaStream_t stream) {
  const UpFirDn2dGeom g{geom[0], geom[1], geom[2], geom[3], geom[4],  geom[5],
                        geom[6], geom[7], geom[8], geom[9], geom[10], geom[11]};
  HROPS_DISPATCH_DTYPE(dtype, T, run<T>(x, xs, kernel, out, N, C, g, stream));
}

}  // namespace hrops
