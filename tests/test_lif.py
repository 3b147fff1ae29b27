"""The fused LIF op against the reference (outputs, final state, every gradient), hand-worked seed cases,
registration checks (opcheck, torch.compile) and argument errors."""

from __future__ import annotations

import copy
import functools
import itertools
import math
import os
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    DEVICES,
    KERNEL_BACKEND,
    LOW_PRECISION,
    BatchFirst,
    assert_close,
    assert_same_on_other_streams_and_devices,
    assert_within_roundings,
    eager_and_compiled_step,
)
from torch.utils._python_dispatch import TorchDispatchMode

import snn_cuda
from snn_cuda import surrogate as surrogates
from snn_cuda.info import ISA_FLAGS, cpu_flags, kernel_isa
from snn_cuda.ops import _backend

RESETS = ("hard", "soft", "none")


def make_case(gen, T, state_shape, dtype, *, per_element, trace, with_state):
    """Random inputs well spread around the threshold; parameters per element (True), 0-dim tensors (False) or
    Python numbers ("number": the kernels' path without parameter gradients)."""
    x = (torch.rand((T, *state_shape), generator=gen, dtype=torch.float64) * 1.6 - 0.3).to(dtype)
    if per_element is True:
        alpha = torch.rand(state_shape[-1:], generator=gen, dtype=torch.float64) * 0.9 + 0.05
        theta = torch.rand(state_shape[-1:], generator=gen, dtype=torch.float64) * 0.6 + 0.7
    elif per_element is False:
        alpha = torch.tensor(0.6, dtype=torch.float64)
        theta = torch.tensor(0.9, dtype=torch.float64)
    else:
        assert per_element == "number"
        alpha, theta = 0.6, 0.9
    v0 = (torch.rand(state_shape, generator=gen, dtype=torch.float64) - 0.5).to(dtype) if with_state else None
    r0 = None
    if with_state and trace:
        r0 = (torch.rand(state_shape, generator=gen, dtype=torch.float64) * 0.5).to(dtype)
    return x, alpha, theta, v0, r0


def run_both(device, x, alpha, theta, v0, r0, *, reference_dtype=None, membrane=False, **options):
    """Runs kernel and reference on copies of the same leaves; returns outputs and gradients of each.

    The loss weighs spikes and final states (and with ``membrane`` the membrane sequence, whose output is then
    compared as "v") with fixed weights, so every gradient path is exercised.
    """
    results = []
    for backend in (KERNEL_BACKEND[device], "torch"):
        dtype = x.dtype if backend != "torch" or reference_dtype is None else reference_dtype
        leaves = [t.detach().to(device=device, dtype=dtype if i in (0, 3, 4) else t.dtype).requires_grad_()
                  if isinstance(t, torch.Tensor) else t for i, t in enumerate((x, alpha, theta, v0, r0))]  # fmt: skip
        xl, al, tl, vl, rl = leaves
        spikes, *v, (v_last, r_last) = snn_cuda.lif(
            xl, alpha=al, theta=tl, v0=vl, r0=rl, return_state=True, return_membrane=membrane, backend=backend,
            **options,
        )  # fmt: skip
        w = torch.linspace(-1, 1, spikes.numel(), dtype=torch.float64, device=device).view(spikes.shape)
        loss = (spikes.double() * w).sum() + (v_last.double() ** 2).sum() + 0.5 * r_last.double().sum()
        outputs = {"spikes": spikes, "v_last": v_last, "r_last": r_last}
        if membrane:
            outputs["v"] = v[0]
            loss = loss + (v[0].double() * w.flip(0)).sum()
        present = {k: t for k, t in zip(("x", "alpha", "theta", "v0", "r0"), leaves, strict=True)
                   if isinstance(t, torch.Tensor)}  # fmt: skip
        grads = torch.autograd.grad(loss, list(present.values()), allow_unused=True)
        named = dict(zip(present, grads, strict=True))
        results.append({**outputs, **named})
    return results


# Outputs and gradients that belong to one neuron ([T, *S] or [*S]); the parameters' gradients sum over neurons.
PER_NEURON = ("x", "v0", "r0", "v_last", "r_last", "v")
# The gradients the backward carries through time (compare says how they are compared).
ADJOINTS = ("x", "v0", "r0")


def compare(results, dtype, summed=(), *, max_flipped=0.0):
    """Spikes equal, every other output and gradient close; ``summed`` names gradients summed over many elements.

    With ``max_flipped`` (inputs in float32, where h can round to the other side of theta than in the reference,
    and a flipped spike sends that neuron's trajectory and gradients legitimately elsewhere): at most that
    fraction of the neurons may flip; on the others every per-neuron output and gradient is compared, and the
    parameters' gradients (sums over all neurons) when none flipped."""
    fused, ref = results
    agree = (fused["spikes"] == ref["spikes"].to(fused["spikes"].dtype)).all(dim=0)
    flipped = 1 - agree.double().mean().item()
    if max_flipped:
        print(f"neurons with a flipped spike: {flipped:.2e}")
    assert flipped <= max_flipped, "spikes differ"
    assert set(fused) == set(ref)
    for name in fused:
        if name == "spikes" or (name not in PER_NEURON and flipped > 0):
            continue
        if ref[name] is None:
            assert fused[name] is None or not fused[name].any(), f"{name}: gradient where the reference has none"
            continue
        actual, expected = fused[name], ref[name]
        if name in ADJOINTS:
            # dL/dx[t] is the adjoint dL/dh[t], a sum the backward carries from the last step to the first: its
            # rounding error grows with the largest adjoint it passed through, and gradients can grow by orders of
            # magnitude over hundreds of steps. So these are compared relative to the largest |dL/dx| at t and
            # after, with the tolerance for sums; v0 and r0 (reached after t = 0) relative to the largest over the
            # sequence or their own size, if larger (r0 also gets the trace's gradient, which no h carries).
            # (Measured in float32 at T = 257 over 400 seeded cases: the largest difference used 1/200 of it.)
            adjoint = ref["x"].double().abs().flip(0).cummax(0).values.flip(0)
            scale = adjoint if name == "x" else torch.maximum(adjoint[0], expected.double().abs())
            scale = scale.clamp(min=torch.finfo(torch.float64).tiny)
            actual, expected = actual.double() / scale, expected.double() / scale
        if flipped > 0:
            actual, expected = actual[..., agree], expected[..., agree]
        assert_close(name, actual, expected, dtype, summed=name in summed or name in ADJOINTS)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("surrogate", surrogates.NAMES)
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("trace", [False, True])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("T", [1, 2, 7, 257])
def test_every_configuration_matches_reference(gen, device, T, reset, trace, detach_reset, surrogate):
    """Every reset x trace x detach x surrogate, at several lengths, with per-feature, scalar-tensor and number
    parameters, the surrogate's default width and another (a width the op dropped would show), float64 and
    float32; the membrane sequence is an output (in the loss) of every other variant."""
    options = dict(reset=reset, v_reset=-0.1, gamma=0.8 if trace else None, rho=0.7, detach_reset=detach_reset,
                   surrogate=surrogate)  # fmt: skip
    # (dtype, parameters, surrogate width over its default): each parameter kind and width in each dtype
    variants = [(torch.float64, True, None), (torch.float64, True, 1.7), (torch.float64, False, None),
                (torch.float64, "number", 1.7), (torch.float32, True, None), (torch.float32, False, 1.7),
                (torch.float32, "number", None), (torch.float32, "number", 1.7)]  # fmt: skip
    for k, (dtype, per_element, param_scale) in enumerate(variants):
        surrogate_param = None if param_scale is None else surrogates.DEFAULT_PARAM[surrogate] * param_scale
        x, alpha, theta, v0, r0 = make_case(gen, T, (3, 5), dtype, per_element=per_element, trace=trace,
                                            with_state=True)  # fmt: skip
        results = run_both(device, x, alpha, theta, v0, r0, surrogate_param=surrogate_param, membrane=k % 2 == 1,
                           **options)  # fmt: skip
        compare(results, dtype, summed=("alpha", "theta"), max_flipped=0.0 if dtype == torch.float64 else 0.2)


LENGTHS = (1, 2, 7, 64, 257)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_element", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("trace", [False, True])
@pytest.mark.parametrize("T", LENGTHS)
def test_lengths_dtypes_and_parameter_shapes(gen, device, T, trace, with_state, per_element, dtype):
    """More neurons than the configuration test, each length with and without trace and initial state; the reset,
    surrogate and detach cycle with those axes so every length meets each reset and several surrogates, and the
    membrane sequence is an output with per-element parameters."""
    k = LENGTHS.index(T) * 4 + trace * 2 + with_state
    options = dict(reset=RESETS[k % 3], surrogate=surrogates.NAMES[k % 6], detach_reset=k // 3 % 2 == 1,
                   gamma=0.9 if trace else None)  # fmt: skip
    x, alpha, theta, v0, r0 = make_case(gen, T, (2, 33), dtype, per_element=per_element, trace=trace,
                                        with_state=with_state)  # fmt: skip
    results = run_both(device, x, alpha, theta, v0, r0, membrane=per_element, **options)
    summed = ("alpha", "theta")  # sums over t, and over all elements when the parameters are scalars
    compare(results, dtype, summed, max_flipped=0.0 if dtype == torch.float64 else 0.05)


@pytest.mark.parametrize("device", DEVICES)
def test_many_neurons_span_blocks_and_threads(gen, device):
    """More neurons than one CPU kernel block (4096), an odd count: ranges split across threads and blocks."""
    x, alpha, theta, v0, r0 = make_case(gen, 5, (3, 2900), torch.float64, per_element=True, trace=True,
                                        with_state=True)  # fmt: skip
    results = run_both(device, x, alpha, theta, v0, r0, reset="hard", gamma=0.7, surrogate="triangle")
    compare(results, torch.float64)


