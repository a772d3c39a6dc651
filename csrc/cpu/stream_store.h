// Non-temporal ("streaming") stores for large CPU kernel outputs. A normal
// store first reads the cache line it writes (read-for-ownership), so writing
// an output that does not fit in the cache moves its bytes twice; a streaming
// store writes whole lines straight to memory. Worth it only for outputs far
// larger than the last-level cache share of a core, which would be evicted
// before their consumer reads them anyway (measured on a 2-core Xeon VM, one
// thread: upfirdn2d's 64 MiB up2 output 9.3 -> 5.2 ms; the fused bias-act's
// 32 MiB outputs, which its backward reads straight back, got slower, so it
// does not stream).
#pragma once
#include <cstdint>
#include <type_traits>

#include "cpu/isa.h"

#if HROPS_X86
#include <immintrin.h>
#endif

namespace hrops {

// Outputs of at least this many bytes are streamed (kStreamable types).
constexpr int64_t kStreamOutputBytes = int64_t(32) << 20;

// Orders earlier non-temporal stores before later stores.
inline void stream_fence() {
#if HROPS_X86
  _mm_sfence();
#endif
}

template <typename T>
constexpr bool kStreamable = HROPS_X86 && (std::is_same_v<T, float> || std::is_same_v<T, double>);

// Writes one contiguous output range front to back (say, one parallel task's
// rows) with SSE2 (x86-64 baseline) streaming stores of whole 64-byte lines.
// The partial lines at the range's two ends get normal stores: they may share
// a line with another task's range, and a line written by both kinds of store
// at once is slow. Rows of any length may be appended; a line that spans two
// rows is collected first. finish() writes the rest and orders the streaming
// stores before later stores (and so before the end of the parallel region).
template <typename T>
class StreamWriter {
  static constexpr int64_t kLine = 64 / sizeof(T);

 public:
  explicit StreamWriter(T* dst)
      : p_(dst), head_(((64 - reinterpret_cast<uintptr_t>(dst) % 64) % 64) / sizeof(T)) {}

  void write(const T* src, int64_t n) {
    int64_t i = 0;
    for (; i < n && head_ > 0; ++i, --head_) *p_++ = src[i];
    while (i < n) {
      if (fill_ == 0) {  // p_ starts a line: stream whole lines straight from src
        for (; i + kLine <= n; i += kLine, p_ += kLine) stream_line(src + i, p_);
      }
      for (; i < n && fill_ < kLine; ++i) line_[fill_++] = src[i];
      if (fill_ == kLine) {
        stream_line(line_, p_);
        p_ += kLine;
        fill_ = 0;
      }
    }
  }

  void finish() {
    for (int64_t i = 0; i < fill_; ++i) p_[i] = line_[i];
    p_ += fill_;
    fill_ = 0;
    stream_fence();
  }

 private:
  static void stream_line(const T* src, T* dst) {
#if HROPS_X86
    if constexpr (std::is_same_v<T, float>) {
      for (int64_t k = 0; k < kLine; k += 4) _mm_stream_ps(dst + k, _mm_loadu_ps(src + k));
      return;
    } else if constexpr (std::is_same_v<T, double>) {
      for (int64_t k = 0; k < kLine; k += 2) _mm_stream_pd(dst + k, _mm_loadu_pd(src + k));
      return;
    }
#endif
    for (int64_t k = 0; k < kLine; ++k) dst[k] = src[k];  // normal stores
  }

  T* p_;
  int64_t head_;  // elements before the first line boundary (normal stores)
  int64_t fill_ = 0;
  alignas(64) T line_[kLine];
};

}  // namespace hrops
