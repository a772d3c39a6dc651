"""The benchmark process keeps the CPU memory it frees (glibc malloc).

By default glibc returns freed blocks of 32 MiB and more to the kernel
(mmap/munmap) and trims the heap top, so the next allocation of that size
takes a page fault per 4 KiB page: about 2 us each on this project's VM, a
third of a 32 MiB convolution's time. Whether an allocation faults then
depends on what ran before in the process, which made results depend on the
order of the implementations (the LSTU cell's forward+backward: 239-248 ms
when timed first, 200-208 ms after the baselines). Keeping freed memory, as a
long-running training loop under a caching allocator does, removes that
order effect for every implementation alike. hrops-bench --default-malloc
(pytest: HROPS_BENCH_DEFAULT_MALLOC=1) measures with glibc's defaults."""
import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def keep_freed_memory():
    """Raises glibc's mmap threshold to 256 MiB and its trim threshold to
    2 GiB for this process. Returns whether it did (False off glibc)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 256 << 20)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
