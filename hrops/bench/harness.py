"""Op-agnostic benchmark machinery: what a case is, the correctness check
against ref, timing, the memory-bandwidth floor and memory use.

An op contributes `Case`s (hrops.bench.cases.<op>); the hrops-bench CLI
(`run` below) and the pytest-benchmark suite (benchmarks/) both measure them
with the functions here.
"""
import ctypes
import dataclasses
import gc
import math
import statistics
from collections.abc import Callable
from time import perf_counter

import torch

import hrops

MODES = ("fwd", "fwdbwd")
MIN_RUNS = 3
MAX_RUNS = 10_000


def nbytes(shape, dtype=torch.float32):
    return math.prod(shape) * dtype.itemsize


@dataclasses.dataclass
class Impl:
    """One implementation of a case: fn(*inputs) returns the output tensor(s),
    possibly nested in tuples/lists (a peer's native layout)."""
    fn: Callable | None
    why_unavailable: str | None = None
    # Maps fn's output to ref's layout, differentiably; used by the correctness
    # check only, so a peer is timed in its own layout.
    to_ref: Callable | None = None
    compiled: bool = False  # a torch.compile impl (skipped by --no-compile)
    memory_measured: bool = True  # False: memory outside PyTorch's view (peak not reported)

    @classmethod
    def missing(cls, reason):
        return cls(None, why_unavailable=reason)


def compiled(fn):
    """Impl running torch.compile(fn), compiled on its first call (10-60 s on a
    2-core CPU; the correctness check and the warm-up absorb it).

    Dynamo compiles one graph per input shape, requires_grad and thread count
    (Inductor bakes the OpenMP thread count into CPU code) and silently runs
    eager past 8 graphs per function, so the first call of each compiled()
    impl resets Dynamo (torch.compiler.reset): every case starts afresh.
    """
    state = {}

    def call(*args):
        if not state:
            torch.compiler.reset()
            state["fn"] = torch.compile(fn, dynamic=False)
        return state["fn"](*args)
    return Impl(call, compiled=True)


@dataclasses.dataclass
class Case:
    """One op at one size."""
    op: str                  # e.g. "haar_dwt"
    size: str                # label, e.g. "B2xC32x512^2"
    make_inputs: Callable    # (device, dtype) -> tuple of input tensors
    impls: Callable          # (device, dtype) -> {name: Impl}; needs "ref" (the oracle) and "hrops"
    # Ideal bytes moved: the forward reads each input and writes each output
    # once (None: no meaningful floor, e.g. a whole model); the backward alone
    # reads grad_out and writes grad_in (None: the op has no backward, so no
    # fwdbwd mode).
    fwd_bytes: int | None
    bwd_bytes: int | None
    dtype: torch.dtype = torch.float32  # the bytes above are for this dtype
    flops: int | None = None            # forward FLOPs, where meaningful
    # assert_close tolerances of the check against ref (None: torch's defaults).
    # Reductions over many terms in another order need more than the defaults:
    # "scaled_atol" gives an atol relative to each reference tensor's max |value|.
    tolerance: dict | None = None
    # Indices of the inputs that require grad in fwdbwd mode (None: every
    # floating-point input), e.g. not PatchMatch's offsets.
    grad_inputs: tuple | None = None
    # Size of the copy that measures the floor's bandwidth (None: half the
    # mode's ideal bytes, so the copy moves as many bytes as the op). For
    # ideal bytes that re-read a smaller working set (e.g. gathers from one
    # feature map), the working set's own size.
    bandwidth_bytes: int | None = None
    family: str = ""  # the registry's family name (set by hrops.bench.cases)

    @property
    def modes(self):
        return MODES if self.bwd_bytes is not None else ("fwd",)

    def ideal_bytes(self, mode):
        if self.fwd_bytes is None:
            return None
        return self.fwd_bytes + (self.bwd_bytes if mode == "fwdbwd" else 0)


class Mismatch(AssertionError):
    """An implementation disagrees with ref; its numbers must not be reported."""


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for item in out for t in _flat(item)]


def _leaves(inputs, mode, grad_inputs=None):
    """Leaf views of the inputs; in fwdbwd mode the floating ones (or those
    listed in grad_inputs) require grad."""
    return [t.detach().requires_grad_(mode == "fwdbwd" and t.is_floating_point() and
                                      (grad_inputs is None or i in grad_inputs))
            for i, t in enumerate(inputs)]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclasses.dataclass
class Expected:
    outputs: list
    grad_outputs: list | None = None  # random, in ref's layout (fwdbwd)
    grad_inputs: list | None = None   # what grad_outputs give (fwdbwd)
    tolerance: dict | None = None     # of the comparison (Case.tolerance)
    differentiable: tuple | None = None  # Case.grad_inputs
    first: "FirstCall | None" = None  # ref's call that made the outputs


