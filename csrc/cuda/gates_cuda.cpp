// Tensor glue of the gating CUDA kernels (the op bodies are
// csrc/common/gates_ops.h, shared with the CPU backend).
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/gates_ops.h"
#include "cuda/dtype_map.h"

namespace hrops {

// Raw-pointer launchers, defined in the .cu file next to the kernels.
// Gating kernel `kernel` (csrc/common/gates.h) over N*C planes of HW elements
// whose locations `planes` gives; activation: gates::kTanh or kRelu (LSTU).
cudaError_t launch_gates(gates::Kernel kernel, int64_t activation, DType dtype,
                         const gates::Planes& planes, int64_t N, int64_t C, int64_t HW,
                         cudaStream_t stream);

namespace {

struct Cuda {
  static constexpr bool kStridedSpans = false;  // NCHW operands are copied channels-last
  static at::Tensor alloc(at::IntArrayRef sizes, const at::TensorOptions& options) {
    return at::empty(sizes, options);
  }
  static void run(gates::Kernel kernel, int64_t act, const gates::Planes& p, at::ScalarType dtype,
                  int64_t N, int64_t C, int64_t HW) {
    C10_CUDA_CHECK(launch_gates(kernel, act, to_launch_dtype(dtype), p, N, C, HW,
                                c10::cuda::getCurrentCUDAStream()));
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CUDA, m) {
  m.impl("lstu_gates", [](const at::Tensor& x, const at::Tensor& xt, const at::Tensor& pre,
                          const at::Tensor& enc, int64_t act) {
    const c10::cuda::CUDAGuard guard(x.device());
    return gates_ops::lstu_gates<Cuda>(x, xt, pre, enc, act);
  });
  m.impl("_lstu_gates_backward", [](const at::Tensor& gh, const at::Tensor& gc, const at::Tensor& x,
                                   const at::Tensor& xt, const at::Tensor& pre,
                                   const at::Tensor& enc, int64_t act) {
    const c10::cuda::CUDAGuard guard(x.device());
    return gates_ops::lstu_gates_backward<Cuda>(gh, gc, x, xt, pre, enc, act);
  });
  m.impl("stu_reset", [](const at::Tensor& pre_r, const at::Tensor& s_hat) {
    const c10::cuda::CUDAGuard guard(s_hat.device());
    return gates_ops::stu_reset<Cuda>(pre_r, s_hat);
  });
  m.impl("_stu_reset_backward", [](const at::Tensor& g, const at::Tensor& pre_r,
                                  const at::Tensor& s_hat) {
    const c10::cuda::CUDAGuard guard(s_hat.device());
    return gates_ops::stu_reset_backward<Cuda>(g, pre_r, s_hat);
  });
  m.impl("gru_update", [](const at::Tensor& pre_z, const at::Tensor& h, const at::Tensor& pre_q) {
    const c10::cuda::CUDAGuard guard(h.device());
    return gates_ops::gru_update<Cuda>(pre_z, h, pre_q);
  });
  m.impl("_gru_update_backward", [](const at::Tensor& g, const at::Tensor& pre_z,
                                   const at::Tensor& h, const at::Tensor& pre_q) {
    const c10::cuda::CUDAGuard guard(h.device());
    return gates_ops::gru_update_backward<Cuda>(g, pre_z, h, pre_q);
  });
}

}  // namespace hrops
