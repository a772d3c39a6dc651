// Region (segmentation) CPU kernels of SEAN (SEAN, Zhu et al. CVPR 2020;
// ZPdesu/SEAN models/networks/architecture.py, Zencoder, and
// models/networks/normalization.py, ACE).
//
// Label maps are piecewise constant: a fill writes one constant per run of
// equal labels, and a region sum adds each chunk of kLanes pixels as one
// masked vector per label present in it (the run and chunk tables
// are built once per image and shared by all channels). Work is split over (image, channel) planes and each
// plane is summed sequentially in a fixed order, so results are deterministic
// (no atomics) at any thread count.
//
// region_conv_gather evaluates conv2d(fill(codes), weight) from the
// per-region, per-tap projection proj (N, R, k*k, O). Its value at a pixel
// depends only on the labels under the k*k taps (the pixel's neighbourhood
// signature), so pixels are grouped into classes of equal signature; each
// class's value is computed once per output channel with the shared
// region_conv_value, then filled by runs. The
// backward sums the gradient per class and scatters it to the class's taps.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "cpu/parallel.h"
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <map>
#include <tuple>
#include <vector>

#include "common/region.h"
#include "common/region_shapes.h"
#include "common/tensor_checks.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"

#if HROPS_X86
#include <immintrin.h>
#endif

namespace hrops {
namespace {

struct Run {
  int64_t start, len, id;  // id: region or class, -1 = none
};

std::vector<Run> runs_of(const int64_t* ids, int64_t n) {
  std::vector<Run> runs;
  for (int64_t i = 0; i < n;) {
    int64_t j = i + 1;
    while (j < n && ids[j] == ids[i]) ++j;
    runs.push_back({i, j - i, ids[i]});
    i = j;
  }
  return runs;
}

// A 32-byte aligned scratch array (vector accumulators).
template <typename T>
class AlignedScratch {
 public:
  explicit AlignedScratch(int64_t n) { reserve(n); }
  ~AlignedScratch() { std::free(data_); }
  AlignedScratch(const AlignedScratch&) = delete;
  AlignedScratch& operator=(const AlignedScratch&) = delete;
  void reserve(int64_t n) {
    if (n <= size_) return;
    std::free(data_);
    const size_t bytes = (static_cast<size_t>(n) * sizeof(T) + 31) / 32 * 32;
    data_ = static_cast<T*>(std::aligned_alloc(32, bytes));
    TORCH_CHECK(data_ != nullptr, "out of memory allocating ", bytes, " bytes");
    size_ = n;
  }
  T* get() { return data_; }

 private:
  T* data_ = nullptr;
  int64_t size_ = 0;
};

// Labels: int64 (N, H, W), every id in [-1, R) (see region_shapes.h).
at::Tensor checked_labels(const at::Tensor& labels, int64_t N, int64_t R, const at::Tensor& like) {
  at::Tensor l = contiguous_labels(labels, N, R, like);
  const int64_t* p = l.const_data_ptr<int64_t>();
  for (int64_t i = 0, n = l.numel(); i < n; ++i) {
    check_label_range(p[i] >= -1 && p[i] < R, R, p[i], " at flat index ", i);
  }
  return l;
}

int64_t grain(int64_t plane) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(plane, 1)); }

// An id map (labels or classes) of one image, preprocessed once for all
// channels: runs of equal ids (for fills) and, per chunk of kLanes pixels,
// a lane mask per id present in the chunk (for sums).
constexpr int64_t kLanes = 8;

// The pixels (lanes) of one id within a chunk.
struct LaneMask {
  int64_t id;
  alignas(32) int32_t in[kLanes];  // all bits set where the lane's pixel has this id, else 0
};

struct IdMap {
  const int64_t* ids = nullptr;      // HW ids, -1 = none
  std::vector<Run> runs;             // of pixels
  std::vector<int64_t> chunk_begin;  // per chunk + 1: the chunk's LaneMasks
  std::vector<LaneMask> masks;       // one per id present in a chunk (uniform chunks: one)
};

