// The CPU kernel library hrops._C: an importable, empty Python module.
// Importing it loads this library, which runs the static registrations of
// every op file (each declares its kernels' schemas in namespace hrops_C and
// registers their CPU implementations; no pybind11 needed).
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