@pytest.mark.parametrize(("device", "dtype"), LOW_PRECISION)
@pytest.mark.parametrize("surrogate", surrogates.NAMES)
@pytest.mark.parametrize("trace", [False, True])
@pytest.mark.parametrize("reset", RESETS)
def test_low_precision_matches_reference(gen, device, dtype, reset, trace, surrogate):
    """16-bit storage, float32 compute (half and bfloat16, CPU and CUDA): the reference computes so too and
    decides the spike on h rounded to 16 bits as the kernels do, so the spikes and final states are equal. The
    kernels' backward also reads h as stored (for v_reset - h and the v[t-1] of the alpha gradient), where the
    reference differentiates its float32 h: each gradient is within 16 roundings to 16 bits of its largest value,
    and 99 % of its elements within 3 (over 50 seeds of every case: at most 5.1, and over 3 for at most
    0.4 % of the elements). The membrane sequence is an output with the trace."""
    x, alpha, theta, v0, r0 = make_case(gen, 32, (4, 256), dtype, per_element=True, trace=trace, with_state=True)
    fused, ref = run_both(device, x, alpha, theta, v0, r0, reset=reset, gamma=0.8 if trace else None,
                          surrogate=surrogate, membrane=trace)  # fmt: skip
    assert torch.equal(fused["spikes"], ref["spikes"])
    for name in ("v_last", "r_last", "v") if trace else ("v_last", "r_last"):
        assert_close(name, fused[name], ref[name], dtype)
    for name in ("x", "alpha", "theta", "v0", "r0") if trace else ("x", "alpha", "theta", "v0"):
        assert_within_roundings(name, fused[name], ref[name], dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_parameter_shapes_reduce_gradients(gen, device):
    """Per-channel parameters of a conv layout [T, B, C, H, W] get gradients of their own shape."""
    x = torch.rand((5, 2, 3, 4, 4), generator=gen, dtype=torch.float64) * 1.5
    alpha = torch.rand((3, 1, 1), generator=gen, dtype=torch.float64)
    theta = torch.rand((3, 1, 1), generator=gen, dtype=torch.float64) + 0.5
    results = run_both(device, x, alpha, theta, None, None, reset="hard", surrogate="sigmoid")
    assert results[0]["alpha"].shape == (3, 1, 1)
    compare(results, torch.float64)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((0.5, 1.0), ()),  # numbers: one value for all neurons
        ((torch.rand(4), 1.0), (4,)),  # per feature: not copied over the batch
        ((torch.rand(1, 1, 4), torch.tensor(1.0)), (4,)),  # leading dimensions of size 1 dropped
        ((torch.rand(3, 1, 1), torch.rand(4)), (3, 5, 4)),  # per channel and per column: from the channel on
        ((torch.rand(6, 3, 5, 4), 0.5), (6, 3, 5, 4)),  # per neuron, batch included
        ((torch.rand(6, 1, 1, 1), 0.5), (6, 3, 5, 4)),  # per sample
    ],
)
def test_parameters_reach_the_kernels_over_the_shortest_trailing_shape(values, expected):
    """The kernels take per-element parameters over a trailing part of the state shape and repeat them over the
    leading dimensions (csrc/core/lif_params.h): the shortest part that holds every parameter's variation."""
    state_shape = torch.Size((6, 3, 5, 4))
    shape = _backend.parameter_shape(values, state_shape)
    assert shape == expected
    for value in values:
        as_kernel = _backend.as_parameter(value, shape, torch.float32, torch.device("cpu"))
        assert as_kernel.shape == expected and as_kernel.is_contiguous()
        # repeated over the leading dimensions, it is the parameter broadcast against the whole state
        broadcast = torch.as_tensor(value, dtype=torch.float32).expand(state_shape)
        assert torch.equal(as_kernel.expand(state_shape), broadcast)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("theta_kind", ["number", "tensor"])
def test_threshold_ties_do_not_fire(device, dtype, reset, theta_kind):
    """h == theta exactly gives no spike (strict '>'), one ulp (of x's dtype) above does, in every backend, for a
    number theta and a per-element tensor (alpha = 0: h[t] = x[t] exactly, in every dtype)."""
    value = 0.75  # in [0.5, 1): one ulp is eps / 2
    above = value + torch.finfo(dtype).eps / 2
    x = torch.tensor([[value, above], [0.0, value], [above, above]], dtype=dtype, device=device)
    theta = value if theta_kind == "number" else torch.full((2,), value, dtype=torch.float64, device=device)
    for backend in (KERNEL_BACKEND[device], "torch"):
        spikes = snn_cuda.lif(x, alpha=0.0, theta=theta, reset=reset, backend=backend)
        assert spikes.tolist() == [[0.0, 1.0], [0.0, 0.0], [1.0, 1.0]], backend


@pytest.mark.parametrize("device", DEVICES)
def test_rectangular_window_is_open(device):
    """rectangular(w): 1/w where |u| < w/2, 0 at |u| = w/2 exactly (models.md), in every backend."""
    theta, width = 0.5, 0.5
    edge = theta + width / 2
    inside = [math.nextafter(edge, 0.0), math.nextafter(theta - width / 2, 1.0)]
    x = torch.tensor([edge, theta - width / 2, *inside], dtype=torch.float64, device=device)[:, None]
    for backend in (KERNEL_BACKEND[device], "torch"):
        xl = x.clone().requires_grad_()
        # alpha = 0 and no reset: each step's gradient is its own surrogate, 1/w or 0
        snn_cuda.lif(xl, alpha=0.0, theta=theta, reset="none", surrogate="rectangular", surrogate_param=width,
                     backend=backend).sum().backward()  # fmt: skip
        assert xl.grad.flatten().tolist() == [0.0, 0.0, 1 / width, 1 / width], backend


@pytest.mark.parametrize("device", DEVICES)
def test_non_finite_values_as_the_readme_documents(device):
    """Outside the spec: the kernels' hard reset branches; the reference's (1 - s) h at h = inf is NaN (README)."""
    backend = KERNEL_BACKEND[device]
    x = torch.tensor([[math.inf], [0.1]], dtype=torch.float64, device=device)
    for name, expected in ((backend, 0.1), ("torch", math.nan)):
        _, (v_last, _) = snn_cuda.lif(x, alpha=0.5, reset="hard", return_state=True, backend=name)
        torch.testing.assert_close(v_last.cpu(), torch.tensor([expected], dtype=torch.float64), equal_nan=True)