// with_masks = false: runs only (for fills).
IdMap id_map(const int64_t* ids, int64_t HW, bool with_masks = true) {
  IdMap m;
  m.ids = ids;
  m.runs = runs_of(ids, HW);
  if (!with_masks) return m;
  const int64_t chunks = HW / kLanes;
  m.chunk_begin.resize(chunks + 1);
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t* p = ids + c * kLanes;
    m.chunk_begin[c] = static_cast<int64_t>(m.masks.size());
    for (int64_t j = 0; j < kLanes; ++j) {
      if (p[j] < 0 || std::find(p, p + j, p[j]) != p + j) continue;  // none, or seen
      LaneMask lm{p[j], {}};
      for (int64_t i = 0; i < kLanes; ++i) lm.in[i] = p[i] == p[j] ? -1 : 0;
      m.masks.push_back(lm);
    }
  }
  m.chunk_begin[chunks] = static_cast<int64_t>(m.masks.size());
  return m;
}

typedef float float8 __attribute__((vector_size(32)));
typedef int32_t int8x32 __attribute__((vector_size(32)));

// (By reference, not returned: a returned 32-byte vector changes the ABI of
// the baseline build.)
template <typename scalar_t>
HROPS_INLINE void load8(const scalar_t* p, float8& v) {
  if constexpr (std::is_same_v<scalar_t, float>) {  // one vector load
    std::memcpy(&v, p, sizeof(v));
  } else {
    float t[kLanes];
    for (int64_t j = 0; j < kLanes; ++j) t[j] = static_cast<float>(p[j]);
    std::memcpy(&v, t, sizeof(v));
  }
}

// sums[b * U + id] = sum of plane b over the pixels of id, for kBlock
// consecutive planes (stride plane_stride) and ids in [0, U).
// Chunks of kLanes pixels are added as vectors (a mixed chunk as one masked
// vector per id in it) into register accumulators of the current id, one per
// plane; when the id changes they are added into the id's kLanes lanes in
// memory. So memory is touched once per run of pixels and the run-boundary
// branches are shared by kBlock planes. Lanes are combined in a fixed order:
// deterministic. lanes: kBlock * U * kLanes scratch, 32-byte aligned.
template <int kBlock, typename acc_t, typename scalar_t>
HROPS_INLINE void sum_by_id(const scalar_t* x, int64_t plane_stride, const IdMap& m, int64_t HW,
                            int64_t U, acc_t* lanes, acc_t* sums) {
  std::fill(lanes, lanes + kBlock * U * kLanes, acc_t(0));
  const int64_t chunks = HW / kLanes;
  if constexpr (std::is_same_v<acc_t, float>) {
    int64_t cur = -1;
    float8 acc[kBlock] = {};  // indexed by unrolled constants only: kept in registers
    auto flush = [&]() HROPS_INLINE_LAMBDA {
#pragma GCC unroll 8
      for (int b = 0; b < kBlock; ++b) {
        if (cur >= 0) *reinterpret_cast<float8*>(lanes + (b * U + cur) * kLanes) += acc[b];
        acc[b] = float8{};
      }
    };
    for (int64_t c = 0; c < chunks; ++c) {
      for (int64_t e = m.chunk_begin[c]; e < m.chunk_begin[c + 1]; ++e) {
        const LaneMask& lm = m.masks[e];
        if (lm.id != cur) {
          flush();
          cur = lm.id;
        }
        int8x32 in;
        std::memcpy(&in, lm.in, sizeof(in));
#pragma GCC unroll 8
        for (int b = 0; b < kBlock; ++b) {
          float8 v;
          load8(x + b * plane_stride + c * kLanes, v);
          acc[b] += reinterpret_cast<float8>(reinterpret_cast<int8x32>(v) & in);
        }
      }
    }
    flush();
  } else {
    for (int b = 0; b < kBlock; ++b) {
      for (int64_t c = 0; c < chunks; ++c) {
        for (int64_t e = m.chunk_begin[c]; e < m.chunk_begin[c + 1]; ++e) {
          const LaneMask& lm = m.masks[e];
          acc_t* a = lanes + (b * U + lm.id) * kLanes;
          for (int64_t j = 0; j < kLanes; ++j) {
            if (lm.in[j]) a[j] += static_cast<acc_t>(x[b * plane_stride + c * kLanes + j]);
          }
        }
      }
    }
  }
  for (int b = 0; b < kBlock; ++b) {
    for (int64_t p = chunks * kLanes; p < HW; ++p) {
      if (m.ids[p] >= 0) {
        lanes[(b * U + m.ids[p]) * kLanes + p % kLanes] += static_cast<acc_t>(x[b * plane_stride + p]);
      }
    }
    for (int64_t u = 0; u < U; ++u) {
      acc_t s = 0;
      for (int64_t j = 0; j < kLanes; ++j) s += lanes[(b * U + u) * kLanes + j];
      sums[b * U + u] = s;
    }
  }
}

