"""Argument validation shared by the functional ops: clear ValueErrors that
name the argument and what was expected, raised before any kernel runs."""
import math
import numbers
import operator
from collections.abc import Sequence

import numpy as np
import torch
from torch.fx.experimental.symbolic_shapes import guard_or_true

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
# The dtypes an autocast region mixes (half activations, float32 parameters);
# each op's autocast rule (hrops.ops._define) casts them to one.
AUTOCAST_MIXABLE = (torch.float32, torch.float16, torch.bfloat16)


def check_tensor(t, name, ndim=None, shape_doc=None):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must be a {ndim}-D tensor of shape {shape_doc}, "
                         f"got shape {tuple(t.shape)}")
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32, float64, float16 or bfloat16, got {t.dtype}")


def check_same_device_dtype(a, a_name, b, b_name):
    if a.device != b.device:
        raise ValueError(f"{a_name} and {b_name} must be on the same device, "
                         f"got {a.device} and {b.device}")
    if a.dtype != b.dtype and not (torch.is_autocast_enabled(a.device.type)
                                   and a.dtype in AUTOCAST_MIXABLE and b.dtype in AUTOCAST_MIXABLE):
        raise ValueError(f"{a_name} and {b_name} must have the same dtype (inside torch.autocast: "
                         f"any of float32, float16, bfloat16), got {a.dtype} and {b.dtype}")


def check_vector(t, name, size, size_doc, like, like_name):
    """t: a 1-D tensor of `size` elements (`size_doc`, e.g. "C") on like's
    device with like's dtype (see check_same_device_dtype)."""
    check_tensor(t, name, 1, f"({size_doc},)")
    check_same_device_dtype(like, like_name, t, name)
    if t.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size_doc},) = ({size},), got {tuple(t.shape)}")


def _describe(value):
    """value for an error message; a tensor that is not 0-d by its shape and
    dtype rather than by its (possibly long) repr."""
    if isinstance(value, torch.Tensor) and value.dim() != 0:
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return repr(value)


def _in_range(value, ge=None, gt=None, le=None, lt=None):
    # (plain comparisons: these checks run on every op call, and a small
    # layer's whole kernel can take a few microseconds)
    if type(value) in (int, float):
        return ((ge is None or value >= ge) and (gt is None or value > gt)
                and (le is None or value <= le) and (lt is None or value < lt))
    # guard_or_true: a size that torch.compile traces (a SymInt) passes
    # unless it is known to be out of range.
    checks = ((ge, operator.ge), (gt, operator.gt), (le, operator.le), (lt, operator.lt))
    return all(bound is None or guard_or_true(relation(value, bound))
               for bound, relation in checks)


def _range_doc(ge=None, gt=None, le=None, lt=None):
    """' >= 0', ' in (0, 1)', or '' without bounds."""
    low = (ge, "[", ">=") if ge is not None else (gt, "(", ">") if gt is not None else None
    high = (le, "]", "<=") if le is not None else (lt, ")", "<") if lt is not None else None
    if low and high:
        return f" in {low[1]}{low[0]}, {high[0]}{high[1]}"
    bound = low or high
    return f" {bound[2]} {bound[0]}" if bound else ""


def _as_integer(value):
    """value as an int (a SymInt, a size that torch.compile traces, as it
    is), or None if it is no integer. A bool is none: True as a count or a
    size is a mistake far more often than 1."""
    if type(value) is int:
        return value
    if isinstance(value, (bool, np.bool_)) or (
            isinstance(value, torch.Tensor) and (value.dim() != 0 or value.dtype == torch.bool)):
        return None
    if isinstance(value, (int, torch.SymInt)):  # (a SymInt: a size that torch.compile traces)
        return value
    try:  # NumPy integers, 0-d integer tensors; not floats, even 2.0
        return operator.index(value)
    except TypeError:
        return None


