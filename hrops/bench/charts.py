"""PNG charts of a run, one per op family (matplotlib, from the `bench`
extra): hrops' speed-up over each baseline, per case and mode, with the copy
floor marked where the case has one."""
import pathlib

from . import report

MISSING = "no chart: matplotlib is not installed (pip install '.[bench]' installs it)"


def available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _bars(rows):
    """(label, impl, speed-up, speed-up at the copy floor or None) per
    baseline row that has an hrops row to compare with, in row order."""
    multi = len({(r.device, r.threads) for r in rows}) > 1
    bars = []
    for r in rows:
        if r.hrops_speedup is None:
            continue
        where = f" {r.device} {r.threads}thr" if multi else ""
        at_floor = r.best_ms / r.floor_ms if r.floor_ms else None
        bars.append((f"{r.op} {r.size} {r.mode}{where}  vs {r.impl}", r.impl, r.hrops_speedup,
                     at_floor))
    return bars


def write_charts(rows, machine, stem):
    """Writes <stem>-<family>.png for each family with a baseline to compare;
    returns {family: path, or a line saying why it has no chart}. rows need
    their hrops_speedup (report.add_speedups)."""
    if not available():
        return {r.family: MISSING for r in rows}
    from matplotlib.figure import Figure  # without pyplot: no global state or GUI backend

    out = {}
    for family in dict.fromkeys(r.family for r in rows):
        bars = _bars([r for r in rows if r.family == family])
        if not bars:
            out[family] = "no chart: no baseline row to compare hrops with"
            continue
        impls = list(dict.fromkeys(impl for _, impl, _, _ in bars))
        colors = {impl: f"C{i % 10}" for i, impl in enumerate(impls)}
        fig = Figure(figsize=(11, 1.6 + 0.32 * len(bars)))
        ax = fig.subplots()
        y = list(range(len(bars)))[::-1]
        speedups = [s for _, _, s, _ in bars]
        # Bars start at 1 (parity): right of it hrops is faster, left of it slower.
        ax.barh(y, [s - 1 for s in speedups], left=1,
                color=[colors[impl] for _, impl, _, _ in bars], height=0.7)
        x_max = max(2.0, max(speedups) * 4)
        for yi, s in zip(y, speedups):
            ax.text(max(s, 1), yi, f" {s:.2f}x", va="center", ha="left", fontsize=8)
        floors = [(yi, f) for yi, (_, _, _, f) in zip(y, bars) if f]
        if floors:
            # Floors far past the bars (small cases, fixed per-call overhead) sit at the edge.
            ax.scatter([min(f, x_max) for _, f in floors], [yi for yi, _ in floors], marker="|",
                       s=300, color="black", zorder=3)
            for yi, f in floors:
                if f > x_max:
                    ax.text(x_max, yi + 0.3, f"floor {f:.0f}x ", ha="right", fontsize=7)
        ax.axvline(1, color="gray", linewidth=1)
        ax.set_xscale("log")
        x_min = min(0.5, min(speedups) / 1.5)
        ax.set_xlim(x_min, x_max * 1.2)
        ticks = [t for t in (m * 10 ** e for e in range(-3, 7) for m in (1, 2, 5))
                 if x_min <= t <= x_max]
        ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
        ax.minorticks_off()
        ax.set_yticks(y, [label for label, _, _, _ in bars], fontsize=8)
        floor_note = ("\n| copy floor: the speed-up of a kernel running at copy bandwidth"
                      if floors else "")
        ax.set_xlabel("hrops speed-up = baseline best time / hrops best time (log scale)"
                      + floor_note)
        ax.set_title(f"{family}: hrops against each baseline\n{report.summary(machine)}",
                     fontsize=9)
        fig.tight_layout()
        path = pathlib.Path(f"{stem}-{family}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        out[family] = path
    return out
