// Host/device qualifiers shared by the CPU (g++) and CUDA (nvcc) builds.
// Per-element math lives in headers under csrc/common so that the CPU tests
// exercise exactly the code the CUDA kernels run.
#pragma once

#if defined(__CUDACC__)
#define HROPS_HD __host__ __device__ __forceinline__
#else
#define HROPS_HD inline
#endif

// Host code that must be inlined: the CPU kernels' loops (also their AVX2
// copies, whose target differs) then see straight-line math they vectorise.
#if defined(__CUDACC__)
#define HROPS_HD_INLINE HROPS_HD
#else
#define HROPS_HD_INLINE inline __attribute__((always_inline))
#endif
