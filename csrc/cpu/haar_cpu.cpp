// Haar DWT/IDWT CPU kernels: one pass over memory, parallel over output rows
// with hrops::parallel_for (OpenMP), unit-stride inner loops specialised so the
// compiler vectorises them. Per-block math: csrc/common/haar.h.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "cpu/parallel.h"
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "common/haar.h"
#include "common/tensor_checks.h"
#include "common/haar_shapes.h"
#include "cpu/isa.h"
#include "cpu/output_alloc.h"

namespace hrops {
namespace {

// Rows per parallel chunk so that a chunk moves roughly 64K elements.
int64_t row_grain(int64_t row_len) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(row_len, 1)); }

template <typename scalar_t, bool kUnitW, bool kBottom>
void dwt_row(const scalar_t* row, int64_t sh, int64_t sw_arg, int64_t W, scalar_t* ll, scalar_t* lh,
             scalar_t* hl, scalar_t* hh) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t sw = kUnitW ? 1 : sw_arg;
  const int64_t full = W / 2;
  for (int64_t j = 0; j < full; ++j) {
    haar_dwt_block<acc_t>(row + 2 * j * sw, sh, sw, kBottom, true, ll + j, lh + j, hl + j, hh + j);
  }
  if (W % 2) {
    haar_dwt_block<acc_t>(row + 2 * full * sw, sh, sw, kBottom, false, ll + full, lh + full,
                          hl + full, hh + full);
  }
}

template <typename scalar_t, bool kUnitW>
void dwt_rows(const scalar_t* x, const HaarDims& d, const int64_t* xs, scalar_t* out, int64_t begin,
              int64_t end) {
  const int64_t plane = d.h * d.w;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t i = r % d.h, nc = r / d.h, c = nc % d.C, n = nc / d.C;
    const scalar_t* row = x + n * xs[0] + c * xs[1] + 2 * i * xs[2];
    scalar_t* ll = out + (n * 4 * d.C + haar_packed_channel(d.C, c, 0)) * plane + i * d.w;
    scalar_t* lh = out + (n * 4 * d.C + haar_packed_channel(d.C, c, 1)) * plane + i * d.w;
    if (2 * i + 1 < d.H) {
      dwt_row<scalar_t, kUnitW, true>(row, xs[2], xs[3], d.W, ll, lh, lh + plane, lh + 2 * plane);
    } else {
      dwt_row<scalar_t, kUnitW, false>(row, xs[2], xs[3], d.W, ll, lh, lh + plane, lh + 2 * plane);
    }
  }
}

at::Tensor haar_dwt_cpu(const at::Tensor& x) {
  check_dim(x, 4, "x", "(N, C, H, W)");
  check_floating(x, "x");
  const HaarDims d = haar_dims_from_input(x);
  at::Tensor out = empty_output({d.N, 4 * d.C, d.h, d.w}, x.options());
  if (out.numel() == 0) return out;
  const int64_t xs[4] = {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "haar_dwt_cpu", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    parallel_for(0, d.N * d.C * d.h, row_grain(2 * d.W), [&](int64_t b, int64_t e) {
      if (xs[3] == 1) {
        dwt_rows<scalar_t, true>(xp, d, xs, op, b, e);
      } else {
        dwt_rows<scalar_t, false>(xp, d, xs, op, b, e);
      }
    });
  });
  return out;
}

template <typename scalar_t, bool kUnitW, bool kBottom>
HROPS_INLINE void idwt_row(const scalar_t* ll, int64_t lsw_arg, const scalar_t* lh, const scalar_t* hl,
              const scalar_t* hh, int64_t hsw_arg, scalar_t* y, int64_t W, int64_t w) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t lsw = kUnitW ? 1 : lsw_arg, hsw = kUnitW ? 1 : hsw_arg;
  const int64_t full = W / 2;
  for (int64_t j = 0; j < full; ++j) {
    haar_idwt_block<acc_t>(ll[j * lsw], lh[j * hsw], hl[j * hsw], hh[j * hsw], y + 2 * j, W, 1,
                           kBottom, true);
  }
  if (full < w) {  // odd output width: the last block loses its right column
    haar_idwt_block<acc_t>(ll[full * lsw], lh[full * hsw], hl[full * hsw], hh[full * hsw],
                           y + 2 * full, W, 1, kBottom, false);
  }
}

