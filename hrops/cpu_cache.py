"""The CPU kernels' cache of large output blocks.

Outputs of 2 MiB or more are allocated on huge pages and their blocks kept
for reuse when freed (csrc/cpu/output_alloc.h): GAN layers repeat the same
shapes every step, and fresh memory's page faults cost more than a
memory-bound kernel. HROPS_CPU_CACHE_MB (a whole number, default 1024; 0
turns the cache off) bounds the bytes each process keeps; a forked child
(a DataLoader worker) starts with an empty cache.
"""
import torch

from . import _backends


def empty_cache():
    """Frees every cached CPU output block, like torch.cuda.empty_cache for
    CUDA memory. Returns the number of bytes released."""
    return torch.ops.hrops_C.empty_cache() if _backends.HAS_CPU_KERNELS else 0


def cached_bytes():
    """Bytes of CPU output blocks cached now."""
    return torch.ops.hrops_C.cached_bytes() if _backends.HAS_CPU_KERNELS else 0


cached_bytes()  # a bad HROPS_CPU_CACHE_MB raises at import, not at some later free
