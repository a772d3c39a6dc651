"""hrops.nn.DWTForward / DWTInverse as drop-in replacements for
pytorch_wavelets' classes (J=1, Haar, mode 'zero')."""
import numpy as np
import pytest
import torch

import hrops.nn as hnn


def _pw():
    pytest.importorskip("pkg_resources", reason="pytorch_wavelets needs setuptools<81")
    return pytest.importorskip("pytorch_wavelets")


@pytest.mark.parametrize("shape", [(2, 3, 16, 12), (1, 4, 9, 7)])
def test_same_outputs_and_format_as_pytorch_wavelets(shape):
    pw = _pw()
    x = torch.randn(shape)
    yl, yh = hnn.DWTForward(J=1, wave="haar", mode="zero")(x)
    yl_pw, yh_pw = pw.DWTForward(J=1, wave="haar", mode="zero")(x)
    assert isinstance(yh, list) and len(yh) == 1
    torch.testing.assert_close(yl, yl_pw)
    torch.testing.assert_close(yh[0], yh_pw[0])
    inv, inv_pw = hnn.DWTInverse(wave="haar", mode="zero"), pw.DWTInverse(wave="haar", mode="zero")
    torch.testing.assert_close(inv((yl, yh)), inv_pw((yl_pw, yh_pw)))
    torch.testing.assert_close(inv((yl, [None])), inv_pw((yl_pw, [None])))


def test_state_dicts_load_both_ways():
    pw = _pw()
    for ours, theirs in ((hnn.DWTForward(), pw.DWTForward(J=1, wave="db1", mode="zero")),
                         (hnn.DWTInverse(), pw.DWTInverse(wave="db1", mode="zero"))):
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        for k, v in theirs.state_dict().items():
            torch.testing.assert_close(ours.state_dict()[k], v)
        ours.load_state_dict(theirs.state_dict())
        theirs.load_state_dict(ours.state_dict())


def test_non_haar_checkpoint_is_refused():
    sd = hnn.DWTInverse().state_dict()
    sd["g1_row"] = torch.tensor([0.5, 0.5]).view(1, 1, 1, 2)
    with pytest.raises(ValueError, match="g1_row: hrops' DWTInverse implements the Haar wavelet only"):
        hnn.DWTInverse().load_state_dict(sd)


def test_unsupported_configurations_raise():
    with pytest.raises(ValueError, match="wave='haar'"):
        hnn.DWTForward(wave="db2")
    with pytest.raises(ValueError, match="mode='zero' only"):
        hnn.DWTForward(mode="symmetric")
    with pytest.raises(ValueError, match="single level J=1"):
        hnn.DWTForward(J=2)
    for bad in ("1", True, 1.0):
        with pytest.raises(ValueError, match=f"J must be an integer, got {bad!r}"):
            hnn.DWTForward(J=bad)
    assert hnn.DWTForward(J=np.int64(1)).J == 1
    with pytest.raises(ValueError, match="single-level"):
        hnn.DWTInverse()((torch.randn(1, 1, 2, 2), [torch.randn(1, 1, 3, 2, 2)] * 2))


def test_accepts_pywt_wavelet_object():
    pywt = pytest.importorskip("pywt")
    hnn.DWTForward(wave=pywt.Wavelet("haar"))
    with pytest.raises(ValueError):
        hnn.DWTForward(wave=pywt.Wavelet("db2"))


def test_module_moves_with_to_and_keeps_impl():
    m = hnn.DWTForward(impl="ref").double()
    yl, _ = m(torch.randn(1, 1, 4, 4, dtype=torch.float64))
    assert yl.dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_state_dicts_load(dtype):
    """Haar taps rounded to half precision are still Haar's."""
    for layer in (hnn.DWTForward(), hnn.DWTInverse(), hnn.IDWTUpsample(16, 8)):
        layer = layer.to(dtype)
        layer.load_state_dict(layer.state_dict())
