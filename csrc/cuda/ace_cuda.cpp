// Tensor glue of the ACE epilogue CUDA kernels (ace_kernels.cu).
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "common/ace.h"
#include "common/ace_shapes.h"
#include "cuda/dtype_map.h"

namespace hrops {

// Raw-pointer launchers, defined in the .cu file next to the kernels.
// SEAN's ACE epilogue over n contiguous elements; gamma_avg, beta_avg and
// alpha (2 values of the accumulation type: float, double for double) are
// all null for the SPADE-only form.
cudaError_t launch_ace_modulate(DType dtype, const void* x, const void* gamma_spade,
                                const void* beta_spade, const void* gamma_avg,
                                const void* beta_avg, const void* alpha, void* out, int64_t n,
                                cudaStream_t stream);
// Its backward: the five map gradients (only grad_x and grad_gamma_spade, the
// others null, for the SPADE-only form) and, blended, the alpha gradient's
// two sums per block of kAceSumBlock elements into partials (2 doubles each).
cudaError_t launch_ace_modulate_backward(DType dtype, const void* grad, const void* x,
                                         const void* gamma_spade, const void* beta_spade,
                                         const void* gamma_avg, const void* beta_avg,
                                         const void* alpha, void* grad_x, void* grad_gamma_spade,
                                         void* grad_beta_spade, void* grad_gamma_avg,
                                         void* grad_beta_avg, double* partials, int64_t n,
                                         cudaStream_t stream);

namespace {

at::Tensor ace_modulate_cuda(const at::Tensor& x, const at::Tensor& gamma_spade,
                             const at::Tensor& beta_spade, const std::optional<at::Tensor>& gamma_avg,
                             const std::optional<at::Tensor>& beta_avg,
                             const std::optional<at::Tensor>& alpha) {
  const AceMaps checked = check_ace_args(x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha);
  const std::vector<at::Tensor>& maps = checked.maps;
  const bool blend = checked.blend;
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor a;
  if (blend) a = alpha->to(x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat).contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  if (out.numel() == 0) return out;
  C10_CUDA_CHECK(launch_ace_modulate(
      to_launch_dtype(x.scalar_type()), maps[0].const_data_ptr(), maps[1].const_data_ptr(),
      maps[2].const_data_ptr(), blend ? maps[3].const_data_ptr() : nullptr,
      blend ? maps[4].const_data_ptr() : nullptr, blend ? a.const_data_ptr() : nullptr,
      out.mutable_data_ptr(), out.numel(), c10::cuda::getCurrentCUDAStream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
ace_modulate_backward_cuda(const at::Tensor& grad_in, const at::Tensor& x,
                           const at::Tensor& gamma_spade, const at::Tensor& beta_spade,
                           const std::optional<at::Tensor>& gamma_avg,
                           const std::optional<at::Tensor>& beta_avg,
                           const std::optional<at::Tensor>& alpha) {
  const AceMaps checked = check_ace_args(x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha);
  const std::vector<at::Tensor>& m = checked.maps;
  const bool blend = checked.blend;
  check_grad(grad_in, x, "x", x.sizes());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t n = x.numel();
  const auto map = [&] { return at::empty(x.sizes(), x.options()); };
  const auto none = [&] { return at::empty({0}, x.options()); };
  at::Tensor dx = map(), dgs = map();
  at::Tensor dbs = blend ? map() : none(), dga = blend ? map() : none(),
             dba = blend ? map() : none();
  if (!blend || n == 0) {
    C10_CUDA_CHECK(launch_ace_modulate_backward(
        to_launch_dtype(x.scalar_type()), grad.const_data_ptr(), m[0].const_data_ptr(),
        m[1].const_data_ptr(), nullptr, nullptr, nullptr, nullptr, dx.mutable_data_ptr(),
        dgs.mutable_data_ptr(), nullptr, nullptr, nullptr, nullptr, n,
        c10::cuda::getCurrentCUDAStream()));
    return {dx, dgs, dbs, dga, dba, blend ? at::zeros({2}, x.options()) : none()};
  }
  const at::Tensor a =
      alpha->to(x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat).contiguous();
  at::Tensor partials = at::empty({ace_sum_blocks(n), 2}, x.options().dtype(at::kDouble));
  C10_CUDA_CHECK(launch_ace_modulate_backward(
      to_launch_dtype(x.scalar_type()), grad.const_data_ptr(), m[0].const_data_ptr(),
      m[1].const_data_ptr(), m[2].const_data_ptr(), m[3].const_data_ptr(), m[4].const_data_ptr(),
      a.const_data_ptr(), dx.mutable_data_ptr(), dgs.mutable_data_ptr(), dbs.mutable_data_ptr(),
      dga.mutable_data_ptr(), dba.mutable_data_ptr(), partials.mutable_data_ptr<double>(), n,
      c10::cuda::getCurrentCUDAStream()));
  return {dx, dgs, dbs, dga, dba, partials.sum(0).to(x.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CUDA, m) {
  m.impl("ace_modulate", &ace_modulate_cuda);
  m.impl("_ace_modulate_backward", &ace_modulate_backward_cuda);
}

}  // namespace hrops
