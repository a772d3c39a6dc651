"""What every property test shares: the per-op tally printed at the end of
the pytest run, running a kernel at 1 and 2 threads, random tensors from a
drawn seed, memory layouts, and the comparison against the reference."""
import contextlib
import math
from collections import Counter, defaultdict

import torch
from hypothesis import control

# (op, impl) -> Counter of "cases", "mismatches", "crashes" and "xfail"
# (failures of a test marked xfail: a known defect or a reported finding).
RESULTS = defaultdict(Counter)


@contextlib.contextmanager
def case(op, impl, device, xfail=False):
    """One example of `op` on `impl`. Failures are counted only in the final
    replay hypothesis makes of its (shrunk) falsifying example, so a failing
    test adds one failure per distinct bug, not one per shrinking step; an
    AssertionError is a mismatch, any other exception a crash."""
    counts = RESULTS[op, f"{impl}-{device}"]
    final = control.current_build_context().is_final
    if not final:
        counts["cases"] += 1
    try:
        yield
    except Exception as e:
        if final:
            counts["xfail" if xfail else
                   "mismatches" if isinstance(e, AssertionError) else "crashes"] += 1
        raise


def at_threads(fn, threads=(1, 2)):
    """fn() run with each intra-op thread count: [(threads, result)]; the
    previous count is restored."""
    previous = torch.get_num_threads()
    results = []
    try:
        for n in threads:
            torch.set_num_threads(n)
            results.append((n, fn()))
    finally:
        torch.set_num_threads(previous)
    return results


class Rand:
    """Tensors from one drawn seed: hypothesis shrinks shapes and
    parameters, the values follow from the seed."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)

    def normal(self, shape, dtype=torch.float64, scale=1.0):
        return (scale * torch.randn(shape, generator=self.gen, dtype=torch.float64)).to(dtype)

    def uniform(self, shape, low, high, dtype=torch.float64):
        u = torch.rand(shape, generator=self.gen, dtype=torch.float64)
        return (low + (high - low) * u).to(dtype)

    def ints(self, shape, low, high, dtype=torch.int64):
        return torch.randint(low, high, shape, generator=self.gen).to(dtype)


def layout(t, name, device="cpu", fill=math.nan):
    """t's values on `device` in the layout `name` (see strategies.layouts).
    The wider buffers behind the strided views are filled with `fill` (NaN,
    or an invalid label), so a kernel that reads past the view shows it.
    "expanded" repeats the first batch entry with stride 0: it changes the
    values, so references are computed from the returned tensor."""
    t = t.to(device)
    if name == "contiguous":
        return t.contiguous()
    if name == "channels_last":
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        return t.contiguous(memory_format=fmt)
    if name == "transposed":
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if name == "expanded":
        return t[:1].expand(t.shape)
    shape = list(t.shape)
    if name == "strided":  # x[:, :, ::2] of a buffer twice as tall (last dim of 2-D)
        dim = min(2, t.dim() - 1)
        shape[dim] *= 2
        index = (slice(None),) * dim + (slice(None, None, 2),)
    elif name == "channel_slice":  # channels [2, 2 + C) of a wider buffer
        shape[1] += 3
        index = (slice(None), slice(2, 2 + t.shape[1]))
    else:
        raise ValueError(f"unknown layout {name!r}")
    view = torch.full(shape, fill, dtype=t.dtype, device=t.device)[index]
    view.copy_(t)
    return view


def wide(t):
    """t in float64 on the CPU, for the reference (None stays None); it
    keeps t's autograd graph."""
    return None if t is None else t.cpu().double()


def assert_close(got, want, tol, what="", scale=None):
    """A kernel's output against the float64 reference. The absolute
    tolerance is multiplied by `scale`, by default the reference's magnitude
    (at least 1: the kernels round relative to their accumulated terms);
    shapes must match exactly."""
    got, want = got.detach().cpu().double(), want.detach().cpu().double()
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    if scale is None:
        scale = max(1.0, want.abs().max().item()) if want.numel() else 1.0
    torch.testing.assert_close(got, want, atol=tol["atol"] * scale, rtol=tol["rtol"],
                               msg=lambda m: f"{what}: {m}")


def check_grads(op_fn, ref_fn, leaves, tol, seed, threads=(1, 2), names=None):
    """op_fn(*leaves) (one output or a tuple) and its first-order gradients
    for one random upstream gradient, at each thread count, against ref_fn's
    on float64 copies; leaves keep their dtype, device and layout. The
    outputs are compared too: a forward that saves for backward may take
    another path."""
    ref_leaves = [wide(t.detach()).requires_grad_() for t in leaves]
    want_out = ref_fn(*ref_leaves)
    want_out = want_out if isinstance(want_out, tuple) else (want_out,)
    rand = Rand(seed)
    upstream = [rand.normal(o.shape) for o in want_out]
    want = torch.autograd.grad(want_out, ref_leaves, upstream, materialize_grads=True)

    def run():
        out = op_fn(*leaves)
        out = out if isinstance(out, tuple) else (out,)
        gs = [g.to(o.device, o.dtype) for g, o in zip(upstream, out)]
        return out, torch.autograd.grad(out, leaves, gs, materialize_grads=True)

    names = names or [f"leaf {i}" for i in range(len(leaves))]
    for n, (out, got) in at_threads(run, threads):
        for i, (a, b) in enumerate(zip(out, want_out)):
            assert_close(a, b, tol, f"output {i} at {n} threads")
        for name, a, b in zip(names, got, want):
            assert_close(a, b, tol, f"grad of {name} at {n} threads")
