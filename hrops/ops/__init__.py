"""Functional ops: argument checks, implementation choice, custom ops with
autograd and fake implementations."""
from .gates import gru_update, lstu_gates, stu_reset, stu_update
from .haar import haar_dwt, haar_idwt, haar_idwt_bands
from .modulated_conv import modulated_dwconv2d, modulated_idwt_upsample

__all__ = ["gru_update", "lstu_gates", "stu_reset", "stu_update",
           "haar_dwt", "haar_idwt", "haar_idwt_bands", "modulated_dwconv2d",
           "modulated_idwt_upsample"]
