"""Which kernel implementations exist in this install, and which one a call uses.

Implementations of every op:
  ref     pure PyTorch (hrops.ref), the oracle; always available.
  cpu     C++ kernels (hrops._C) for CPU tensors.
  cuda    CUDA C++ kernels (hrops._C_cuda) for CUDA tensors.
  triton  Triton kernels for CUDA tensors; also CPU tensors when TRITON_INTERPRET=1.

`impl=None` means the process default: the HROPS_IMPL environment variable
(read at import) or "auto". "auto" picks the fastest available for the
tensor's device; an explicit choice that is not available raises.
Inside `reference_only()` every call runs the reference whatever its impl
(hrops.export traces models so).
"""
import contextlib
import importlib
import importlib.util
import os

import torch

IMPLS = ("auto", "ref", "cpu", "cuda", "triton")


def _try_import(name):
    try:
        importlib.import_module(name)
        return True, None
    except ImportError as e:  # not built, or built against another torch
        return False, str(e)


HAS_CPU_KERNELS, CPU_IMPORT_ERROR = _try_import("hrops._C")
HAS_CUDA_KERNELS, CUDA_IMPORT_ERROR = (_try_import("hrops._C_cuda") if HAS_CPU_KERNELS
                                       else (False, "hrops._C is missing"))
HAS_TRITON_PACKAGE = importlib.util.find_spec("triton") is not None


def triton_interpreted():
    return os.environ.get("TRITON_INTERPRET") == "1"


def _default_impl():
    value = os.environ.get("HROPS_IMPL", "auto").strip().lower() or "auto"
    if value not in IMPLS:
        raise ValueError(f"HROPS_IMPL must be one of {IMPLS}, got {value!r}")
    return value


DEFAULT_IMPL = _default_impl()

# The C++ kernels' ISA cap (csrc/cpu/isa.h), checked here so that a bad value
# fails at import rather than at some kernel's first call.
CPU_ISA_LEVELS = ("avx512", "avx2", "baseline")
if os.environ.get("HROPS_CPU_ISA", "") not in ("",) + CPU_ISA_LEVELS:
    raise ValueError(f"HROPS_CPU_ISA must be avx512, avx2 or baseline, got "
                     f"{os.environ['HROPS_CPU_ISA']!r}")
_reference_only = False  # set by reference_only()


@contextlib.contextmanager
def reference_only():
    """Within the block, every hrops call runs its reference ("ref", the one
    implementation every op has), whatever impl it asks for."""
    global _reference_only
    previous, _reference_only = _reference_only, True
    try:
        yield
    finally:
        _reference_only = previous


def available(impl, device):
    """Whether `impl` can run on tensors of `device` (a torch.device)."""
    if impl == "ref":
        return True
    if impl == "cpu":
        return HAS_CPU_KERNELS and device.type == "cpu"
    if impl == "cuda":
        return HAS_CUDA_KERNELS and device.type == "cuda"
    if impl == "triton":  # (the compiled library declares the ops' schemas)
        return HAS_CPU_KERNELS and HAS_TRITON_PACKAGE and (device.type == "cuda" or
                                       (device.type == "cpu" and triton_interpreted()))
    return False


def _why_unavailable(impl, device):
    if impl == "cpu" and device.type != "cpu":
        return f"it runs on CPU tensors, got a {device.type} tensor"
    if impl == "cpu":
        return f"hrops._C failed to import ({CPU_IMPORT_ERROR})"
    if impl == "cuda" and device.type != "cuda":
        return f"it runs on CUDA tensors, got a {device.type} tensor"
    if impl == "cuda":
        return f"hrops was built without CUDA kernels ({CUDA_IMPORT_ERROR})"
    if impl == "triton" and not HAS_TRITON_PACKAGE:
        return "the triton package is not installed"
    if impl == "triton" and not HAS_CPU_KERNELS:
        return f"hrops._C, which declares the ops, failed to import ({CPU_IMPORT_ERROR})"
    return (f"Triton kernels run on CUDA tensors (or CPU tensors with TRITON_INTERPRET=1), "
            f"got a {device.type} tensor")


# What "auto" takes on each device type, in order of preference.
_AUTO_PREFERENCE = {"cpu": ("cpu",), "cuda": ("cuda", "triton")}


def resolve(op, impl, device, supported=("ref", "cpu", "cuda", "triton")):
    """The concrete implementation `op` uses for `impl` on `device`."""
    if _reference_only:
        return "ref"
    impl = DEFAULT_IMPL if impl is None else impl
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        for candidate in _AUTO_PREFERENCE.get(device.type, ()):
            if candidate in supported and available(candidate, device):
                return candidate
        return "ref"
    if impl not in supported:
        raise RuntimeError(f"{op}: impl={impl!r} is not implemented for this op; "
                           f"it has {supported}")
    if not available(impl, device):
        raise RuntimeError(f"{op}: impl={impl!r} is not available: {_why_unavailable(impl, device)}")
    return impl


def build_info():
    """What this install of hrops can run: compiled kernels, CUDA, Triton."""
    try:
        from . import _build_config as cfg
    except ImportError:
        cfg = None
    cuda_runtime = None
    if HAS_CUDA_KERNELS:
        v = int(torch.ops.hrops_C.cuda_runtime_version())
        cuda_runtime = f"{v // 1000}.{(v % 1000) // 10}"
    return {
        "cpu_kernels": HAS_CPU_KERNELS,
        "cuda_kernels": HAS_CUDA_KERNELS,
        "cuda_version": cuda_runtime,
        "cuda_arch_list": getattr(cfg, "CUDA_ARCH_LIST", None),
        "nvcc": getattr(cfg, "NVCC", None),
        "built_with_torch": getattr(cfg, "TORCH_VERSION", None),
        "torch": torch.__version__,
        "cuda_device_available": torch.cuda.is_available(),
        "triton": HAS_TRITON_PACKAGE,
        "triton_interpreter": triton_interpreted(),
        "default_impl": DEFAULT_IMPL,
    }
