"""The CPU kernels' output cache (hrops.empty_cache, HROPS_CPU_CACHE_MB, fork)."""
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import torch

import hrops

BIG = (1, 4, 512, 512)  # 4 MiB of float32 in, 4 MiB out: the cached size class


def _fill_cache(x=None):
    hrops.haar_dwt(torch.randn(BIG) if x is None else x, impl="cpu")  # output freed into the cache
    assert hrops.cached_bytes() > 0


def test_empty_cache_releases_every_block():
    _fill_cache()
    held = hrops.cached_bytes()
    assert hrops.empty_cache() == held
    assert hrops.cached_bytes() == 0
    assert hrops.empty_cache() == 0


def _import_with(values, code="import hrops"):
    """Runs `code` in one fresh interpreter per HROPS_CPU_CACHE_MB value, all
    at once (the setting is read once per process)."""
    # Run outside the checkout: from its root, `-c` would import the source
    # tree's hrops (no compiled kernels when installed non-editable).
    runs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                             cwd=tempfile.gettempdir(), env=dict(os.environ, HROPS_CPU_CACHE_MB=v))
            for v in values]
    return [(run.wait(timeout=300), run.stderr.read()) for run in runs]


def test_cache_setting_is_validated_at_import():
    bad = ["-1", "abc", "1.5", " 64", "99999999999999999999999"]
    for value, (status, stderr) in zip(bad, _import_with(bad)):
        assert status != 0, value
        assert "HROPS_CPU_CACHE_MB must be a whole number" in stderr, (value, stderr)
    code = ("import torch, hrops; hrops.haar_dwt(torch.randn(1, 4, 512, 512), impl='cpu'); "
            "assert hrops.cached_bytes() == 0")
    (status, stderr), = _import_with(["0"], code)  # 0 turns the cache off
    assert status == 0, stderr


def _wait(pid, seconds):
    """The child's exit status, or None if it is still running after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    return None


def _fork_and_check(x):
    """Forks; the child checks its cache starts empty, runs an op on x, exits
    0. (Only hrops' locks are under test: the child makes no new tensor, whose
    RNG or allocator locks another thread might hold.)"""
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery, just an exit code
        code = 1
        try:
            torch.set_num_threads(1)
            code = 2 if hrops.cached_bytes() != 0 else 0
            if code == 0:
                _fill_cache(x)
        finally:
            os._exit(code)
    return pid


def test_forked_child_starts_with_an_empty_cache():
    x = torch.randn(BIG)
    _fill_cache(x)
    pid = _fork_and_check(x)
    status = _wait(pid, 60)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert status == 0, f"child exit status {status} (2: the child inherited cached blocks)"
    assert hrops.cached_bytes() > 0  # the parent keeps its own


def test_fork_while_another_thread_uses_the_cache_does_not_deadlock():
    """Forks while a thread allocates and frees cached blocks: without the
    fork handlers a child could inherit the cache's lock held and hang."""
    stop = threading.Event()
    x = torch.randn(BIG)

    def churn():
        while not stop.is_set():
            hrops.haar_dwt(x, impl="cpu")

    thread = threading.Thread(target=churn)
    thread.start()
    hung = failed = 0
    try:
        for _ in range(100):
            pid = _fork_and_check(x)
            status = _wait(pid, 20)
            if status is None:
                hung += 1
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            elif status != 0:
                failed += 1
    finally:
        stop.set()
        thread.join()
    assert hung == 0 and failed == 0, f"{hung} children hung, {failed} failed"