template <int kBlock, typename acc_t, typename scalar_t>
HROPS_TARGET_AVX2 void sum_by_id_avx2(const scalar_t* x, int64_t plane_stride, const IdMap& m,
                                      int64_t HW, int64_t U, acc_t* lanes, acc_t* sums) {
  sum_by_id<kBlock, acc_t>(x, plane_stride, m, HW, U, lanes, sums);
}

template <int kBlock, typename acc_t, typename scalar_t>
void sum_by_id_dispatch(const scalar_t* x, int64_t plane_stride, const IdMap& m, int64_t HW,
                        int64_t U, acc_t* lanes, acc_t* sums) {
  if (cpu_has_avx2_fma()) {
    sum_by_id_avx2<kBlock, acc_t>(x, plane_stride, m, HW, U, lanes, sums);
  } else {
    sum_by_id<kBlock, acc_t>(x, plane_stride, m, HW, U, lanes, sums);
  }
}

// Region sums of planes [first, first + count) (consecutive, stride HW) into
// sums (count, U): blocks of kPlaneBlock planes, then single planes.
constexpr int kPlaneBlock = 8;

template <typename acc_t, typename scalar_t>
void sum_planes(const scalar_t* x, int64_t count, const IdMap& m, int64_t HW, int64_t U,
                AlignedScratch<acc_t>& lanes, acc_t* sums) {
  lanes.reserve(kPlaneBlock * U * kLanes);
  int64_t b = 0;
  for (; b + kPlaneBlock <= count; b += kPlaneBlock) {
    sum_by_id_dispatch<kPlaneBlock, acc_t>(x + b * HW, HW, m, HW, U, lanes.get(), sums + b * U);
  }
  for (; b < count; ++b) {
    sum_by_id_dispatch<1, acc_t>(x + b * HW, HW, m, HW, U, lanes.get(), sums + b * U);
  }
}

template <typename scalar_t>
void fill_runs_generic(scalar_t* plane, const std::vector<Run>& runs, const scalar_t* value_of_id) {
  for (const Run& run : runs) {
    std::fill_n(plane + run.start, run.len, run.id < 0 ? scalar_t(0) : value_of_id[run.id]);
  }
}

// Float runs as vector stores, the tail of each as one masked store: label
// maps have many short runs (face maps ~25 per 128-pixel row of classes),
// where a fill loop's per-run cost dominates. (Whole-vector stores that spill
// into the next run, overwritten by it, measured slower.)
#if HROPS_X86
HROPS_TARGET_AVX512 void fill_runs_avx512(float* plane, const std::vector<Run>& runs,
                                          const float* value_of_id) {
  for (const Run& run : runs) {
    const __m512 v = _mm512_set1_ps(run.id < 0 ? 0.f : value_of_id[run.id]);
    float* p = plane + run.start;
    int64_t len = run.len;
    for (; len >= 16; len -= 16, p += 16) _mm512_storeu_ps(p, v);
    if (len > 0) _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << len) - 1), v);
  }
}

HROPS_TARGET_AVX2 void fill_runs_avx2(float* plane, const std::vector<Run>& runs,
                                      const float* value_of_id) {
  // Lanes [8 - len, 16 - len) of this window are the mask of a len-lane tail.
  alignas(32) static const int32_t window[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                 0, 0, 0, 0, 0, 0, 0, 0};
  for (const Run& run : runs) {
    const __m256 v = _mm256_set1_ps(run.id < 0 ? 0.f : value_of_id[run.id]);
    float* p = plane + run.start;
    int64_t len = run.len;
    for (; len >= 8; len -= 8, p += 8) _mm256_storeu_ps(p, v);
    if (len > 0) {
      const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(window + 8 - len));
      _mm256_maskstore_ps(p, mask, v);
    }
  }
}
#endif

template <typename scalar_t>
void fill_runs(scalar_t* plane, const std::vector<Run>& runs, const scalar_t* value_of_id) {
#if HROPS_X86
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (cpu_has_avx512f()) return fill_runs_avx512(plane, runs, value_of_id);
    if (cpu_has_avx2_fma()) return fill_runs_avx2(plane, runs, value_of_id);
  }
#endif
  fill_runs_generic(plane, runs, value_of_id);
}

// Float fills with at most kTableIds - 1 regions look each pixel's value up
// in registers: a 32-entry table (the regions' values, then zeros for "no
// region") and one two-register permute per 16 pixels, instead of a fill
// per run (face maps have ~10 runs per row: short fills). Slots: the
// pixels' ids with "no region" mapped to slot R.
constexpr int64_t kTableIds = 32;

