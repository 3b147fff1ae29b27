"""Inputs dense in another order than the logical one (channels-last frames, batch-innermost features): the ops
run the kernels on a view in memory order (snn_cuda.ops._backend.MemoryOrder), with no copy of x, and return
outputs laid out as x. Every result must equal the same op on the contiguous copy of x."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, KERNEL_BACKEND, assert_close, eager_and_compiled_step

import snn_cuda
from snn_cuda.ops._backend import MemoryOrder

# (logical state shape S, memory order of S's dimensions)
LAYOUTS = {
    "channels_last": ((2, 3, 4, 5), (0, 2, 3, 1)),  # [B, C, H, W] stored [B, H, W, C]
    "batch_innermost": ((3, 6), (1, 0)),  # [B, F] stored [F, B]
    "transposed_frame": ((2, 4, 3), (0, 2, 1)),  # [B, H, W] stored [B, W, H]
    "size_one_dims": ((2, 3, 1, 5), (0, 2, 3, 1)),  # channels-last with H = 1
}
# Parameter shapes, against S of each layout: a number, per channel (S[1]), per last dimension, per element of
# S[1:], per neuron (the whole S).
PARAMETERS = ("number", "per_channel", "per_last", "per_sample_element", "per_neuron")


def laid_out(t: torch.Tensor, order: tuple[int, ...], leading: int) -> torch.Tensor:
    """``t`` with the same values, its last dimensions (after ``leading`` ones) stored in ``order``."""
    lead = tuple(range(leading))
    stored = t.permute(*lead, *(d + leading for d in order)).contiguous()
    back = tuple(order.index(d) + leading for d in range(len(order)))
    return stored.permute(*lead, *back)


def same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shapes and strides, but for dimensions of size 1 (whose stride is never used)."""
    if a.shape != b.shape:
        return False
    return all(n == 1 or sa == sb for n, sa, sb in zip(a.shape, a.stride(), b.stride(), strict=True))


def parameter(gen, kind, state_shape, low, high):
    if kind == "number":
        return 0.5 * (low + high)
    shape = {
        "per_channel": (state_shape[1],) + (1,) * (len(state_shape) - 2),
        "per_last": (state_shape[-1],),
        "per_sample_element": state_shape[1:],
        "per_neuron": state_shape,
    }[kind]
    return (low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)).requires_grad_()


def run(op, x, states, params, weights):
    """Outputs of ``op`` and the gradients of a weighted sum of them w.r.t. x, the states and tensor parameters."""
    x = x.detach().requires_grad_()
    states = [s.detach().requires_grad_() for s in states]
    outputs = op(x, *states)
    loss = sum((o * w).sum() for o, w in zip(outputs, weights, strict=True))
    leaves = [x, *states, *(p for p in params if isinstance(p, torch.Tensor))]
    return outputs, torch.autograd.grad(loss, leaves)


def lif_op(params, backend):
    alpha, theta = params

    def op(x, v0, r0):
        spikes, v, (v_last, r_last) = snn_cuda.lif(
            x, alpha=alpha, theta=theta, reset="soft", gamma=0.7, surrogate="sigmoid", v0=v0, r0=r0,
            return_state=True, return_membrane=True, backend=backend,
        )  # fmt: skip
        return spikes, v, v_last, r_last

    return op


def iir_op(params, backend):
    a1, a2, b = params

    def op(x, p1, p2):
        p, (p_last, p_before_last) = snn_cuda.iir_filter(x, a1, a2, b, p1=p1, p2=p2, return_state=True,
                                                         backend=backend)  # fmt: skip
        return p, p_last, p_before_last

    return op


def make_op(name, gen, state_shape, kind, backend):
    if name == "lif":
        params = (parameter(gen, kind, state_shape, 0.5, 0.9), parameter(gen, kind, state_shape, 0.4, 0.8))
        return lif_op(params, backend), params
    params = (
        parameter(gen, kind, state_shape, 0.6, 0.8),
        parameter(gen, kind, state_shape, -0.15, -0.05),
        parameter(gen, kind, state_shape, 0.5, 1.5),
    )
    return iir_op(params, backend), params


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["lif", "iir"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", PARAMETERS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_permuted_input_gives_the_contiguous_results_laid_out_as_x(gen, device, name, layout, kind, dtype):
    state_shape, order = LAYOUTS[layout]
    T = 7
    op, params = make_op(name, gen, state_shape, kind, KERNEL_BACKEND[device])
    x = (torch.rand((T, *state_shape), generator=gen, dtype=torch.float64) * 1.6 - 0.3).to(dtype)
    states = [(torch.rand(state_shape, generator=gen, dtype=torch.float64) * 0.5).to(dtype) for _ in range(2)]
    n_sequences = 2 if name == "lif" else 1
    weights = [torch.randn((T, *state_shape), generator=gen, dtype=dtype) for _ in range(n_sequences)]
    weights += [torch.randn(state_shape, generator=gen, dtype=dtype) for _ in range(2)]
    x, states, weights = x.to(device), [s.to(device) for s in states], [w.to(device) for w in weights]

    expected, expected_grads = run(op, x, states, params, weights)
    permuted_x = laid_out(x, order, 1)
    assert not permuted_x.is_contiguous() and torch.equal(permuted_x, x)
    # The states and the output gradients laid out as x too, as the next layer of a channels-last net gives them.
    got, got_grads = run(
        op,
        permuted_x,
        [laid_out(s, order, 0) for s in states],
        params,
        [laid_out(w, order, 1 if w.dim() > len(state_shape) else 0) for w in weights],
    )
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert torch.equal(a, b), f"output {i}"
    for a in got[:n_sequences]:
        assert same_layout(a, permuted_x)  # laid out as x
    n_exact = 3  # x and the two states: per neuron, the same arithmetic
    for i, (a, b) in enumerate(zip(got_grads, expected_grads, strict=True)):
        if i < n_exact:
            assert torch.equal(a, b), f"gradient {i}"
        else:  # a parameter's: summed over neurons in another order
            assert_close(f"parameter gradient {i - n_exact}", a, b, dtype, summed=True)
    assert same_layout(got_grads[0], permuted_x)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["lif", "iir"])
