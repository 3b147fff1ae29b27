"""Shared test settings: the per-dtype tolerance table, the devices to test, and a seeded generator per test."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

import snn_cuda

# One table for every kernel-vs-reference comparison: (rtol, atol) by storage dtype. Half and bfloat16 are
# compared against a float32 reference run on the same (rounded) inputs.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}

# The compiled backend for each device, to run against backend="torch" (the reference).
KERNEL_BACKEND = {"cpu": "cpp", "cuda": "cuda"}

HAS_CUDA_KERNELS = torch.cuda.is_available() and snn_cuda._ext.has_kernel("lif_fwd", "cuda")
# scripts/run_on_gpu.sh sets this: on the GPU machine a missing CUDA kernel is an error, not a reason to skip.
if os.environ.get("SNN_CUDA_REQUIRE_CUDA") == "1" and not HAS_CUDA_KERNELS:
    raise RuntimeError(
        "SNN_CUDA_REQUIRE_CUDA=1 but the CUDA kernels are not available: torch.cuda.is_available() = "
        f"{torch.cuda.is_available()}, extension: {snn_cuda._ext.load_error() or 'loaded, without CUDA kernels'}"
    )

CUDA_MARKS = [
    pytest.mark.cuda,
    pytest.mark.skipif(not HAS_CUDA_KERNELS, reason="no CUDA device or snn_cuda built without CUDA"),
]

DEVICES = ["cpu", pytest.param("cuda", marks=CUDA_MARKS)]

# (device, dtype) of the kernels' 16-bit storage, computed in float32: half and bfloat16 on the CPU and on CUDA.
LOW_PRECISION = [
    ("cpu", torch.float16),
    ("cpu", torch.bfloat16),
    *(pytest.param("cuda", dtype, marks=CUDA_MARKS) for dtype in (torch.float16, torch.bfloat16)),
]


# Gradients of a parameter shared by many elements (a scalar alpha, say) are sums of up to T * N terms, added in
# another order by the kernels (per neuron over t, then over neurons) than by autograd: in float32 their rounding
# error grows with the number of terms and with cancellation between them, beyond the elementwise tolerance.
SUM_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-9, 1e-9),
    torch.float32: (2e-3, 1e-3),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}


def assert_close(
    name: str, actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, *, summed: bool = False
) -> None:
    """Prints the max difference, then asserts closeness with the table's tolerance for ``dtype`` (the
    ``SUM_TOLERANCES`` one for gradients summed over many elements, ``summed=True``)."""
    rtol, atol = (SUM_TOLERANCES if summed else TOLERANCES)[dtype]
    actual, expected = actual.double(), expected.double()
    diff = (actual - expected).abs().max().item() if actual.numel() else 0.0
    print(f"{name}: max |diff| = {diff:.3e} (rtol {rtol}, atol {atol})")
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


def assert_within_roundings(name: str, actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """For 16-bit results against a reference computed as the kernels compute (float32, the same roundings to
    storage): every element within 16 roundings to ``dtype`` of the largest finite |expected|, 99 % of them within 3.
    Equal elements count as exact, infinities included (a float16 gradient can overflow in both)."""
    actual, expected = actual.double(), expected.double()
    unit = torch.finfo(dtype).eps * expected[expected.isfinite()].abs().max().item()
    assert unit > 0, name
    error = torch.where(actual == expected, 0.0, (actual - expected).abs() / unit).nan_to_num(nan=math.inf)
    print(f"{name}: max error {error.max().item():.2f} roundings, over 3 for {(error > 3).double().mean():.2%}")
    assert error.max() <= 16, name
    assert (error > 3).double().mean() <= 0.01, name


class BatchFirst(torch.nn.Module):
    """[B, T, F] in and out around a time-major module: its input and its output's gradient are transposes."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.transpose(0, 1)).transpose(0, 1)


def assert_same_on_other_streams_and_devices(run, *inputs: torch.Tensor) -> None:
    """``run(*inputs)`` (a tuple of tensors, CUDA inputs) gives bitwise the same on a side stream, and, where there
    are two GPUs, on the second one while the first is current, as on the default stream: the CUDA glue launches
    on PyTorch's current stream under a guard for its tensors' device."""
    device = inputs[0].device
    expected = run(*inputs)
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        got = run(*inputs)
    torch.cuda.current_stream(device).wait_stream(side)
    torch.cuda.synchronize(device)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    if torch.cuda.device_count() > 1:
        with torch.cuda.device(0):
            on_second = run(*(t.to("cuda:1") for t in inputs))
        for a, b in zip(on_second, expected, strict=True):
            assert a.device == torch.device("cuda:1") and torch.equal(a.cpu(), b.cpu())


def eager_and_compiled_step(
    model: torch.nn.Module, x: torch.Tensor, compile_backend: str, *, dynamic: bool | None = None
):
    """One training step of ``model`` on ``x``, eagerly and under ``torch.compile(fullgraph=True)`` (with
    ``dynamic`` shapes as given): returns ``(output, parameter gradients)`` of each. The loss weighs every output
    element differently."""

    def step(module):
        module.zero_grad()
        out = module(x)
        (out * torch.arange(out.numel(), device=out.device).view_as(out) / out.numel()).sum().backward()
        return out, [p.grad.clone() for p in module.parameters()]

    return step(model), step(torch.compile(model, backend=compile_backend, fullgraph=True, dynamic=dynamic))


@pytest.fixture
def gen(request) -> torch.Generator:
    """A generator seeded freshly per test run (the seed is printed so a failure can be replayed)."""
    seed = torch.seed() % (2**31)
    print(f"{request.node.name}: seed {seed}")
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def rng(gen) -> np.random.Generator:
    """A numpy generator drawn from the per-test ``gen`` (so the printed seed replays it too)."""
    return np.random.default_rng(int(torch.randint(2**31, (1,), generator=gen)))
