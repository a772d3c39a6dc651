"""Hypothesis strategies shared by the property tests: sizes biased to the
edges, dtypes and layouts per implementation, seeds for tensor values."""
import hypothesis.strategies as st
import torch

from impls import interpreted

EDGE_SIZES = (0, 1, 2, 3, 5, 13, 17)

seeds = st.integers(0, 2 ** 32 - 1)


@st.composite
def size(draw, lo=0, hi=17, big=None):
    """A dimension in [lo, hi]: half the time an edge size (0, 1, 2, 3, 5,
    the primes 13 and 17), else any; with `big`, one time in ten a larger
    one up to `big` (whole SIMD blocks and their tails)."""
    kind = draw(st.integers(0, 9))
    edges = [v for v in EDGE_SIZES if lo <= v <= hi]
    if kind < 5 and edges:
        return draw(st.sampled_from(edges))
    if kind == 9 and big:
        return draw(st.integers(hi + 1, big))
    return draw(st.integers(lo, hi))


def dtypes(impl, device):
    """float32, float64, float16 and bfloat16, but no bfloat16 under the
    Triton interpreter (triton-lang/triton#4972)."""
    options = [torch.float32, torch.float64, torch.float16]
    if not interpreted(impl, device):
        options.append(torch.bfloat16)
    return st.sampled_from(options)


def layouts(ndim, expanded=True):
    """Layout names for harness.layout: contiguous, channels-last (4-D and
    5-D), a transposed view, x[:, :, ::2], a channel slice, and a batch
    expanded with stride 0."""
    names = ["contiguous", "transposed", "strided", "channel_slice"]
    if ndim in (4, 5):
        names.insert(1, "channels_last")
    if expanded:
        names.append("expanded")
    return st.sampled_from(names)


@st.composite
def dims(draw, small, large=None):
    """Sizes drawn from the strategies `small`, or, one example in eight,
    from the (lo, hi) ranges `large`: enough elements that the CPU kernels
    split the work between 2 threads (their parallel_for grains are up to
    64Ki elements). Shrinks to the small ones. Callers leave `large` out
    under the Triton interpreter, which has no threads and runs each
    program in numpy (a large map takes minutes)."""
    if large and draw(st.integers(0, 7)) == 7:
        return tuple(draw(st.integers(lo, hi)) for lo, hi in large)
    return tuple(draw(s) for s in small)
