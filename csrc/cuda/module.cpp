// The CUDA kernel library hrops._C_cuda: an importable empty Python module
// (loading it runs the TORCH_LIBRARY_IMPL(hrops_C, CUDA) registrations of the op files) and
// the CUDA runtime version it was compiled against, for hrops.build_info().
#include <Python.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

namespace {
int64_t cuda_runtime_version() { return CUDART_VERSION; }
}  // namespace

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def("cuda_runtime_version() -> int", &cuda_runtime_version);
}

extern "C" PyObject* PyInit__C_cuda(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C_cuda", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
