"""rosinality's op.upfirdn2d on hrops.upfirdn2d (same signature: up/down an
int or (x, y), pad (p0, p1) or (x0, x1, y0, y1))."""
from collections.abc import Iterable

from ...ops.upfirdn2d import upfirdn2d as _upfirdn2d


def _tuple(value):
    """rosinality's op takes any iterable where hrops takes a sequence."""
    return tuple(value) if isinstance(value, Iterable) and not isinstance(value, str) else value


def upfirdn2d(input, kernel, up=1, down=1, pad=(0, 0)):
    if kernel.dtype != input.dtype:
        kernel = kernel.to(input.dtype)
    return _upfirdn2d(input, kernel, up=_tuple(up), down=_tuple(down), pad=_tuple(pad))
