// Tensor glue of the Haar CUDA kernels: checks, allocation, device guard,
// current stream; the kernels are in haar_kernels.cu.
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/haar_shapes.h"
#include "cuda/dtype_map.h"

namespace hrops {

// Raw-pointer launchers, defined in the .cu file next to the kernels.
// x: (N, C, H, W) with strides xs; out: contiguous (N, 4C, ceil(H/2), ceil(W/2)).
cudaError_t launch_haar_dwt(DType dtype, const void* x, const int64_t xs[4], void* out, int64_t N,
                            int64_t C, int64_t H, int64_t W, cudaStream_t stream);

// low: (N, C, h, w) strides ls; high: (N, C, 3, h, w) strides hs;
// out: contiguous (N, C, H, W) with h = ceil(H/2), w = ceil(W/2).
cudaError_t launch_haar_idwt(DType dtype, const void* low, const int64_t ls[4], const void* high,
                             const int64_t hs[5], void* out, int64_t N, int64_t C, int64_t H,
                             int64_t W, cudaStream_t stream);

namespace {

at::Tensor haar_dwt_cuda(const at::Tensor& x) {
  check_dim(x, 4, "x", "(N, C, H, W)");
  check_floating(x, "x");
  const HaarDims d = haar_dims_from_input(x);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty({d.N, 4 * d.C, d.h, d.w}, x.options());
  if (out.numel() == 0) return out;
  const int64_t xs[4] = {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  C10_CUDA_CHECK(launch_haar_dwt(to_launch_dtype(x.scalar_type()), x.const_data_ptr(), xs,
                                 out.mutable_data_ptr(), d.N, d.C, d.H, d.W,
                                 c10::cuda::getCurrentCUDAStream()));
  return out;
}

at::Tensor haar_idwt_cuda(const at::Tensor& low, const at::Tensor& high, int64_t out_h,
                          int64_t out_w) {
  const HaarDims d = haar_dims_from_coeffs(low, high, out_h, out_w);
  const c10::cuda::CUDAGuard guard(low.device());
  at::Tensor out = at::empty({d.N, d.C, d.H, d.W}, low.options());
  if (out.numel() == 0) return out;
  const int64_t ls[4] = {low.stride(0), low.stride(1), low.stride(2), low.stride(3)};
  const int64_t hs[5] = {high.stride(0), high.stride(1), high.stride(2), high.stride(3),
                         high.stride(4)};
  C10_CUDA_CHECK(launch_haar_idwt(to_launch_dtype(low.scalar_type()), low.const_data_ptr(), ls,
                                  high.const_data_ptr(), hs, out.mutable_data_ptr(), d.N, d.C,
                                  d.H, d.W, c10::cuda::getCurrentCUDAStream()));
  return out;
}

at::Tensor haar_idwt_packed_cuda(const at::Tensor& y, int64_t out_h, int64_t out_w) {
  const auto [low, high] = split_packed_coeffs(y);
  return haar_idwt_cuda(low, high, out_h, out_w);
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CUDA, m) {
  m.impl("haar_dwt", &haar_dwt_cuda);
  m.impl("haar_idwt", &haar_idwt_cuda);
  m.impl("haar_idwt_packed", &haar_idwt_packed_cuda);
}

}  // namespace hrops
