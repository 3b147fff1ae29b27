"""One LIF equation (models.md section 1), written with snn_cuda and with each peer library.

A :class:`LifSetting` states an equation in snn_cuda's terms; :func:`build` returns a module
``x: [T, *S] -> spikes [T, *S]`` that computes it with the named library, starting from zero state on every call,
or raises :class:`NotExpressible` with the reason the library's API cannot. What each library can express, read
from its code (snnTorch 1.0.0, SpikingJelly 2.0.0, Norse 1.1.0):

- snnTorch ``Leaky`` / ``Synaptic``: gain 1; the reset is always detached; reset_mechanism "zero" is the hard
  reset (Leaky only: Synaptic's "zero" also drops the input of the step after a spike) and "subtract" removes
  ``theta * s[t-1]`` from ``h[t]`` undecayed (``reset="subtract_next"`` here, snn_cuda's reset trace with
  gamma 0 and rho theta); surrogates atan, fast_sigmoid, and rectangular through ``custom_surrogate``.
  ``Synaptic``: ``i[t] = a i[t-1] + x[t]`` feeds the membrane.
- SpikingJelly ``LIFNode``: ``h = v - v / tau + x`` (``decay_input=False``, gain 1) or ``v + (x - v) / tau``
  (gain 1 - alpha), alpha = 1 - 1/tau; hard (``v_reset=0``) or soft (``v_reset=None``) reset, detached or not;
  fires on ``h - theta >= 0`` (snn_cuda: ``> 0``; equal only where h sits exactly on theta). ``CUBALIFNode``:
  the same neuron after ``i[t] = c_decay i[t-1] + x[t]``. ``SynapseFilter`` (``"spikingjelly-synapsefilter"``)
  is the closest by name but skips the decay on input: ``i[t] = i[t-1] - (1 - x[t]) i[t-1] / tau + x[t]``, an
  input-gated filter that no fixed IIR coefficient reproduces, so it is timed but never called equal.
- Norse ``LIFBoxCell`` (no current) and ``LIF`` (current-based): ``v += dt/tau_mem (x - v)``, so the gain is
  1 - alpha; the reset is not detached; ``LIF`` adds the input to the current ``i`` before the membrane reads it,
  ``i`` then decays by ``1 - dt/tau_syn``; its "super" surrogate ignores its alpha in 1.1.0 and is
  ``1 / (1 + |u|)^2`` (snn_cuda fast_sigmoid with slope 1); "triangle" with alpha 1 is snn_cuda's triangle, width 1.

Where a library rounds differently (``v - v/tau`` against ``alpha * v``, snnTorch's float32 spikes), results
agree to rounding, which the equivalence checks bound.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch
from _common import lif_tensor_passes
from torch import nn

import snn_cuda

LIBRARIES = ("snn_cuda", "snntorch", "spikingjelly", "spikingjelly-synapsefilter", "norse")
# The import name of each peer, to tell what is installed.
PEER_MODULES = {"snntorch": "snntorch", "spikingjelly": "spikingjelly", "spikingjelly-synapsefilter": "spikingjelly",
                "norse": "norse"}  # fmt: skip
# SpikingJelly picks one of these for its LIFNode on CUDA devices (on CPU it always runs its torch loop): its
# torch loop with a hand-written backward, its native CUDA extension (built only from source), its Triton kernels.
SPIKINGJELLY_CUDA_IMPLEMENTATIONS = ("torch", "cuda", "triton")
# Its kernels take float32 LIFNode inputs with these surrogates; anything else runs its autograd torch reference.
SPIKINGJELLY_KERNEL_SURROGATES = ("atan", "sigmoid")


class NotExpressible(ValueError):
    """The library's API cannot state this equation exactly."""


