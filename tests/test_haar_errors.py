"""Bad input to the Haar ops raises a clear error naming the argument."""
import numpy as np
import pytest
import torch

import hrops


@pytest.mark.parametrize("impl", ["ref", "cpu", "auto"])
def test_dwt_rejects_bad_input(impl):
    with pytest.raises(ValueError, match=r"x must be a 4-D tensor of shape \(N, C, H, W\)"):
        hrops.haar_dwt(torch.randn(3, 8, 8), impl=impl)
    with pytest.raises(ValueError, match="x must be float32, float64, float16 or bfloat16"):
        hrops.haar_dwt(torch.ones(1, 1, 4, 4, dtype=torch.int64), impl=impl)
    with pytest.raises(ValueError, match="got torch.complex64"):
        hrops.haar_dwt(torch.ones(1, 1, 4, 4, dtype=torch.complex64), impl=impl)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        hrops.haar_dwt([[1.0]], impl=impl)


def test_idwt_rejects_bad_input():
    with pytest.raises(ValueError, match="y must have 4C channels"):
        hrops.haar_idwt(torch.randn(1, 6, 4, 4))
    with pytest.raises(ValueError, match=r"output_size \(5, 9\) does not fit"):
        hrops.haar_idwt(torch.randn(1, 4, 4, 4), (5, 9))
    low = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"high must have shape \(N, C, 3, h, w\)"):
        hrops.haar_idwt_bands(low, torch.randn(1, 2, 3, 4, 5))
    with pytest.raises(ValueError, match="low and high must have the same dtype"):
        hrops.haar_idwt_bands(low, torch.randn(1, 2, 3, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="low and high must be on the same device"):
        hrops.haar_idwt_bands(low, torch.randn(1, 2, 3, 4, 4, device="meta"))


@pytest.mark.parametrize("output_size,expected", [
    ((np.int64(7), torch.tensor(5)), (7, 5)),
    ([7, np.int32(6)], (7, 6)),
    ((7,), r"output_size must be a pair \(H, W\) of integers >= 0, got \(7,\)"),
    (7, "output_size must be a pair .*, got 7"),
    ((7.0, 7), r"output_size must be a pair .*, got \(7.0, 7\)"),
    ((True, 7), r"output_size must be a pair .*, got \(True, 7\)"),
    ((7, 6, 5), r"output_size must be a pair .*, got \(7, 6, 5\)"),
    ((-1, 7), r"output_size must be a pair .* >= 0, got \(-1, 7\)"),
])
@pytest.mark.parametrize("op", ["packed", "bands"])
def test_idwt_output_size(output_size, expected, op):
    """NumPy and 0-d tensor integers count as ints; anything but a pair of
    integers is a ValueError naming output_size."""
    y = torch.randn(1, 8, 4, 3, dtype=torch.float64)
    low, high = y[:, :2], y[:, 2:].unflatten(1, (2, 3))
    idwt = ((lambda size: hrops.haar_idwt(y, size)) if op == "packed" else
            (lambda size: hrops.haar_idwt_bands(low, high, size)))
    if isinstance(expected, tuple):
        torch.testing.assert_close(idwt(output_size), idwt(expected), atol=0, rtol=0)
    else:
        with pytest.raises(ValueError, match=expected):
            idwt(output_size)


def test_impl_choice_errors():
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="impl must be one of"):
        hrops.haar_dwt(x, impl="fast")
    with pytest.raises(RuntimeError, match="impl='cuda' is not available: it runs on CUDA tensors"):
        hrops.haar_dwt(x, impl="cuda")


def test_raw_kernels_check_their_arguments():
    """The compiled kernels are reachable directly (torch.ops.hrops_C) and
    must not crash on bad input either."""
    with pytest.raises(RuntimeError, match="x must be a 4-D tensor"):
        torch.ops.hrops_C.haar_dwt(torch.randn(4, 4))
    with pytest.raises(RuntimeError, match="x must be a floating-point tensor"):
        torch.ops.hrops_C.haar_dwt(torch.ones(1, 1, 2, 2, dtype=torch.int32))
    low, high = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3, 3)
    with pytest.raises(RuntimeError, match="does not fit coefficients"):
        torch.ops.hrops_C.haar_idwt(low, high, 7, 6)
    with pytest.raises(RuntimeError, match="high must have shape"):
        torch.ops.hrops_C.haar_idwt(low, high[:, :1], 6, 6)
