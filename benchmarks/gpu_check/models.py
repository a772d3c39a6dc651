"""The models end to end on one device: every whole-model case of
benchmarks/model_cases (MobileStyleGAN, SEAN, S2FGAN, CoCosNet v2, the recurrent
cells) with hrops' layers against the same model built from reference
layers ("ref"), in each of the case's modes: agreement with the case's
tolerance, the largest difference of the outputs relative to the
reference's largest value, and the best times of both. Writes JSON; exit
status 1 if a model disagrees or fails.

    python benchmarks/gpu_check/models.py --device cuda --json models.json [--quick] [--budget 0.2]
"""
import argparse
import json
import pathlib
import sys
import time

import torch

from hrops.bench import harness

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # benchmarks/model_cases
from model_cases import MODEL_CASES  # noqa: E402


def model_cases(quick):
    return [case for make in MODEL_CASES.values() for case in make(quick=quick)
            if case.fwd_bytes is None]


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out.detach()]
    return [t for item in out for t in _flat(item)]


def relative_difference(impl, ref, inputs):
    """max |impl - ref| / max |ref| over the forward's outputs."""
    with torch.no_grad():
        got = impl.fn(*inputs)
        got = _flat(impl.to_ref(got) if impl.to_ref else got)
        want = _flat(ref.fn(*inputs))
    diff = max((g.double() - w.double()).abs().max().item() for g, w in zip(got, want))
    scale = max(w.double().abs().max().item() for w in want)
    return diff / scale if scale else diff


def measure(case, device, mode, budget):
    record = dict(model=case.op, size=case.size, mode=mode, device=str(device))
    inputs = case.make_inputs(device, case.dtype)
    impls = case.impls(device, case.dtype)
    missing = [name for name in ("hrops", "ref") if impls[name].fn is None]
    if missing:
        return dict(record, status="skipped", reason=impls[missing[0]].why_unavailable)
    try:
        record["max_rel_diff"] = relative_difference(impls["hrops"], impls["ref"], inputs)
        expected = harness.reference(impls["ref"], inputs, mode, case.tolerance, case.grad_inputs)
        for name in ("hrops", "ref"):
            bench = harness.Bench(impls[name], inputs, mode, expected)
            record[f"{name}_ms"] = harness.time_call(bench, budget)[0]
    except harness.Mismatch as e:
        return dict(record, status="mismatch", reason=" ".join(str(e).split())[:500])
    except Exception as e:  # a model that cannot run is a failure too; report and go on
        return dict(record, status="error", reason=f"{type(e).__name__}: {e}"[:500])
    record["speedup"] = record["ref_ms"] / record["hrops_ms"]
    return dict(record, status="ok")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="the cases' small sizes")
    p.add_argument("--budget", type=float, default=0.2, help="seconds of timed runs per model")
    p.add_argument("--json", required=True, help="output path (rewritten after each model)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device available")
    device = torch.device(args.device)
    cases = model_cases(args.quick)
    if not cases:
        p.error("no model case found in benchmarks/model_cases")
    records = []
    for case in cases:
        for mode in case.modes:
            start = time.perf_counter()
            records.append(measure(case, device, mode, args.budget))
            r = records[-1]
            figures = (f"max rel diff {r['max_rel_diff']:.1e}, hrops {r['hrops_ms']:.2f} ms, "
                       f"ref {r['ref_ms']:.2f} ms" if r["status"] == "ok" else r.get("reason", ""))
            print(f"{r['status']:8s} {case.op} {case.size} {mode}: {figures} "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)
            with open(args.json, "w") as f:
                json.dump(records, f, indent=1)
    return 1 if any(r["status"] in ("mismatch", "error") for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
