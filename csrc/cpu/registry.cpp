// Schemas of the raw compiled kernels (namespace hrops_C). The public,
// differentiable ops live in the `hrops` namespace and are defined in Python
// (hrops/ops/); they call these kernels. Backend files add implementations
// with TORCH_LIBRARY_IMPL(hrops_C, CPU|CUDA, m).
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(hrops_C, m) {
  m.def("haar_dwt(Tensor x) -> Tensor");
  m.def("haar_idwt(Tensor low, Tensor high, int out_h, int out_w) -> Tensor");
  m.def(
      "modulated_dwconv2d(Tensor x, Tensor modulation, Tensor weight_dw, Tensor weight_pw, "
      "Tensor? demod, int padding, Tensor? bias, Tensor? noise, Tensor? noise_weight, "
      "float? negative_slope) -> Tensor");
  m.def(
      "modulated_dwconv2d_backward(Tensor grad, Tensor x, Tensor modulation, Tensor weight_dw, "
      "Tensor weight_pw, Tensor? demod, int padding) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("modulated_idwt_upsample(Tensor x, Tensor modulation) -> Tensor");
  m.def(
      "patchmatch_step(Tensor feat_a, Tensor feat_b, Tensor offsets, int direction, "
      "float temperature, int topk, bool cocosnet_truncation, Tensor? random_offsets=None) -> "
      "(Tensor, Tensor)");
  m.def(
      "patchmatch_warp(Tensor feat_a, Tensor feat_b, Tensor ref, Tensor offsets, "
      "float temperature, bool cocosnet_truncation) -> Tensor");
  m.def(
      "patchmatch_warp_backward(Tensor grad, Tensor feat_a, Tensor feat_b, Tensor ref, "
      "Tensor offsets, float temperature, bool cocosnet_truncation) -> (Tensor, Tensor, Tensor)");
  m.def(
      "patchmatch_warp_weights(Tensor feat_a, Tensor feat_b, Tensor ref, Tensor offsets, "
      "float temperature, bool cocosnet_truncation) -> (Tensor, Tensor, Tensor)");
  m.def(
      "patchmatch_warp_backward_weights(Tensor grad, Tensor feat_a, Tensor feat_b, Tensor ref, "
      "Tensor offsets, Tensor weights, Tensor b_rows, float temperature, "
      "bool cocosnet_truncation) -> "
      "(Tensor, Tensor, Tensor)");
  m.def(
      "modulated_idwt_upsample_backward(Tensor grad, Tensor x, Tensor modulation) -> "
      "(Tensor, Tensor)");
  m.def(
      "fused_bias_leaky_relu(Tensor x, Tensor? bias, float negative_slope, float scale) -> Tensor");
  m.def(
      "fused_bias_leaky_relu_backward(Tensor grad, Tensor out, Tensor? shift, float negative_slope, "
      "float scale, bool bias_grad) -> (Tensor, Tensor)");
  m.def(
      "upfirdn2d(Tensor x, Tensor kernel, int up_x, int up_y, int down_x, int down_y, int pad_x0, "
      "int pad_x1, int pad_y0, int pad_y1) -> Tensor");
  m.def("region_sum(Tensor feat, Tensor labels, int num_regions, bool mean) -> Tensor");
  m.def("region_fill(Tensor codes, Tensor labels, bool mean) -> Tensor");
  m.def(
      "region_conv_gather(Tensor proj, Tensor labels, Tensor? bias, int kernel_size, int padding) "
      "-> Tensor");
  m.def(
      "region_conv_gather_backward(Tensor grad, Tensor labels, int num_regions, int kernel_size, "
      "int padding) -> Tensor");
  m.def(
      "region_classes(Tensor labels, int num_regions, int kernel_size, int padding) -> "
      "(Tensor, Tensor)");
  m.def("region_tap_labels(Tensor labels, int num_regions, int kernel_size, int padding) -> Tensor");
  m.def(
      "ace_modulate(Tensor x, Tensor gamma_spade, Tensor beta_spade, Tensor? gamma_avg, "
      "Tensor? beta_avg, Tensor? alpha) -> Tensor");
  m.def(
      "lstu_gates(Tensor x_up, Tensor x_tilde, Tensor pre_gates, Tensor enc, int activation) -> "
      "(Tensor, Tensor)");
  m.def(
      "lstu_gates_backward(Tensor grad_h, Tensor grad_c, Tensor x_up, Tensor x_tilde, "
      "Tensor pre_gates, Tensor enc, int activation) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("stu_reset(Tensor pre_r, Tensor s_hat) -> Tensor");
  m.def("stu_reset_backward(Tensor grad, Tensor pre_r, Tensor s_hat) -> (Tensor, Tensor)");
  m.def("gru_update(Tensor pre_z, Tensor h, Tensor pre_q) -> Tensor");
  m.def(
      "gru_update_backward(Tensor grad, Tensor pre_z, Tensor h, Tensor pre_q) -> "
      "(Tensor, Tensor, Tensor)");
}

// An importable, empty Python module: importing hrops._C loads this library
// and runs the static registrations above (no pybind11 needed).
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
