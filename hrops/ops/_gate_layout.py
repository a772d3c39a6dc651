"""Memory layouts the gating kernels accept and give (csrc/common/gates_ops.h):
shared by the ops' fake functions and the Triton kernels."""


def _walkable(t):
    """(planes, pixels): whether t's (n, c) planes, or its pixels, are evenly
    spaced runs of contiguous elements (csrc/common/gates_ops.h)."""
    _, _, h, w = t.shape
    sn, sc, sh, sw = t.stride()
    planes = (sw == 1 or w <= 1) and (sh == w or h <= 1)
    pixels = sc == 1 and (sh == w * sw or h <= 1 or w <= 1)
    return planes, pixels


def channels_last_operands(t):
    """Whether the gating kernels take an op whose reference operand is `t`
    channels-last: t's pixels, not its planes, are walkable (a channels-last
    tensor or a channel slice of one). Then the op's outputs are
    channels-last too, but for lstu_gates_backward's grad of an NCHW enc."""
    planes, pixels = _walkable(t)
    return not planes and pixels


def planar_among_channels_last(t, like):
    """Whether `t` is an NCHW operand of an op whose reference operand `like`
    makes it channels-last (the CPU kernels read it in place, and the grad
    of such an enc comes back NCHW)."""
    planes, pixels = _walkable(t)
    return channels_last_operands(like) and planes and not pixels


def _like(t, groups=1):
    n, c, h, w = t.shape
    if channels_last_operands(t):
        return t.new_empty((n, h, w, groups * c)).permute(0, 3, 1, 2)
    return t.new_empty((n, groups * c, h, w))