def check_integer(value, name, *, ge=None, le=None):
    """value as a plain int (a SymInt as it is): a Python or NumPy integer or
    a 0-d integer tensor, within the optional bounds ge <= value <= le. A
    bool, a float (even 2.0), a string, anything else is a ValueError such
    as "padding must be an integer >= 0, got -1"."""
    result = _as_integer(value)
    if result is None or not _in_range(result, ge=ge, le=le):
        raise ValueError(f"{name} must be an integer{_range_doc(ge=ge, le=le)}, "
                         f"got {_describe(value)}")
    return result


def check_integers(value, name, doc, *, lengths=(2,), scalar=False, ge=None, le=None):
    """value as a tuple of ints: a sequence of one of `lengths` integers
    (`doc` says what, e.g. "a pair (H, W)"), each within ge <= v <= le if
    given, or with scalar=True also one integer, repeated lengths[0] times.
    Integers are as check_integer takes them."""
    if isinstance(value, Sequence):
        items = tuple(value)
    else:
        items = (value,) * lengths[0] if scalar else ()
    if len(items) in lengths:
        result = []
        for item in items:
            v = _as_integer(item)
            if v is None or not _in_range(v, ge=ge, le=le):
                break
            result.append(v)
        else:
            return tuple(result)
    raise ValueError(f"{name} must be {'an integer or ' if scalar else ''}{doc} of integers"
                     f"{_range_doc(ge=ge, le=le)}, got {_describe(value)}")


def check_choice(value, name, choices):
    """The one of `choices` that value equals, compared by type as well: 2.0,
    True and '2' are not the choice 2 (a NumPy integer is). A ValueError
    such as "up must be 1 or 2, got '2'" otherwise."""
    for choice in choices:
        if isinstance(choice, int) and not isinstance(choice, bool):
            if _as_integer(value) == choice:
                return choice
        elif isinstance(value, type(choice)) and value == choice:
            return choice
    options = [repr(c) for c in choices]
    expected = (options[0] if len(options) == 1 else " or ".join(options) if len(options) == 2
                else f"one of {', '.join(options)}")
    raise ValueError(f"{name} must be {expected}, got {_describe(value)}")


def check_bool(value, name):
    """value as a bool: a Python or NumPy bool only; a string such as "no" or
    a number is a ValueError rather than taken for its truth value."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool (True or False), got {_describe(value)}")
    return bool(value)


def check_real(value, name, *, ge=None, gt=None, lt=None, finite=False):
    """value as a float: a Python or NumPy real number (ints included) or a
    0-d tensor that needs no gradient, within the optional bounds, finite if
    asked; a ValueError such as "eps must be a finite real number > 0, got
    nan" otherwise. NaN is always rejected. A bool is rejected too, as
    check_integer does: True as a slope or a scale is a mistake rather than
    1.0. A 0-d tensor that requires grad is rejected because the ops take
    its value, not the tensor: its gradient would be lost silently. Under
    torch.compile a float may arrive as a SymFloat (dynamic=True): it passes
    unless known to be out of range. Pass Python numbers there (a traced
    tensor has no value to check)."""
    if type(value) in (float, int):
        result = float(value)
    else:
        if isinstance(value, torch.Tensor) and value.dim() == 0 and value.requires_grad:
            raise ValueError(f"{name} must be a real number; got a tensor that requires grad, "
                             f"but {name} gets no gradient: pass a float or a detached tensor")
        number = isinstance(value, (numbers.Real, torch.SymFloat)) and not isinstance(value, bool)
        if isinstance(value, torch.Tensor):
            number = value.dim() == 0 and value.dtype != torch.bool and not value.is_complex()
        result = float(value) if number else math.nan
    # comparisons, not math.isnan / math.isinf: those break a graph on a SymFloat
    if (not guard_or_true(result == result)
            or (finite and not guard_or_true(abs(result) < math.inf))
            or not _in_range(result, ge=ge, gt=gt, lt=lt)):
        raise ValueError(f"{name} must be a {'finite ' if finite else ''}real number"
                         f"{_range_doc(ge=ge, gt=gt, lt=lt)}, got {_describe(value)}")
    return result
