"""GPU expectations as roofline ESTIMATES (nothing here is measured): for each
benchmark case, the ideal bytes moved and FLOPs, and the lower-bound time
max(bytes / memory bandwidth, FLOPs / peak) on a GPU's spec-sheet numbers.

    python -m hrops.bench.roofline [--bandwidth-tb-s 3.35] [--tflops 67]

Defaults: NVIDIA H100 SXM spec sheet, HBM3 3.35 TB/s and 67 TFLOP/s fp32
(non-tensor-core). A real kernel reaches perhaps 70-90% of the bandwidth.
Cases without ideal bytes (whole models) are skipped.
"""
import argparse

from .cases import CASES


def estimates(bandwidth, flops_per_s, quick=False):
    rows = []
    for family, make in CASES.items():
        for case in make(quick=quick):
            if case.fwd_bytes is None:
                continue
            for mode in case.modes:
                nbytes = case.ideal_bytes(mode)
                flops = case.flops if mode == "fwd" else None
                t_mem = nbytes / bandwidth
                t_compute = (flops or 0) / flops_per_s
                rows.append((case.op, case.size, mode, nbytes, flops,
                             1e6 * max(t_mem, t_compute), "compute" if t_compute > t_mem else "memory"))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description="GPU roofline estimates (not measurements)")
    p.add_argument("--bandwidth-tb-s", type=float, default=3.35)
    p.add_argument("--tflops", type=float, default=67.0)
    args = p.parse_args(argv)
    print(f"ESTIMATES, not measurements: {args.bandwidth_tb_s} TB/s, {args.tflops} TFLOP/s fp32")
    print("| op | size | mode | ideal MiB | forward GFLOP | lower bound us | bound by |")
    print("|---|---|---|---|---|---|---|")
    for op, size, mode, nbytes, flops, us, bound in estimates(args.bandwidth_tb_s * 1e12,
                                                              args.tflops * 1e12):
        gflop = "-" if flops is None else f"{flops / 1e9:.1f}"
        print(f"| {op} | {size} | {mode} | {nbytes / 2**20:.1f} | {gflop} | {us:.1f} | {bound} |")


if __name__ == "__main__":
    main()