template <typename scalar_t, bool kUnitW>
HROPS_INLINE void idwt_rows(const scalar_t* low, const int64_t* ls, const scalar_t* high, const int64_t* hs,
               const HaarDims& d, scalar_t* out, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const int64_t i = r % d.h, nc = r / d.h, c = nc % d.C, n = nc / d.C;
    const scalar_t* ll = low + n * ls[0] + c * ls[1] + i * ls[2];
    const scalar_t* lh = high + n * hs[0] + c * hs[1] + i * hs[3];
    scalar_t* y = out + ((n * d.C + c) * d.H + 2 * i) * d.W;
    if (2 * i + 1 < d.H) {
      idwt_row<scalar_t, kUnitW, true>(ll, ls[3], lh, lh + hs[2], lh + 2 * hs[2], hs[4], y, d.W, d.w);
    } else {
      idwt_row<scalar_t, kUnitW, false>(ll, ls[3], lh, lh + hs[2], lh + 2 * hs[2], hs[4], y, d.W,
                                         d.w);
    }
  }
}

// The unit-stride IDWT loop gains ~25% from AVX2 (the forward loop does not:
// its stride-2 deinterleave is cheaper with SSE shuffles), so only it is
// compiled twice (see isa.h).
template <typename scalar_t>
HROPS_TARGET_AVX2 void idwt_rows_avx2(const scalar_t* low, const int64_t* ls, const scalar_t* high,
                                      const int64_t* hs, const HaarDims& d, scalar_t* out,
                                      int64_t begin, int64_t end) {
  idwt_rows<scalar_t, true>(low, ls, high, hs, d, out, begin, end);
}

at::Tensor haar_idwt_cpu(const at::Tensor& low, const at::Tensor& high, int64_t out_h,
                         int64_t out_w) {
  const HaarDims d = haar_dims_from_coeffs(low, high, out_h, out_w);
  at::Tensor out = empty_output({d.N, d.C, d.H, d.W}, low.options());
  if (out.numel() == 0) return out;
  const int64_t ls[4] = {low.stride(0), low.stride(1), low.stride(2), low.stride(3)};
  const int64_t hs[5] = {high.stride(0), high.stride(1), high.stride(2), high.stride(3),
                         high.stride(4)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, low.scalar_type(), "haar_idwt_cpu", [&] {
    const scalar_t* lp = low.const_data_ptr<scalar_t>();
    const scalar_t* hp = high.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    parallel_for(0, d.N * d.C * d.h, row_grain(4 * d.w), [&](int64_t b, int64_t e) {
      if (ls[3] == 1 && hs[4] == 1) {
        if (cpu_has_avx2_fma()) {
          idwt_rows_avx2<scalar_t>(lp, ls, hp, hs, d, op, b, e);
        } else {
          idwt_rows<scalar_t, true>(lp, ls, hp, hs, d, op, b, e);
        }
      } else {
        idwt_rows<scalar_t, false>(lp, ls, hp, hs, d, op, b, e);
      }
    });
  });
  return out;
}

at::Tensor haar_idwt_packed_cpu(const at::Tensor& y, int64_t out_h, int64_t out_w) {
  const auto [low, high] = split_packed_coeffs(y);
  return haar_idwt_cpu(low, high, out_h, out_w);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def("haar_dwt(Tensor x) -> Tensor");
  m.def("haar_idwt(Tensor low, Tensor high, int out_h, int out_w) -> Tensor");
  m.def("haar_idwt_packed(Tensor y, int out_h, int out_w) -> Tensor");
}

TORCH_LIBRARY_IMPL(hrops_C, CPU, m) {
  m.impl("haar_dwt", &haar_dwt_cpu);
  m.impl("haar_idwt", &haar_idwt_cpu);
  m.impl("haar_idwt_packed", &haar_idwt_packed_cpu);
}

}  // namespace hrops
