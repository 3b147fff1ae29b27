"""The CPU output cache (snn_cuda.memory, csrc/torch/output_cache.cpp): reuse, limits, profiler accounting; and
the environment variables of snn_cuda.memory (the streaming stores have their own tests, test_streaming.py).

Every CPU kernel test already runs with the cache on (the default), so outputs written into reused blocks are
checked against the reference throughout the suite; these tests check the cache's own contract.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

import snn_cuda

# [T, N] float32 outputs of 2 MiB: above the cache's 1 MiB floor.
SHAPE = (16, 8, 4096)
BLOCK_BYTES = 16 * 8 * 4096 * 4


@pytest.fixture
def cache():
    """An empty cache with the default limit; the limit in force before the test is restored after it."""
    before = snn_cuda.cpu_cache_info()["limit_bytes"]
    snn_cuda.empty_cpu_cache()
    snn_cuda.set_cpu_cache_limit(1 << 30)
    yield
    snn_cuda.set_cpu_cache_limit(before)


def _lif(x: torch.Tensor) -> torch.Tensor:
    return snn_cuda.lif(x, alpha=0.7, theta=0.5, backend="cpp")


def test_a_freed_output_is_reused_and_overwritten(cache):
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    first = _lif(x)
    address = first.data_ptr()
    first.fill_(float("nan"))  # what the next tensor finds in the block
    del first
    info = snn_cuda.cpu_cache_info()
    assert info["cached_blocks"] >= 1 and info["cached_bytes"] >= BLOCK_BYTES

    hits = info["hits"]
    second = _lif(x)
    assert snn_cuda.cpu_cache_info()["hits"] == hits + 1
    assert second.data_ptr() == address
    torch.testing.assert_close(second, snn_cuda.reference.lif(x, alpha=0.7, theta=0.5), rtol=0, atol=0)


def test_gradients_through_reused_blocks_match_the_reference(cache):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(SHAPE, generator=g)
    upstream = torch.randn(SHAPE, generator=g)
    for _ in range(3):  # the later passes run in blocks the earlier ones freed
        xf = x.clone().requires_grad_()
        (snn_cuda.iir_filter(_lif(xf), 0.9, -0.2, 1.0, backend="cpp") * upstream).sum().backward()
    assert snn_cuda.cpu_cache_info()["hits"] > 0
    xr = x.clone().requires_grad_()
    spikes = snn_cuda.reference.lif(xr, alpha=0.7, theta=0.5)
    (snn_cuda.reference.iir_filter(spikes, 0.9, -0.2, 1.0) * upstream).sum().backward()
    torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-4, atol=1e-5)


def test_only_blocks_of_the_same_size_are_reused(cache):
    _lif(torch.randn(SHAPE))  # its output is freed at once: one 2 MiB block waits
    hits = snn_cuda.cpu_cache_info()["hits"]
    _lif(torch.randn(SHAPE[0] + 1, *SHAPE[1:]))
    _lif(torch.randn(SHAPE, dtype=torch.float64))
    assert snn_cuda.cpu_cache_info()["hits"] == hits


def test_small_outputs_bypass_the_cache(cache):
    before = snn_cuda.cpu_cache_info()
    for _ in range(3):
        _lif(torch.randn(4, 2, 64))
    after = snn_cuda.cpu_cache_info()
    assert (after["hits"], after["misses"], after["cached_blocks"]) == (
        before["hits"],
        before["misses"],
        before["cached_blocks"],
    )


def test_the_limit_evicts_the_oldest_blocks_and_zero_turns_the_cache_off(cache):
    snn_cuda.set_cpu_cache_limit(BLOCK_BYTES + BLOCK_BYTES // 2)
    outputs = [_lif(torch.randn(SHAPE)) for _ in range(3)]
    del outputs
    info = snn_cuda.cpu_cache_info()
    assert (info["cached_blocks"], info["cached_bytes"]) == (1, BLOCK_BYTES)

    snn_cuda.set_cpu_cache_limit(0)
    assert snn_cuda.cpu_cache_info()["cached_bytes"] == 0  # lowering the limit frees what no longer fits
    before = snn_cuda.cpu_cache_info()
    hits, misses = before["hits"], before["misses"]
    for _ in range(2):
        _lif(torch.randn(SHAPE))
    info = snn_cuda.cpu_cache_info()
    assert (info["hits"], info["misses"], info["cached_bytes"]) == (hits, misses, 0)


def test_empty_cpu_cache_frees_waiting_blocks_only(cache):
    kept = _lif(torch.randn(SHAPE))
    _lif(torch.randn(SHAPE))  # freed at once
    snn_cuda.empty_cpu_cache()
    info = snn_cuda.cpu_cache_info()
    assert info["cached_bytes"] == 0 and info["in_use_bytes"] >= BLOCK_BYTES
    assert torch.isin(kept, torch.tensor([0.0, 1.0])).all()  # still readable


def test_outputs_can_be_resized(cache):
    out = _lif(torch.randn(SHAPE))
    out.resize_(2 * out.numel())  # through the cache's allocator
    out.fill_(1.0)
    assert out.sum().item() == 2 * BLOCK_BYTES // 4


def test_the_profiler_counts_a_reused_block_as_allocated(cache):
    _lif(torch.randn(SHAPE))  # freed at once: the next output reuses its block
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = _lif(torch.randn(SHAPE))
            del out
    lif_rows = [e for e in prof.key_averages() if e.key == "snn_cuda::lif_fwd"]
    assert lif_rows and lif_rows[0].cpu_memory_usage >= BLOCK_BYTES


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_bad_limits_are_refused(bad, cache):
    with pytest.raises(ValueError, match="nbytes"):
        snn_cuda.set_cpu_cache_limit(bad)


CACHE_LIMIT = ("SNN_CUDA_CPU_CACHE_MB", "snn_cuda.cpu_cache_info()['limit_bytes']")
STREAM_THRESHOLD = ("SNN_CUDA_CPU_STREAM_MB", "snn_cuda.cpu_streaming_threshold()")


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        (CACHE_LIMIT, "0", 0),
        (CACHE_LIMIT, "16", 16 << 20),
        (CACHE_LIMIT, "abc", None),
        (CACHE_LIMIT, "-5", None),
        (CACHE_LIMIT, "99999999999999", 2**63 - 1),  # beyond size_t: as large as the cache can be
        (STREAM_THRESHOLD, "0", 0),
        (STREAM_THRESHOLD, "64", 64 << 20),
        (STREAM_THRESHOLD, "", 32 << 20),  # empty: the default
        (STREAM_THRESHOLD, "x", None),
    ],
)
def test_the_environment_sets_the_cache_limit_and_the_streaming_threshold(setting, value, expected):
    variable, reader = setting
    code = f"import snn_cuda; print({reader})"
    env = dict(os.environ, **{variable: value})
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if expected is None:
        assert run.returncode != 0 and f"{variable} must be a whole number" in run.stderr
    else:
        assert run.returncode == 0, run.stderr
        assert int(run.stdout.split()[-1]) == expected


FORKING_CHILDREN = """
import os, signal, threading, torch, snn_cuda
x = torch.randn(16, 8, 4096, generator=torch.Generator().manual_seed(0))
expected = snn_cuda.reference.lif(x, alpha=0.7, theta=0.5)
stop = threading.Event()
def churn():  # another thread allocating and freeing outputs all along
    while not stop.is_set():
        snn_cuda.lif(x, alpha=0.7, theta=0.5, backend="cpp")
