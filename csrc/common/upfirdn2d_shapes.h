// Host-only argument checks and geometry of the upfirdn2d kernels (CPU and
// CUDA glue).
#pragma once
#include <algorithm>
#include <cstdlib>

#include "common/tensor_checks.h"
#include "common/upfirdn2d.h"

namespace hrops {

inline UpFirDn2dGeom upfirdn2d_geometry(const at::Tensor& x, const at::Tensor& kernel,
                                        int64_t up_x, int64_t up_y, int64_t down_x,
                                        int64_t down_y, int64_t pad_x0, int64_t pad_x1,
                                        int64_t pad_y0, int64_t pad_y1) {
  check_dim(x, 4, "x", "(N, C, H, W)");
  check_floating(x, "x");
  check_dim(kernel, 2, "kernel", "(kh, kw)");
  check_floating(kernel, "kernel");
  TORCH_CHECK(kernel.device() == x.device(), "kernel and x must be on the same device, got ",
              kernel.device(), " and ", x.device());
  TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1,
              "up and down factors must be >= 1, got up (", up_x, ", ", up_y, "), down (", down_x,
              ", ", down_y, ")");
  TORCH_CHECK(kernel.size(0) >= 1 && kernel.size(1) >= 1, "kernel must not be empty, got ",
              kernel.sizes());
  // hrops.upfirdn2d's bound: the CPU row buffers grow with factors and pads.
  constexpr int64_t kLimit = int64_t(1) << 20;
  TORCH_CHECK(std::max({up_x, up_y, down_x, down_y}) <= kLimit &&
                  std::max({std::abs(pad_x0), std::abs(pad_x1), std::abs(pad_y0),
                            std::abs(pad_y1)}) <= kLimit,
              "up, down and |pad| must be at most 2**20, got up (", up_x, ", ", up_y,
              "), down (", down_x, ", ", down_y, "), pad (", pad_x0, ", ", pad_x1, ", ", pad_y0,
              ", ", pad_y1, ")");
  UpFirDn2dGeom g;
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.kh = kernel.size(0);
  g.kw = kernel.size(1);
  g.up_x = up_x;
  g.up_y = up_y;
  g.down_x = down_x;
  g.down_y = down_y;
  g.pad_x0 = pad_x0;
  g.pad_y0 = pad_y0;
  g.out_h = upfirdn_out_len(g.in_h, g.kh, up_y, down_y, pad_y0, pad_y1);
  g.out_w = upfirdn_out_len(g.in_w, g.kw, up_x, down_x, pad_x0, pad_x1);
  return g;
}

}  // namespace hrops