def _proc_status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _release_hrops_cache():
    """Empties hrops' CPU output cache, whose blocks would otherwise serve the
    call's allocations without raising the high-water mark."""
    hrops.empty_cache()


def _malloc_trim():
    """Returns free malloc memory to the OS (glibc), so that reusing it shows
    in RSS again: glibc raises its mmap threshold up to 32 MiB as big blocks
    are freed, and then keeps such blocks resident for reuse."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@dataclasses.dataclass
class FirstCall:
    """An impl's first call on a case's inputs in one mode: forward (and
    backward) wall time, and the memory high-water mark above what was in use
    before it (None where unmeasurable). It pays what later calls don't:
    torch.compile's compile, lazy imports and caches filling, first touch of
    fresh memory."""
    ms: float
    peak_bytes: int | None


class _Meter:
    """Times phases of one call and tracks their memory high-water mark above
    the memory in use before the first phase (see peak_bytes). Work between
    phases (the harness's own tensors) counts in neither."""

    def __init__(self, device, collect=True):
        """collect: gc.collect() first (0.1-0.2 s with models loaded), so
        that garbage freed during the call can't hide its memory."""
        self.device = device
        self.ms = 0.0
        self.peak = 0
        self.kept = 0  # memory the phases so far left in use
        if collect:
            gc.collect()
        _release_hrops_cache()
        if device.type == "cpu":
            _malloc_trim()

    def _in_use(self):
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device)
        return _proc_status_bytes("VmRSS")

    def _reset_high_water(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return True
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return False
        return True

    def _high_water(self):
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        return _proc_status_bytes("VmHWM")

    def phase(self, fn):
        _sync(self.device)
        before = self._in_use()
        measurable = self.peak is not None and self._reset_high_water()
        start = perf_counter()
        result = fn()
        _sync(self.device)
        self.ms += 1e3 * (perf_counter() - start)
        if measurable:
            self.peak = max(self.peak, self.kept + self._high_water() - before)
            self.kept += self._in_use() - before
        else:
            self.peak = None
        return result

    def first_call(self):
        return FirstCall(self.ms, self.peak)


def reference(ref, inputs, mode, tolerance=None, grad_inputs=None):
    """Ref's outputs and, in fwdbwd mode, seeded random output grads and the
    input grads they produce; .first measures the call that made them."""
    leaves = _leaves(inputs, mode, grad_inputs)
    meter = _Meter(inputs[0].device)
    outs = meter.phase(lambda: _flat(ref.fn(*leaves)))
    if mode == "fwd":
        return Expected([o.detach() for o in outs], tolerance=tolerance,
                        differentiable=grad_inputs, first=meter.first_call())
    gen = torch.Generator(outs[0].device).manual_seed(1)
    grad_outputs = [torch.randn(o.shape, generator=gen, device=o.device, dtype=o.dtype)
                    for o in outs]
    meter.phase(lambda: torch.autograd.backward(outs, grad_outputs))
    return Expected([o.detach() for o in outs], grad_outputs,
                    [t.grad for t in leaves if t.requires_grad], tolerance, grad_inputs,
                    meter.first_call())


def _assert_close(what, got, want, tolerance):
    tol = dict(tolerance or {})
    scaled = tol.pop("scaled_atol", None)
    try:
        if scaled is None:
            torch.testing.assert_close(got, want, **tol)
        for g, w in zip(got, want) if scaled is not None else ():
            atol = scaled * w.detach().abs().max().item() if w.numel() else 0.0
            torch.testing.assert_close(g, w, atol=atol, rtol=tol.get("rtol", 0.0))
    except AssertionError as e:
        raise Mismatch(f"{what} disagree with ref: {e}") from None


class Bench:
    """One impl of one case in one mode, checked against ref on construction
    (raises Mismatch) and then ready to time: bench() runs one forward (fwd)
    or forward + backward(grad) (fwdbwd) and waits for the device. .first
    measures the checked call (a compiled impl compiles in it)."""

    def __init__(self, impl, inputs, mode, expected, checked=None):
        """checked: ref's FirstCall when impl is the ref that made `expected`:
        no call here, its oracle call was its first."""
        self.fn = impl.fn
        self.mode = mode
        self.leaves = _leaves(inputs, mode, expected.differentiable)
        self.device = inputs[0].device
        if checked is not None:
            self.first = checked
            self.grads = None if mode == "fwd" else [torch.randn_like(t)
                                                     for t in expected.outputs]
            return
        # The checks follow both phases: memory they free would serve the
        # backward unseen by the high-water mark.
        meter = _Meter(self.device, collect=False)  # reference() collected before the oracle
        out = meter.phase(lambda: self.fn(*self.leaves))
        got = _flat(impl.to_ref(out) if impl.to_ref else out)
        if mode == "fwdbwd":
            meter.phase(lambda: torch.autograd.backward(got, expected.grad_outputs))
        self.first = meter.first_call()
        _assert_close("outputs", got, expected.outputs, expected.tolerance)
        self.grads = None
        if mode == "fwdbwd":
            _assert_close("input grads", [t.grad for t in self.leaves if t.requires_grad],
                          expected.grad_inputs, expected.tolerance)
            self.grads = [torch.randn_like(t.detach()) for t in _flat(out)]  # fn's own layout

    def __call__(self):
        if self.grads is None:
            self.fn(*self.leaves)
        else:
            for t in self.leaves:
                t.grad = None
            torch.autograd.backward(_flat(self.fn(*self.leaves)), self.grads)
        _sync(self.device)


def time_call(call, budget_s, warm_calls=1):
    """(best ms, median ms, runs) of a synchronizing call(): warm-up for ~10%
    of the budget (at least warm_calls calls), then timed runs until budget_s
    is spent, at least MIN_RUNS of them."""
    warm_until = perf_counter() + 0.1 * budget_s
    for _ in range(warm_calls):
        call()
    while perf_counter() < warm_until:
        call()
    times = []
    stop = perf_counter() + budget_s
    while len(times) < MIN_RUNS or (perf_counter() < stop and len(times) < MAX_RUNS):
        start = perf_counter()
        call()
        times.append(perf_counter() - start)
    return 1e3 * min(times), 1e3 * statistics.median(times), len(times)


_bandwidth = {}


def copy_bandwidth(device, size):
    """Bytes/s (read + write) of dst.copy_(src), src of `size` bytes, into a
    preallocated and already written dst, at the current thread count: the
    rate at which this device actually streams memory now. Best of ~0.2 s of
    runs, cached per (device, size, threads)."""
    key = (str(device), size, torch.get_num_threads())
    if key not in _bandwidth:
        src = torch.rand(max(size // 4, 1), device=device)
        dst = torch.empty_like(src)

        def copy():
            dst.copy_(src)
            _sync(device)
        best_ms, _, _ = time_call(copy, budget_s=0.2)
        _bandwidth[key] = 2 * src.nbytes / (best_ms * 1e-3)
    return _bandwidth[key]


def gemm_gflop_s(device, n=None):
    """fp32 GFLOP/s of an n x n matmul into a preallocated output at the
    current thread count (n: 1024 on the CPU, 4096 on a GPU), best of ~0.2 s
    of runs."""
    n = n or (1024 if device.type == "cpu" else 4096)
    a, b = (torch.rand(n, n, device=device) for _ in range(2))
    c = torch.empty_like(a)

    def mm():
        torch.mm(a, b, out=c)
        _sync(device)
    best_ms, _, _ = time_call(mm, budget_s=0.2)
    return 2 * n ** 3 / (best_ms * 1e6)


def floor_ms(case, mode, device):
    """The case's ideal bytes in `mode` at copy bandwidth: the practical lower
    bound for a memory-bound op that reads its inputs and writes its outputs
    once. The copy moves as many bytes as the op does in that mode (or copies
    case.bandwidth_bytes), so a case whose working set fits in cache gets a
    cache-speed floor and one that does not gets a memory-speed floor. None
    for cases without ideal bytes."""
    if case.fwd_bytes is None:
        return None
    size = case.bandwidth_bytes
    if size is None:
        size = case.ideal_bytes(mode) // 2
    return 1e3 * case.ideal_bytes(mode) / copy_bandwidth(device, size)


def saved_bytes(bench):
    """Bytes autograd saves for backward in one forward: every saved storage,
    once, except the inputs' (the caller holds those anyway, so saving them
    costs nothing)."""
    skip = {t.untyped_storage().data_ptr() for t in bench.leaves}
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        bench.fn(*bench.leaves)
    return sum(seen.values())


def peak_bytes(bench):
    """High-water mark of memory during one bench() above what was in use
    just before it (inputs, and grads cleared), or None where unmeasurable.

    CUDA: the caching allocator's peak allocated bytes. CPU: the process RSS
    high-water mark (VmHWM, reset by writing 5 to /proc/self/clear_refs),
    after emptying hrops' output cache and trimming malloc's free memory;
    memory freed and reused within the call counts once, as it should, but
    pages malloc keeps despite the trim (fragments below a page, thread
    arenas) can hide a little.
    """
    for t in bench.leaves:
        t.grad = None
    meter = _Meter(bench.device)
    meter.phase(bench)
    return meter.peak


@dataclasses.dataclass
class Row:
    family: str
    op: str
    size: str
    mode: str
    impl: str
    device: str
    dtype: str
    threads: int
    best_ms: float
    median_ms: float
    runs: int
    first_ms: float               # FirstCall.ms
    first_peak_bytes: int | None  # FirstCall.peak_bytes
    floor_ms: float | None
    x_floor: float | None         # best_ms / floor_ms
    saved_bytes: int | None       # fwdbwd only
    peak_bytes: int | None
    gflop_s: float | None = None        # fwd, when the case gives FLOPs
    hrops_speedup: float | None = None  # this impl's best / hrops' best (report.add_speedups)


@dataclasses.dataclass
class Skip:
    op: str
    size: str
    device: str
    mode: str
    impl: str
    reason: str
    failed: bool = False  # wrong results or an error, not merely unavailable
    family: str = ""


def _thread_counts(device, threads):
    return threads if device.type == "cpu" else threads[:1]


def run(cases, devices, threads, modes, budget_s, skip=None, log=print, on_case=None,
        only_impls=None):
    """Measures every available impl of every case: (rows, skips). CUDA runs
    use only the first thread count, which doesn't change GPU kernels.
    skip(name, impl): why not to time an available impl (None: time it).
    on_case(rows, skips), if given, is called after each case with the
    results so far. only_impls: the impl names to time (None: all); "ref"
    still runs once per case as the oracle. Logs "[k/n] ..." before each
    measurement and its result after it.

    A row's first call is the checked call of its Bench; for ref at the
    first thread count, the oracle call (reference()), its first on the
    inputs. The first call warms an impl up; a compiled one gets one more
    untimed call, in case its first left work to the second."""
    start = perf_counter()
    skip = skip or (lambda name, impl: None)
    log(f"preparing {len(cases)} cases (building their models)")
    # Every case's impls first, to count the measurements.
    plan = [(case, device, case.impls(device, case.dtype)) for case in cases for device in devices]

    def timed(impls):
        return [name for name, impl in impls.items()
                if (only_impls is None or name in only_impls) and impl.fn is not None
                and not skip(name, impl)]
    total = sum(len(timed(impls)) * len(_thread_counts(device, threads))
                * sum(m in case.modes for m in modes) for case, device, impls in plan)
    rows, skips, k = [], [], 0
    for i, (case, device, impls) in enumerate(plan):
        dtype = str(case.dtype).removeprefix("torch.")
        inputs = case.make_inputs(device, case.dtype)
        for mode in (m for m in modes if m in case.modes):
            torch.set_num_threads(_thread_counts(device, threads)[0])
            expected = reference(impls["ref"], inputs, mode, case.tolerance, case.grad_inputs)
            for t, n_threads in enumerate(_thread_counts(device, threads)):
                torch.set_num_threads(n_threads)
                floor = floor_ms(case, mode, device)
                for name, impl in impls.items():
                    if only_impls is not None and name not in only_impls:
                        continue
                    where = (case.op, case.size, str(device), mode, name)
                    reason = impl.why_unavailable if impl.fn is None else skip(name, impl)
                    if reason:
                        skips.append(Skip(*where, reason, family=case.family))
                        continue
                    k += 1
                    log(f"[{k}/{total}] {case.family}: {case.op} {case.size} {mode} {device} "
                        f"threads={n_threads} {name}; elapsed {perf_counter() - start:.0f} s")
                    try:
                        bench = Bench(impl, inputs, mode, expected,
                                      expected.first if name == "ref" and t == 0 else None)
                    except Exception as e:  # Mismatch, or the impl can't run this case
                        reason = " ".join(f"{type(e).__name__}: {e}".split())
                        skips.append(Skip(*where, reason, failed=True, family=case.family))
                        log(f"    FAILED: {reason}")
                        continue
                    best, median, runs = time_call(bench, budget_s, int(impl.compiled))
                    first = bench.first
                    rows.append(Row(
                        case.family, case.op, case.size, mode, name, str(device), dtype, n_threads,
                        best, median, runs, first.ms,
                        first.peak_bytes if impl.memory_measured else None,
                        floor, best / floor if floor else None,
                        saved_bytes(bench) if mode == "fwdbwd" else None,
                        peak_bytes(bench) if impl.memory_measured else None,
                        case.flops / (best * 1e6) if case.flops and mode == "fwd" else None))
                    del bench  # its tensors, before the next impl's first call
                    vs_floor = f" ({best / floor:.2f}x floor)" if floor else ""
                    log(f"    best {best:.3f} ms{vs_floor}, median {median:.3f} ms, {runs} runs; "
                        f"first call {first.ms:.1f} ms")
        if on_case and (i + 1 == len(plan) or plan[i + 1][0] is not case):
            on_case(rows, skips)
    return rows, skips
