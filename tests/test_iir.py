"""The fused IIR filter op against the reference (outputs, final states, every gradient), the models.md golden
values, long-sequence precision, registration checks (gradcheck, opcheck, torch.compile), argument errors, and
the IIRSynapse module and snn-iir layer built on it."""

from __future__ import annotations

import copy
import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from conftest import (
    DEVICES,
    KERNEL_BACKEND,
    LOW_PRECISION,
    TOLERANCES,
    BatchFirst,
    assert_close,
    assert_same_on_other_streams_and_devices,
    assert_within_roundings,
    eager_and_compiled_step,
)
from torch import nn

import snn_cuda
from snn_cuda import synapse
from snn_cuda._checks import compute_dtype
from snn_cuda.ops import _backend

# x: [T, B, C, H, W]; each coefficient layout broadcasts against the trailing shape (B, C, H, W).
STATE_SHAPE = (2, 3, 4, 5)
# "scalar": Python numbers (no gradient); "scalar_tensor": 0-dim tensors, whose gradient sums over every element;
# "per_neuron": the whole state shape, batch included.
COEFFICIENT_SHAPES = {"scalar": None, "scalar_tensor": (), "per_feature": (5,), "per_channel": (3, 1, 1),
                      "per_element": (3, 4, 5), "per_neuron": STATE_SHAPE}  # fmt: skip
LEAVES = ("x", "a1", "a2", "b", "p1", "p2")


def random_coefficients(gen, shape, *, first_order):
    """Stable filters: dual-exp (or first-order) poles from random time constants, a random input gain.

    Tensors of ``shape`` in float64, or Python floats when ``shape`` is None. First order has a2 = 0.0 (a number).
    """
    size = () if shape is None else shape
    tau_m = 2 + 18 * torch.rand(size, generator=gen, dtype=torch.float64)
    tau_s = tau_m * (0.1 + 0.7 * torch.rand(size, generator=gen, dtype=torch.float64))
    a, c = torch.exp(-1 / tau_m), torch.exp(-1 / tau_s)
    gain = 0.5 + torch.rand(size, generator=gen, dtype=torch.float64)
    a1, a2, b = (a, 0.0, gain) if first_order else (a + c, -a * c, (a - c) * gain)
    if shape is None:
        return tuple(float(v) for v in (a1, a2, b))
    return a1, a2, b


def make_case(gen, T, dtype, *, coefficient_shape, first_order, with_state, state_shape=STATE_SHAPE):
    """Leaves (x, a1, a2, b, p1, p2): random signed input and initial states in ``dtype``, coefficients in float64."""
    x = torch.randn((T, *state_shape), generator=gen, dtype=torch.float64).to(dtype)
    a1, a2, b = random_coefficients(gen, coefficient_shape, first_order=first_order)
    p1 = p2 = None
    if with_state:
        p1, p2 = (torch.randn(state_shape, generator=gen, dtype=torch.float64).to(dtype) for _ in range(2))
    return x, a1, a2, b, p1, p2


def run_both(device, case, *, reference_dtype=torch.float64):
    """Runs kernel and reference on copies of the same leaves; returns outputs and gradients of each.

    By default the reference runs in float64 on the kernel's (rounded) inputs: it is the exact answer the kernel's
    result is rounded from, within the kernel dtype's tolerance. (A float32 reference would not do at T = 1000: its
    own rounding error, accumulated through the filter's gain, exceeds the float32 tolerance.) With
    ``reference_dtype=None`` it runs on the very leaves the kernel gets. The loss weighs p and both final states
    with fixed weights, so every gradient path is exercised. Python-number coefficients stay numbers (no
    gradient), rounded as the kernel takes them (to float32 for float32 x); tensors become leaves that require grad.
    """
    results = []
    taken = compute_dtype(case[0].dtype)
    for backend in (KERNEL_BACKEND[device], "torch"):
        dtype = reference_dtype if backend == "torch" else None
        leaves = [
            value.detach()
            .to(device=device, dtype=dtype or value.dtype)
            .requires_grad_()
            if isinstance(value, torch.Tensor)
            else value if value is None else torch.tensor(value, dtype=taken).item()
            for value in case
        ]
        x, a1, a2, b, p1, p2 = leaves
        p, (p_last, p_before_last) = snn_cuda.iir_filter(
            x, a1, a2, b, p1=p1, p2=p2, return_state=True, backend=backend
        )
        weights = torch.linspace(-1, 1, p.numel(), dtype=torch.float64, device=device).view(p.shape)
        loss = (p.double() * weights).sum() + (p_last.double() ** 2).sum() + 0.5 * (p_before_last.double()).sum()
        present = {k: t for k, t in zip(LEAVES, leaves, strict=True) if isinstance(t, torch.Tensor)}
        grads = torch.autograd.grad(loss, list(present.values()))
        results.append({"p": p, "p_last": p_last, "p_before_last": p_before_last,
                        **{f"grad {k}": g for k, g in zip(present, grads, strict=True)}})  # fmt: skip
    return results


# Coefficient gradients are sums over t (and over all elements for a scalar coefficient) of q[t] times p or x as
# stored in x's dtype, against a float64 reference: in float32 their rounding grows with T and with cancellation
# between the terms (T = 1000 once gave 1.4e-4 relative on a gradient of 0.4), as for the LIF's alpha and theta.
COEFFICIENT_GRADS = ("grad a1", "grad a2", "grad b")


def compare(results, dtype):
    fused, ref = results
    assert set(fused) == set(ref)
    for name in fused:
        assert fused[name].shape == ref[name].shape, name
        assert_close(name, fused[name], ref[name], dtype, summed=name in COEFFICIENT_GRADS)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T", [1, 2, 7, 300, 1000])