def test_he_et_al_neuron_by_hand():
    """He et al.: u = 0.3 u (1 - o) + x, fire if u > 0.3, rectangular surrogate w = 0.5 (g = 2 for |u| < 0.25)."""
    x = torch.tensor([0.2, 0.2, 0.5], dtype=torch.float64).view(3, 1)
    for backend in ("cpp", "torch"):
        xl = x.clone().requires_grad_()
        s = snn_cuda.lif(xl, alpha=0.3, theta=0.3, reset="hard", surrogate="rectangular", backend=backend)
        # h = 0.2, 0.3*0.2 + 0.2 = 0.26, 0.3*0.26 + 0.5 = 0.578 -> spikes 0, 0, 1
        assert s.flatten().tolist() == [0.0, 0.0, 1.0]
        s.sum().backward()
        # t=2: u = 0.278 is outside the window, gh2 = 0. t=1: u = -0.04, gh1 = 2, dL/dv0 = 0.3 * 2 = 0.6.
        # t=0: gs = 1 + 0.6 * (v_reset - h0) = 1 - 0.12 = 0.88; gh0 = 0.6 * (1 - s0) + 0.88 * 2 = 2.36.
        torch.testing.assert_close(xl.grad.flatten(), torch.tensor([2.36, 2.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("device", DEVICES)
def test_membrane_sequence_by_hand(device):
    """The He et al. case above with the membrane sequence as the only output in the loss: v[t] after each step's
    reset, and the gradient of sum(v) worked out by hand (the spike gradient is then zero)."""
    x = torch.tensor([0.2, 0.2, 0.5], dtype=torch.float64, device=device).view(3, 1)
    for backend in (KERNEL_BACKEND[device], "torch"):
        xl = x.clone().requires_grad_()
        s, v = snn_cuda.lif(xl, alpha=0.3, theta=0.3, reset="hard", surrogate="rectangular", return_membrane=True,
                            backend=backend)  # fmt: skip
        # h = 0.2, 0.26, 0.578; the last fires and resets to v_reset = 0
        assert s.flatten().tolist() == [0.0, 0.0, 1.0]
        torch.testing.assert_close(v.flatten().cpu(), torch.tensor([0.2, 0.26, 0.0], dtype=torch.float64))
        v.sum().backward()
        # t=2: v = v_reset, dv/dh = 0, and u = 0.278 is outside the window: gh2 = 0.
        # t=1: gv = 1 (its own) + 0.3 gh2 = 1; gs = gv (v_reset - h1) = -0.26; gh1 = gv + gs * 2 = 0.48.
        # t=0: gv = 1 + 0.3 * 0.48 = 1.144; gs = 1.144 * -0.2; gh0 = 1.144 + 2 gs = 0.6864.
        expected = torch.tensor([0.6864, 0.48, 0.0], dtype=torch.float64)
        torch.testing.assert_close(xl.grad.flatten().cpu(), expected, msg=backend)


@pytest.mark.parametrize("device", DEVICES)
def test_membrane_sequence_ends_in_the_final_state(gen, device):
    """v[-1] is v_last, in every dtype; asking for the membrane changes neither the spikes nor the final state."""
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        x = (torch.rand(9, 3, 70, generator=gen) * 1.6 - 0.3).to(device=device, dtype=dtype)
        options = dict(alpha=0.7, theta=0.6, reset="soft", gamma=0.8, backend=KERNEL_BACKEND[device])
        s, v, (v_last, r_last) = snn_cuda.lif(x, return_membrane=True, return_state=True, **options)
        s_plain, (v_plain, r_plain) = snn_cuda.lif(x, return_state=True, **options)
        assert v.shape == x.shape and v.dtype == dtype and v.is_contiguous()
        assert torch.equal(v[-1], v_last)
        for a, b in ((s, s_plain), (v_last, v_plain), (r_last, r_plain)):
            assert torch.equal(a, b)


def test_snn_iir_neuron_by_hand():
    """snn-iir: v = I - r, spike if v > 1, r = gamma r + s, gaussian surrogate sigma 0.4, reset not detached."""
    gamma = 0.5
    x = torch.tensor([1.5, 1.2, 0.4], dtype=torch.float64).view(3, 1)

    def g(u):
        return math.exp(-u * u / (2 * 0.16)) / (0.4 * math.sqrt(2 * math.pi))

    # Forward: h = 1.5 (spike, r = 1), h = 1.2 - 1 = 0.2 (r = 0.5), h = 0.4 - 0.5 = -0.1 (r = 0.25).
    # Backward of sum(s): gh2 = g(-1.1); gr after t=2 is -gh2; t=1: gs = 1 - gh2, gh1 = gs g(-0.8);
    # gr after t=1 is 0.5 (-gh2) - gh1; t=0: gs = 1 + gr, gh0 = gs g(0.5).
    gh2 = g(-1.1)
    gh1 = (1 - gh2) * g(-0.8)
    gh0 = (1 + 0.5 * -gh2 - gh1) * g(0.5)
    for backend in ("cpp", "torch"):
        xl = x.clone().requires_grad_()
        s, (_, r_last) = snn_cuda.lif(xl, alpha=0.0, theta=1.0, reset="none", gamma=gamma, rho=1.0,
                                      surrogate="gaussian", return_state=True, backend=backend)  # fmt: skip
        assert s.flatten().tolist() == [1.0, 0.0, 0.0]
        assert r_last.item() == pytest.approx(0.25)
        s.sum().backward()
        torch.testing.assert_close(xl.grad.flatten(), torch.tensor([gh0, gh1, gh2], dtype=torch.float64))


def test_gradcheck_smooth_configuration():
    """With no reset and no trace the op is linear in x, v0, alpha: gradcheck the exact gradients."""
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    v0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    alpha = torch.rand(3, dtype=torch.float64, requires_grad=True)

    def final_potential(x, v0, alpha):
        # theta far above the potentials: no spike ever fires, v_last = sum_t alpha^(T-1-t) x[t] + alpha^T v0
        return snn_cuda.lif(x, alpha=alpha, theta=1e6, reset="none", v0=v0, return_state=True,
                            backend="cpp")[1][0]  # fmt: skip

    assert torch.autograd.gradcheck(final_potential, (x, v0, alpha))


def _opcheck_samples(device):
    x = torch.rand(5, 2, 3, dtype=torch.float32, device=device) * 2
    acc = dict(dtype=torch.float32, device=device)
    alpha, theta = torch.full((2, 3), 0.5, **acc), torch.full((2, 3), 0.8, **acc)
    v0 = torch.rand(2, 3, device=device)
    return [
        (x.requires_grad_(), alpha, theta, None, None, "hard", 0.0, None, 1.0, False, "atan", 2.0, True),
        (x.detach(), alpha.requires_grad_(), theta.requires_grad_(), v0.requires_grad_(), v0.clone(), "soft",
         0.0, 0.9, 0.5, True, "gaussian", 0.4, True),
        (x.detach(), alpha.detach(), theta.detach(), None, None, "none", 0.0, None, 1.0, False, "triangle", 1.0,
         False),
        # batch-first data made time-major by a transpose: dense but not contiguous (outputs are contiguous)
        (x.detach().transpose(0, 1).contiguous().transpose(0, 1).requires_grad_(), alpha, theta, None, None, "hard",
         0.0, None, 1.0, False, "atan", 2.0, True),
        # parameters over a trailing part of the state shape, repeated over the batch: per feature, and one value
        (x.detach(), alpha[0].clone().requires_grad_(), theta[0].clone().requires_grad_(), None, None, "soft", 0.0,
         None, 1.0, False, "sigmoid", 4.0, True),
        (x.detach().requires_grad_(), alpha[0, 0].clone().requires_grad_(), theta[0, 0].clone(), None, None, "hard",
         0.0, None, 1.0, False, "atan", 2.0, True),
        # the membrane sequence as an output, with and without a backward to follow
        (x.detach().requires_grad_(), alpha, theta.detach().requires_grad_(), v0.detach(), None, "soft", 0.0, 0.8,
         1.0, False, "atan", 2.0, True, True),
        (x.detach(), alpha.detach(), theta.detach(), None, None, "hard", 0.1, None, 1.0, False, "triangle", 1.0,
         False, True),
    ]  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("index", range(8))
def test_opcheck_forward(device, index):
    torch.library.opcheck(torch.ops.snn_cuda.lif_fwd.default, _opcheck_samples(device)[index])


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_backward(device):
    x = torch.rand(5, 2, 3, device=device)
    h = torch.rand(5, 2, 3, device=device) * 2
    alpha, theta = torch.full((2, 3), 0.5, device=device), torch.full((2, 3), 0.8, device=device)
    # from the saved h everywhere; from x (h recomputed) on the CPU
    saved = [(h, None)] + ([(None, x)] if device == "cpu" else [])
    # the incoming gradient contiguous, or transposed (the spikes were made batch-first after the op)
    grads = [torch.randn_like(x), torch.randn(2, 5, 3, device=device).transpose(0, 1)]
    # parameters per neuron, per feature (repeated over the batch) and one for all
    params = [(alpha, theta), (alpha[0], theta[0]), (alpha[0, 0], theta[0, 0])]
    for (h_saved, x_saved), param_grads, grad_spikes, (a, th) in itertools.product(
        saved, (False, True), grads, params
    ):
        args = (grad_spikes, torch.randn_like(alpha), None, h_saved, x_saved, a, th, torch.rand_like(alpha), None,
                "hard", 0.0, None, 1.0, False, "sigmoid", 4.0, param_grads)  # fmt: skip
        torch.library.opcheck(torch.ops.snn_cuda.lif_bwd.default, args)
        # with a gradient for the membrane sequence (transposed like the second grad_spikes)
        torch.library.opcheck(torch.ops.snn_cuda.lif_bwd.default, (*args, grads[1].clone()))


@pytest.mark.parametrize("reset", ["hard", "soft", "none"])
@pytest.mark.parametrize("gamma", [None, 0.8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T", [1, 7, 300])
def test_cpu_backward_recompute_equals_saved_h(gen, reset, gamma, dtype, T):
    """The CPU backward from x (h recomputed per block in cache) gives bit for bit the gradients of the backward
    from the h the forward stored: the recompute runs the same steps. N spans several recompute blocks and a
    partial one (at T = 300 a block is 192 float32 or 64 float64 neurons)."""
    N = 700
    x = (torch.rand(T, N, generator=gen, dtype=dtype) * 1.5).contiguous()
    acc = dict(dtype=dtype)
    alpha = torch.rand(N, generator=gen, **acc) * 0.5 + 0.4
    theta = torch.rand(N, generator=gen, **acc) * 0.5 + 0.5
    v0 = torch.rand(N, generator=gen, dtype=dtype)
    r0 = torch.rand(N, generator=gen, dtype=dtype) if gamma is not None else None
    config = (reset, 0.1, gamma, 0.7, False, "atan", 2.0)
    h = torch.ops.snn_cuda.lif_fwd(x, alpha, theta, v0, r0, *config, True)[3]
    grad_spikes, grad_v, grad_r = torch.randn_like(x), torch.randn_like(v0), torch.randn_like(v0)
    for param_grads, grad_v_seq in ((False, None), (True, None), (True, torch.randn_like(x))):
        common = (alpha, theta, v0, r0, *config, param_grads, grad_v_seq)
        from_h = torch.ops.snn_cuda.lif_bwd(grad_spikes, grad_v, grad_r, h, None, *common)
        from_x = torch.ops.snn_cuda.lif_bwd(grad_spikes, grad_v, grad_r, None, x, *common)
        for a, b in zip(from_h, from_x, strict=True):
            assert torch.equal(a, b)


def test_autograd_formula_from_saved_h_equals_recompute(gen):
    """The autograd formula (csrc/torch/autograd.cpp) keeps h, an output of the op, when the forward stores it (the
    CUDA path) and x otherwise (the CPU op's path); through autograd, both give bit for bit the same gradients,
    for x, the parameters and both initial states."""
    x = (torch.rand(9, 3, 5, generator=gen) * 1.5).requires_grad_()
    alpha = (torch.rand(5, generator=gen) * 0.5 + 0.4).requires_grad_()
    theta = (torch.rand(5, generator=gen) * 0.5 + 0.5).requires_grad_()
    v0, r0 = (torch.rand(3, 5, generator=gen).requires_grad_() for _ in range(2))
    weights = torch.randn(9, 3, 5, generator=gen)
    grads = []
    for store_h in (True, False):
        spikes, v_last, r_last, h, v = torch.ops.snn_cuda.lif_fwd(
            x, alpha, theta, v0, r0, "soft", 0.0, 0.8, 0.7, False, "atan", 2.0, store_h, True
        )
        assert h.numel() == (x.numel() if store_h else 0)
        loss = (spikes * weights).sum() + v_last.sum() + 0.5 * r_last.sum() + (v * weights.flip(0)).sum()
        grads.append(torch.autograd.grad(loss, (x, alpha, theta, v0, r0)))
    for name, a, b in zip(("x", "alpha", "theta", "v0", "r0"), *grads, strict=True):
        assert a.abs().sum() > 0 and torch.equal(a, b), name


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("compile_backend", ["aot_eager", "inductor"])
def test_torch_compile_matches_eager(gen, device, compile_backend):
    layer = snn_cuda.LIF((16,), alpha=0.7, theta=0.5, learn_alpha=True, learn_theta=True,
                         backend=KERNEL_BACKEND[device])  # fmt: skip
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), layer).to(device)
    x = torch.randn(6, 4, 8, generator=gen).to(device)
    (eager_out, eager_grads), (compiled_out, compiled_grads) = eager_and_compiled_step(model, x, compile_backend)
    assert torch.equal(eager_out, compiled_out)
    for a, b in zip(eager_grads, compiled_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("compile_backend", ["aot_eager", "inductor"])
def test_torch_compile_matches_eager_on_transposed_tensors(gen, device, compile_backend):
    layer = snn_cuda.LIF((16,), alpha=0.7, theta=0.5, learn_alpha=True, backend=KERNEL_BACKEND[device])
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), BatchFirst(layer)).to(device)
    x = torch.randn(4, 6, 8, generator=gen).to(device)
    (eager_out, eager_grads), (compiled_out, compiled_grads) = eager_and_compiled_step(model, x, compile_backend)
    assert torch.equal(eager_out, compiled_out)
    for a, b in zip(eager_grads, compiled_grads, strict=True):
        torch.testing.assert_close(a, b)


class SpikesAndMembrane(torch.nn.Module):
    """A Linear then a LIF layer that returns its membrane sequence, both outputs in one tensor."""

    def __init__(self, backend):
        super().__init__()
        self.linear = torch.nn.Linear(8, 16)
        self.lif = snn_cuda.LIF((16,), alpha=0.7, theta=0.5, reset="soft", learn_alpha=True, learn_theta=True,
                                return_membrane=True, backend=backend)  # fmt: skip

    def forward(self, x):
        return torch.cat(self.lif(self.linear(x)))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_of_the_membrane_output_matches_eager(gen, device):
    """The fake kernel sizes the membrane sequence as the kernel does: compiled, it equals eager, gradients too."""
    model = SpikesAndMembrane(KERNEL_BACKEND[device]).to(device)
    x = torch.randn(6, 4, 8, generator=gen).to(device)
    (eager_out, eager_grads), (compiled_out, compiled_grads) = eager_and_compiled_step(model, x, "aot_eager")
    assert torch.equal(eager_out, compiled_out)
    for a, b in zip(eager_grads, compiled_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_takes_numbers_that_change_between_calls(gen, device):
    """Dynamo makes a number argument that changes between calls symbolic (a SymFloat) from the second call on:
    the argument checks take it, still refuse a bad value, and the results equal eager ones."""
    backend = KERNEL_BACKEND[device]
    x = torch.randn(6, 4, 8, generator=gen).to(device)
    compiled = torch.compile(lambda x, alpha, theta: snn_cuda.lif(x, alpha=alpha, theta=theta, backend=backend),
                             backend="aot_eager", fullgraph=True)  # fmt: skip
    for alpha, theta in ((0.9, 0.3), (0.8, 0.4), (0.7, 0.5)):
        assert torch.equal(compiled(x, alpha, theta), snn_cuda.lif(x, alpha=alpha, theta=theta, backend=backend))
    with pytest.raises(Exception, match=r"alpha must lie in \[0.0, 1.0\], got 1.5"):
        compiled(x, 1.5, 0.5)
    with pytest.raises(Exception, match="theta must be finite, got nan"):
        compiled(x, 0.5, float("nan"))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_of_a_stateful_module_carries_the_state(gen, device):
    eager = snn_cuda.LIF((8,), alpha=0.8, theta=0.6, stateful=True, backend=KERNEL_BACKEND[device])
    compiled = torch.compile(copy.deepcopy(eager), backend="aot_eager", fullgraph=True)  # its own state
    for _ in range(3):
        x = torch.rand(5, 4, 8, generator=gen).to(device)
        assert torch.equal(compiled(x), eager(x))
    assert torch.equal(compiled._orig_mod.v, eager.v)


def test_module_state_follows_to_and_dtype_casts(gen):
    layer = snn_cuda.LIF((5,), alpha=0.8, theta=0.6, gamma=0.7, stateful=True, backend="cpp")
    x = torch.rand(6, 3, 5, generator=gen)
    layer(x[:3])
    layer.double()
    assert layer.v.dtype == layer.r.dtype == torch.float64
    whole = snn_cuda.LIF((5,), alpha=0.8, theta=0.6, gamma=0.7, stateful=True, backend="cpp")
    torch.testing.assert_close(layer(x[3:].double()), whole(x)[3:].double())
    layer.to("meta")  # a device move (meta stands in for another device here)
    assert layer.v.device.type == layer.r.device.type == "meta"


def test_module_state_is_carried_and_reset(gen):
    layer = snn_cuda.LIF((5,), alpha=0.8, theta=0.6, gamma=0.7, stateful=True, backend="cpp")
    x = torch.rand(10, 3, 5, generator=gen)
    whole = snn_cuda.lif(x, alpha=layer.alpha, theta=layer.theta, gamma=0.7, backend="cpp")
    halves = torch.cat([layer(x[:4]), layer(x[4:])])
    assert torch.equal(whole, halves)
    assert layer.v is not None and not layer.v.requires_grad
    layer.reset_state()
    assert torch.equal(layer(x[:4]), whole[:4])
    with pytest.raises(ValueError, match="reset_state"):
        layer(x[:, :2])


@pytest.mark.parametrize("use_reentrant", [False, True])
@pytest.mark.parametrize(
    "make",
    [
        lambda: snn_cuda.LIF((5,), alpha=0.8, theta=0.6, learn_alpha=True, stateful=True, backend="cpp"),
        lambda: snn_cuda.IIRSynapse((5,), snn_cuda.dual_exp(4, 1), initial_state="preserved", backend="cpp"),
    ],
)
def test_stateful_modules_refuse_the_recomputation_of_activation_checkpointing(gen, make, use_reentrant):
    """torch.utils.checkpoint runs the forward again in the backward pass, where a carried state has advanced:
    the gradients were silently wrong (grad x off by 0.14 for the LIF). Refused; a layer without a carried state
    is checkpointed as usual, with the gradients of a plain call."""
    from torch.utils.checkpoint import checkpoint

    layer = make()
    x = torch.rand(6, 3, 5, generator=gen) * 2
    layer(x)
    inputs = x.clone().requires_grad_()
    out = checkpoint(layer, inputs, use_reentrant=use_reentrant)
    with pytest.raises(RuntimeError, match="carries its state across calls and was called during a backward pass"):
        out.sum().backward()
    # also with gradients off inside the checkpointed block (a frozen stateful encoder): its recomputation would
    # start from the advanced state all the same
    frozen = make()
    frozen(x)

    def block(inputs):
        with torch.no_grad():
            encoded = frozen(inputs)
        return encoded * inputs

    out = checkpoint(block, x.clone().requires_grad_(), use_reentrant=use_reentrant)
    with pytest.raises(RuntimeError, match="carries its state across calls and was called during a backward pass"):
        out.sum().backward()
    plain = make()
    if isinstance(plain, snn_cuda.LIF):
        plain.stateful = False
    else:
        plain.initial_state = "zero"
    grads = []
    for run in (plain, lambda inputs: checkpoint(plain, inputs, use_reentrant=use_reentrant)):
        plain.zero_grad()
        run(x.clone().requires_grad_()).sum().backward()  # the reentrant checkpoint takes .backward() only
        grads.append(next(plain.parameters()).grad.clone())
    assert torch.equal(grads[1], grads[0]) and grads[0].abs().sum() > 0


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_module_state_kept_under_inference_mode_trains_on(gen, backend):
    """A state kept from a call under torch.inference_mode() (evaluation) is an inference tensor, which autograd
    cannot save: the next call outside that mode starts from a copy of it, with the same numbers."""
    layer = snn_cuda.LIF((5,), alpha=0.8, theta=0.6, gamma=0.7, learn_alpha=True, stateful=True, backend=backend)
    x = torch.rand(10, 3, 5, generator=gen) * 2
    whole = snn_cuda.lif(x, alpha=layer.alpha.detach(), theta=layer.theta, gamma=0.7, backend=backend)
    with torch.inference_mode():
        layer(x[:4])
    assert layer.v.is_inference()
    tail = layer(x[4:].requires_grad_())
    tail.sum().backward()
    assert torch.equal(tail, whole[4:])
    assert layer.alpha.grad is not None and not layer.v.is_inference()


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_module_returns_the_membrane_of_a_readout(gen, backend):
    """A readout layer of non-spiking neurons (no reset, a threshold never reached): the module returns the spikes
    (none) and the membrane sequence, which is the leaky integral of the input; its learnable decay trains on a
    loss of the membrane alone, with the gradient of the same call on the reference, and the carried state
    continues it across calls. (alpha = 0.75 is exact in the module's float32 parameter.)"""
    x = torch.rand(6, 2, 4, generator=gen, dtype=torch.float64)
    readout = snn_cuda.LIF((4,), alpha=0.75, theta=1e9, reset="none", learn_alpha=True, return_membrane=True,
                           stateful=True, backend=backend).double()  # fmt: skip
    spikes, v = readout(x)
    assert not spikes.any()
    expected, acc = [], torch.zeros(2, 4, dtype=torch.float64)
    for x_t in x:
        acc = 0.75 * acc + x_t
        expected.append(acc)
    torch.testing.assert_close(v, torch.stack(expected))
    v.mean().backward()
    alpha_ref = torch.full((4,), 0.75, dtype=torch.float64, requires_grad=True)
    _, v_ref = snn_cuda.lif(x, alpha=alpha_ref, theta=1e9, reset="none", return_membrane=True, backend="torch")
    v_ref.mean().backward()
    assert (readout.alpha.grad > 0).all()
    torch.testing.assert_close(readout.alpha.grad, alpha_ref.grad)
    _, v_next = readout(x)
    whole = snn_cuda.lif(torch.cat([x, x]), alpha=0.75, theta=1e9, reset="none", return_membrane=True)[1]
    torch.testing.assert_close(v_next, whole[6:])
    assert "return_membrane=True" in repr(readout)


def test_module_pickled_before_the_membrane_option_still_runs(gen, tmp_path):
    """A LIF module saved whole before return_membrane existed has no such attribute: it loads and returns spikes."""
    layer = snn_cuda.LIF((5,), alpha=0.8, theta=0.6, backend="cpp")
    del layer.return_membrane  # as such a pickle holds it
    torch.save(layer, tmp_path / "lif.pt")
    loaded = torch.load(tmp_path / "lif.pt", weights_only=False)
    x = torch.rand(6, 3, 5, generator=gen) * 2
    assert torch.equal(loaded(x), snn_cuda.lif(x, alpha=0.8, theta=0.6))


def test_module_learns_per_feature_parameters(gen):
    """Per-feature learnable alpha and theta get the gradients of the same module on the reference."""
    x = torch.rand(8, 3, 5, generator=gen, dtype=torch.float64) * 2
    grads = []
    for backend in ("cpp", "torch"):
        layer = snn_cuda.LIF((5,), learn_alpha=True, learn_theta=True, backend=backend).double()
        layer(x).sum().backward()
        assert layer.alpha.grad.shape == (5,) and layer.theta.grad.shape == (5,)
        grads.append((layer.alpha.grad, layer.theta.grad))
    assert grads[0][1].abs().sum() > 0 and grads[0][0].abs().sum() > 0
    for name, fused, ref in zip(("alpha", "theta"), *grads, strict=True):
        assert_close(name, fused, ref, torch.float64, summed=True)


class SigmoidDecay(torch.nn.Module):
    """alpha = sigmoid(w), w set to logit(alpha) when registered."""

    def forward(self, w):
        return torch.sigmoid(w)

    def right_inverse(self, alpha):
        return torch.logit(alpha)


def test_module_parameters_take_torch_parametrizations(gen):
    """A decay learned through alpha = sigmoid(w) (torch.nn.utils.parametrize, as the README says): the kernel's
    gradient reaches w through the sigmoid (the chain rule on the op's own alpha gradient), as on the reference."""
    x = torch.rand(8, 3, 5, generator=gen, dtype=torch.float64) * 2
    grads = []
    for backend in ("cpp", "torch"):
        layer = snn_cuda.LIF((5,), alpha=0.6, learn_alpha=True, backend=backend).double()
        torch.nn.utils.parametrize.register_parametrization(layer, "alpha", SigmoidDecay())
        w = layer.parametrizations.alpha.original
        initial = torch.full((5,), 0.6).double()  # the module's float32 parameter, then cast
        torch.testing.assert_close(layer.alpha, initial)  # the value it had
        layer(x).sum().backward()
        grads.append(w.grad)
    alpha = initial.clone().requires_grad_()
    (alpha_grad,) = torch.autograd.grad(snn_cuda.lif(x, alpha=alpha, theta=1.0, backend="cpp").sum(), alpha)
    assert grads[0].abs().sum() > 0
    assert_close("w", grads[0], alpha_grad * initial * (1 - initial), torch.float64, summed=True)  # sigmoid'
    assert_close("w vs reference", grads[0], grads[1], torch.float64, summed=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_the_16_bit_kernels(gen, dtype):
    """Under torch.autocast("cpu") a Linear hands the spiking modules 16-bit activations: the IIR synapse and the LIF
    neuron run their 16-bit CPU kernels (a fallback to the reference would warn), return that dtype, give their
    float32 parameters float32 gradients, and match the same calls made outside autocast on the same input."""
    linear = torch.nn.Linear(24, 40)
    synapse = snn_cuda.IIRSynapse((40,), snn_cuda.dual_exp(4.0, 1.0))
    lif = snn_cuda.LIF((40,), alpha=0.8, theta=0.3, learn_alpha=True, learn_theta=True)
    parameters = [*synapse.parameters(), *lif.parameters()]
    x = torch.rand(9, 3, 24, generator=gen)

    def run(h):
        for p in parameters:
            p.grad = None
        spikes = lif(synapse(h))
        (spikes.float() * torch.arange(40.0)).sum().backward()
        return spikes, [p.grad for p in parameters]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.autocast("cpu", dtype=dtype):
            h = linear(x)
            spikes, grads = run(h)
        plain_spikes, plain_grads = run(h.detach())
    assert h.dtype == spikes.dtype == dtype
    assert 0 < spikes.float().mean() < 1
    assert all(g.dtype == torch.float32 for g in grads)
    torch.testing.assert_close(spikes, plain_spikes, rtol=0, atol=0)
    for g, plain in zip(grads, plain_grads, strict=True):
        torch.testing.assert_close(g, plain, rtol=0, atol=0)


class RecordLifForward(TorchDispatchMode):
    """Records the h output of every snn_cuda::lif_fwd call (empty when the op saves nothing for a backward)."""

    def __init__(self):
        super().__init__()
        self.h_sizes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.snn_cuda.lif_fwd.default:
            self.h_sizes.append(out[3].numel())
        return out


@pytest.mark.parametrize("device", DEVICES)
def test_no_grad_call_stores_nothing_and_matches(device):
    """Under no_grad the op keeps no graph and writes no h for a backward, even for inputs that require grad."""
    x = (torch.rand(9, 4, 7, device=device) * 2).requires_grad_()
    alpha = torch.full((7,), 0.5, device=device, requires_grad=True)
    with torch.no_grad(), RecordLifForward() as record:
        fast = snn_cuda.lif(x, alpha=alpha, backend=KERNEL_BACKEND[device])
    assert record.h_sizes == [0]
    assert fast.grad_fn is None and not fast.requires_grad
    assert torch.equal(fast, snn_cuda.lif(x.detach(), alpha=alpha.detach(), backend="torch"))
    if device == "cuda":  # the CUDA kernel's backward reads h: with grad enabled it is written
        with RecordLifForward() as record:
            snn_cuda.lif(x, alpha=alpha, backend="cuda")
        assert record.h_sizes == [x.numel()]


def test_auto_backend_and_forced_reference(monkeypatch):
    x = torch.rand(3, 4, dtype=torch.float64)
    assert torch.equal(snn_cuda.lif(x), snn_cuda.lif(x, backend="torch"))
    monkeypatch.setenv(snn_cuda._ext.FORCE_REFERENCE_ENV, "1")
    assert snn_cuda.ops._backend.select("lif", "auto", x) == "torch"
    monkeypatch.delenv(snn_cuda._ext.FORCE_REFERENCE_ENV)
    assert snn_cuda.ops._backend.select("lif", "auto", x) == "kernel"
    for value, forced in (("true", True), (" ON", True), ("off", False), ("no", False), ("0", False)):
        monkeypatch.setenv(snn_cuda._ext.FORCE_REFERENCE_ENV, value)
        assert snn_cuda._ext.reference_forced() == forced, value
    monkeypatch.setenv(snn_cuda._ext.FORCE_REFERENCE_ENV, "maybe")
    with pytest.raises(ValueError, match="SNN_CUDA_FORCE_REFERENCE='maybe': expected 1 / true"):
        snn_cuda.lif(x)
    monkeypatch.delenv(snn_cuda._ext.FORCE_REFERENCE_ENV)
    # A dtype without a CPU kernel (every float dtype has one: half is taken out of the list here): auto falls back
    # to the reference with a warning, "cpp" refuses.
    monkeypatch.setattr(snn_cuda.ops._backend, "_warned", set())
    monkeypatch.setitem(snn_cuda.ops._backend.KERNEL_DTYPES, "cpu", (torch.float32, torch.float64, torch.bfloat16))
    half = x.half()
    with pytest.warns(UserWarning, match="snn_cuda.lif: using the pure-torch reference"):
        assert snn_cuda.lif(half).dtype == torch.float16
    with pytest.raises(RuntimeError, match="does not implement torch.float16"):
        snn_cuda.lif(half, backend="cpp")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(x=torch.tensor(1.0)), ValueError, "x must have shape"),
        (dict(x=torch.zeros(0, 3)), ValueError, "T = x.shape"),
        (dict(x=torch.zeros(3, 4, dtype=torch.int64)), TypeError, "floating-point"),
        (dict(x=[1.0, 2.0]), TypeError, "x must be a torch.Tensor"),
        (dict(x=torch.rand(3, 2, 4).to_sparse()), TypeError, r"x must be a dense .* use x.to_dense\(\)"),
        (dict(theta=torch.ones(4).to_sparse()), TypeError, "theta must be a dense"),
        (dict(v0=torch.zeros(2, 4).to_sparse()), TypeError, "v0 must be a dense"),
        (dict(alpha=torch.ones(3)), ValueError, "alpha of shape"),
        (dict(theta=torch.ones(2, 1, 1)), ValueError, "theta of shape"),
        (dict(alpha=1.5), ValueError, r"alpha must lie in \[0.0, 1.0\]"),
        (dict(alpha=-0.1), ValueError, "alpha must lie"),
        (dict(theta=float("nan")), ValueError, "theta must be finite"),
        (dict(reset="hardest"), ValueError, "reset must be one of"),
        (dict(surrogate="relu"), ValueError, "surrogate must be one of"),
        (dict(surrogate_param=0.0), ValueError, "surrogate_param must be a positive"),
        (dict(surrogate_param=-1.0), ValueError, "surrogate_param must be a positive"),
        (dict(surrogate_param="a"), TypeError, "surrogate_param must be a number"),
        (dict(v0=torch.zeros(4, 5)), ValueError, "v0 must have shape"),
        (dict(v0=torch.zeros(2, 4, dtype=torch.float64)), TypeError, "v0 has dtype"),
        (dict(r0=torch.zeros(2, 4)), ValueError, "r0 is given but gamma is None"),
        (dict(r0=torch.zeros(4, 2), gamma=0.5), ValueError, "r0 must have shape"),
        (dict(r0=torch.zeros(2, 4, dtype=torch.float64), gamma=0.5), TypeError, "r0 has dtype"),
        (dict(theta=torch.ones(4, dtype=torch.int64)), TypeError, "theta must be a floating-point tensor"),
        # Another device than x's (meta stands in for a GPU on CPU-only machines: the same check).
        (dict(alpha=torch.ones(4, device="meta")), ValueError, "alpha is on meta but x is on cpu"),
        (dict(theta=torch.ones(4, device="meta")), ValueError, "theta is on meta but x is on cpu"),
        (dict(v0=torch.zeros(2, 4, device="meta")), ValueError, "v0 is on meta but x is on cpu"),
        (dict(r0=torch.zeros(2, 4, device="meta"), gamma=0.5), ValueError, "r0 is on meta but x is on cpu"),
        (dict(backend="gpu"), ValueError, "backend must be one of"),
        (dict(backend="cuda"), ValueError, "backend='cuda' runs on cuda tensors"),
        # Numbers that are finite as Python floats but not in float32, where x is computed: 0 or inf there.
        (dict(surrogate_param=1e-46), ValueError, "surrogate_param = 1e-46 is below .* normal torch.float32"),
        (dict(theta=1e39), ValueError, "theta = 1e.* overflows torch.float32"),
        (dict(v_reset=-1e39), ValueError, "v_reset = .* overflows"),
        (dict(gamma=1e39), ValueError, "gamma = .* overflows"),
        (dict(x=torch.rand(3, 2, 4, dtype=torch.bfloat16), rho=1e39), ValueError, "rho = .* overflows torch.float32"),
        (dict(detach_reset="no"), TypeError, "detach_reset must be True or False"),
        (dict(return_state=None), TypeError, "return_state must be True or False"),
        (dict(return_membrane=1), TypeError, "return_membrane must be True or False"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    args = dict(x=torch.rand(3, 2, 4))
    args.update(kwargs)
    x = args.pop("x")
    with pytest.raises(error, match=match):
        snn_cuda.lif(x, **args)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(shape=3), TypeError, "shape must be a tuple of positive ints"),
        (dict(shape=(3, 0)), TypeError, "shape must be a tuple"),
        (dict(alpha=2.0), ValueError, "alpha must lie"),
        (dict(reset="bogus"), ValueError, "reset must be one of"),
        (dict(surrogate="relu"), ValueError, "surrogate must be one of"),
        (dict(surrogate_param=-1.0), ValueError, "surrogate_param must be a positive"),
        (dict(gamma=float("nan")), ValueError, "gamma must be finite"),
        (dict(v_reset="0"), TypeError, "v_reset must be a number"),
        (dict(backend="gpu"), ValueError, "backend must be one of"),
        (dict(learn_alpha="False"), TypeError, "learn_alpha must be True or False, got str"),
        (dict(stateful=1), TypeError, "stateful must be True or False, got int"),
        (dict(return_membrane="yes"), TypeError, "return_membrane must be True or False, got str"),
        (dict(detach_reset=None), TypeError, "detach_reset must be True or False, got NoneType"),
        # stored as float32 tensors: torch.full would make them inf
        (dict(theta=1e39), ValueError, "theta = 1e.* overflows torch.float32"),
        (dict(shape=(4,), theta=-1e39, learn_theta=True), ValueError, "theta = .* overflows torch.float32"),
    ],
)
def test_module_checks_its_options_when_built(kwargs, error, match):
    with pytest.raises(error, match=match):
        snn_cuda.LIF(**kwargs)


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_extreme_numbers_that_float64_holds_are_taken_for_float64_input(backend):
    x = torch.rand(3, 2, 4, dtype=torch.float64)
    spikes = snn_cuda.lif(x, theta=1e39, surrogate="rectangular", surrogate_param=1e-300, backend=backend)
    assert spikes.sum() == 0
    _, (v_last, _) = snn_cuda.lif(x, alpha=0.0, theta=-1.0, v_reset=1e39, return_state=True, backend=backend)
    assert torch.all(v_last == 1e39)
    snn_cuda.lif(x, detach_reset=np.bool_(True), backend=backend)  # numpy's booleans are flags too


def test_numpy_scalars_are_numbers():
    x = torch.rand(5, 2, 4) * 2
    expected = snn_cuda.lif(x, alpha=0.75, theta=0.5, surrogate_param=1.5)
    got = snn_cuda.lif(x, alpha=np.float32(0.75), theta=np.float64(0.5), surrogate_param=np.float32(1.5))
    assert torch.equal(got, expected)
    assert torch.equal(snn_cuda.LIF(alpha=np.float32(0.75), theta=np.int64(1))(x), snn_cuda.lif(x, alpha=0.75))


@pytest.mark.parametrize("reset, gamma", [("hard", None), ("none", 0.8)])
def test_double_backward_of_the_kernel_is_refused(reset, gamma):
    """The compiled backward computes first derivatives only: differentiating it again raises, never returns
    zeros; create_graph=True for a first derivative still works, and the reference supports both."""
    x = torch.randn(6, 3, 4, dtype=torch.float64, requires_grad=True)
    options = dict(alpha=0.8, theta=0.2, reset=reset, gamma=gamma, surrogate="sigmoid")
    (g,) = torch.autograd.grad(snn_cuda.lif(x, backend="cpp", **options).sum(), x, create_graph=True)
    (g_ref,) = torch.autograd.grad(snn_cuda.lif(x, backend="torch", **options).sum(), x, create_graph=True)
    torch.testing.assert_close(g, g_ref)
    with pytest.raises(RuntimeError, match="first derivatives only.*backend='torch'"):
        torch.autograd.grad(g.sum(), x)
    assert torch.autograd.grad(g_ref.sum(), x)[0].shape == x.shape


def test_torch_func_transforms(gen):
    """As the README says: torch.func.grad and jvp run the reference (its surrogate spike is a setup_context
    Function), which "auto" takes under them and an explicit compiled backend refuses naming it; vmap runs every
    backend, the compiled ops through PyTorch's per-sample fallback, hence the warning."""
    x = torch.rand(6, 3, 4, generator=gen, dtype=torch.float64) * 2
    options = dict(alpha=0.8, theta=0.6, gamma=0.5, surrogate="sigmoid")
    x_ = x.clone().requires_grad_()
    (snn_cuda.lif(x_, backend="cpp", **options) * x_).sum().backward()
    for backend in ("torch", "auto"):
        grad = torch.func.grad(lambda x, b=backend: (snn_cuda.lif(x, backend=b, **options) * x).sum())(x)
        torch.testing.assert_close(grad, x_.grad)
    with pytest.raises(RuntimeError, match="backend='cpp' cannot run snn_cuda.lif under torch.func's Grad"):
        torch.func.grad(lambda x: snn_cuda.lif(x, backend="cpp", **options).sum())(x)
    tangent = torch.rand(6, 3, 4, generator=gen, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="under torch.func's Jvp transform"):
        torch.func.jvp(lambda x: snn_cuda.iir_filter(x, 0.5, 0.1, 1.0, backend="cpp"), (x,), (tangent,))
    _, jvp_auto = torch.func.jvp(lambda x: snn_cuda.iir_filter(x, 0.5, 0.1, 1.0), (x,), (tangent,))
    torch.testing.assert_close(jvp_auto, snn_cuda.iir_filter(tangent, 0.5, 0.1, 1.0))  # a linear filter
    expected = snn_cuda.lif(x, backend="cpp", **options)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*performance drop.*")
        for backend in ("torch", "cpp"):
            per_sample = functools.partial(snn_cuda.lif, backend=backend, **options)
            assert torch.equal(torch.vmap(per_sample, in_dims=1, out_dims=1)(x), expected)


def test_forward_mode_dual_tensors_take_the_reference(gen):
    """Forward-mode AD (torch.autograd.forward_ad, and jacobian's forward-mode strategy, which uses it under vmap):
    the compiled ops' C++ formula has no forward derivative and PyTorch would drop the tangent without a word, so
    "auto" takes the reference and an explicit compiled backend refuses, as under torch.func's transforms."""
    import torch.autograd.forward_ad as fwad
    from torch.autograd.functional import jacobian

    x = torch.rand(6, 3, 4, generator=gen, dtype=torch.float64) * 2
    tangent = torch.rand(6, 3, 4, generator=gen, dtype=torch.float64)
    a1 = torch.full((4,), 0.7, dtype=torch.float64)
    alpha = torch.full((4,), 0.8, dtype=torch.float64)
    calls = {  # each op with the tangent on its input and on a parameter
        "lif x": lambda t, b: snn_cuda.lif(t, alpha=0.8, theta=0.6, gamma=0.5, surrogate="sigmoid", backend=b,
                                           return_membrane=True)[1],
        "lif alpha": lambda t, b: snn_cuda.lif(x, alpha=t, theta=0.6, reset="none", backend=b,
                                               return_membrane=True)[1],
        "iir x": lambda t, b: snn_cuda.iir_filter(t, 0.5, 0.1, 1.0, backend=b),
        "iir a1": lambda t, b: snn_cuda.iir_filter(x, t, 0.1, 1.0, backend=b),
    }  # fmt: skip
    primals = {"lif x": (x, tangent), "lif alpha": (alpha, torch.ones(4, dtype=torch.float64)), "iir x": (x, tangent),
               "iir a1": (a1, torch.ones(4, dtype=torch.float64))}  # fmt: skip
    for name, call in calls.items():
        primal, direction = primals[name]
        with fwad.dual_level():
            expected = fwad.unpack_dual(call(fwad.make_dual(primal, direction), "torch")).tangent
            got = fwad.unpack_dual(call(fwad.make_dual(primal, direction), "auto")).tangent
            with pytest.raises(RuntimeError, match="backend='cpp' cannot run .* on forward-mode dual tensors"):
                call(fwad.make_dual(primal, direction), "cpp")
        assert expected is not None and expected.abs().sum() > 0, name
        torch.testing.assert_close(got, expected, msg=name)
        # the same Jacobian by forward and reverse mode through the default backend
        forward = jacobian(lambda t, c=call: c(t, "auto"), primal, vectorize=True, strategy="forward-mode")
        torch.testing.assert_close(forward, jacobian(lambda t, c=call: c(t, "auto"), primal), msg=name)
    # and compiled: the tangent is not dropped there either (the op and the LIF's surrogate spike leave the graph)
    for name in ("lif x", "iir x"):
        torch._dynamo.reset()
        compiled = torch.compile(lambda t, c=calls[name]: c(t, "auto"), backend="aot_eager")
        with fwad.dual_level():
            expected = fwad.unpack_dual(calls[name](fwad.make_dual(x, tangent), "torch")).tangent
            got = fwad.unpack_dual(compiled(fwad.make_dual(x, tangent))).tangent
        assert got is not None, name
        torch.testing.assert_close(got, expected, msg=name)


def test_input_and_state_made_in_inference_mode_as_in_the_reference(gen):
    """An input or state made under inference mode (a frozen encoder, a warm-up chunk), used where a graph is
    recorded: autograd cannot keep an inference tensor, so both backends keep a copy of what their backward reads
    (the kernels: x and the states; the reference: v0 through alpha * v) and give the same gradients. Each was
    refused by one backend or the other before."""
    with torch.inference_mode():
        x_inf = torch.rand(6, 3, 5, generator=gen) * 2
        _, (v0, r0) = snn_cuda.lif(torch.rand(4, 3, 5, generator=gen) * 2, gamma=0.5, return_state=True)
    assert x_inf.is_inference() and v0.is_inference()
    x = (torch.rand(6, 3, 5, generator=gen) * 2).requires_grad_()
    alpha = torch.full((5,), 0.7, requires_grad=True)
    theta = torch.full((5,), 0.9, requires_grad=True)
    with torch.inference_mode():
        fixed_alpha = torch.full((5,), 0.7)  # a fixed parameter made under inference mode
    for inputs, wrt in (((x, v0, r0), (x,)), ((x, v0, r0), (x, alpha, theta)), ((x_inf, None, None), (alpha, theta)),
                        ((x_inf, v0, r0), (alpha,)), ((x, v0, r0, fixed_alpha), (x, theta))):  # fmt: skip
        grads = []
        for backend in ("cpp", "torch"):
            decay = inputs[3] if len(inputs) > 3 else alpha
            spikes = snn_cuda.lif(inputs[0], alpha=decay, theta=theta, gamma=0.5, v0=inputs[1], r0=inputs[2],
                                  backend=backend)  # fmt: skip
            grads.append(torch.autograd.grad((spikes * torch.arange(5.0)).sum(), wrt))
        for got, want in zip(*grads, strict=True):
            torch.testing.assert_close(got, want)
            assert got.abs().sum() > 0


def test_kernel_checks_arguments_directly():
    """torch.ops called directly (bypassing the Python checks) still fail with a message naming the argument."""
    x = torch.rand(3, 2, 4)
    good = torch.full((2, 4), 0.5)
    with pytest.raises(RuntimeError, match="alpha must have the shape of a trailing part of"):
        torch.ops.snn_cuda.lif_fwd(x, torch.ones(2), good, None, None, "hard", 0.0, None, 1.0, False, "atan", 2.0,
                                   False)  # fmt: skip
    with pytest.raises(RuntimeError, match="theta must have the shape of alpha"):
        torch.ops.snn_cuda.lif_fwd(x, good, torch.ones(4), None, None, "hard", 0.0, None, 1.0, False, "atan", 2.0,
                                   False)  # fmt: skip
    with pytest.raises(RuntimeError, match="theta must have dtype"):
        torch.ops.snn_cuda.lif_fwd(x, good, good.double(), None, None, "hard", 0.0, None, 1.0, False, "atan", 2.0,
                                   False)  # fmt: skip
    with pytest.raises(RuntimeError, match="reset must be one of"):
        torch.ops.snn_cuda.lif_fwd(x, good, good, None, None, "up", 0.0, None, 1.0, False, "atan", 2.0, False)
    with pytest.raises(RuntimeError, match=r"grad_v_seq must have the shape of h \[3, 2, 4\], got \[2, 4\]"):
        torch.ops.snn_cuda.lif_bwd(torch.rand_like(x), None, None, x, None, good, good, None, None, "hard", 0.0,
                                   None, 1.0, False, "atan", 2.0, False, good)  # fmt: skip
    with pytest.raises(RuntimeError, match="at least one time step"):
        torch.ops.snn_cuda.lif_fwd(x[:0], good, good, None, None, "hard", 0.0, None, 1.0, False, "atan", 2.0,
                                   False)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES[1:])
