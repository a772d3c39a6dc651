"""Argument validation shared by the functional ops: clear ValueErrors that
name the argument and what was expected, raised before any kernel runs."""
import operator

import torch

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


def check_integer(value, name):
    """value as an int (a SymInt, or a count that torch.compile traces, as it
    is); a float, a bool or any other non-integer is a ValueError."""
    if not isinstance(value, bool):
        if isinstance(value, (int, torch.SymInt)):
            return value
        try:  # integer-likes: NumPy integers, one-element integer tensors
            return operator.index(value)
        except TypeError:
            pass
    raise ValueError(f"{name} must be an integer, got {value!r}")