@dataclass(frozen=True)
class LifSetting:
    """A LIF equation in snn_cuda's terms (models.md section 1, ``v_reset = 0``):

    ``i[t] = synapse_decay * i[t-1] + x[t]`` when ``synapse_decay`` is set (else ``i = x``), then
    ``h[t] = alpha v[t-1] + input_gain * i[t]``, ``s[t] = [h[t] > theta]``, and the reset: "hard"
    ``v = (1 - s) h``, "soft" ``v = h - theta s``, "subtract_next" ``v = h`` and ``theta s[t]`` subtracted from
    ``h[t+1]`` (snnTorch's "subtract"). ``detach_reset``: the spike is a constant in the reset.
    """

    alpha: float = 0.5
    theta: float = 1.0
    reset: str = "hard"
    detach_reset: bool = True
    surrogate: str = "atan"
    surrogate_param: float = 2.0
    input_gain: float = 1.0
    synapse_decay: float | None = None

    def describe(self) -> str:
        parts = [f"alpha {self.alpha:g}", f"theta {self.theta:g}",
                 f"{self.reset} reset{' (detached)' if self.detach_reset else ''}",
                 f"{self.surrogate}({self.surrogate_param:g})"]  # fmt: skip
        if self.input_gain != 1.0:
            parts.append(f"gain {self.input_gain:g}")
        if self.synapse_decay is not None:
            parts.insert(0, f"synapse {self.synapse_decay:g}")
        return ", ".join(parts)

    def lif_options(self) -> dict:
        """The keyword arguments of :func:`snn_cuda.lif` for this equation."""
        reset = {"hard": dict(reset="hard", v_reset=0.0), "soft": dict(reset="soft"),
                 "subtract_next": dict(reset="none", gamma=0.0, rho=self.theta)}[self.reset]  # fmt: skip
        return dict(alpha=self.alpha, theta=self.theta, detach_reset=self.detach_reset, surrogate=self.surrogate,
                    surrogate_param=self.surrogate_param, **reset)  # fmt: skip


def unavailable(library: str) -> str | None:
    """Why ``library`` cannot be imported (not installed, or a dependency missing), or None when it can."""
    if library == "snn_cuda":
        return None
    try:
        importlib.import_module(PEER_MODULES[library])
    except ImportError as error:
        return f"{error} (make peers installs the pinned peers)"
    return None


def _require(condition: bool, library: str, reason: str) -> None:
    if not condition:
        raise NotExpressible(f"{library}: {reason}")


def _surrogate(setting: LifSetting, library: str, makers: dict):
    """The library's surrogate for ``setting`` from ``makers`` (snn_cuda name -> maker of the parameter)."""
    _require(setting.surrogate in makers, library, f"no surrogate {setting.surrogate!r} (has {list(makers)})")
    return makers[setting.surrogate](setting.surrogate_param)


class SnnCudaNeuron(nn.Module):
    """The equation with snn_cuda's fused ops: ``iir_filter`` (first order) for the synapse, then ``lif``."""

    differs = None

    def __init__(self, setting: LifSetting, backend: str = "auto") -> None:
        super().__init__()
        self.setting, self.backend = setting, backend

    def tensor_passes(self, device_type: str) -> tuple[int, int]:
        """How many times the ops read or write a tensor of x's size, forward and backward: the bytes they must
        move in units of ``x.nbytes`` (lif: ``lif_tensor_passes``; the filter and the gain: one read and one write
        each way)."""
        extra = 2 * ((self.setting.synapse_decay is not None) + (self.setting.input_gain != 1.0))
        forward, backward = lif_tensor_passes(device_type)
        return forward + extra, backward + extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.setting.synapse_decay is not None:
            x = snn_cuda.iir_filter(x, self.setting.synapse_decay, 0.0, 1.0, backend=self.backend)
        if self.setting.input_gain != 1.0:
            x = x * self.setting.input_gain
        return snn_cuda.lif(x, backend=self.backend, **self.setting.lif_options())