std::vector<int32_t> table_slots(const int64_t* ids, int64_t HW, int64_t R) {
  std::vector<int32_t> slots(HW);
  for (int64_t p = 0; p < HW; ++p) slots[p] = int32_t(ids[p] < 0 ? R : ids[p]);
  return slots;
}

#if HROPS_X86
HROPS_TARGET_AVX512 void fill_by_table_avx512(float* plane, const int32_t* slots, int64_t HW,
                                              const float* table) {
  const __m512 lo = _mm512_loadu_ps(table), hi = _mm512_loadu_ps(table + 16);
  int64_t p = 0;
  for (; p + 16 <= HW; p += 16) {
    const __m512i s = _mm512_loadu_si512(slots + p);
    _mm512_storeu_ps(plane + p, _mm512_permutex2var_ps(lo, s, hi));
  }
  for (; p < HW; ++p) plane[p] = table[slots[p]];
}
#endif

// Fills a plane by table where the type has a table kernel (float).
template <typename scalar_t>
bool fill_by_table(scalar_t*, const int32_t*, int64_t, const scalar_t*) {
  return false;
}
#if HROPS_X86
template <>
bool fill_by_table<float>(float* plane, const int32_t* slots, int64_t HW, const float* table) {
  fill_by_table_avx512(plane, slots, HW, table);
  return true;
}
#endif

struct LabelMaps {
  std::vector<IdMap> map;                  // per image
  std::vector<std::vector<int64_t>> count;  // per image, pixels per region
};

LabelMaps label_maps(const at::Tensor& labels, int64_t R) {
  const int64_t N = labels.size(0), HW = labels.size(1) * labels.size(2);
  LabelMaps lm{std::vector<IdMap>(N), std::vector<std::vector<int64_t>>(N)};
  const int64_t* l = labels.const_data_ptr<int64_t>();
  for (int64_t n = 0; n < N; ++n) {
    lm.map[n] = id_map(l + n * HW, HW);
    lm.count[n].assign(R, 0);
    for (const Run& run : lm.map[n].runs) {
      if (run.id >= 0) lm.count[n][run.id] += run.len;
    }
  }
  return lm;
}

// (N, C, H, W) -> (N, R, C): per-region sums, or means (mean = true; an empty
// region gives 0).
at::Tensor region_sum_cpu(const at::Tensor& feat_in, const at::Tensor& labels_in, int64_t R,
                          bool mean) {
  check_feat_labels(feat_in, "feat", labels_in);
  const at::Tensor labels = checked_labels(labels_in, feat_in.size(0), R, feat_in);
  const at::Tensor feat = feat_in.contiguous();
  const int64_t N = feat.size(0), C = feat.size(1), HW = feat.size(2) * feat.size(3);
  at::Tensor out = at::empty({N, R, C}, feat.options());
  if (out.numel() == 0) return out;
  const LabelMaps lm = label_maps(labels, R);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), "region_sum_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* x = feat.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const int64_t groups = (C + kPlaneBlock - 1) / kPlaneBlock;  // per image
    parallel_for(0, N * groups, grain(kPlaneBlock * HW), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(kPlaneBlock * R);
      AlignedScratch<acc_t> lanes(0);
      for (int64_t ng = begin; ng < end; ++ng) {
        const int64_t n = ng / groups, c0 = (ng % groups) * kPlaneBlock;
        const int64_t count = std::min<int64_t>(kPlaneBlock, C - c0);
        sum_planes<acc_t>(x + (n * C + c0) * HW, count, lm.map[n], HW, R, lanes, acc.data());
        for (int64_t b = 0; b < count; ++b) {
          for (int64_t r = 0; r < R; ++r) {
            const int64_t area = lm.count[n][r];
            const acc_t v = acc[b * R + r];
            o[(n * R + r) * C + c0 + b] = static_cast<scalar_t>(
                !mean ? v : (area > 0 ? v / acc_t(area) : acc_t(0)));
          }
        }
      }
    });
  });
  return out;
}

