// Tensor glue of the PatchMatch CUDA kernels: features are converted to
// channels-last float32 here (ATen), the kernels see raw pointers.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/patchmatch_shapes.h"
#include "common/patchmatch.h"

namespace hrops {

// Raw-pointer launchers, defined in the .cu file next to the kernels.
// new_offsets (N, 2, topk, H, W), probs (N, topk, H, W).
// random_offsets: contiguous (N, 2, R, H, W) random-search candidates (null when R = 0).
cudaError_t launch_patchmatch_step(const PatchMatchDims& d, const float* a, const float* b,
                                   const float* offsets, int direction, float inv_temperature,
                                   int topk, bool cocosnet_truncation,
                                   const float* random_offsets, int64_t R, float* new_offsets,
                                   float* probs, cudaStream_t stream);

// out: (N, Cr, H, W), zero-initialised by the caller.
cudaError_t launch_patchmatch_warp(const PatchMatchDims& d, const float* a, const float* b,
                                   const float* ref, int64_t Cr, const float* offsets,
                                   float inv_temperature, bool cocosnet_truncation, float* out,
                                   cudaStream_t stream);

// grad: channels-last (N, H, W, Cr); ga (N, H, W, C), gb (N, Hb, Wb, C),
// gref (N, Hb, Wb, Cr) zero-initialised; gb and gref accumulate with atomics.
cudaError_t launch_patchmatch_warp_backward(const PatchMatchDims& d, const float* grad,
                                            const float* a, const float* b, const float* ref,
                                            int64_t Cr, const float* offsets,
                                            float inv_temperature, bool cocosnet_truncation,
                                            float* ga, float* gb, float* gref, cudaStream_t stream);

namespace {

at::Tensor channels_last_f32(const at::Tensor& t) {
  return t.permute({0, 2, 3, 1}).to(at::kFloat).contiguous();
}

PatchMatchDims dims(const PmDims& d) { return PatchMatchDims{d.N, d.C, d.H, d.W, d.Hb, d.Wb, d.K}; }

std::tuple<at::Tensor, at::Tensor> patchmatch_step_cuda(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& offsets, int64_t direction,
    double temperature, int64_t topk, bool trunc, const std::optional<at::Tensor>& random_offsets) {
  const PmDims d = check_patchmatch_args(a, b, offsets);
  const int64_t R = check_patchmatch_random_offsets(d, a, random_offsets);
  check_patchmatch_step_args(d, direction, temperature, topk, R);
  const c10::cuda::CUDAGuard guard(a.device());
  at::Tensor new_offsets = at::empty({d.N, 2, topk, d.H, d.W}, offsets.options().dtype(at::kFloat));
  at::Tensor probs = at::empty({d.N, topk, d.H, d.W}, a.options().dtype(at::kFloat));
  const at::Tensor acl = channels_last_f32(a), bcl = channels_last_f32(b);
  const at::Tensor off = offsets.to(at::kFloat).contiguous();
  const at::Tensor rnd = R > 0 ? random_offsets->to(at::kFloat).contiguous() : at::Tensor();
  C10_CUDA_CHECK(launch_patchmatch_step(
      dims(d), acl.const_data_ptr<float>(), bcl.const_data_ptr<float>(), off.const_data_ptr<float>(),
      int(direction), float(1.0 / temperature), int(topk), trunc,
      R > 0 ? rnd.const_data_ptr<float>() : nullptr, R, new_offsets.mutable_data_ptr<float>(),
      probs.mutable_data_ptr<float>(), c10::cuda::getCurrentCUDAStream()));
  return {new_offsets.to(offsets.scalar_type()), probs.to(a.scalar_type())};
}

at::Tensor warp_cuda(const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
                     const at::Tensor& offsets, double temperature, bool trunc) {
  const PmDims d = check_patchmatch_args(a, b, offsets);
  check_patchmatch_warp_args(d, a, ref, temperature);
  const c10::cuda::CUDAGuard guard(a.device());
  at::Tensor out = at::zeros({d.N, ref.size(1), d.H, d.W}, ref.options().dtype(at::kFloat));
  const at::Tensor acl = channels_last_f32(a), bcl = channels_last_f32(b);
  const at::Tensor rcl = channels_last_f32(ref), off = offsets.to(at::kFloat).contiguous();
  C10_CUDA_CHECK(launch_patchmatch_warp(
      dims(d), acl.const_data_ptr<float>(), bcl.const_data_ptr<float>(), rcl.const_data_ptr<float>(),
      ref.size(1), off.const_data_ptr<float>(), float(1.0 / temperature), trunc,
      out.mutable_data_ptr<float>(), c10::cuda::getCurrentCUDAStream()));
  return out.to(ref.scalar_type());
}

// The CUDA backward recomputes the softmax weights: save_weights is ignored
// and the two saved outputs are empty.
std::tuple<at::Tensor, at::Tensor, at::Tensor> patchmatch_warp_cuda(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref, const at::Tensor& offsets,
    double temperature, bool trunc, bool /*save_weights*/) {
  at::Tensor out = warp_cuda(a, b, ref, offsets, temperature, trunc);
  return {out, out.new_empty({0}), out.new_empty({0})};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> patchmatch_warp_backward_cuda(
    const at::Tensor& grad, const at::Tensor& a, const at::Tensor& b, const at::Tensor& ref,
    const at::Tensor& offsets, const at::Tensor& /*weights*/, const at::Tensor& /*b_rows*/,
    double temperature, bool trunc) {
  const PmDims d = check_patchmatch_args(a, b, offsets);
  check_patchmatch_warp_args(d, a, ref, temperature);
  const int64_t Cr = ref.size(1);
  check_grad(grad, a, "feat_a", {d.N, Cr, d.H, d.W});
  const c10::cuda::CUDAGuard guard(a.device());
  auto f32 = a.options().dtype(at::kFloat);
  at::Tensor ga = at::zeros({d.N, d.H, d.W, d.C}, f32), gb = at::zeros({d.N, d.Hb, d.Wb, d.C}, f32);
  at::Tensor gr = at::zeros({d.N, d.Hb, d.Wb, Cr}, f32);
  const at::Tensor acl = channels_last_f32(a), bcl = channels_last_f32(b);
  const at::Tensor rcl = channels_last_f32(ref), gcl = channels_last_f32(grad);
  const at::Tensor off = offsets.to(at::kFloat).contiguous();
  C10_CUDA_CHECK(launch_patchmatch_warp_backward(
      dims(d), gcl.const_data_ptr<float>(), acl.const_data_ptr<float>(), bcl.const_data_ptr<float>(),
      rcl.const_data_ptr<float>(), Cr, off.const_data_ptr<float>(), float(1.0 / temperature), trunc,
      ga.mutable_data_ptr<float>(), gb.mutable_data_ptr<float>(), gr.mutable_data_ptr<float>(),
      c10::cuda::getCurrentCUDAStream()));
  auto finish = [](const at::Tensor& t, const at::Tensor& like) {
    return t.permute({0, 3, 1, 2}).to(like.scalar_type()).contiguous();
  };
  return {finish(ga, a), finish(gb, b), finish(gr, ref)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CUDA, m) {
  m.impl("patchmatch_step", &patchmatch_step_cuda);
  m.impl("patchmatch_warp", &patchmatch_warp_cuda);
  m.impl("_patchmatch_warp_backward", &patchmatch_warp_backward_cuda);
}

}  // namespace hrops