class SnnTorchNeuron(nn.Module):
    """snnTorch's ``Leaky`` (or ``Synaptic`` with a synapse), stepped over T as its tutorials do."""

    differs = None

    def __init__(self, setting: LifSetting) -> None:
        super().__init__()
        import snntorch
        from snntorch import surrogate

        name = "snntorch"
        _require(setting.input_gain == 1.0, name, "the input enters the membrane with gain 1")
        _require(setting.detach_reset, name, "the reset is always detached")
        _require(setting.reset in ("hard", "subtract_next"), name, "resets are 'zero' (hard) and 'subtract' "
                 "(theta subtracted undecayed at the next step: reset='subtract_next')")  # fmt: skip
        _require(setting.synapse_decay is None or setting.reset == "subtract_next", name,
                 "Synaptic's reset 'zero' also drops the input of the step after a spike; use 'subtract_next'")
        spike_grad = _surrogate(setting, name, {
            "atan": lambda alpha: surrogate.atan(alpha=alpha),
            "fast_sigmoid": lambda slope: surrogate.fast_sigmoid(slope=slope),
            "rectangular": lambda width: surrogate.custom_surrogate(
                lambda u, grad, _spikes: grad * (u.abs() < width / 2).to(grad.dtype) / width),
        })  # fmt: skip
        # Buffers in float64: snnTorch keeps float parameters as float32 tensors, which would round alpha and
        # theta (0.3, say) for float64 inputs; a 0-dim float64 tensor does not promote float32 inputs.
        options = dict(beta=torch.tensor(setting.alpha, dtype=torch.float64),
                       threshold=torch.tensor(setting.theta, dtype=torch.float64),
                       spike_grad=spike_grad,
                       reset_mechanism="zero" if setting.reset == "hard" else "subtract")  # fmt: skip
        self.synaptic = setting.synapse_decay is not None
        if self.synaptic:
            self.cell = snntorch.Synaptic(alpha=torch.tensor(setting.synapse_decay, dtype=torch.float64), **options)
        else:
            self.cell = snntorch.Leaky(**options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = []
        zeros = torch.zeros_like(x[0])
        if self.synaptic:
            synaptic, membrane = zeros, zeros
            for x_t in x:
                spike, synaptic, membrane = self.cell(x_t, synaptic, membrane)
                spikes.append(spike)
        else:
            membrane = zeros
            for x_t in x:
                spike, membrane = self.cell(x_t, membrane)
                spikes.append(spike)
        # snnTorch's spikes are float32 whatever the input's dtype
        return torch.stack(spikes).to(x.dtype)


def _use_spikingjelly_cuda_implementation(name: str) -> None:
    """SpikingJelly 2 picks its CUDA LIF once per process, from ``SJ_LIF_CUDA_IMPLEMENTATION`` read at import;
    resetting that choice lets one process time each implementation."""
    from spikingjelly._ops.lif import _selection

    if _selection._requested != name:
        _selection._requested = name
        _selection._selections.clear()
        _selection._compiled_selections.clear()


class SpikingJellyNeuron(nn.Module):
    """SpikingJelly's multi-step ``LIFNode`` (``CUBALIFNode`` with a synapse; ``SynapseFilter`` + ``LIFNode``
    with ``synapse_filter``). ``cuda_implementation``: which of its CUDA kernels runs the LIFNode on CUDA inputs
    (one of SPIKINGJELLY_CUDA_IMPLEMENTATIONS, or "auto": its own choice)."""

    def __init__(self, setting: LifSetting, *, synapse_filter: bool = False,
                 cuda_implementation: str = "triton") -> None:  # fmt: skip
        super().__init__()
        from spikingjelly.activation_based import layer, neuron, surrogate

        name = "spikingjelly"
        _require(0.0 < setting.alpha < 1.0, name, "alpha = 1 - 1/tau with tau > 1")
        _require(setting.reset in ("hard", "soft"), name, "resets are hard (v_reset=0) and soft (v_reset=None)")
        surrogate_function = _surrogate(setting, name, {
            "atan": lambda alpha: surrogate.ATan(alpha=alpha),
            "sigmoid": lambda alpha: surrogate.Sigmoid(alpha=alpha),
            "rectangular": lambda width: surrogate.Rect(alpha=1.0 / width),
        })  # fmt: skip
        v_reset = 0.0 if setting.reset == "hard" else None
        tau = 1.0 / (1.0 - setting.alpha)
        self.cuda_implementation = cuda_implementation
        self.kernel_surrogate = setting.surrogate in SPIKINGJELLY_KERNEL_SURROGATES
        self.differs = None
        if setting.synapse_decay is not None and not synapse_filter:
            _require(setting.input_gain == 1.0, name, "CUBALIFNode adds the current with gain 1")
            node = neuron.CUBALIFNode(c_decay=setting.synapse_decay, v_decay=setting.alpha,
                                      v_threshold=setting.theta, v_reset=v_reset,
                                      surrogate_function=surrogate_function)  # fmt: skip
            node.detach_reset = setting.detach_reset
            node.step_mode = "m"
            self.layers = nn.Sequential(node)
            return
        _require(setting.input_gain in (1.0, 1.0 - setting.alpha), name, "the input gain is 1 or 1 - alpha")
        lif = neuron.LIFNode(tau=tau, decay_input=setting.input_gain != 1.0, v_threshold=setting.theta,
                             v_reset=v_reset, surrogate_function=surrogate_function,
                             detach_reset=setting.detach_reset, step_mode="m")  # fmt: skip
        if setting.synapse_decay is None:
            self.layers = nn.Sequential(lif)
        else:
            synapse = layer.SynapseFilter(tau=1.0 / (1.0 - setting.synapse_decay), step_mode="m")
            self.layers = nn.Sequential(synapse, lif)
            self.differs = ("SynapseFilter skips the decay where there is input: "
                            "i[t] = i[t-1] - (1 - x[t]) i[t-1] / tau + x[t]")  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:
            # SpikingJelly raises if a named kernel is requested for an input only its reference takes.
            kernel_input = self.kernel_surrogate and x.dtype == torch.float32
            _use_spikingjelly_cuda_implementation(self.cuda_implementation if kernel_input else "auto")
        for module in self.layers:
            module.reset()
        return self.layers(x)


class NorseNeuron(nn.Module):
    """Norse's ``LIFBoxCell`` stepped over T (it has no multi-step box module), or its multi-step ``LIF`` with
    a synapse; dt = 1, so 1/tau_mem = 1 - alpha and 1/tau_syn = 1 - synapse_decay."""

    differs = None

    def __init__(self, setting: LifSetting) -> None:
        super().__init__()
        import norse.torch as norse
        from norse.torch.functional.reset import reset_subtract, reset_value

        name = "norse"
        leak = 1.0 - setting.alpha
        _require(setting.input_gain == leak, name, "v += dt/tau (x - v): the input gain is 1 - alpha")
        _require(not setting.detach_reset, name, "the reset is not detached")
        _require(setting.reset in ("hard", "soft"), name, "resets are reset_value (hard) and reset_subtract (soft)")
        _require(setting.synapse_decay is None or setting.reset == "hard", name, "LIF resets to v_reset (hard)")
        methods = {"fast_sigmoid": "super", "triangle": "triangle"}
        _require(setting.surrogate in methods and setting.surrogate_param == 1.0, name,
                 "surrogates are 'super' = fast_sigmoid(1) and 'triangle' = triangle(1)")  # fmt: skip

        def tensor(value: float) -> torch.Tensor:
            return torch.tensor(value, dtype=torch.float64)  # exact for float64 inputs; float32 ones stay float32

        common = dict(tau_mem_inv=tensor(leak), v_leak=tensor(0.0), v_th=tensor(setting.theta),
                      v_reset=tensor(0.0), method=methods[setting.surrogate], alpha=tensor(1.0))  # fmt: skip
        if setting.synapse_decay is None:
            reset_method = reset_value if setting.reset == "hard" else reset_subtract
            self.cell = norse.LIFBoxCell(norse.LIFBoxParameters(**common, reset_method=reset_method), dt=1.0)
            self.layer = None
        else:
            parameters = norse.LIFParameters(tau_syn_inv=tensor(1.0 - setting.synapse_decay), **common)
            self.layer = norse.LIF(parameters, dt=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer is not None:
            return self.layer(x)[0]
        spikes, state = [], None
        for x_t in x:
            spike, state = self.cell(x_t, state)
            spikes.append(spike)
        return torch.stack(spikes)


def build(library: str, setting: LifSetting, *, cuda_implementation: str = "triton",
          backend: str = "auto") -> nn.Module:  # fmt: skip
    """``library``'s module for ``setting`` (see the module docstring); raises :class:`NotExpressible`.
    Its ``differs`` attribute is None when it computes the equation exactly, else what differs."""
    if library == "snn_cuda":
        return SnnCudaNeuron(setting, backend)
    if library == "snntorch":
        return SnnTorchNeuron(setting)
    if library in ("spikingjelly", "spikingjelly-synapsefilter"):
        return SpikingJellyNeuron(setting, synapse_filter=library == "spikingjelly-synapsefilter",
                                  cuda_implementation=cuda_implementation)  # fmt: skip
    if library == "norse":
        return NorseNeuron(setting)
    raise ValueError(f"library must be one of {LIBRARIES}, got {library!r}")