def test_cuda_kernels_name_the_tensor_left_on_the_cpu(device):
    """Any CUDA argument sends a direct torch.ops call to the CUDA kernel; a CPU x must be named, not crash."""
    x, h = torch.rand(3, 2, 4), torch.rand(3, 2, 4)
    good = torch.full((2, 4), 0.5, device=device)
    with pytest.raises(RuntimeError, match="x is on cpu but other arguments are on a CUDA device"):
        torch.ops.snn_cuda.lif_fwd(x, good, good, None, None, "hard", 0.0, None, 1.0, False, "atan", 2.0, True)
    with pytest.raises(RuntimeError, match="grad_spikes is on cpu but other arguments are on a CUDA device"):
        torch.ops.snn_cuda.lif_bwd(torch.rand_like(x), None, None, h, None, good, good, None, None, "hard", 0.0,
                                   None, 1.0, False, "atan", 2.0, False)  # fmt: skip



@pytest.mark.parametrize("device", DEVICES[1:])
def test_cuda_op_runs_on_the_current_stream_and_device(gen, device):
    """The CUDA glue launches on PyTorch's current stream, under a guard for x's device: a side stream (and, where
    there are two GPUs, the second one while the first is current) gives what the default stream gives."""
    x = (torch.rand(16, 4, 300, generator=gen) * 2).to(device)

    def run(inputs):
        inputs = inputs.clone().requires_grad_()
        spikes = snn_cuda.lif(inputs, alpha=0.8, theta=0.9, reset="soft", backend="cuda")
        return spikes, torch.autograd.grad((spikes * torch.arange(300.0, device=inputs.device)).sum(), inputs)[0]

    assert_same_on_other_streams_and_devices(run, x)


