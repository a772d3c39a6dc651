"""The machine a GPU check runs on, as JSON with a one-line summary: GPU,
its compute capability (the architecture to build for), Python, torch,
Triton, nvcc, compute-sanitizer, ninja, pytest-xdist, cores.

    python benchmarks/gpu_check/env.py --json env.json
    python benchmarks/gpu_check/env.py --arch     # e.g. 9.0 (nothing without a GPU)
"""
import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess

import torch


def _run(*cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _version(module):
    if importlib.util.find_spec(module) is None:
        return None
    return getattr(importlib.import_module(module), "__version__", "unknown")


def arch():
    """The visible GPU's compute capability as TORCH_CUDA_ARCH_LIST wants it."""
    return "%d.%d" % torch.cuda.get_device_capability() if torch.cuda.is_available() else None


def machine():
    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = dict(name=props.name, arch=arch(), memory_gib=round(props.total_memory / 2 ** 30, 1),
                   count=torch.cuda.device_count())
    nvcc = _run("nvcc", "--version")
    return dict(
        gpu=gpu,
        driver=_run("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"),
        python=platform.python_version(), torch=torch.__version__, torch_cuda=torch.version.cuda,
        triton=_version("triton"), xdist=_version("xdist"),
        nvcc=nvcc.splitlines()[-1] if nvcc else None,
        compute_sanitizer=shutil.which("compute-sanitizer"),
        ninja=shutil.which("ninja"),  # without it torch's BuildExtension compiles serially
        cores=len(os.sched_getaffinity(0)))


def summary(m):
    gpu = (f"{m['gpu']['name']} (sm {m['gpu']['arch']}, {m['gpu']['memory_gib']} GiB)"
           if m["gpu"] else "no GPU")
    return (f"{gpu}, torch {m['torch']} (CUDA {m['torch_cuda']}), triton {m['triton']}, "
            f"python {m['python']}, {m['cores']} cores"
            + ("" if m["ninja"] else ", no ninja (serial build)"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", help="write the machine description here")
    p.add_argument("--arch", action="store_true", help="print only the GPU's architecture")
    args = p.parse_args()
    if args.arch:
        print(arch() or "")
        return
    m = machine()
    m["summary"] = summary(m)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(m, f, indent=1)
    print(json.dumps(m, indent=1))


if __name__ == "__main__":
    main()
