"""The report of a GPU check (benchmarks/gpu_check.sh): report.md and
gpu_check.json in the output folder, from the steps recorded so far (the
script reruns this after every step), and with --print-summary the summary
table on stdout. Exit status 1 if a step failed or timed out.

Each step's output is a section of one of the output folder's logs, opened
by a line "===== <step> =====". No torch import: this runs in a fraction of
a second.
"""
import argparse
import datetime
import json
import math
import pathlib
import re
import subprocess

LOGS = ("build.log", "tests.log", "large.log", "sanitizer.log", "bench.log")
SECTION = re.compile(r"^===== (\S+) =====$", re.M)
SANITIZER_STEPS = ("memcheck", "racecheck", "memcheck-triton")
PYTEST_SUMMARY = re.compile(r"\b(\d+ (?:passed|failed|skipped|errors?|xfailed|xpassed))\b")
PYTEST_RESULT = re.compile(r"\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")


def _load_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_steps(work):
    steps = []
    for line in (pathlib.Path(work) / "steps.tsv").read_text().splitlines():
        name, status, seconds, log, note = (line.split("\t") + [""] * 5)[:5]
        steps.append(dict(name=name, status=status, seconds=int(seconds), log=log, note=note))
    return steps


def read_sections(out):
    """{step: its output} over the output folder's logs."""
    sections = {}
    for log in LOGS:
        path = pathlib.Path(out) / log
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        marks = list(SECTION.finditer(text))
        for mark, after in zip(marks, marks[1:] + [None]):
            sections[mark.group(1)] = text[mark.end():after.start() if after else len(text)]
    return sections


def build_info(out):
    path = pathlib.Path(out) / "build.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = [line for line in text.splitlines() if line.startswith("build_info ")]
    return json.loads(lines[-1].split(" ", 1)[1]) if lines else None


def pytest_figures(text):
    """'340 passed, 10 skipped' from pytest's last summary line; counted
    from the per-test lines of a run cut short; the collection count of a
    --collect-only run."""
    for line in reversed(text.strip().splitlines()):
        if re.search(r"tests? collected", line):
            return line.strip()
        if re.search(r" in [\d.]+s", line) and PYTEST_SUMMARY.search(line):
            return ", ".join(PYTEST_SUMMARY.findall(line))
    counts = {}
    for word in PYTEST_RESULT.findall(text):
        counts[word] = counts.get(word, 0) + 1
    return ("no summary; per-test lines: " + ", ".join(f"{n} {w.lower()}" for w, n in counts.items())
            if counts else "no results")


def failed_tests(text):
    return sorted({line.split(" - ")[0].strip() for line in text.splitlines()
                   if line.startswith(("FAILED ", "ERROR "))})


def sanitizer_figures(text):
    errors = re.findall(r"ERROR SUMMARY: (\d+) error", text)
    calls = re.findall(r"sanitize_driver: (\d+) calls", text)
    parts = []
    if errors:
        parts.append(f"{sum(int(e) for e in errors)} sanitizer errors")
    parts.append(f"{calls[-1]} driver calls" if calls else "the driver did not finish")
    return ", ".join(parts)


def _geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def bench_table(bench):
    """One row per (op, size, mode): best ms of hrops, ref and compile(ref),
    and hrops' x floor."""
    groups = {}
    for r in bench["rows"]:
        key = (r["op"], r["size"], r["mode"], r["device"])
        groups.setdefault(key, {})[r["impl"]] = r
    table = []
    for (op, size, mode, device), impls in groups.items():
        ours = impls.get("hrops")
        best = {name: impls[name]["best_ms"] for name in ("hrops", "ref", "compile(ref)")
                if name in impls}
        table.append(dict(op=op, size=size, mode=mode, device=device, **{
            f"{name}_ms": ms for name, ms in best.items()},
            x_floor=ours and ours["x_floor"],
            ref_speedup=best["ref"] / best["hrops"] if "ref" in best and "hrops" in best else None,
            compile_speedup=(best["compile(ref)"] / best["hrops"]
                             if "compile(ref)" in best and "hrops" in best else None)))
    return table