@pytest.mark.parametrize("device", DEVICES[1:])
def test_cuda_op_refuses_a_graph_without_h_when_called(device):
    """The CUDA backward reads h: a direct lif_fwd call on CUDA that records a graph with store_h=False is refused
    at the call (it failed only at backward time), while store_h=True trains as the public op does."""
    x = torch.rand(3, 2, 4, device=device, requires_grad=True)
    good = torch.full((2, 4), 0.5, device=device)
    with pytest.raises(RuntimeError, match="a call on CUDA that records a graph needs store_h=True"):
        torch.ops.snn_cuda.lif_fwd(x, good, good, None, None, "hard", 0.0, None, 1.0, False, "atan", 2.0, False)
    out = torch.ops.snn_cuda.lif_fwd(x, good, good, None, None, "hard", 0.0, None, 1.0, False, "atan", 2.0, True)
    out[0].sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape

_ISA_SCRIPT = """
import itertools, sys, torch, snn_cuda
gen = torch.Generator().manual_seed(3)
x32 = torch.rand(17, 3, 1000, generator=gen) * 1.6 - 0.3
alpha = (torch.rand(1000, generator=gen) * 0.9).requires_grad_()
a1, a2, b = (torch.full((1000,), c, requires_grad=True) for c in snn_cuda.dual_exp(4, 1))
outputs = []
for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
    x = x32.to(dtype).requires_grad_()
    weights = (torch.arange(x.numel()) % 7 - 3.0).view_as(x).to(dtype)  # exact in every build, unlike linspace
    # Every kernel instantiation: reset x trace x surrogate x with/without parameter gradients (a float alpha
    # has none), and detach_reset both ways.
    for reset, gamma, surrogate, detach in itertools.product(
        ("hard", "soft", "none"), (None, 0.8), snn_cuda.surrogate.NAMES, (False, True)
    ):
        a = alpha if detach else 0.6
        s, (v, r) = snn_cuda.lif(x, alpha=a, theta=0.9, reset=reset, gamma=gamma, detach_reset=detach,
                                 surrogate=surrogate, return_state=True, backend="cpp")
        grads = torch.autograd.grad((s * weights).sum() + v.sum(), [x, alpha] if detach else [x])
        outputs += [s, v, r, *grads]
    p = snn_cuda.iir_filter(x, a1, a2, b, backend="cpp")
    outputs += [p, *torch.autograd.grad((p * weights).sum(), [x, a1, a2, b])]
torch.save(outputs, sys.argv[1])
print(torch.backends.cpu.get_cpu_capability())
"""


