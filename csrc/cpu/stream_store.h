// Non-temporal ("streaming") stores for large CPU kernel outputs. A normal
// store first reads the cache line it writes (read-for-ownership), so writing
// an output that does not fit in the cache moves its bytes twice; a streaming
// store writes whole lines straight to memory. Worth it only for outputs far
// larger than the last-level cache share of a core, which would be evicted
// before their consumer reads them anyway.
#pragma once
#include <cstdint>
#include <type_traits>

#include "cpu/isa.h"

#if HROPS_X86
#include <immintrin.h>
#endif

namespace hrops {

// Outputs of at least this many bytes are streamed.
constexpr int64_t kStreamOutputBytes = int64_t(32) << 20;

template <typename T>
constexpr bool kStreamable = HROPS_X86 && (std::is_same_v<T, float> || std::is_same_v<T, double>);

// dst[j] = src[j], j < n, with SSE2 (x86-64 baseline) streaming stores where
// dst is 16-byte aligned. Call stream_fence() before the data is handed on.
template <typename T>
inline void stream_row(const T* src, T* dst, int64_t n) {
  static_assert(kStreamable<T>, "streaming stores of float or double rows only");
#if HROPS_X86
  constexpr int64_t kLanes = 16 / sizeof(T);
  int64_t j = 0;
  for (; j < n && (reinterpret_cast<uintptr_t>(dst + j) & 15) != 0; ++j) dst[j] = src[j];
  for (; j + kLanes <= n; j += kLanes) {
    if constexpr (std::is_same_v<T, float>) {
      _mm_stream_ps(dst + j, _mm_loadu_ps(src + j));
    } else {
      _mm_stream_pd(dst + j, _mm_loadu_pd(src + j));
    }
  }
  for (; j < n; ++j) dst[j] = src[j];
#endif
}

// Orders this thread's streaming stores before its later stores (and so
// before the end of a parallel region that publishes them).
inline void stream_fence() {
#if HROPS_X86
  _mm_sfence();
#endif
}

}  // namespace hrops
