"""Shared inputs and helpers of the region-op tests."""
import pytest
import torch

from hrops import _backends

TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-12, rtol=1e-12),
       torch.float16: dict(atol=2e-3, rtol=2e-3), torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2)}


def region_impls():
    """(impl, device) of every compiled region kernel; unavailable ones skip."""
    cases = []
    for impl, device in (("cpu", "cpu"), ("cuda", "cuda")):
        reason = None
        if device == "cuda" and not torch.cuda.is_available():
            reason = "needs a CUDA device"
        elif not _backends.available(impl, torch.device(device)):
            reason = f"{impl} kernels not available"
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        if device == "cuda":
            marks.append(pytest.mark.cuda)
        cases.append(pytest.param(impl, device, marks=marks, id=f"{impl}-{device}"))
    return cases


def blob_labels(n, h, w, num_regions, unlabelled=True, absent=(), seed=0):
    """Piecewise-constant label maps like a face parsing: random rectangles
    painted over each other, some pixels -1, regions in `absent` removed."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_regions, (n, 1, 1)).expand(n, h, w).clone()
    for i in range(n):
        for _ in range(3 * num_regions):
            y0, x0 = (int(torch.randint(0, max(s, 1), (1,), generator=gen)) for s in (h, w))
            dy, dx = (int(torch.randint(1, max(s // 2, 1) + 1, (1,), generator=gen))
                      for s in (h, w))
            labels[i, y0:y0 + dy, x0:x0 + dx] = int(torch.randint(0, num_regions, (1,),
                                                                  generator=gen))
        if unlabelled:
            labels[i][torch.rand(h, w, generator=gen) < 0.05] = -1
    for r in absent:
        labels[labels == r] = -1
    return labels


def onehot(labels, num_regions, dtype=torch.float32):
    """SEAN's preprocess_input: zeros(N, R, H, W).scatter_(1, label, 1.0);
    -1 pixels stay all-zero."""
    n, h, w = labels.shape
    out = torch.zeros(n, num_regions + 1, h, w, dtype=dtype)
    out.scatter_(1, (labels + 1)[:, None], 1.0)
    return out[:, 1:]


def layouts(x):
    """The same values contiguous, channels_last and as a strided view."""
    n, c, h, w = x.shape
    wide = torch.zeros(n, c + 1, h, 2 * w, dtype=x.dtype)
    wide[:, 1:, :, ::2] = x
    return {"contiguous": x, "channels_last": x.contiguous(memory_format=torch.channels_last),
            "strided": wide[:, 1:, :, ::2]}
