"""Constructor argument checks shared by the layers: a ValueError naming the
argument at construction, not an obscure error (or none) in forward."""
from ..ops._checks import check_integer


def check_counts(**counts):
    """Each keyword (a channel count, size, ...) must be an integer >= 1."""
    for name, value in counts.items():
        check_integer(value, name, ge=1)


def check_odd_kernel(kernel_size):
    """kernel_size >= 1 and odd: only then does 'same' padding (k // 2) keep
    H and W."""
    check_counts(kernel_size=kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd ('same' padding keeps H and W only then), "
                         f"got {kernel_size}")