// codes (N, R, C) -> (N, C, H, W): each pixel gets its region's code (divided
// by the region's pixel count when mean = true), 0 where it has no region.
at::Tensor region_fill_cpu(const at::Tensor& codes_in, const at::Tensor& labels_in, bool mean) {
  check_dim(codes_in, 3, "codes", "(N, R, C)");
  check_floating(codes_in, "codes");
  const int64_t R = codes_in.size(1);
  const at::Tensor labels = checked_labels(labels_in, codes_in.size(0), R, codes_in);
  const at::Tensor codes = codes_in.contiguous();
  const int64_t N = codes.size(0), C = codes.size(2), H = labels.size(1), W = labels.size(2);
  at::Tensor out = empty_output({N, C, H, W}, codes.options());
  if (out.numel() == 0) return out;
  const LabelMaps lm = label_maps(labels, R);
  const bool by_table = HROPS_X86 && codes.scalar_type() == at::kFloat && R < kTableIds &&
                        cpu_has_avx512f();
  std::vector<std::vector<int32_t>> slots(by_table ? N : 0);
  for (int64_t n = 0; n < int64_t(slots.size()); ++n) {
    slots[n] = table_slots(labels.const_data_ptr<int64_t>() + n * H * W, H * W, R);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, codes.scalar_type(), "region_fill_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* t = codes.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    parallel_for(0, N * C, grain(H * W), [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> value(std::max(kTableIds, R), scalar_t(0));  // zeros past R
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t n = nc / C, c = nc % C;
        for (int64_t r = 0; r < R; ++r) {
          const int64_t count = lm.count[n][r];
          const acc_t scale = (mean && count > 0) ? acc_t(1) / acc_t(count) : acc_t(1);
          value[r] = static_cast<scalar_t>(region_fill_value<acc_t>(t + n * R * C, r, C, c, scale));
        }
        if (by_table && fill_by_table(o + nc * H * W, slots[n].data(), H * W, value.data())) {
          continue;
        }
        fill_runs(o + nc * H * W, lm.map[n].runs, value.data());
      }
    });
  });
  return out;
}

// --- region-constant convolution ---------------------------------------------------------------

// Pixels of one image grouped by neighbourhood signature (the labels under
// the k*k taps).
struct Classes {
  std::vector<int64_t> class_map;  // (Ho * Wo) class per output pixel
  IdMap map;                       // of class_map (runs; lane masks only where sums need them)
  std::vector<int64_t> signature;  // (U, k*k) tap labels per class
  int64_t classes = 0;
  int64_t size() const { return classes; }
};

// Signature -> class id: open addressing over the classes' stored
// signatures (a tree of vectors cost ~1 us per lookup: most of the op).
class SignatureIds {
 public:
  explicit SignatureIds(int64_t taps) : taps_(taps), slots_(256, -1) {}

  // The class of sig; a new signature becomes class cl.classes.
  int64_t find_or_add(const int64_t* sig, Classes& cl) {
    if (2 * (cl.classes + 1) > static_cast<int64_t>(slots_.size())) grow(cl);
    const uint64_t mask = slots_.size() - 1;
    for (uint64_t s = hash(sig) & mask;; s = (s + 1) & mask) {
      const int64_t id = slots_[s];
      if (id < 0) {
        slots_[s] = cl.classes;
        cl.signature.insert(cl.signature.end(), sig, sig + taps_);
        return cl.classes++;
      }
      if (std::equal(sig, sig + taps_, cl.signature.data() + id * taps_)) return id;
    }
  }

 private:
  uint64_t hash(const int64_t* sig) const {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int64_t t = 0; t < taps_; ++t) h = (h ^ static_cast<uint64_t>(sig[t] + 1)) * 0x100000001B3ull;
    return h ^ (h >> 29);
  }
  void grow(const Classes& cl) {
    slots_.assign(2 * slots_.size(), -1);
    const uint64_t mask = slots_.size() - 1;
    for (int64_t id = 0; id < cl.classes; ++id) {
      uint64_t s = hash(cl.signature.data() + id * taps_) & mask;
      while (slots_[s] >= 0) s = (s + 1) & mask;
      slots_[s] = id;
    }
  }

  int64_t taps_;
  std::vector<int64_t> slots_;
};