def test_info_names_the_build_the_kernels_run():
    """torch reports the capability asked for (ATEN_CPU_CAPABILITY), the kernels cap it at what the processor runs:
    python -m snn_cuda.info names the build they run."""
    avx2_only = ISA_FLAGS["avx2"] | {"sse2"}
    assert kernel_isa("AVX512", avx2_only, "x86_64") == "avx2"
    assert kernel_isa("AVX512", ISA_FLAGS["avx512"], "x86_64") == "avx512"
    assert kernel_isa("AVX2", ISA_FLAGS["avx512"], "x86_64") == "avx2"
    assert kernel_isa("DEFAULT", ISA_FLAGS["avx512"], "x86_64") == "baseline"
    assert kernel_isa("AVX2", {"sse2", "avx2"}, "x86_64") == "baseline"  # no F16C: a VM that hides it
    assert kernel_isa("AVX2", set(), "x86_64") is None and kernel_isa("NO AVX", set(), "aarch64") == "baseline"
    flags = cpu_flags()
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx512")
    report = subprocess.run([sys.executable, "-m", "snn_cuda.info"], env=env, capture_output=True, text=True,
                            check=True).stdout  # fmt: skip
    isa = kernel_isa("AVX512", flags, platform.machine())
    if isa is not None:
        iir = "avx2" if isa == "avx512" else isa
        assert f"CPU kernels: LIF {isa}, IIR {iir} (torch's capability: AVX512)" in report


