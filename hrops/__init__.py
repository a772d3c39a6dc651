"""hrops: fast, memory-light PyTorch ops for high-resolution GANs.

Every op has a pure-PyTorch reference (hrops.ref), a C++ CPU kernel and a GPU
kernel (CUDA C++ and/or Triton), selected per call with `impl=` or the
HROPS_IMPL environment variable; see hrops._backends. The ops are listed
once, in hrops.ops.

torch._dynamo is imported here because the first call of any torch.library
custom op imports it (custom ops run under torch._disable_dynamo): 1-1.5 s
that would otherwise land on a model's first forward.
"""
import torch._dynamo  # noqa: F401 (see below)

from . import nn, ops
from ._backends import build_info
from .convert import convert
from .cpu_cache import cached_bytes, empty_cache
from .ops import *  # noqa: F401,F403 (the functional ops: hrops.ops.__all__)

__all__ = [*ops.__all__, "build_info", "cached_bytes", "convert", "empty_cache", "nn"]
__version__ = "0.1.0"