def bench_figures(bench, compile_run):
    if bench is None:
        return "no results"
    table = bench_table(bench)
    failed = sum(s["failed"] for s in bench["skipped"])
    parts = [f"{len(bench['rows'])} rows, {failed} failed"]
    for key, name in (("ref_speedup", "ref"), ("compile_speedup", "compile(ref)")):
        if key == "compile_speedup" and not compile_run:
            continue
        speedups = [t[key] for t in table if t[key]]
        if speedups:
            worst = min(table, key=lambda t: t[key] or math.inf)
            parts.append(f"{name}/hrops geo-mean {_geomean(speedups):.2f}x over {len(speedups)} "
                         f"(lowest {worst[key]:.2f}x {worst['op']} {worst['size']} {worst['mode']})")
    return "; ".join(parts)


def models_figures(models):
    if not models:
        return "no results"
    ok = [m for m in models if m["status"] == "ok"]
    parts = [f"{len(ok)}/{len(models)} agree"]
    bad = [f"{m['model']} {m['mode']}: {m['status']}" for m in models if m["status"] != "ok"]
    if ok:
        parts.append(f"max rel diff {max(m['max_rel_diff'] for m in ok):.1e}")
        parts.append(f"ref/hrops geo-mean {_geomean([m['speedup'] for m in ok]):.2f}x")
    return "; ".join(parts + bad)


def step_figures(step, text, work, out):
    name = step["name"]
    if step["status"].startswith("skipped") and not step["note"]:
        return ""
    if name == "env":
        env = _load_json(pathlib.Path(work) / "env.json")
        return env["summary"] if env else ""
    if name == "build":
        info = build_info(out)
        if not info:
            return "hrops does not import"
        return (f"CUDA kernels {'yes (arch ' + str(info['cuda_arch_list']) + ')' if info['cuda_kernels'] else 'no'}, "
                f"CPU kernels {'yes' if info['cpu_kernels'] else 'no'}, torch {info['torch']}")
    if name in ("tests", "large"):
        figures = pytest_figures(text)
        failed = failed_tests(text)
        return figures + (f"; first failure: {failed[0]}" if failed else "")
    if name in SANITIZER_STEPS:
        return sanitizer_figures(text)
    if name == "models":
        return models_figures(_load_json(pathlib.Path(work) / "models.json"))
    if name in ("bench", "bench-compile"):
        return bench_figures(_load_json(pathlib.Path(work) / f"{name}.json"),
                             name == "bench-compile")
    return ""


def _tail(text, lines=40):
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _ms(value):
    return "-" if value is None else f"{value:.3f}"


def _x(value):
    return "-" if value is None else f"{value:.2f}x"