worker = threading.Thread(target=churn)
worker.start()
failures = 0
for _ in range(20):
    pid = os.fork()
    if pid == 0:
        signal.alarm(60)  # a child stuck on a lock dies here rather than hanging the test
        torch.set_num_threads(1)  # as DataLoader workers do
        hits = snn_cuda.cpu_cache_info()["hits"]
        ok = all(torch.equal(snn_cuda.lif(x, alpha=0.7, theta=0.5, backend="cpp"), expected) for _ in range(3))
        os._exit(0 if ok and snn_cuda.cpu_cache_info()["hits"] > hits else 1)
    failures += os.waitpid(pid, 0)[1] != 0
stop.set()
worker.join()
print("failures", failures)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_forked_children_use_the_cache(cache):
    """DataLoader workers are forked processes. A child inherits the cache (its waiting blocks become the child's
    copies) and must compute correctly from its blocks, while another thread of the parent keeps using the cache;
    the fork handlers (output_cache.cpp) hold the cache's lock across fork so no child inherits it locked. That
    race itself did not show from Python without the handlers (900 forks: the GIL serialises most cache calls), so
    this checks that forking with the handlers works, not that they were needed."""
    run = subprocess.run([sys.executable, "-W", "ignore", "-c", FORKING_CHILDREN], capture_output=True, text=True,
                         timeout=600, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == "0", run.stdout
