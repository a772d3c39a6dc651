// Runtime ISA dispatch for hot CPU loops without special build flags: the
// loop is an HROPS_INLINE template, instantiated in one function compiled
// for AVX2+FMA (HROPS_TARGET_AVX2) and one for baseline x86-64; callers pick
// with cpu_has_avx2_fma(). (GCC's automatic function multiversioning does
// not dispatch calls from other translation units, hence the explicit pair.)
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) && defined(__GNUC__)
#define HROPS_X86 1
#define HROPS_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define HROPS_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
// For auto-vectorised loops: GCC's generic tuning keeps them 256 bits wide.
#define HROPS_TARGET_AVX512_ZMM \
  __attribute__((target("avx512f,avx512vl,avx2,fma,prefer-vector-width=512")))
#else
#define HROPS_X86 0
#define HROPS_TARGET_AVX2
#define HROPS_TARGET_AVX512
#define HROPS_TARGET_AVX512_ZMM
#endif

#define HROPS_INLINE inline __attribute__((always_inline))
// For an ISA entry point (a HROPS_TARGET_AVX2 instantiation of a generic
// template): inlines everything below it, which the target-less templates
// it calls would not be otherwise.
#define HROPS_FLATTEN __attribute__((flatten))
// HROPS_INLINE for a lambda: [&](...) HROPS_INLINE_LAMBDA { ... }.
#define HROPS_INLINE_LAMBDA __attribute__((always_inline))

namespace hrops {

// The highest ISA level the dispatch may use: the CPU's, capped by the
// environment variable HROPS_CPU_ISA ("avx512", "avx2" or "baseline", read
// once), so one machine can run the lower paths (tests, comparisons), as
// torch's ATEN_CPU_CAPABILITY does for ATen's kernels.
enum class IsaLevel { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

inline IsaLevel isa_cap() {
  static const IsaLevel cap = [] {
    const char* env = std::getenv("HROPS_CPU_ISA");
    const std::string value = env ? env : "";
    if (value.empty() || value == "avx512") return IsaLevel::kAvx512;
    if (value == "avx2") return IsaLevel::kAvx2;
    if (value == "baseline") return IsaLevel::kBaseline;
    throw std::invalid_argument("HROPS_CPU_ISA must be avx512, avx2 or baseline, got '" + value +
                                "'");
  }();
  return cap;
}

inline bool cpu_has_avx2_fma() {
#if HROPS_X86
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          isa_cap() >= IsaLevel::kAvx2;
  return has;
#else
  return false;
#endif
}

inline bool cpu_has_avx512f() {
#if HROPS_X86
  static const bool has = __builtin_cpu_supports("avx512f") && cpu_has_avx2_fma() &&
                          isa_cap() >= IsaLevel::kAvx512;
  return has;
#else
  return false;
#endif
}

}  // namespace hrops
