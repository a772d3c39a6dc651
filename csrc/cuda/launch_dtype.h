// The element type a raw-pointer launcher is told to use. The launchers are
// declared next to their callers (<op>_cuda.cpp) and defined in <op>_kernels.cu;
// this header is shared by both sides, so it includes no torch headers (torch
// headers in a .cu cost ~100 s of compile time each).
#pragma once

namespace hrops {

enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };

}  // namespace hrops
