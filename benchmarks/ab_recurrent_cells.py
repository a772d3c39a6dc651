"""Interleaved A/B timing of the LSTU / STU cell at CooGAN-256's last level
(B8, 32 ch @128^2, state 64+13 @64^2), fp32, forward+backward: hrops.nn vs
the original cells' eager computation vs torch.compile of it, alternating
within one process so that the load of a shared machine hits all alike
(hrops-bench runs the implementations one after the other).

    PYTHONPATH=. python benchmarks/ab_recurrent_cells.py lstu stu --rounds 6
"""
import argparse
import time

import torch

import hrops
from python_models.original_cells import OriginalLSTU, OriginalSTU


def _cells(kind):
    torch.manual_seed(0)
    if kind == "lstu":
        original = OriginalLSTU(32, 77, "relu")
        return original, original.export_to(hrops.nn.LSTU(32, 77, "relu"))
    original = OriginalSTU(32, 77)
    return original, original.export_to(hrops.nn.STU(32, 77))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kinds", nargs="+", choices=("lstu", "stu"))
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    enc = torch.randn(8, 32, 128, 128, generator=gen, requires_grad=True)
    state = torch.randn(8, 64, 64, 64, generator=gen, requires_grad=True)
    attr = torch.randint(-1, 2, (8, 13), generator=gen).float().requires_grad_()
    for kind in args.kinds:
        original, ours = _cells(kind)
        impls = {"hrops": ours, "eager": original,
                 "compile": torch.compile(original, dynamic=False)}

        def step(module):
            h, c = module(enc, state, attr)
            torch.autograd.backward([h, c], [torch.ones_like(h), torch.ones_like(c)])
            for t in [enc, state, attr, *ours.parameters(), *original.parameters()]:
                t.grad = None
        times = {name: [] for name in impls}
        for _ in range(args.rounds + 1):  # the first round warms up (and compiles)
            for name, module in impls.items():
                start = time.perf_counter()
                step(module)
                times[name].append(1e3 * (time.perf_counter() - start))
        best = {name: min(t[1:]) for name, t in times.items()}
        fastest = min(best["eager"], best["compile"])
        print(f"{kind} fwd+bwd threads={args.threads}: " +
              ", ".join(f"{n} min {b:.0f} ms (median {sorted(times[n][1:])[args.rounds // 2]:.0f})"
                        for n, b in best.items()) +
              f"; hrops vs fastest baseline {fastest / best['hrops']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
