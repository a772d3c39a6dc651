// LSTU / STU / GRU gating, CUDA kernels: a thin grid-stride loop around the
// per-element functions of csrc/common/gates.h (the CPU kernels run the same
// functions). Triton (hrops/triton/gates.py) is the other GPU path.
#include <algorithm>

#include "common/gates.h"
#include "cuda/convert.cuh"
#include "cuda/launch_dtype.h"
#include "cuda/launch_config.cuh"

namespace hrops {
namespace {

using gates::Kernel;

template <Kernel K> struct Arity;
template <> struct Arity<Kernel::kLstu> { static constexpr int in = 5, out = 2; };
template <> struct Arity<Kernel::kLstuBackward> { static constexpr int in = 7, out = 5; };
template <> struct Arity<Kernel::kStuReset> { static constexpr int in = 2, out = 1; };
template <> struct Arity<Kernel::kStuResetBackward> { static constexpr int in = 3, out = 2; };
template <> struct Arity<Kernel::kGruUpdate> { static constexpr int in = 3, out = 1; };
template <> struct Arity<Kernel::kGruUpdateBackward> { static constexpr int in = 4, out = 3; };

template <Kernel K, int64_t kAct, typename A>
__device__ __forceinline__ void apply(const A* v, A* o) {
  if constexpr (K == Kernel::kLstu) {
    gates::lstu_forward<kAct, A>(v[0], v[1], v[2], v[3], v[4], o[0], o[1]);
  } else if constexpr (K == Kernel::kLstuBackward) {
    gates::lstu_backward<kAct, A>(v[0], v[1], v[2], v[3], v[4], v[5], v[6], o[0], o[1], o[2], o[3],
                                  o[4]);
  } else if constexpr (K == Kernel::kStuReset) {
    o[0] = gates::stu_reset_forward<A>(v[0], v[1]);
  } else if constexpr (K == Kernel::kStuResetBackward) {
    gates::stu_reset_backward<A>(v[0], v[1], v[2], o[0], o[1]);
  } else if constexpr (K == Kernel::kGruUpdate) {
    o[0] = gates::gru_update_forward<A>(v[0], v[1], v[2]);
  } else {
    gates::gru_update_backward<A>(v[0], v[1], v[2], v[3], o[0], o[1], o[2]);
  }
}

template <Kernel K, int64_t kAct, typename T>
__global__ void gates_kernel(const gates::Planes p, int64_t C, int64_t HW, int64_t total) {
  using A = typename AccOf<T>::type;
  constexpr int NI = Arity<K>::in, NO = Arity<K>::out;
  for (int64_t k = grid_first(); k < total; k += grid_stride()) {
    const int64_t pix = k % HW, q = k / HW, c = q % C, n = q / C;
    A v[NI], o[NO];
#pragma unroll
    for (int i = 0; i < NI; ++i) {
      v[i] = Convert<T>::template load<A>(
          static_cast<const T*>(p.in[i])[n * p.in_sn[i] + c * p.in_sc[i] + pix]);
    }
    apply<K, kAct, A>(v, o);
#pragma unroll
    for (int i = 0; i < NO; ++i) {
      static_cast<T*>(p.out[i])[n * p.out_sn[i] + c * p.out_sc[i] + pix] =
          Convert<T>::template store<A>(o[i]);
    }
  }
}

template <Kernel K, int64_t kAct, typename T>
cudaError_t launch(const gates::Planes& p, int64_t N, int64_t C, int64_t HW, cudaStream_t stream) {
  const int64_t total = N * C * HW;
  if (total == 0) return cudaSuccess;
  gates_kernel<K, kAct, T><<<blocks_for(total), kThreads, 0, stream>>>(p, C, HW, total);
  return cudaGetLastError();
}

template <Kernel K, int64_t kAct>
cudaError_t by_dtype(DType dtype, const gates::Planes& p, int64_t N, int64_t C, int64_t HW,
                     cudaStream_t s) {
  HROPS_DISPATCH_DTYPE(dtype, T, launch<K, kAct, T>(p, N, C, HW, s));
}

}  // namespace

cudaError_t launch_gates(gates::Kernel kernel, int64_t activation, DType dtype,
                         const gates::Planes& p, int64_t N, int64_t C, int64_t HW,
                         cudaStream_t s) {
  const bool tanh = activation == gates::kTanh;
  switch (kernel) {
    case Kernel::kLstu:
      return tanh ? by_dtype<Kernel::kLstu, gates::kTanh>(dtype, p, N, C, HW, s)
                  : by_dtype<Kernel::kLstu, gates::kRelu>(dtype, p, N, C, HW, s);
    case Kernel::kLstuBackward:
      return tanh ? by_dtype<Kernel::kLstuBackward, gates::kTanh>(dtype, p, N, C, HW, s)
                  : by_dtype<Kernel::kLstuBackward, gates::kRelu>(dtype, p, N, C, HW, s);
    case Kernel::kStuReset: return by_dtype<Kernel::kStuReset, 0>(dtype, p, N, C, HW, s);
    case Kernel::kStuResetBackward:
      return by_dtype<Kernel::kStuResetBackward, 0>(dtype, p, N, C, HW, s);
    case Kernel::kGruUpdate: return by_dtype<Kernel::kGruUpdate, 0>(dtype, p, N, C, HW, s);
    case Kernel::kGruUpdateBackward:
      return by_dtype<Kernel::kGruUpdateBackward, 0>(dtype, p, N, C, HW, s);
  }
  return cudaErrorInvalidValue;
}

}  // namespace hrops