// Classes numbered in raster order of first appearance. Along a row an
// output pixel's signature equals its left neighbour's unless some tap row
// changes label between two of the k + 1 input columns they span, so each
// row first marks the columns where one of its k tap rows changes label and
// looks signatures up only near a mark.
Classes classes_of(const int64_t* labels, int64_t H, int64_t W, int64_t R, int64_t k, int64_t pad,
                   int64_t Ho, int64_t Wo) {
  const int64_t taps = k * k;
  Classes cl;
  SignatureIds ids(taps);
  std::vector<int64_t> sig(taps);
  cl.class_map.resize(Ho * Wo);
  // changed[j]: some tap row's label differs between input columns j - pad - 1
  // and j - pad. Output x's taps span columns x - pad .. x - pad + k - 1, so
  // it has x - 1's signature unless one of changed[x .. x + k - 1] is set.
  std::vector<uint8_t> changed(Wo + k - 1);
  for (int64_t y = 0; y < Ho; ++y) {
    std::fill(changed.begin(), changed.end(), 0);
    for (int64_t dy = 0; dy < k; ++dy) {
      for (int64_t j = 0; j < Wo + k - 1; ++j) {
        const int64_t x = j - pad;
        changed[j] |= region_label_at(labels, H, W, R, y + dy - pad, x) !=
                      region_label_at(labels, H, W, R, y + dy - pad, x - 1);
      }
    }
    int64_t id = -1;
    for (int64_t x = 0; x < Wo; ++x) {
      bool same = id >= 0;
      for (int64_t j = x; j < x + k && same; ++j) same = !changed[j];
      if (!same) {
        for (int64_t t = 0; t < taps; ++t) sig[t] = region_tap_label(labels, H, W, R, k, pad, y, x, t);
        id = ids.find_or_add(sig.data(), cl);
      }
      cl.class_map[y * Wo + x] = id;
    }
  }
  return cl;
}

struct ConvGeometry {
  int64_t N, R, taps, O, H, W, k, pad, Ho, Wo;
};

// Of checked labels (N, H, W), R regions and O output channels.
ConvGeometry conv_geometry(const at::Tensor& labels, int64_t R, int64_t O, int64_t k,
                           int64_t pad) {
  const auto [Ho, Wo] = region_conv_out_size(labels, k, pad);
  return {labels.size(0), R, k * k, O, labels.size(1), labels.size(2), k, pad, Ho, Wo};
}

// What a kernel needs of the class map: nothing, its runs (fills) or runs
// and lane masks (sums).
enum class ClassMap { kNone, kRuns, kRunsAndMasks };

std::vector<Classes> all_classes(const at::Tensor& labels, const ConvGeometry& g, ClassMap need) {
  std::vector<Classes> cls(g.N);
  const int64_t* l = labels.const_data_ptr<int64_t>();
  parallel_for(0, g.N, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      cls[n] = classes_of(l + n * g.H * g.W, g.H, g.W, g.R, g.k, g.pad, g.Ho, g.Wo);
      if (need != ClassMap::kNone) {  // after the move: a stable pointer
        cls[n].map = id_map(cls[n].class_map.data(), g.Ho * g.Wo,
                            need == ClassMap::kRunsAndMasks);
      }
    }
  });
  return cls;
}

// proj (N, R, k*k, O), labels (N, H, W), bias (O) or none -> (N, O, Ho, Wo).
at::Tensor region_conv_gather_cpu(const at::Tensor& proj_in, const at::Tensor& labels_in,
                                  const std::optional<at::Tensor>& bias_in, int64_t k,
                                  int64_t pad) {
  check_region_proj(proj_in, k);
  const at::Tensor labels = checked_labels(labels_in, proj_in.size(0), proj_in.size(1), proj_in);
  const ConvGeometry g = conv_geometry(labels, proj_in.size(1), proj_in.size(3), k, pad);
  const at::Tensor proj = proj_in.contiguous();
  const at::Tensor bias = region_conv_bias(proj, bias_in, g.O);
  at::Tensor out = empty_output({g.N, g.O, g.Ho, g.Wo}, proj.options());
  if (out.numel() == 0) return out;
  const std::vector<Classes> cls = all_classes(labels, g, ClassMap::kRuns);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, proj.scalar_type(), "region_conv_gather_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* P = proj.const_data_ptr<scalar_t>();
    const scalar_t* b = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const int64_t plane = g.Ho * g.Wo;
    // Per image, the value table (O, U) of the classes: a plane's values
    // are contiguous.
    std::vector<std::vector<scalar_t>> values(g.N);
    for (int64_t n = 0; n < g.N; ++n) {
      const Classes& cl = cls[n];
      const int64_t U = cl.size();
      const scalar_t* Pn = P + n * g.R * g.taps * g.O;
      values[n].resize(U * g.O);
      // region_conv_value's sum (bias, then taps in order), vectorised over
      // the output channels: a class's taps are rows of Pn.
      parallel_for(0, U, std::max<int64_t>(1, 4096 / (g.O * g.taps)), [&](int64_t u0, int64_t u1) {
        std::vector<acc_t> acc(g.O);
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t* sig = cl.signature.data() + u * g.taps;
          for (int64_t oc = 0; oc < g.O; ++oc) acc[oc] = b ? static_cast<acc_t>(b[oc]) : acc_t(0);
          for (int64_t t = 0; t < g.taps; ++t) {
            for (int64_t oc = 0; oc < g.O; ++oc) {
              acc[oc] += region_tap_value<acc_t>(Pn, sig[t], t, g.taps, g.O, oc);
            }
          }
          for (int64_t oc = 0; oc < g.O; ++oc) values[n][oc * U + u] = static_cast<scalar_t>(acc[oc]);
        }
      });
    }
    parallel_for(0, g.N * g.O, grain(plane), [&](int64_t begin, int64_t end) {
      for (int64_t no = begin; no < end; ++no) {
        const int64_t n = no / g.O, oc = no % g.O;
        fill_runs(o + no * plane, cls[n].map.runs, values[n].data() + oc * cls[n].size());
      }
    });
  });
  return out;
}

