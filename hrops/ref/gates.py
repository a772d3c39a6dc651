"""Reference recurrent-cell gates (csmliu/STGAN models.py, ConvGRUCell;
neuralchen/CooGAN components/STU/SRU_modify.py and SRU_modify_relu.py;
microsoft/CoCosNet-v2 models/networks/convgru.py, SepConvGRU), written from the
equations with plain PyTorch ops.

  lstu_gates: CooGAN's LSTU (SRU_modify: g = tanh, SRU_modify_relu: g = relu)
      f = sigmoid(pre_f), r = sigmoid(pre_r)
      c = f * enc + (1 - f) * x_tilde
      h = r * g(c) + (1 - r) * x_up
  stu_reset: STGAN's STU reset, s_new = sigmoid(pre_r) * s_hat
  gru_update: h' = (1 - z) * h + z * tanh(pre_q), z = sigmoid(pre_z); STGAN's
      STU output out = (1 - u) * s_hat + u * tanh(pre_info) is this update.
  conv_gru_pass: one ConvGRU pass, the gate convolutions on [h, x] included.
pre_gates holds [pre_f | pre_r] on the channel axis: the output of the one
convolution that computes both gates.
"""
import torch
import torch.nn.functional as F

__all__ = ["conv_gru_pass", "gru_update", "lstu_gates", "stu_reset"]


def lstu_gates(x_up, x_tilde, pre_gates, enc, activation="tanh"):
    pre_f, pre_r = pre_gates.chunk(2, dim=1)
    f = torch.sigmoid(pre_f)
    r = torch.sigmoid(pre_r)
    c = f * enc + (1 - f) * x_tilde
    g = torch.tanh(c) if activation == "tanh" else torch.relu(c)
    h = r * g + (1 - r) * x_up
    return h, c


def stu_reset(pre_r, s_hat):
    return torch.sigmoid(pre_r) * s_hat


def gru_update(pre_z, h, pre_q):
    z = torch.sigmoid(pre_z)
    return (1 - z) * h + z * torch.tanh(pre_q)


def conv_gru_pass(h, x, weight_zr, bias_zr, weight_q, bias_q, padding):
    """One ConvGRU pass: gate convolutions on [h, x], reset, update."""
    c = h.shape[1]
    pre_zr = F.conv2d(torch.cat((h, x), dim=1), weight_zr, bias_zr, padding=padding)
    pre_q = F.conv2d(torch.cat((stu_reset(pre_zr[:, c:], h), x), dim=1), weight_q, bias_q,
                     padding=padding)
    return gru_update(pre_zr[:, :c], h, pre_q)
