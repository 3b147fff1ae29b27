"""Streaming stores in the CPU kernels (csrc/cpu/common.h; snn_cuda.memory): the same bits either way.

Outputs below the threshold (every output of the kernel-vs-reference suites, which are small) are written with
plain stores. Here the threshold is set to 0, so every float32 and float64 output streams, and each op must give
bitwise what it gives with streaming off, on shapes whose rows start at every alignment and end in a partial 16
bytes. The plain path is the one the rest of the suite checks against the reference; one case here also
checks the streamed output against the reference directly.
"""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close

import snn_cuda

# Trailing shapes: 4096 neurons (aligned rows, whole chunks), 3 x 7 (rows misaligned, shorter than a chunk),
# 5 x 131 (misaligned rows over several chunks with a partial last chunk).
SHAPES = [(4096,), (3, 7), (5, 131)]
# The streamed dtypes: 16-bit outputs are never streamed (their kernels are bound by the conversions).
DTYPES = [torch.float32, torch.float64]


@pytest.fixture
def threshold():
    """Restores the threshold in force before the test."""
    before = snn_cuda.cpu_streaming_threshold()
    yield
    snn_cuda.set_cpu_streaming_threshold(before)


def _both_ways(run):
    """run() with every output streamed, then with none; returns both results."""
    snn_cuda.set_cpu_streaming_threshold(0)
    streamed = run()
    snn_cuda.set_cpu_streaming_threshold(None)
    plain = run()
    return streamed, plain


def _assert_identical(streamed, plain):
    for got, want in zip(streamed, plain, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.equal(got, want), (got - want).abs().max()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("reset", "gamma"), [("hard", None), ("soft", 0.8), ("none", None)])
def test_lif_outputs_and_gradients_are_bitwise_the_same(threshold, gen, shape, dtype, reset, gamma):
    T = 9
    x = (torch.randn((T, *shape), generator=gen) + 0.6).to(dtype)
    alpha = torch.rand(shape, generator=gen).to(torch.float64 if dtype == torch.float64 else torch.float32)
    upstream = torch.randn((T, *shape), generator=gen).to(dtype)

    def run():
        xr, ar = x.clone().requires_grad_(), alpha.clone().requires_grad_()
        spikes, (v_last, _) = snn_cuda.lif(xr, alpha=ar, reset=reset, gamma=gamma, return_state=True, backend="cpp")
        grads = torch.autograd.grad((spikes * upstream).sum() + v_last.float().sum(), (xr, ar))
        return (spikes, v_last, *grads)

    _assert_identical(*_both_ways(run))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("second_order", [True, False])
@pytest.mark.parametrize("T", [1, 2, 9])
def test_iir_outputs_and_gradients_are_bitwise_the_same(threshold, gen, shape, dtype, second_order, T):
    x = torch.randn((T, *shape), generator=gen).to(dtype)
    p1, p2 = (torch.randn(shape, generator=gen).to(dtype) for _ in range(2))
    a1 = (0.5 + 0.4 * torch.rand(shape, generator=gen)).to(dtype)
    a2 = (-0.2 * torch.rand(shape, generator=gen)).to(dtype) if second_order else 0.0
    upstream = torch.randn((T, *shape), generator=gen).to(dtype)

    def run():
        xr, a1r = x.clone().requires_grad_(), a1.clone().requires_grad_()
        p, (p_last, p_before_last) = snn_cuda.iir_filter(xr, a1r, a2, 0.7, p1=p1, p2=p2, return_state=True,
                                                         backend="cpp")  # fmt: skip
        grads = torch.autograd.grad((p * upstream).sum() + p_before_last.float().sum(), (xr, a1r))
        return (p, p_last, p_before_last, *grads)

    _assert_identical(*_both_ways(run))


def test_streamed_outputs_match_the_reference(threshold, gen):
    x = torch.randn(17, 5, 131, generator=gen, requires_grad=True)
    snn_cuda.set_cpu_streaming_threshold(0)
    out = snn_cuda.iir_filter(snn_cuda.lif(x, alpha=0.8, theta=0.4, backend="cpp"), 0.9, -0.2, 1.0, backend="cpp")
    (grad,) = torch.autograd.grad(out.sum(), x)
    expected = snn_cuda.reference.iir_filter(snn_cuda.reference.lif(x, alpha=0.8, theta=0.4), 0.9, -0.2, 1.0)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    assert_close("p", out, expected, torch.float32)
    assert_close("grad x", grad, expected_grad, torch.float32)


def test_the_threshold_is_read_back_and_bad_values_are_refused(threshold):
    snn_cuda.set_cpu_streaming_threshold(12345)
    assert snn_cuda.cpu_streaming_threshold() == 12345
    snn_cuda.set_cpu_streaming_threshold(None)
    assert snn_cuda.cpu_streaming_threshold() is None
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="nbytes"):
            snn_cuda.set_cpu_streaming_threshold(bad)
    assert snn_cuda.cpu_streaming_threshold() is None
