// Small vector helpers shared by CPU kernels of different op families. They
// are HROPS_INLINE templates: each caller's loop (and ISA target, see isa.h)
// compiles them in place.
#pragma once
#include <cstdint>

#include "cpu/isa.h"

namespace hrops {

// sum_q a[q] * b[q], inlined into the caller's loop (and its ISA target).
// Eight partial sums so the compiler can vectorise without reassociating.
template <typename A>
HROPS_INLINE A dot_inline(const A* a, const A* b, int64_t n) {
  A s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t q = 0;
  for (; q + 8 <= n; q += 8) {
    for (int j = 0; j < 8; ++j) s[j] += a[q + j] * b[q + j];
  }
  A acc = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; q < n; ++q) acc += a[q] * b[q];
  return acc;
}

// Prefetches the cache lines of [p, p + bytes) for reading: rows too short
// (or too scattered) for the hardware prefetcher.
HROPS_INLINE void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);
}

// prefetch_bytes for lines about to be written (read-modify-write).
HROPS_INLINE void prefetch_bytes_for_write(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 1);
}

}  // namespace hrops
