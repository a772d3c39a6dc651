"""Pure-PyTorch reference implementations: the oracle every kernel is tested
against. They follow SEEDS.md's math directly and are never changed to match
a kernel."""
from .gates import gru_update, lstu_gates, stu_reset
from .haar import haar_dwt, haar_idwt
from .modulated_conv import modulated_dwconv2d, modulated_idwt_upsample, styled_epilogue

__all__ = ["gru_update", "lstu_gates", "stu_reset",
           "haar_dwt", "haar_idwt", "modulated_dwconv2d", "modulated_idwt_upsample",
           "styled_epilogue"]
