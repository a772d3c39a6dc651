"""Peak memory and time of CooGAN's patch-wise high-resolution edit on CPU
(python_models.coogan.CooGAN.edit, default model: dim 32, 384^2 snapshot,
128^2 patches), one process per size so that the memory high-water marks do
not mix:

    PYTHONPATH=. python benchmarks/measure_coogan_edit.py 1024 2048 4096 --batch-patches 4

Peak: the process RSS high-water mark during edit() above the RSS just
before it (the model and the input image are already resident), with the
output allocated by edit ("new output") and with out=image (in place).
"""
import argparse
import ctypes
import json
import subprocess
import sys
import time

import torch


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _measure(fn):
    ctypes.CDLL(None).malloc_trim(0)
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, _status("VmHWM") - before


def one(size, batch_patches, threads):
    from python_models.coogan import CooGAN
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = CooGAN().eval()
    image = torch.rand(1, 3, size, size) * 2 - 1
    attr = torch.zeros(1, 13)
    attr[0, 3] = 1
    model.edit(image[:, :, :128, :128], attr, batch_patches=batch_patches)  # warm-up
    rows = {}
    for name, kw in (("new output", {}), ("in place", {"out": image})):
        seconds, peak = _measure(lambda: model.edit(image, attr, batch_patches=batch_patches, **kw))
        rows[name] = dict(seconds=seconds, s_per_mpix=seconds / (size * size / 1e6),
                          peak_mib=peak / 2 ** 20)
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("sizes", type=int, nargs="+")
    p.add_argument("--batch-patches", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.sizes[0], args.batch_patches, args.threads)))
        return
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, str(size), "--one", "--batch-patches",
                              str(args.batch_patches), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True).stdout
        for name, r in json.loads(out.splitlines()[-1]).items():
            print(f"{size}x{size} batch_patches={args.batch_patches} threads={args.threads} "
                  f"{name:10s}: {r['seconds']:8.2f} s  {r['s_per_mpix']:6.2f} s/MP  "
                  f"peak +{r['peak_mib']:7.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