// labels (N, H, W) -> (classes (N, Ho, Wo), signatures (N, U, k*k)), int64:
// each output pixel's neighbourhood class (its labels under the k*k taps of
// a stride-1 conv with zero padding pad), numbered per image in raster order
// of first appearance, and each class's tap labels (-1: none or outside);
// U is the largest class count of the images, rows past an image's own
// count hold -1.
std::tuple<at::Tensor, at::Tensor> region_classes_cpu(const at::Tensor& labels_in, int64_t R,
                                                      int64_t k, int64_t pad) {
  check_dim(labels_in, 3, "labels", "(N, H, W)");
  const at::Tensor labels = checked_labels(labels_in, labels_in.size(0), R, labels_in);
  const ConvGeometry g = conv_geometry(labels, R, 0, k, pad);
  at::Tensor classes = at::empty({g.N, g.Ho, g.Wo}, labels.options());
  if (classes.numel() == 0) return {classes, at::empty({g.N, 0, g.taps}, labels.options())};
  const std::vector<Classes> cls = all_classes(labels, g, ClassMap::kNone);
  int64_t U = 0;
  for (const Classes& cl : cls) U = std::max(U, cl.size());
  at::Tensor signatures = at::full({g.N, U, g.taps}, -1, labels.options());
  int64_t* c = classes.mutable_data_ptr<int64_t>();
  int64_t* s = signatures.mutable_data_ptr<int64_t>();
  for (int64_t n = 0; n < g.N; ++n) {
    std::copy(cls[n].class_map.begin(), cls[n].class_map.end(), c + n * g.Ho * g.Wo);
    std::copy(cls[n].signature.begin(), cls[n].signature.end(), s + n * U * g.taps);
  }
  return {classes, signatures};
}

// labels (N, H, W) -> (N, Ho, Wo, k*k): the label under each tap of each
// output pixel (what the CUDA path deduplicates into classes).
at::Tensor region_tap_labels_cpu(const at::Tensor& labels_in, int64_t R, int64_t k, int64_t pad) {
  check_dim(labels_in, 3, "labels", "(N, H, W)");
  const at::Tensor labels = checked_labels(labels_in, labels_in.size(0), R, labels_in);
  const ConvGeometry g = conv_geometry(labels, R, 0, k, pad);
  at::Tensor out = at::empty({g.N, g.Ho, g.Wo, g.taps}, labels.options());
  const int64_t* l = labels.const_data_ptr<int64_t>();
  int64_t* o = out.mutable_data_ptr<int64_t>();
  parallel_for(0, g.N * g.Ho, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ny = begin; ny < end; ++ny) {
      const int64_t n = ny / g.Ho, y = ny % g.Ho;
      for (int64_t x = 0; x < g.Wo; ++x) {
        for (int64_t t = 0; t < g.taps; ++t) {
          o[(ny * g.Wo + x) * g.taps + t] =
              region_tap_label(l + n * g.H * g.W, g.H, g.W, R, k, pad, y, x, t);
        }
      }
    }
  });
  return out;
}

