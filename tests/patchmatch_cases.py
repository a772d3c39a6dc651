"""Random PatchMatch inputs shared by the PatchMatch tests."""
import torch
import torch.nn.functional as F


def feature_maps(n=2, c=6, h=5, w=7, hb=6, wb=4, k=3, seed=0, fractional=False,
                 dtype=torch.float32):
    """Unit features A (n, c, h, w) and B (n, c, hb, wb), and k candidate
    offsets per pixel of A in [-4, 4] (plus a fraction in [0, 1))."""
    gen = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(n, c, h, w, generator=gen), dim=1)
    b = F.normalize(torch.randn(n, c, hb, wb, generator=gen), dim=1)
    off = torch.randint(-4, 5, (n, 2, k, h, w), generator=gen).float()
    if fractional:
        off = off + torch.rand(off.shape, generator=gen)
    return a.to(dtype), b.to(dtype), off.to(dtype)