def isa_outputs(capability: str, folder: Path) -> list[torch.Tensor]:
    path = folder / f"{capability}.pt"
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    done = subprocess.run([sys.executable, "-c", _ISA_SCRIPT, str(path)], env=env, capture_output=True, text=True,
                          check=True)  # fmt: skip
    used = done.stdout.strip().splitlines()[-1]
    assert used == capability.upper(), f"ATEN_CPU_CAPABILITY={capability} ran {used}"
    return torch.load(path)


@pytest.fixture(scope="module")
def baseline_isa_outputs(tmp_path_factory):
    return isa_outputs("default", tmp_path_factory.mktemp("isa"))


@pytest.mark.parametrize("capability", sorted(ISA_FLAGS))
def test_instruction_set_builds_agree_bitwise(capability, baseline_isa_outputs, tmp_path):
    """The CPU kernels are compiled per instruction set (baseline, AVX2, AVX-512; ATEN_CPU_CAPABILITY picks, as
    for PyTorch itself): each build this processor runs gives bitwise the baseline build's spikes, states and
    gradients, in float32, float64, float16 and bfloat16, of the LIF op in every configuration and of the IIR op
    (whose kernels run at most AVX2). A build the processor cannot run is skipped, naming the missing flags."""
    flags = cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags: cannot tell which builds this processor runs")
    missing = ISA_FLAGS[capability] - flags
    if missing:
        pytest.skip(f"this processor lacks {', '.join(sorted(missing))}: the {capability} build cannot run here")
    for a, b in zip(isa_outputs(capability, tmp_path), baseline_isa_outputs, strict=True):
        assert torch.equal(a, b), f"the {capability} build differs from the baseline build"


