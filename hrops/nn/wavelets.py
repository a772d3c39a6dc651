"""Drop-in replacements for pytorch_wavelets' DWTForward / DWTInverse at J=1
with the Haar wavelet and mode 'zero' (what MobileStyleGAN uses).

Same constructor arguments, call format ((yl, [yh]) with yh (N, C, 3, h, w)
in band order LH, HL, HH) and state_dict buffers (the filter taps h0_col ...
g1_row), so modules and checkpoints that contain pytorch_wavelets' classes
load unchanged. The buffers are kept for that compatibility only; loading a
state_dict whose filters are not Haar raises.
"""
import math

import torch
from torch import nn

from ..ops._checks import check_integer
from ..ops.haar import haar_dwt, haar_idwt_bands

_HAAR_NAMES = ("haar", "db1")


def _check_haar(wave, mode, J=1):
    name = getattr(wave, "name", wave)  # a pywt.Wavelet or a string
    if not isinstance(name, str) or name.lower() not in _HAAR_NAMES:
        raise ValueError(f"hrops supports wave='haar' (or 'db1') only, got {wave!r}")
    if mode != "zero":
        raise ValueError(f"hrops supports mode='zero' only, got {mode!r}")
    if check_integer(J, "J") != 1:
        raise ValueError(f"hrops supports a single level J=1 only, got J={J!r}")


def _haar_taps(prefix):
    """The filter buffers pytorch_wavelets registers for db1: low [r, r] and
    high [r, -r] with r = 1/sqrt(2), as columns (1,1,2,1) and rows (1,1,1,2)."""
    r = 1 / math.sqrt(2)
    low, high = torch.tensor([r, r]), torch.tensor([r, -r])
    return {f"{prefix}0_col": low.view(1, 1, 2, 1), f"{prefix}1_col": high.view(1, 1, 2, 1),
            f"{prefix}0_row": low.view(1, 1, 1, 2), f"{prefix}1_row": high.view(1, 1, 1, 2)}


class _HaarModule(nn.Module):
    _prefix = ""

    def __init__(self, impl=None):
        super().__init__()
        self.impl = impl
        for name, taps in _haar_taps(self._prefix).items():
            self.register_buffer(name, taps)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name, taps in _haar_taps(self._prefix).items():  # (as rounded to the loaded dtype)
            loaded = state_dict.get(prefix + name)
            if loaded is not None and (
                    loaded.shape != taps.shape or
                    not torch.allclose(loaded.float().cpu(), taps.to(loaded.dtype).float(),
                                       atol=1e-6)):
                raise ValueError(f"{prefix}{name}: hrops' {type(self).__name__} implements the "
                                 f"Haar wavelet only; the checkpoint holds other filter taps "
                                 f"{loaded.flatten().tolist()}")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class DWTForward(_HaarModule):
    """x (N, C, H, W) -> (yl (N, C, h, w), [yh (N, C, 3, h, w)]), h = ceil(H/2).
    yl and yh are views into one packed hrops.haar_dwt result."""
    _prefix = "h"

    def __init__(self, J=1, wave="db1", mode="zero", *, impl=None):
        _check_haar(wave, mode, J)
        super().__init__(impl)
        self.J = 1
        self.mode = mode

    def forward(self, x):
        y = haar_dwt(x, impl=self.impl)
        c = x.shape[1]
        return y[:, :c], [y[:, c:].unflatten(1, (c, 3))]


class DWTInverse(_HaarModule):
    """(yl (N, C, h, w), [yh (N, C, 3, h, w) or None]) -> (N, C, 2h, 2w)."""
    _prefix = "g"

    def __init__(self, wave="db1", mode="zero", *, impl=None):
        _check_haar(wave, mode)
        super().__init__(impl)
        self.mode = mode

    def forward(self, coeffs):
        yl, yh = coeffs
        if len(yh) != 1:
            raise ValueError(f"hrops' DWTInverse is single-level: yh must hold one tensor, "
                             f"got {len(yh)}")
        high = yh[0]
        if high is None:  # pytorch_wavelets treats a missing band as zeros
            high = yl.new_zeros((yl.shape[0], yl.shape[1], 3, *yl.shape[-2:]))
        return haar_idwt_bands(yl, high, impl=self.impl)
