// Tensor glue of the modulated IDWT upsampling CUDA kernels.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/modulated_idwt_shapes.h"
#include "cuda/dtype_map.h"

namespace hrops {

// Raw-pointer launchers, defined in the .cu file next to the kernels.
// x: (N, 4C, h, w) with strides xs; mod: contiguous (N, 4C);
// out: contiguous (N, C, 2h, 2w).
cudaError_t launch_modulated_idwt(DType dtype, const void* x, const int64_t xs[4], const void* mod,
                                  void* out, int64_t N, int64_t C, int64_t h, int64_t w,
                                  cudaStream_t stream);

// grad: contiguous (N, C, 2h, 2w); x: contiguous (N, 4C, h, w); mod: contiguous
// (N, 4C). grad_x: contiguous like x; grad_mod: contiguous (N, 4C) in float
// (double for double inputs).
cudaError_t launch_modulated_idwt_backward(DType dtype, const void* grad, const void* x,
                                           const void* mod, void* grad_x, void* grad_mod,
                                           int64_t N, int64_t C, int64_t h, int64_t w,
                                           cudaStream_t stream);

namespace {

at::Tensor modulated_idwt_upsample_cuda(const at::Tensor& x, const at::Tensor& mod_in) {
  check_modulated_idwt_args(x, mod_in);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1) / 4, h = x.size(2), w = x.size(3);
  at::Tensor out = at::empty({N, C, 2 * h, 2 * w}, x.options());
  if (out.numel() == 0) return out;
  const at::Tensor mod = mod_in.contiguous();
  const int64_t xs[4] = {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  C10_CUDA_CHECK(launch_modulated_idwt(to_launch_dtype(x.scalar_type()), x.const_data_ptr(), xs,
                                       mod.const_data_ptr(), out.mutable_data_ptr(), N, C, h, w,
                                       c10::cuda::getCurrentCUDAStream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor> modulated_idwt_upsample_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& mod_in) {
  check_modulated_idwt_backward_args(grad_in, x_in, mod_in);
  const int64_t N = x_in.size(0), C = x_in.size(1) / 4, h = x_in.size(2), w = x_in.size(3);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous(), mod = mod_in.contiguous();
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor grad_x = at::empty(x.sizes(), x.options());
  at::Tensor grad_mod = at::zeros(mod.sizes(), mod.options().dtype(acc));
  C10_CUDA_CHECK(launch_modulated_idwt_backward(
      to_launch_dtype(x.scalar_type()), grad.const_data_ptr(), x.const_data_ptr(),
      mod.const_data_ptr(), grad_x.mutable_data_ptr(), grad_mod.mutable_data_ptr(), N, C, h, w,
      c10::cuda::getCurrentCUDAStream()));
  return {grad_x, grad_mod.to(mod.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CUDA, m) {
  m.impl("modulated_idwt_upsample", &modulated_idwt_upsample_cuda);
  m.impl("_modulated_idwt_upsample_backward", &modulated_idwt_upsample_backward_cuda);
}

}  // namespace hrops
