// Raw-pointer launchers implemented in the .cu files. This header is shared by
// the .cu kernels and the .cpp tensor glue, so it includes no torch headers
// (torch headers in a .cu cost ~100 s of compile time each).
#pragma once
#include <cuda_runtime_api.h>
#include <cstdint>

#include "common/gates.h"

namespace hrops {

enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };

// x: (N, C, H, W) with strides xs; out: contiguous (N, 4C, ceil(H/2), ceil(W/2)).
cudaError_t launch_haar_dwt(DType dtype, const void* x, const int64_t xs[4], void* out, int64_t N,
                            int64_t C, int64_t H, int64_t W, cudaStream_t stream);

// low: (N, C, h, w) strides ls; high: (N, C, 3, h, w) strides hs;
// out: contiguous (N, C, H, W) with h = ceil(H/2), w = ceil(W/2).
cudaError_t launch_haar_idwt(DType dtype, const void* low, const int64_t ls[4], const void* high,
                             const int64_t hs[5], void* out, int64_t N, int64_t C, int64_t H,
                             int64_t W, cudaStream_t stream);

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

// Gating kernel `kernel` (csrc/common/gates.h) over N*C planes of HW elements
// whose locations `planes` gives; activation: gates::kTanh or kRelu (LSTU).
cudaError_t launch_gates(gates::Kernel kernel, int64_t activation, DType dtype,
                         const gates::Planes& planes, int64_t N, int64_t C, int64_t HW,
                         cudaStream_t stream);

}  // namespace hrops
