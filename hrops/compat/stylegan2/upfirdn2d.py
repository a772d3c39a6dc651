"""rosinality's op.upfirdn2d on hrops.upfirdn2d (same signature: up/down an
int or (x, y), pad (p0, p1) or (x0, x1, y0, y1))."""
from ...ops.upfirdn2d import upfirdn2d as _upfirdn2d


def upfirdn2d(input, kernel, up=1, down=1, pad=(0, 0)):
    if kernel.dtype != input.dtype:
        kernel = kernel.to(input.dtype)
    return _upfirdn2d(input, kernel, up=tuple(up) if not isinstance(up, int) else up,
                      down=tuple(down) if not isinstance(down, int) else down, pad=tuple(pad))