def test_import_without_the_extension_falls_back_with_one_warning():
    """With snn_cuda._C unloadable, import works, auto uses the reference (warning once), "cpp" says why not."""
    script = """
import sys, warnings
sys.modules["snn_cuda._C"] = None  # makes importing the compiled library fail
import torch, snn_cuda
assert not snn_cuda._ext.loaded() and "snn_cuda._C" in snn_cuda._ext.load_error()
x = torch.rand(4, 3) * 2
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = snn_cuda.lif(x)
    snn_cuda.lif(x)
assert torch.equal(out, snn_cuda.reference.lif(x))
assert len(caught) == 1 and "pure-torch reference" in str(caught[0].message), [str(w.message) for w in caught]
try:
    snn_cuda.lif(x, backend="cpp")
except RuntimeError as error:
    assert "could not be loaded" in str(error)
else:
    raise AssertionError("backend='cpp' ran without the extension")
from snn_cuda.info import report
print(report())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "NOT loaded" in done.stdout and "reference fallback" in done.stdout


def test_a_library_built_from_older_sources_is_refused_with_the_rebuild_command():
    """A stale snn_cuda._C (here a stand-in without INTERFACE_VERSION, as libraries before the check were) is not
    used: the ops fall back to the reference, which trains, and backend="cpp" names the rebuild command."""
    script = """
import sys, types, warnings
sys.modules["snn_cuda._C"] = types.ModuleType("snn_cuda._C")
import torch, snn_cuda
assert not snn_cuda._ext.loaded() and snn_cuda._ext.extension_module() is None
assert "interface 1, this package needs" in snn_cuda._ext.load_error(), snn_cuda._ext.load_error()
x = (torch.rand(4, 3) * 2).requires_grad_()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    snn_cuda.lif(x).sum().backward()
assert x.grad is not None and x.grad.abs().sum() > 0
try:
    snn_cuda.lif(x, backend="cpp")
except RuntimeError as error:
    assert "pip install --no-build-isolation -e ." in str(error), str(error)
else:
    raise AssertionError("backend='cpp' ran with a stale library")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    snn_cuda._ext.check_interface(snn_cuda._ext.extension_module())  # the library built here passes


def test_info_lists_the_loaded_kernels():
    done = subprocess.run([sys.executable, "-m", "snn_cuda.info"], capture_output=True, text=True, check=True)
    assert "compiled extension: loaded" in done.stdout
    assert "snn_cuda::lif_fwd: cpu" in done.stdout


def test_cpu_backward_scratch_is_at_most_the_threads_share_of_x():
    """The CPU backward recomputes h into a scratch block per thread: [T, its neurons] at most. It used to be
    [T, 64] whatever the thread's range, 256 MB at T = 10^6 for a 4 MB input of one neuron (peak RSS measured in
    a fresh process, one thread)."""
    script = """
import resource, torch, snn_cuda
torch.set_num_threads(1)
warm = torch.rand(1000, 1, requires_grad=True)  # pages in the code and autograd machinery the backward touches
snn_cuda.lif(warm, backend="cpp").sum().backward()
x = torch.rand(1_000_000, 1, requires_grad=True)
spikes = snn_cuda.lif(x, backend="cpp")
grad = torch.ones_like(spikes)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
spikes.backward(grad)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)  # KiB -> MiB
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    growth_mib = float(done.stdout.split()[-1])
    print(f"peak RSS growth during the backward: {growth_mib:.1f} MiB (x is 3.8 MiB)")
    # grad_x and the scratch take about 8 MiB, plus about 32 MiB the first large backward of a process pages in
    # whatever T is (40 MiB at T = 10^6, 63 at 4 x 10^6); 280 MiB before
    assert growth_mib < 128


@pytest.mark.parametrize("device", DEVICES)
def test_state_outputs_take_part_in_autograd_as_in_the_reference(device):
    """Without the trace r_last is zeros that depend on nothing: no grad_fn, in the kernels as in the reference."""
    x = torch.rand(3, 2, device=device, requires_grad=True)
    for gamma in (None, 0.5):
        flags = []
        for backend in (KERNEL_BACKEND[device], "torch"):
            _, (v_last, r_last) = snn_cuda.lif(x, gamma=gamma, return_state=True, backend=backend)
            flags.append((v_last.requires_grad, r_last.requires_grad))
        assert flags[0] == flags[1] == (True, gamma is not None), gamma


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("how", ["op", "module"])
def test_torch_compile_with_dynamic_shapes_compiles_once_for_every_batch_size(device, how):
    """Traced with symbolic shapes, neither the wrapper nor the op's autograd formula fixes x's sizes: one graph
    serves every batch size. The module's float options are symbolic then too: the surrogate's parameter check
    must take a SymFloat (math.isfinite broke the graph)."""
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()
    layer = snn_cuda.LIF((3,), alpha=0.7, theta=0.4, learn_alpha=True, surrogate="gaussian", surrogate_param=0.4,
                         backend=KERNEL_BACKEND[device]).to(device)  # fmt: skip

    def step(x, alpha):
        return snn_cuda.lif(x, alpha=alpha, theta=0.4, backend=KERNEL_BACKEND[device])

    compiled = torch.compile(step if how == "op" else layer, backend=counter, dynamic=True, fullgraph=True)
    for batch in (2, 3, 4, 5):
        x = torch.rand(5, batch, 3, device=device, requires_grad=True)
        alpha = torch.full((3,), 0.7, device=device, requires_grad=True)
        out = compiled(x, alpha) if how == "op" else compiled(x)
        assert torch.equal(out, step(x, alpha) if how == "op" else layer(x))
        out.sum().backward()
        assert x.grad.shape == x.shape
    assert counter.frame_count == 1
