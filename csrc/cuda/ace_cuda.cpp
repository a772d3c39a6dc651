// Tensor glue of the ACE epilogue CUDA kernel (ace_kernels.cu).
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <vector>

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

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CUDA, m) {
  m.impl("ace_modulate", &ace_modulate_cuda);
}

}  // namespace hrops
