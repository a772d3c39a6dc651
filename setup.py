"""Build hrops: the C++ CPU kernels always, the CUDA kernels when torch is a
CUDA build and a CUDA toolkit is found.

Environment knobs:
  HROPS_CUDA=auto|1|0    auto (default): build CUDA kernels if torch.version.cuda
                         and a toolkit are present; 1: require them; 0: skip.
  TORCH_CUDA_ARCH_LIST   CUDA architectures (default "8.0;9.0" when no GPU is
                         visible at build time).
  HROPS_DEBUG=1          -O0 -g instead of -O3 -g0.
  HROPS_SANITIZE=address|undefined|address,undefined
                         build the CPU kernels with AddressSanitizer and/or
                         UndefinedBehaviorSanitizer (-O1 -g; errors abort);
                         .ci/sanitize builds and tests such a copy.
  MAX_JOBS               parallel compile jobs (torch's BuildExtension).
"""
import glob
import os
import shutil
import subprocess
import sys

from setuptools import setup

try:
    import torch
except ImportError:
    sys.exit("hrops needs PyTorch installed before it is built: pip install torch, then "
             "pip install --no-build-isolation .")

# torch guesses CUDA_HOME from `nvcc` on PATH, which on some machines is a
# wrapper in /usr/local/bin; point it at the real toolkit before it looks.
if not os.environ.get("CUDA_HOME") and os.path.isfile("/usr/local/cuda/bin/nvcc"):
    os.environ["CUDA_HOME"] = "/usr/local/cuda"

from torch.utils import cpp_extension as ce  # noqa: E402  (after CUDA_HOME is set)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;9.0"


def want_cuda():
    flag = os.environ.get("HROPS_CUDA", "auto").lower()
    if flag in ("0", "off", "false", "no"):
        return False
    have = torch.version.cuda is not None and ce.CUDA_HOME is not None
    if flag in ("1", "on", "true", "yes", "force") and not have:
        raise RuntimeError(
            f"HROPS_CUDA={flag} but CUDA kernels cannot be built: torch.version.cuda="
            f"{torch.version.cuda}, CUDA toolkit (CUDA_HOME)={ce.CUDA_HOME}. Install a CUDA build "
            "of torch and the matching toolkit, or set HROPS_CUDA=0.")
    return have


def nvcc_version():
    try:
        out = subprocess.run([os.path.join(ce.CUDA_HOME, "bin", "nvcc"), "--version"],
                             capture_output=True, text=True, check=True).stdout
        return out.strip().splitlines()[-1]
    except (OSError, subprocess.CalledProcessError):
        return None


def write_build_config(with_cuda, archs):
    """Records what was built, for hrops.build_info() (file is git-ignored)."""
    path = os.path.join(HERE, "hrops", "_build_config.py")
    with open(path, "w") as f:
        f.write("# Written by setup.py at build time.\n")
        f.write(f"WITH_CUDA = {with_cuda!r}\n")
        f.write(f"CUDA_ARCH_LIST = {archs!r}\n")
        f.write(f"NVCC = {nvcc_version() if with_cuda else None!r}\n")
        f.write(f"TORCH_VERSION = {torch.__version__!r}\n")


SANITIZER_FLAGS = {
    "address": ["-fsanitize=address", "-fno-omit-frame-pointer"],
    "undefined": ["-fsanitize=undefined", "-fno-sanitize-recover=undefined"],
}


def sanitizer_flags():
    """Compile and link flags for HROPS_SANITIZE (empty when unset)."""
    names = [n.strip() for n in os.environ.get("HROPS_SANITIZE", "").split(",") if n.strip()]
    unknown = sorted(set(names) - set(SANITIZER_FLAGS))
    if unknown:
        raise RuntimeError(f"HROPS_SANITIZE: unknown sanitizer(s) {unknown}; use "
                           f"{' or '.join(SANITIZER_FLAGS)}, comma-separated")
    return [f for n in dict.fromkeys(names) for f in SANITIZER_FLAGS[n]]


def extensions():
    debug = os.environ.get("HROPS_DEBUG") == "1"
    sanitize = sanitizer_flags()
    opt = ["-O0", "-g"] if debug else ["-O1", "-g"] if sanitize else ["-O3", "-g0"]
    # No code here reads floating-point exception flags or errno; without these
    # GCC will not turn data-dependent selects (activations, masks) into vector
    # blends, nor vectorise expf through glibc's vector math library.
    cpu_flags = ["-fopenmp", "-fno-trapping-math", "-fno-math-errno"]
    include = [os.path.join(HERE, "csrc")]
    exts = [ce.CppExtension(
        "hrops._C", sorted(glob.glob("csrc/cpu/*.cpp")), include_dirs=include,
        extra_compile_args={"cxx": opt + cpu_flags + sanitize},
        extra_link_args=["-fopenmp"] + sanitize)]
    with_cuda = not sanitize and want_cuda()  # the sanitizers check the CPU kernels only
    archs = None
    if with_cuda:
        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and torch.cuda.device_count() == 0:
            # torch 2.14 cannot guess architectures without a GPU; 8.0 = A100, 9.0 = H100/H200.
            os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
        archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "detected at build time")
        exts.append(ce.CUDAExtension(
            "hrops._C_cuda", sorted(glob.glob("csrc/cuda/*.cu") + glob.glob("csrc/cuda/*.cpp")),
            include_dirs=include,
            extra_compile_args={"cxx": opt, "nvcc": ["-O3", "-lineinfo"] + (["-G"] if debug else [])}))
    write_build_config(with_cuda, archs)
    print(f"hrops build: CPU kernels yes{' (sanitized: ' + ' '.join(sanitize) + ')' if sanitize else ''}, CUDA kernels {'yes (archs ' + archs + ')' if with_cuda else 'no'}, "
          f"torch {torch.__version__}", flush=True)
    return exts


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": ce.BuildExtension},
)
