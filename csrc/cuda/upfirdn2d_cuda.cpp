// Tensor glue of the upfirdn2d CUDA kernel.
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/upfirdn2d_shapes.h"
#include "cuda/dtype_map.h"

namespace hrops {

// Raw-pointer launchers, defined in the .cu file next to the kernels.
// upfirdn2d: x (N, C, in_h, in_w) with strides xs; kernel: contiguous kh x kw
// in float (double for double x) on the device; out: contiguous
// (N, C, out_h, out_w). Geometry in the order of UpFirDn2dGeom: in_h, in_w,
// out_h, out_w, kh, kw, up_x, up_y, down_x, down_y, pad_x0, pad_y0.
cudaError_t launch_upfirdn2d(DType dtype, const void* x, const int64_t xs[4], const void* kernel,
                             void* out, int64_t N, int64_t C, const int64_t geom[12],
                             cudaStream_t stream);

namespace {

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x,
                          int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0,
                          int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
  const UpFirDn2dGeom g = upfirdn2d_geometry(x, kernel, up_x, up_y, down_x, down_y, pad_x0,
                                             pad_x1, pad_y0, pad_y1);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty({x.size(0), x.size(1), g.out_h, g.out_w}, x.options());
  if (out.numel() == 0) return out;
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor k = kernel.to(acc).contiguous();
  const int64_t xs[4] = {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  const int64_t geom[12] = {g.in_h, g.in_w, g.out_h, g.out_w, g.kh, g.kw,
                            g.up_x, g.up_y, g.down_x, g.down_y, g.pad_x0, g.pad_y0};
  C10_CUDA_CHECK(launch_upfirdn2d(to_launch_dtype(x.scalar_type()), x.const_data_ptr(), xs,
                                  k.const_data_ptr(), out.mutable_data_ptr(), x.size(0),
                                  x.size(1), geom, c10::cuda::getCurrentCUDAStream()));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CUDA, m) { m.impl("upfirdn2d", &upfirdn2d_cuda); }

}  // namespace hrops