def markdown(meta, steps, sections, models, benches):
    md = [f"# hrops GPU check{' (dry run, no GPU)' if meta['dry_run'] else ''}", "",
          f"{meta['generated']}, git {meta['git']}, deadline {meta['deadline_s']} s, "
          f"{meta['elapsed_s']} s elapsed", "", f"Machine: {meta['machine']}", "",
          "| step | status | seconds | key figures |", "|---|---|---:|---|"]
    md += [f"| {s['name']} | {s['status']} | {s['seconds']} | {s['figures']} |" for s in steps]
    for s in steps:
        text = sections.get(s["name"], "")
        failed = failed_tests(text) if s["name"] in ("tests", "large") else []
        if failed:
            md += ["", f"## {s['name']}: failed tests", ""] + [f"- `{t}`" for t in failed]
        if s["name"] in SANITIZER_STEPS:
            errors = [line for line in text.splitlines() if line.startswith("=========")]
            if errors:
                md += ["", f"## {s['name']}: sanitizer output (first 60 lines)", "", "```"]
                md += errors[:60] + ["```"]
        if s["status"].startswith(("FAILED", "timeout")) and text:
            md += ["", f"## {s['name']}: end of its log ({s['log']})", "", "```", _tail(text),
                   "```"]
    if models:
        md += ["", "## Models end to end (hrops layers vs reference layers)", "",
               "| model | size | mode | status | max rel diff | hrops ms | ref ms | ref/hrops |",
               "|---|---|---|---|---:|---:|---:|---:|"]
        md += [f"| {m['model']} | {m['size']} | {m['mode']} | {m['status']} | "
               f"{m.get('max_rel_diff', float('nan')):.1e} | {_ms(m.get('hrops_ms'))} | "
               f"{_ms(m.get('ref_ms'))} | {_x(m.get('speedup'))} |" for m in models]
    for name, bench in benches.items():
        if not bench:
            continue
        md += ["", f"## {name} (best ms; > 1x: hrops is faster)", "",
               "| op | size | mode | device | hrops | ref | compile(ref) | ref/hrops | "
               "compile/hrops | hrops x floor |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
        md += [f"| {t['op']} | {t['size']} | {t['mode']} | {t['device']} | "
               f"{_ms(t.get('hrops_ms'))} | {_ms(t.get('ref_ms'))} | "
               f"{_ms(t.get('compile(ref)_ms'))} | {_x(t['ref_speedup'])} | "
               f"{_x(t['compile_speedup'])} | {_x(t['x_floor'])} |" for t in bench_table(bench)]
        failures = [s for s in bench["skipped"] if s["failed"]]
        if failures:
            md += ["", "Failed:", ""] + [f"- {s['op']} {s['size']} {s['device']} {s['mode']} "
                                         f"{s['impl']}: {s['reason'][:300]}" for s in failures]
    return "\n".join(md) + "\n"


def summary_table(steps):
    rows = [("step", "status", "seconds", "key figures")]
    rows += [(s["name"], s["status"], str(s["seconds"]), s["figures"]) for s in steps]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}"
                     for r in rows)


def _git_sha(root):
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the output folder")
    p.add_argument("--work", required=True, help="the run's scratch folder (steps.tsv, JSON)")
    p.add_argument("--deadline", type=int, required=True)
    p.add_argument("--elapsed", type=int, required=True, help="seconds since the check started")
    p.add_argument("--dry-run", type=int, default=0)
    p.add_argument("--print-summary", action="store_true")
    args = p.parse_args(argv)
    out, work = pathlib.Path(args.out), pathlib.Path(args.work)
    steps = read_steps(work)
    sections = read_sections(out)
    for s in steps:
        text = sections.get(s["name"], "")
        if s["name"] in SANITIZER_STEPS and s["status"] == "ok" and re.search(
                r"ERROR SUMMARY: [1-9]", text):  # any sanitizer error fails, whatever the exit status
            s["status"] = "FAILED (sanitizer errors)"
        figures = step_figures(s, text, work, out)
        s["figures"] = f"{s['note']}: {figures}" if s["note"] and figures else figures
    env = _load_json(work / "env.json")
    models = _load_json(work / "models.json")
    benches = {"bench": _load_json(work / "bench.json"),
               "bench-compile": _load_json(work / "bench-compile.json")}
    meta = dict(generated=datetime.datetime.now().isoformat(timespec="seconds"),
                git=_git_sha(pathlib.Path(__file__).resolve().parents[2]),
                dry_run=bool(args.dry_run), deadline_s=args.deadline,
                elapsed_s=args.elapsed,
                machine=env["summary"] if env else "unknown")
    (out / "report.md").write_text(markdown(meta, steps, sections, models, benches))
    failed = {s["name"]: failed_tests(sections.get(s["name"], "")) for s in steps
              if s["name"] in ("tests", "large")}
    (out / "gpu_check.json").write_text(json.dumps(dict(
        meta, machine=env, build_info=build_info(out), steps=steps, failed_tests=failed,
        models=models, bench=benches["bench"], bench_compile=benches["bench-compile"]), indent=1))
    bad = [s for s in steps if s["status"].startswith(("FAILED", "timeout"))]
    if args.print_summary:
        print()
        print(summary_table(steps))
        print(f"\n{'FAILED: ' + ', '.join(s['name'] for s in bad) if bad else 'all steps passed or skipped'}"
              f"; report: {out / 'report.md'}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