// The adjoint of region_conv_gather in proj: grad (N, O, Ho, Wo) ->
// grad_proj (N, R, k*k, O), grad_proj[n, r, t, o] = sum of grad over the
// pixels whose tap t lies on region r.
at::Tensor region_conv_gather_backward_cpu(const at::Tensor& grad_in, const at::Tensor& labels_in,
                                           int64_t R, int64_t k, int64_t pad) {
  check_dim(grad_in, 4, "grad", "(N, O, Ho, Wo)");
  check_floating(grad_in, "grad");
  const at::Tensor labels = checked_labels(labels_in, grad_in.size(0), R, grad_in);
  const ConvGeometry g = conv_geometry(labels, R, grad_in.size(1), k, pad);
  check_region_conv_grad(grad_in, g.Ho, g.Wo);
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor out = at::empty({g.N, R, g.taps, g.O}, grad.options());
  if (out.numel() == 0) return out;
  const std::vector<Classes> cls = all_classes(labels, g, ClassMap::kRunsAndMasks);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "region_conv_gather_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const int64_t plane = g.Ho * g.Wo, bins = R * g.taps;
    const int64_t groups = (g.O + kPlaneBlock - 1) / kPlaneBlock;  // per image
    parallel_for(0, g.N * groups, grain(kPlaneBlock * plane), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> per_class, per_bin(bins);
      AlignedScratch<acc_t> lanes(0);
      for (int64_t ng = begin; ng < end; ++ng) {
        const int64_t n = ng / groups, o0 = (ng % groups) * kPlaneBlock;
        const int64_t count = std::min<int64_t>(kPlaneBlock, g.O - o0);
        const Classes& cl = cls[n];
        const int64_t U = cl.size();
        per_class.resize(kPlaneBlock * U);
        sum_planes<acc_t>(gp + (n * g.O + o0) * plane, count, cl.map, plane, U, lanes,
                          per_class.data());
        for (int64_t b = 0; b < count; ++b) {
          std::fill(per_bin.begin(), per_bin.end(), acc_t(0));
          for (int64_t u = 0; u < U; ++u) {
            for (int64_t t = 0; t < g.taps; ++t) {
              const int64_t r = cl.signature[u * g.taps + t];
              if (r >= 0) per_bin[r * g.taps + t] += per_class[b * U + u];
            }
          }
          for (int64_t i = 0; i < bins; ++i) {
            o[(n * bins + i) * g.O + o0 + b] = static_cast<scalar_t>(per_bin[i]);
          }
        }
      }
    });
  });
  return out;
}

// SEAN's region ops and their backwards: a region's mean pools, the
// broadcast fills, and each is the other's adjoint (with or without the
// 1 / area scale).
at::Tensor region_avg_pool_cpu(const at::Tensor& feat, const at::Tensor& labels, int64_t R) {
  return region_sum_cpu(feat, labels, R, true);
}

at::Tensor region_avg_pool_backward_cpu(const at::Tensor& grad, const at::Tensor& labels) {
  return region_fill_cpu(grad, labels, true);
}

at::Tensor region_broadcast_cpu(const at::Tensor& codes, const at::Tensor& labels) {
  return region_fill_cpu(codes, labels, false);
}

at::Tensor region_broadcast_backward_cpu(const at::Tensor& grad, const at::Tensor& labels,
                                         int64_t R) {
  return region_sum_cpu(grad, labels, R, false);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def("region_avg_pool(Tensor feat, Tensor labels, int num_regions) -> Tensor");
  m.def("_region_avg_pool_backward(Tensor grad, Tensor labels) -> Tensor");
  m.def("region_broadcast(Tensor codes, Tensor labels) -> Tensor");
  m.def("_region_broadcast_backward(Tensor grad, Tensor labels, int num_regions) -> Tensor");
  m.def(
      "region_conv_gather(Tensor proj, Tensor labels, Tensor? bias, int kernel_size, int "
      "padding) -> Tensor");
  m.def(
      "_region_conv_gather_backward(Tensor grad, Tensor labels, int num_regions, int "
      "kernel_size, int padding) -> Tensor");
  m.def(
      "region_classes(Tensor labels, int num_regions, int kernel_size, int padding) -> "
      "(Tensor, Tensor)");
  m.def(
      "region_tap_labels(Tensor labels, int num_regions, int kernel_size, int padding) -> "
      "Tensor");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("region_avg_pool", &region_avg_pool_cpu);
  m.impl("_region_avg_pool_backward", &region_avg_pool_backward_cpu);
  m.impl("region_broadcast", &region_broadcast_cpu);
  m.impl("_region_broadcast_backward", &region_broadcast_backward_cpu);
  m.impl("region_conv_gather", &region_conv_gather_cpu);
  m.impl("_region_conv_gather_backward", &region_conv_gather_backward_cpu);
  m.impl("region_classes", &region_classes_cpu);
  m.impl("region_tap_labels", &region_tap_labels_cpu);
}

}  // namespace hrops