def test_permuted_input_matches_the_reference(gen, device, name):
    """The same op on a channels-last x, kernel against reference (float64), outputs and every gradient."""
    state_shape, order = LAYOUTS["channels_last"]
    x = laid_out(torch.rand((9, *state_shape), generator=gen, dtype=torch.float64) * 1.6 - 0.3, order, 1).to(device)
    states = [laid_out(torch.rand(state_shape, generator=gen, dtype=torch.float64), order, 0).to(device)] * 2
    results = []
    for backend in (KERNEL_BACKEND[device], "torch"):
        op, params = make_op(name, torch.Generator().manual_seed(1), state_shape, "per_channel", backend)
        n_sequences = 2 if name == "lif" else 1
        weights = [torch.ones_like(x)] * n_sequences + [torch.ones_like(states[0])] * 2
        results.append(run(op, x, states, params, weights))
    (got, got_grads), (expected, expected_grads) = results
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert_close(f"output {i}", a, b, torch.float64)
    for i, (a, b) in enumerate(zip(got_grads, expected_grads, strict=True)):
        assert_close(f"gradient {i}", a, b, torch.float64, summed=True)


def test_the_kernels_get_a_view_of_x_in_memory_order():
    x = laid_out(torch.randn(5, 2, 3, 4, 6), (0, 2, 3, 1), 1)
    layout = MemoryOrder(x, (torch.rand(3, 1, 1),))
    assert layout.order == (0, 2, 3, 1)
    view = layout.sequence(x)
    assert view.is_contiguous() and view.data_ptr() == x.data_ptr()  # no copy
    # the per-channel parameter over [C, H, W] (its trailing part), in memory order [H, W, C]
    assert layout.parameter_shape == (3, 4, 6)
    assert layout.parameter(torch.arange(72.0).view(3, 4, 6)).shape == (4, 6, 3)
    assert torch.equal(layout.sequence_back(view), x) and same_layout(layout.sequence_back(view), x)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: torch.randn(5, 2, 3), "contiguous"),
        (lambda: torch.randn(5, 2, 6)[..., ::2], "not dense: the op copies it"),
        (lambda: torch.randn(2, 5, 3).transpose(0, 1), "time not outermost: the op copies it"),
        (lambda: torch.randn(5, 6), "one state dimension: nothing to permute"),
    ],
)
def test_other_layouts_run_as_given(make, why):
    assert MemoryOrder(make(), ()).order is None, why


@pytest.mark.parametrize(
    ("state_shape", "order", "parameter_shape", "expected"),
    [
        ((2, 3, 4, 5), (0, 2, 3, 1), (3, 1, 1), (3, 4, 5)),  # per channel: over [C, H, W], which are last in memory
        ((2, 3, 4, 5), (0, 2, 3, 1), (5,), (3, 4, 5)),  # per column: W alone is not last in memory; C, H, W are
        ((3, 6), (1, 0), (6,), (3, 6)),  # per feature with the batch innermost: per neuron
        ((2, 3, 4, 5), (0, 2, 3, 1), (), ()),  # numbers: one value
    ],
)
def test_parameters_are_taken_over_trailing_dimensions_that_are_last_in_memory(
    state_shape, order, parameter_shape, expected
):
    x = laid_out(torch.randn(4, *state_shape), order, 1)
    layout = MemoryOrder(x, (torch.rand(parameter_shape) if parameter_shape else 0.5,))
    assert layout.order == order and layout.parameter_shape == expected


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_matches_eager_on_channels_last_frames(gen, device, dynamic):
    """A channels-last conv feeding LIF and IIR layers with per-channel parameters, compiled (with static and with
    symbolic shapes and strides) and eager."""
    backend = KERNEL_BACKEND[device]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
            self.synapse = snn_cuda.IIRSynapse((4, 1, 1), snn_cuda.synapse.dual_exp(4.0, 1.0), backend=backend)
            self.neuron = snn_cuda.LIF((4, 1, 1), alpha=0.7, theta=0.3, learn_alpha=True, backend=backend)

        def forward(self, x):
            T, B = x.shape[:2]
            y = self.conv(x.flatten(0, 1)).unflatten(0, (T, B))
            return self.neuron(self.synapse(y))

    model = Net().to(device).to(memory_format=torch.channels_last)
    x = torch.rand(6, 2, 2, 5, 5, generator=gen).to(device)
    x = laid_out(x, (0, 2, 3, 1), 1)
    eager, compiled = eager_and_compiled_step(model, x, "aot_eager", dynamic=dynamic)
    (eager_out, eager_grads), (compiled_out, compiled_grads) = eager, compiled
    assert not eager_out.is_contiguous()  # channels-last from the conv to the output
    assert torch.equal(eager_out, compiled_out)
    for a, b in zip(eager_grads, compiled_grads, strict=True):
        torch.testing.assert_close(a, b)