@pytest.mark.parametrize("coefficient_shape", list(COEFFICIENT_SHAPES))
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("first_order", [False, True])
def test_matches_reference(gen, device, dtype, T, coefficient_shape, with_state, first_order):
    case = make_case(gen, T, dtype, coefficient_shape=COEFFICIENT_SHAPES[coefficient_shape],
                     first_order=first_order, with_state=with_state)  # fmt: skip
    results = run_both(device, case)
    fused = results[0]
    if COEFFICIENT_SHAPES[coefficient_shape] is not None:
        assert fused["grad a1"].shape == COEFFICIENT_SHAPES[coefficient_shape]
    assert ("grad a2" in fused) == (not first_order and coefficient_shape != "scalar")
    compare(results, dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_p2_without_p1_and_state_gradients_alone(gen, device):
    """p[-2] given alone (p[-1] = 0), p[-1] alone (p[-2] = 0), and a loss on the final states only (no gradient
    reaches p itself)."""
    for T in (1, 2, 5):
        x, a1, a2, b, p1, p2 = make_case(gen, T, torch.float64, coefficient_shape=(5,), first_order=False,
                                         with_state=True)  # fmt: skip
        compare(run_both(device, (x, a1, a2, b, None, p2)), torch.float64)
        compare(run_both(device, (x, a1, a2, b, p1, None)), torch.float64)
        grads = []
        for backend in (KERNEL_BACKEND[device], "torch"):
            xl = x.to(device).requires_grad_()
            p1 = torch.ones(STATE_SHAPE, dtype=torch.float64, device=device, requires_grad=True)
            _, (p_last, p_before_last) = snn_cuda.iir_filter(xl, a1.to(device), a2.to(device), b.to(device),
                                                             p1=p1, return_state=True, backend=backend)  # fmt: skip
            grads.append(torch.autograd.grad((p_last - 2 * p_before_last).sum(), [xl, p1]))
            # At T = 1, p_before_last equals p1 but is the op's own tensor, as any output is.
            assert p_before_last.data_ptr() != p1.data_ptr(), (backend, T)
        for name, fused, ref in zip(("grad x", "grad p1"), *grads, strict=True):
            assert_close(name, fused, ref, torch.float64)


@pytest.mark.parametrize(("device", "dtype"), LOW_PRECISION)
@pytest.mark.parametrize("coefficient_shape", ["per_feature", "per_neuron"])
@pytest.mark.parametrize("T", [1, 7, 64, 300])
def test_low_precision(gen, device, dtype, T, coefficient_shape):
    """16-bit storage (half and bfloat16, CPU and CUDA), float32 compute, against the reference on the same
    rounded inputs. (Not a 0-dim coefficient: its gradient sums every element's q p, with p read as stored in 16
    bits, and cancels to a fraction of its terms' size, so no tolerance relative to it would be both safe and
    tight; float32 and float64 test it.)"""
    case = make_case(gen, T, dtype, coefficient_shape=COEFFICIENT_SHAPES[coefficient_shape], first_order=False,
                     with_state=True)  # fmt: skip
    fused, ref = run_both(device, case)
    for name in fused:
        # Coefficient gradients are sums over T and the batch: compare them relative to their size.
        scale = ref[name].abs().max().item() if name in ("grad a1", "grad a2", "grad b") else 1.0
        rtol, atol = TOLERANCES[dtype]
        diff = (fused[name].float() - ref[name].float()).abs().max().item()
        print(f"{name}: max |diff| = {diff:.3e} (scale {scale:.3e})")
        torch.testing.assert_close(fused[name].float(), ref[name].float(), rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize(("device", "dtype"), LOW_PRECISION)
@pytest.mark.parametrize("T", [1, 2, 7, 300])
def test_low_precision_reference_computes_as_the_kernels(gen, device, dtype, T):
    """The reference run on 16-bit inputs computes in float32 with the state kept in float32, as the kernels do:
    the same sums in the same order, so p and both final states are equal. The gradients differ by a few 16-bit
    roundings (the kernels' backward reads p as stored)."""
    case = make_case(gen, T, dtype, coefficient_shape=STATE_SHAPE, first_order=False, with_state=True)
    fused, ref = run_both(device, case, reference_dtype=None)
    assert set(fused) == set(ref) == {"p", "p_last", "p_before_last", *(f"grad {name}" for name in LEAVES)}
    for name, value in fused.items():
        assert value.dtype == ref[name].dtype, name
        if name.startswith("grad"):
            assert_within_roundings(name, value, ref[name], dtype)
        else:
            assert value.dtype == dtype, name
            assert torch.equal(value, ref[name]), f"{name}: {(value != ref[name]).sum().item()} elements differ"


@pytest.mark.parametrize(("device", "dtype"), LOW_PRECISION)
def test_low_precision_rounds_as_torch(device, dtype):
    """p = b x (T = 1, a1 = 0, first order) over every 16-bit pattern, infinities, NaN and subnormals included:
    the kernel rounds its float32 product to the storage dtype exactly as torch's conversion does (to nearest,
    ties to even). b = 1 + 2^-8 makes exact ties."""
    x = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype).to(device)[None]
    for b in (1.0, 1 + 2**-8, 0.3):
        p = snn_cuda.iir_filter(x, 0.0, 0.0, b, backend=KERNEL_BACKEND[device])
        expected = (x.float() * torch.tensor(b, dtype=torch.float32, device=device)).to(dtype)
        nan = expected.isnan()
        assert torch.equal(p.isnan(), nan), f"b = {b}: NaN where torch has none, or the reverse"
        # Values, so +0 (0 p1 + b x adds +0 to a -0 product) equals -0; every other pattern is a distinct value.
        mismatched = (p[~nan] != expected[~nan]).sum().item()
        assert mismatched == 0, f"b = {b}: {mismatched} of {x.numel()} values rounded differently from torch"


def test_constructors_match_the_golden_values():
    """models.md section 2."""
    assert synapse.dual_exp(4, 1) == pytest.approx((1.14668, -0.28650, 0.41092), abs=5e-6)
    assert synapse.dual_exp(8, 2) == pytest.approx((1.48903, -0.53526, 0.27597), abs=5e-6)
    assert synapse.dual_exp_peak_scale(4, 1) == pytest.approx(2.116535, abs=5e-7)
    a1, a2, b = synapse.normalised_dual_exp(4, 1)
    assert (a1, a2) == synapse.dual_exp(4, 1)[:2]
    assert b == pytest.approx(0.41092134 * 2.116535, rel=1e-6)
    assert synapse.first_order(10) == (math.exp(-0.1), 0.0, 1.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_impulse_response_through_every_backend(device, dtype):
    """dual_exp(4, 1): h = 0.41092, 0.47120, 0.42258, 0.34956, 0.27977 and h[n] = a^(n+1) - c^(n+1) for long n;
    first_order(4): h[n] = e^(-n/4); the normalised filter peaks at about 1."""
    T = 60
    impulse = torch.zeros(T, 1, dtype=dtype, device=device)
    impulse[0] = 1
    a, c = math.exp(-1 / 4), math.exp(-1)
    n = torch.arange(T, dtype=torch.float64)
    closed_form = (a ** (n + 1) - c ** (n + 1)).view(T, 1)
    for backend in (KERNEL_BACKEND[device], "torch"):
        h = snn_cuda.iir_filter(impulse, *synapse.dual_exp(4, 1), backend=backend).double().cpu()
        assert h[:5, 0].tolist() == pytest.approx([0.41092, 0.47120, 0.42258, 0.34956, 0.27977], abs=5e-6)
        assert_close(f"{backend} dual-exp impulse response", h, closed_form, dtype)
        h = snn_cuda.iir_filter(impulse, *synapse.first_order(4), backend=backend).double().cpu()
        assert_close(f"{backend} first-order impulse response", h, torch.exp(-n / 4).view(T, 1), dtype)
        peak = snn_cuda.iir_filter(impulse, *synapse.normalised_dual_exp(4, 1), backend=backend).max().item()
        assert peak == pytest.approx(0.997, abs=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_poles_near_one_stay_precise_in_float32(gen, device):
    """tau_m 200, tau_s 50 (poles 0.995 and 0.980, DC gain 150) over T = 1000 on a biased random signal: the
    float32 kernel stays within the float32 tolerance of the float64 reference, outputs and gradients."""
    x = (torch.randn(1000, 4, 16, generator=gen, dtype=torch.float64) + 0.5).float()
    a1, a2, b = (torch.full((16,), v, dtype=torch.float64) for v in synapse.dual_exp(200, 50))
    fused, ref = run_both(device, (x, a1, a2, b, None, None))
    assert ref["p"].abs().max() > 50  # the slow poles have built up a large state
    compare((fused, ref), torch.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_input_takes_number_coefficients_at_the_value_the_reference_takes(device):
    """A float32 x: the kernels compute in float64, but a number coefficient is first rounded to float32, the
    value the reference takes. A pole 1 - 2^-26 (1.0 in float32) summing ones over T = 50000: 50000 for both
    (with the number's float64 value the kernels gave 49981.4). A float64 tensor keeps its value in the kernels:
    49981.4, as in float64 throughout (the reference rounds it to float32: 50000)."""
    x = torch.ones(50000, 3, device=device)
    pole = 1 - 2**-26
    fused = snn_cuda.iir_filter(x, pole, 0.0, 1.0, backend=KERNEL_BACKEND[device])
    assert torch.equal(fused.cpu(), snn_cuda.iir_filter(x, pole, 0.0, 1.0, backend="torch").cpu())
    assert fused[-1, 0].item() == 50000.0
    wide = torch.full((3,), pole, dtype=torch.float64, device=device)
    fused = snn_cuda.iir_filter(x, wide, 0.0, 1.0, backend=KERNEL_BACKEND[device])
    exact = snn_cuda.iir_filter(x[:, :1].double(), pole, 0.0, 1.0, backend="torch")[-1, 0].item()
    assert exact == pytest.approx(49981.4, abs=0.1) and fused[-1, 0].item() == pytest.approx(exact, rel=1e-7)


def test_gradcheck():
    """The op is linear in x, p1, p2 and polynomial in the coefficients: gradcheck every input, both orders, with
    coefficients per feature, 0-dim and per neuron."""
    gen = torch.Generator().manual_seed(0)
    for first_order, shape in itertools.product((False, True), ((5,), (), (2, 5))):
        x, a1, a2, b, p1, p2 = make_case(gen, 6, torch.float64, coefficient_shape=shape, first_order=first_order,
                                         with_state=True, state_shape=(2, 5))  # fmt: skip
        leaves = [t.requires_grad_() for t in (x, a1, b, p1, p2)] + ([] if first_order else [a2.requires_grad_()])

        def filtered(x, a1, b, p1, p2, *a2_):
            a2_value = a2_[0] if a2_ else 0.0
            p, state = snn_cuda.iir_filter(x, a1, a2_value, b, p1=p1, p2=p2, return_state=True, backend="cpp")
            return p, *state

        assert torch.autograd.gradcheck(filtered, leaves)


def _opcheck_forward_samples(device):
    """float32 storage takes float64 coefficients (the kernels compute in float64), half would take float32."""
    x = torch.randn(5, 2, 3, device=device)
    a1, a2, b = (torch.full((2, 3), v, dtype=torch.float64, device=device) for v in (0.9, -0.2, 1.0))
    p1, p2 = torch.randn(2, 3, device=device), torch.randn(2, 3, device=device)
    return [
        (x.clone().requires_grad_(), a1.clone().requires_grad_(), a2.clone().requires_grad_(),
         b.clone().requires_grad_(), p1.clone().requires_grad_(), p2.clone().requires_grad_()),
        (x.clone().requires_grad_(), a1, None, b.clone().requires_grad_(), None, None),
        (x[:1].clone(), a1, a2, b, p1, None),
        (x.double(), a1, a2, b, None, p2.double()),
        # batch-first data made time-major by a transpose: dense but not contiguous (outputs are contiguous)
        (x.transpose(0, 1).contiguous().transpose(0, 1).requires_grad_(), a1, a2, b, p1, p2),
        # coefficients over a trailing part of the state shape, repeated over the batch: per feature, one value
        (x.clone().requires_grad_(), a1[0].clone().requires_grad_(), a2[0].clone().requires_grad_(),
         b[0].clone().requires_grad_(), p1, None),
        (x.clone().requires_grad_(), a1[0, 0].clone().requires_grad_(), None, b[0, 0].clone(), None, p2),
    ]  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("index", range(7))
def test_opcheck_forward(device, index):
    torch.library.opcheck(torch.ops.snn_cuda.iir_fwd.default, _opcheck_forward_samples(device)[index])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("first_order", [False, True])
def test_opcheck_backward(device, first_order):
    x, a1, a2, b, p1, p2 = _opcheck_forward_samples(device)[0]
    a2 = None if first_order else a2.detach()
    a1, b = a1.detach(), b.detach()
    p = torch.randn_like(x)
    # the incoming gradient contiguous, or transposed (the output was made batch-first after the op)
    grads = [torch.randn_like(p), torch.randn(2, 5, 3, device=device).transpose(0, 1)]
    # coefficients per element, and per feature (repeated over the batch)
    coefficients = [(a1, a2, b), (a1[0], None if a2 is None else a2[0], b[0])]
    for (grad_x, grad_a, grad_b), grad_p, (c1, c2, cb) in itertools.product(
        ((True, True, True), (True, False, False), (False, True, False), (False, False, True)), grads, coefficients
    ):
        args = (grad_p, torch.randn_like(p1), None, p, x.detach(), c1, c2, cb, p1.detach(), p2.detach(), grad_x,
                grad_a, grad_b)  # fmt: skip
        torch.library.opcheck(torch.ops.snn_cuda.iir_bwd.default, args)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("compile_backend", ["aot_eager", "inductor"])
def test_torch_compile_matches_eager(gen, device, compile_backend):
    filter_ = snn_cuda.IIRSynapse((16,), synapse.dual_exp(4, 1), backend=KERNEL_BACKEND[device])
    model = nn.Sequential(nn.Linear(8, 16), filter_).to(device)
    x = torch.randn(6, 4, 8, generator=gen).to(device)
    (eager_out, eager_grads), (compiled_out, compiled_grads) = eager_and_compiled_step(model, x, compile_backend)
    torch.testing.assert_close(compiled_out, eager_out)
    for a, b in zip(eager_grads, compiled_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("compile_backend", ["aot_eager", "inductor"])
def test_torch_compile_matches_eager_on_transposed_tensors(gen, device, compile_backend):
    """Batch-first data around the time-major filter: its input and its output's gradient are transposes."""
    filter_ = snn_cuda.IIRSynapse((16,), synapse.dual_exp(4, 1), backend=KERNEL_BACKEND[device])
    model = nn.Sequential(nn.Linear(8, 16), BatchFirst(filter_)).to(device)
    x = torch.randn(4, 6, 8, generator=gen).to(device)
    (eager_out, eager_grads), (compiled_out, compiled_grads) = eager_and_compiled_step(model, x, compile_backend)
    torch.testing.assert_close(compiled_out, eager_out)
    for a, b in zip(eager_grads, compiled_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_state_outputs_take_part_in_autograd_as_in_the_reference(device):
    """At T = 1 p_before_last is p1 (differentiable as p1 is), or zeros that depend on nothing without it: no
    grad_fn then."""
    p1 = torch.rand(2, device=device, requires_grad=True)
    for T, initial in ((1, None), (1, p1), (1, p1.detach()), (3, None), (3, p1.detach())):
        x = torch.rand(T, 2, device=device, requires_grad=True)
        flags = []
        for backend in (KERNEL_BACKEND[device], "torch"):
            _, (p_last, p_before_last) = snn_cuda.iir_filter(x, 0.5, 0.1, 1.0, p1=initial, return_state=True,
                                                             backend=backend)  # fmt: skip
            flags.append((p_last.requires_grad, p_before_last.requires_grad))
        differentiable = T > 1 or (initial is not None and initial.requires_grad)
        assert flags[0] == flags[1] == (True, differentiable), (T, initial)


@pytest.mark.parametrize("device", DEVICES)
def test_input_and_states_made_in_inference_mode_as_in_the_reference(gen, device):
    """An input or state made under inference mode (a frozen encoder, a warm-up chunk), used where a graph is
    recorded: autograd cannot keep an inference tensor, so both backends keep a copy of what their backward reads
    (x for the b gradient, the states for the a1, a2 gradients) and give the same gradients. The a1 gradient with
    such states, and the b gradient with such an input, were refused before."""
    with torch.inference_mode():
        x_inf = torch.randn(5, 3, generator=gen).to(device)
        _, (p1, p2) = snn_cuda.iir_filter(torch.randn(4, 3, generator=gen).to(device), 0.5, 0.1, 1.0,
                                          return_state=True)  # fmt: skip
    x = torch.randn(5, 3, generator=gen).to(device).requires_grad_()
    a1, b = (torch.full((3,), v, device=device, requires_grad=True) for v in (0.5, 1.0))
    with torch.inference_mode():
        fixed = torch.full((3,), 0.5, device=device)  # a fixed coefficient made under inference mode
    for inputs, wrt in (((x, p1, p2), (x, a1, b)), ((x_inf, None, None), (a1, b)), ((x_inf, p1, p2), (a1, b)),
                        ((x, p1, p2, fixed), (x, b))):  # fmt: skip
        grads = []
        for backend in (KERNEL_BACKEND[device], "torch"):
            pole = inputs[3] if len(inputs) > 3 else a1
            p = snn_cuda.iir_filter(inputs[0], pole, 0.1, b, p1=inputs[1], p2=inputs[2], backend=backend)
            grads.append(torch.autograd.grad((p * p).sum(), wrt))
        for got, want in zip(*grads, strict=True):
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize("device", DEVICES)
def test_first_order_infinite_state_as_the_readme_documents(device):
    """Outside the spec: a2 = 0 (a number) never touches p[t-2] in the kernels; the reference's 0 * inf is NaN."""
    x = torch.tensor([[math.inf], [1.0], [1.0]], dtype=torch.float64, device=device)
    for backend, last in ((KERNEL_BACKEND[device], math.inf), ("torch", math.nan)):
        p = snn_cuda.iir_filter(x, 0.5, 0.0, 1.0, backend=backend).cpu()
        torch.testing.assert_close(p, torch.tensor([[math.inf], [math.inf], [last]], dtype=torch.float64),
                                   equal_nan=True)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_takes_time_constants_that_change_and_carries_preserved_states(gen, device):
    """Time constants that change between calls become symbolic numbers under dynamo: dual_exp's checks and
    arithmetic take them. A synapse with preserved states carries them across compiled calls as eagerly."""
    backend = KERNEL_BACKEND[device]
    x = torch.randn(6, 4, 8, generator=gen).to(device)
    compiled = torch.compile(lambda x, tau_m: snn_cuda.iir_filter(x, *synapse.dual_exp(tau_m, 1.0), backend=backend),
                             backend="aot_eager", fullgraph=True)  # fmt: skip
    for tau_m in (4.0, 5.0, 6.0):
        expected = snn_cuda.iir_filter(x, *synapse.dual_exp(tau_m, 1.0), backend=backend)
        torch.testing.assert_close(compiled(x, tau_m), expected, rtol=0, atol=0)
    eager = snn_cuda.IIRSynapse((8,), synapse.dual_exp(4, 1), initial_state="preserved", backend=backend).to(device)
    compiled_synapse = torch.compile(copy.deepcopy(eager), backend="aot_eager", fullgraph=True)
    for _ in range(3):
        x = torch.randn(5, 4, 8, generator=gen).to(device)
        torch.testing.assert_close(compiled_synapse(x), eager(x), rtol=0, atol=0)


def test_no_grad_call_matches_and_first_order_needs_no_a2_gradient(gen):
    x = torch.randn(9, 4, 7, generator=gen)
    with torch.no_grad():
        # float32 is computed in float64 in the spec's order, then rounded once; numbers at their float32 value
        a1, a2, b = (torch.tensor(v, dtype=torch.float32).item() for v in (0.8, -0.1, 0.5))
        expected = snn_cuda.iir_filter(x.double(), a1, a2, b, backend="torch").float()
        assert torch.equal(snn_cuda.iir_filter(x, 0.8, -0.1, 0.5, backend="cpp"), expected)
    a1 = torch.full((7,), 0.8, requires_grad=True)
    snn_cuda.iir_filter(x, a1, 0.0, 1.0, backend="cpp").sum().backward()
    assert a1.grad.shape == (7,) and a1.grad.abs().sum() > 0


def test_auto_backend_falls_back_with_one_warning(monkeypatch):
    x = torch.rand(3, 4, dtype=torch.float64)
    assert torch.equal(snn_cuda.iir_filter(x, 0.5, 0.1, 1.0), snn_cuda.iir_filter(x, 0.5, 0.1, 1.0, backend="torch"))
    assert _backend.select("iir", "auto", x) == "kernel"
    monkeypatch.setenv(snn_cuda._ext.FORCE_REFERENCE_ENV, "1")
    assert _backend.select("iir", "auto", x) == "torch"
    monkeypatch.delenv(snn_cuda._ext.FORCE_REFERENCE_ENV)
    # A dtype without a CPU kernel (every float dtype has one: half is taken out of the list here): auto falls back
    # to the reference with one warning, "cpp" refuses.
    monkeypatch.setattr(_backend, "_warned", set())
    monkeypatch.setitem(_backend.KERNEL_DTYPES, "cpu", (torch.float32, torch.float64, torch.bfloat16))
    half = x.half()
    with pytest.warns(UserWarning, match="snn_cuda.iir_filter: using the pure-torch reference"):
        assert snn_cuda.iir_filter(half, 0.5, 0.1, 1.0).dtype == torch.float16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snn_cuda.iir_filter(half, 0.5, 0.1, 1.0)
    with pytest.raises(RuntimeError, match="does not implement torch.float16"):
        snn_cuda.iir_filter(half, 0.5, 0.1, 1.0, backend="cpp")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(x=torch.tensor(1.0)), ValueError, "x must have shape"),
        (dict(x=torch.zeros(0, 2, 4)), ValueError, "T = x.shape"),
        (dict(x=torch.zeros(3, 2, 4, dtype=torch.int64)), TypeError, "x must be a floating-point"),
        (dict(x=[1.0, 2.0]), TypeError, "x must be a torch.Tensor"),
        (dict(x=torch.rand(3, 2, 4).to_sparse()), TypeError, r"x must be a dense .* use x.to_dense\(\)"),
        (dict(a1=torch.full((4,), 0.9).to_sparse()), TypeError, "a1 must be a dense"),
        (dict(p1=torch.zeros(2, 4).to_sparse()), TypeError, "p1 must be a dense"),
        (dict(a1=torch.ones(3)), ValueError, "a1 of shape"),
        (dict(a2=torch.ones(2, 1, 1)), ValueError, "a2 of shape"),
        (dict(b=torch.ones(4, dtype=torch.int64)), TypeError, "b must be a floating-point"),
        (dict(a2=float("nan")), ValueError, "a2 must be finite"),
        (dict(a1=10**400), ValueError, "a1 must be finite, got a number beyond the range of a float"),
        (dict(b="1"), TypeError, "b must be a number"),
        (dict(a1=torch.ones(4, device="meta")), ValueError, "a1 is on meta"),
        (dict(p1=torch.zeros(4, 2)), ValueError, "p1 must have shape"),
        (dict(p1=torch.zeros(2, 4, dtype=torch.float64)), TypeError, "p1 has dtype"),
        (dict(p2=torch.zeros(2, 4, dtype=torch.float16)), TypeError, "p2 has dtype"),
        (dict(p2=torch.zeros(2, 4, device="meta")), ValueError, "p2 is on meta"),
        (dict(backend="gpu"), ValueError, "backend must be one of"),
        (dict(backend="cuda"), ValueError, "backend='cuda' runs on cuda tensors"),
        (dict(a1=1e39), ValueError, "a1 = 1e.* overflows torch.float32"),
        (dict(x=torch.rand(3, 2, 4, dtype=torch.float16), b=-1e39), ValueError, "b = .* overflows torch.float32"),
        (dict(return_state="no"), TypeError, "return_state must be True or False"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    args = dict(x=torch.rand(3, 2, 4), a1=0.9, a2=-0.2, b=1.0)
    args.update(kwargs)
    x, a1, a2, b = (args.pop(k) for k in ("x", "a1", "a2", "b"))
    with pytest.raises(error, match=match):
        snn_cuda.iir_filter(x, a1, a2, b, **args)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: snn_cuda.IIRSynapse((3,), (0.5, 0.1)), ValueError, r"coefficients must be \(a1, a2, b\)"),
        (lambda: snn_cuda.IIRSynapse(3, (0.5, 0.1, 1.0)), TypeError, "shape must be a tuple"),
        (lambda: snn_cuda.IIRSynapse((3,), (0.5, 0.1, 1.0), backend="gpu"), ValueError, "backend must be one of"),
        (lambda: snn_cuda.snn_iir_neuron(0.0), ValueError, "tau_m must be positive"),
        (lambda: snn_cuda.snn_iir_neuron(-1.0), ValueError, "tau_m must be positive"),
        (lambda: snn_cuda.snn_iir_neuron("4"), TypeError, "tau_m must be a number"),
        (lambda: snn_cuda.IIRLinear(4, 2, tau_m=-1.0, tau_s=1.0, coefficients=snn_cuda.first_order(2.0)),
         ValueError, "tau_m must be positive"),
        (lambda: snn_cuda.IIRLinear(4, 2, tau_m=4.0, tau_s=1.0, coefficients=()), ValueError, "coefficients must"),
        (lambda: snn_cuda.IIRLinear(0, 2, tau_m=4.0, tau_s=1.0), ValueError, "in_features must be a positive int"),
        (lambda: snn_cuda.IIRConv2d(1, 2, 3, input_size=28, tau_m=4.0, tau_s=1.0), TypeError,
         r"input_size must be a tuple of 2 positive ints, such as \(28, 28\)"),
        (lambda: snn_cuda.IIRConv2d(1, 2, 3, input_size=(28,), tau_m=4.0, tau_s=1.0), TypeError, "input_size must"),
        (lambda: snn_cuda.IIRSynapse((3,), (0.5, 0.1, 1.0), learnable="no"), TypeError, "learnable must be True"),
        (lambda: snn_cuda.IIRSynapse((4,), (1e39, 0.0, 1.0)), ValueError, "a1 = 1e.* overflows torch.float32"),
        (lambda: snn_cuda.IIRConv2d(2.0, 4, 3, input_size=(4, 4), tau_m=4.0, tau_s=1.0), ValueError,
         "in_channels must be a positive int, got 2.0"),
        (lambda: snn_cuda.IIRConv2d(2, 0, 3, input_size=(4, 4), tau_m=4.0, tau_s=1.0), ValueError,
         "out_channels must be a positive int"),
    ],
)  # fmt: skip
def test_modules_check_their_options_when_built(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_preserved_state_follows_to_and_dtype_casts(gen):
    synapse_ = snn_cuda.IIRSynapse((5,), synapse.dual_exp(4, 1), initial_state="preserved", backend="cpp")
    x = torch.rand(6, 3, 5, generator=gen)
    synapse_(x[:3])
    synapse_.double()
    assert synapse_.state[0].dtype == synapse_.state[1].dtype == torch.float64
    whole = snn_cuda.IIRSynapse((5,), synapse.dual_exp(4, 1), initial_state="preserved", backend="cpp")
    torch.testing.assert_close(synapse_(x[3:].double()), whole(x)[3:].double())
    synapse_.to("meta")
    assert {state.device.type for state in synapse_.state} == {"meta"}


def test_double_backward_of_the_kernel_is_refused():
    """Differentiating the compiled backward raises instead of returning zeros (PyTorch's fallback)."""
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    a1 = torch.full((3,), 0.6, dtype=torch.float64, requires_grad=True)
    p = snn_cuda.iir_filter(x, a1, -0.1, np.float32(1.0), backend="cpp")
    (gx, ga) = torch.autograd.grad((p**2).sum(), (x, a1), create_graph=True)
    p_ref = snn_cuda.iir_filter(x, a1, -0.1, 1.0, backend="torch")
    torch.testing.assert_close((gx, ga), torch.autograd.grad((p_ref**2).sum(), (x, a1)))
    for g in (gx, ga):
        with pytest.raises(RuntimeError, match="first derivatives only"):
            torch.autograd.grad(g.sum(), (x, a1))


def test_kernel_checks_arguments_directly():
    """torch.ops called directly (bypassing the Python checks) still fail with a message naming the argument."""
    x = torch.rand(3, 2, 4)
    good = torch.full((2, 4), 0.5, dtype=torch.float64)
    forward = torch.ops.snn_cuda.iir_fwd
    with pytest.raises(RuntimeError, match="a1 must have the shape of a trailing part of"):
        forward(x, torch.ones(2, dtype=torch.float64), good, good, None, None)
    with pytest.raises(RuntimeError, match="a2 must have dtype Double"):
        forward(x, good, good.float(), good, None, None)
    with pytest.raises(RuntimeError, match="b must have the shape of a trailing part of"):
        forward(x, good, None, torch.ones(2, 1, dtype=torch.float64), None, None)
    with pytest.raises(RuntimeError, match="a2 must have the shape of a1"):
        forward(x, good, torch.ones(4, dtype=torch.float64), good, None, None)
    with pytest.raises(RuntimeError, match="p1 must have dtype"):
        forward(x, good, None, good, good, None)
    with pytest.raises(RuntimeError, match="x must have at least one time step"):
        forward(x[:0], good, None, good, None, None)
    with pytest.raises(RuntimeError, match="x must be a floating-point tensor"):
        forward(x.int(), good, None, good, None, None)
    backward = torch.ops.snn_cuda.iir_bwd
    with pytest.raises(RuntimeError, match="p \\(the forward's output\\) is required"):
        backward(x, None, None, None, x, good, None, good, None, None, True, True, False)
    with pytest.raises(RuntimeError, match="x is required for the b gradient"):
        backward(x, None, None, x, None, good, None, good, None, None, True, False, True)
    with pytest.raises(RuntimeError, match="p must have the shape of grad_p"):
        backward(x, None, None, x[:2], x, good, None, good, None, None, False, True, False)
    with pytest.raises(RuntimeError, match="grad_p_last must have shape"):
        backward(x, x, None, x, x, good, None, good, None, None, False, False, False)


@pytest.mark.parametrize("device", DEVICES[1:])
def test_cuda_op_runs_on_the_current_stream_and_device(gen, device):
    """As for the LIF op: a side stream, and a second GPU while the first is current, give the default's results."""
    x = torch.randn(40, 4, 300, generator=gen).to(device)
    a1 = torch.full((300,), 0.9, device=device)

    def run(inputs, pole):
        inputs, pole = inputs.clone().requires_grad_(), pole.clone().requires_grad_()
        p = snn_cuda.iir_filter(inputs, pole, -0.2, 0.5, backend="cuda")
        return (p, *torch.autograd.grad((p * p).sum(), (inputs, pole)))

    assert_same_on_other_streams_and_devices(run, x, a1)


@pytest.mark.parametrize("device", DEVICES[1:])
def test_cuda_kernels_name_the_tensor_left_on_the_cpu(device):
    """Any CUDA argument sends a direct torch.ops call to the CUDA kernel; a CPU x must be named, not crash."""
    x = torch.rand(3, 2, 4)
    good = torch.full((2, 4), 0.5, dtype=torch.float64, device=device)
    with pytest.raises(RuntimeError, match="x is on cpu but other arguments are on a CUDA device"):
        torch.ops.snn_cuda.iir_fwd(x, good, None, good, None, None)
    with pytest.raises(RuntimeError, match="grad_p is on cpu but other arguments are on a CUDA device"):
        torch.ops.snn_cuda.iir_bwd(x, None, None, None, None, good, None, good, None, None, True, False, False)


def test_synapse_preserved_state_is_carried_detached_and_reset(gen):
    layer = snn_cuda.IIRSynapse((5,), synapse.dual_exp(8, 2), initial_state="preserved", backend="cpp").double()
    x = torch.rand(10, 3, 5, generator=gen, dtype=torch.float64)
    whole = snn_cuda.iir_filter(x, layer.a1, layer.a2, layer.b, backend="cpp")
    halves = torch.cat([layer(x[:4]), layer(x[4:])])
    torch.testing.assert_close(halves, whole, rtol=0, atol=0)
    assert all(not s.requires_grad for s in layer.state)
    layer.reset_state()
    torch.testing.assert_close(layer(x[:4]), whole[:4], rtol=0, atol=0)
    with pytest.raises(ValueError, match="reset_state"):
        layer(x[:, :2])


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_synapse_state_kept_under_inference_mode_trains_on(gen, backend):
    """As for the LIF module: a preserved state kept under torch.inference_mode() starts the next training call."""
    layer = snn_cuda.IIRSynapse((5,), synapse.dual_exp(8, 2), initial_state="preserved", backend=backend)
    x = torch.rand(10, 3, 5, generator=gen)
    whole = snn_cuda.iir_filter(x, layer.a1.detach(), layer.a2.detach(), layer.b.detach(), backend=backend)
    with torch.inference_mode():
        layer(x[:4])
    assert layer.state[0].is_inference()
    tail = layer(x[4:])
    tail.sum().backward()
    torch.testing.assert_close(tail, whole[4:])
    assert layer.a1.grad is not None and layer.b.grad is not None


def test_synapse_zero_state_and_first_order(gen):
    layer = snn_cuda.IIRSynapse((5,), synapse.first_order(4), backend="cpp")
    assert not hasattr(layer, "a2") and layer.first_order
    x = torch.rand(6, 3, 5, generator=gen)
    assert torch.equal(layer(x), layer(x))  # "zero": every call starts afresh
    torch.testing.assert_close(layer(x), snn_cuda.iir_filter(x, math.exp(-1 / 4), 0.0, 1.0, backend="torch"))
    frozen = snn_cuda.IIRSynapse((5,), synapse.dual_exp(4, 1), learnable=False)
    assert list(frozen.parameters()) == [] and frozen.a2.shape == (5,)
    pole_only = snn_cuda.IIRSynapse((5,), synapse.first_order(4), learnable=("a1",))
    assert [name for name, _ in pole_only.named_parameters()] == ["a1"]
    assert [name for name, _ in pole_only.named_buffers()] == ["b"]
    pole_only(x).sum().backward()
    assert pole_only.a1.grad.shape == (5,)
    with pytest.raises(ValueError, match=r"coefficients of this first-order filter, some of \('a1', 'b'\)"):
        snn_cuda.IIRSynapse((5,), synapse.first_order(4), learnable=("a2",))
    with pytest.raises(TypeError, match="learnable"):
        snn_cuda.IIRSynapse((5,), synapse.dual_exp(4, 1), learnable="a1")
    generated = snn_cuda.IIRSynapse((5,), synapse.dual_exp(4, 1), learnable=(name for name in ("a1", "b")))
    assert [name for name, _ in generated.named_parameters()] == ["a1", "b"]
    with pytest.raises(TypeError, match="learnable must be True or False"):  # a mapping's False would be ignored
        snn_cuda.IIRSynapse((5,), synapse.dual_exp(4, 1), learnable={"a1": True, "b": False})
    with pytest.raises(ValueError, match="initial_state must be one of"):
        snn_cuda.IIRSynapse((5,), synapse.dual_exp(4, 1), initial_state="kept")
    with pytest.raises(ValueError, match="tau_m must exceed tau_s"):
        synapse.dual_exp(1, 4)


@pytest.mark.parametrize("device", DEVICES)
def test_synapse_per_element_parameters_get_gradients_of_their_shape(gen, device):
    layer = snn_cuda.IIRSynapse((2, 4, 4), synapse.dual_exp(4, 1), backend=KERNEL_BACKEND[device]).to(device)
    x = torch.rand(7, 3, 2, 4, 4, generator=gen).to(device)
    (layer(x) ** 2).sum().backward()
    for name in ("a1", "a2", "b"):
        grad = getattr(layer, name).grad
        assert grad.shape == (2, 4, 4) and grad.abs().min() > 0, name


def excitatory_weights(layer: nn.Module, gen: torch.Generator) -> nn.Module:
    """Mostly positive weights, drawn from ``gen``: the neurons fire sometimes but not always, for any seed."""
    for module in layer.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.uniform_(module.weight, -0.05, 0.25, generator=gen)
    return layer


def test_snn_iir_layers_shapes_and_gradients(gen):
    linear = snn_cuda.IIRLinear(12, 6, tau_m=4, tau_s=1, backend="cpp")
    conv = snn_cuda.IIRConv2d(2, 4, 3, input_size=(8, 8), padding=1, tau_m=8, tau_s=2, backend="cpp")
    pooled = snn_cuda.IIRLayer(snn_cuda.IIRSynapse((2, 8, 8), synapse.dual_exp(4, 1), backend="cpp"),
                               nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(2, 4, 3, padding=1)),
                               snn_cuda.snn_iir_neuron(4, backend="cpp"))  # fmt: skip
    for layer, x, out_shape in (
        (linear, torch.rand(10, 3, 12, generator=gen) * 4, (10, 3, 6)),
        (conv, torch.rand(5, 2, 2, 8, 8, generator=gen) * 4, (5, 2, 4, 8, 8)),
        # Max-pooled inputs drive harder: at * 4 a few seeds in a thousand fired every spike (mean 0.73-0.99 over
        # 200 seeds); at * 1.5 the mean stays within 0.25-0.62.
        (pooled, torch.rand(5, 2, 2, 8, 8, generator=gen) * 1.5, (5, 2, 4, 4, 4)),
    ):
        spikes = excitatory_weights(layer, gen)(x)
        assert spikes.shape == out_shape
        assert 0 < spikes.mean() < 1
        spikes.sum().backward()
        for name, parameter in layer.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_snn_iir_layer_compiled_backend_matches_torch_backend(gen):
    """The same layer on the fused kernels and on the reference, float64: equal spikes, close gradients."""
    layers = [excitatory_weights(snn_cuda.IIRLinear(10, 8, tau_m=4, tau_s=1, backend=b).double(), gen)
              for b in ("cpp", "torch")]  # fmt: skip
    layers[1].load_state_dict(layers[0].state_dict())
    x = torch.rand(12, 3, 10, generator=gen, dtype=torch.float64) * 4
    outputs = []
    for layer in layers:
        spikes = layer(x)
        (spikes * torch.linspace(0, 1, spikes.numel(), dtype=torch.float64).view_as(spikes)).sum().backward()
        outputs.append((spikes, {n: p.grad for n, p in layer.named_parameters()}))
    (fused, fused_grads), (ref, ref_grads) = outputs
    assert torch.equal(fused, ref) and 0 < fused.mean() < 1
    for name in fused_grads:
        assert_close(f"grad {name}", fused_grads[name], ref_grads[name], torch.float64)


def test_snn_iir_layer_preserved_state_splits_sequences(gen):
    layer = snn_cuda.IIRLinear(6, 5, tau_m=4, tau_s=1, initial_state="preserved", backend="cpp").double()
    excitatory_weights(layer, gen)
    x = torch.rand(12, 2, 6, generator=gen, dtype=torch.float64) * 4
    whole = layer(x)
    layer.reset_state()
    halves = torch.cat([layer(x[:5]), layer(x[5:])])
    assert torch.equal(whole, halves) and 0 < whole.mean() < 1
    layer.reset_state()
    assert layer.synapse.state is None and layer.neuron.v is None


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_with_dynamic_shapes_compiles_once_for_every_batch_size(device):
    """Traced with symbolic shapes, the op's autograd formula must not fix x's sizes: one graph serves every batch
    size (before, the C++ formula's size() fixed them all, a recompile per batch size)."""
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()

    def step(x, a1):
        return snn_cuda.iir_filter(x, a1, -0.1, 1.0, backend=KERNEL_BACKEND[device])

    compiled = torch.compile(step, backend=counter, dynamic=True, fullgraph=True)
    for batch in (2, 3, 4, 5):
        x = torch.rand(5, batch, 3, device=device, requires_grad=True)
        a1 = torch.full((3,), 0.7, device=device, requires_grad=True)
        compiled(x, a1).sum().backward()
        assert x.grad.shape == x.shape and a1.grad.abs().sum() > 0
    assert counter.frame_count == 1
