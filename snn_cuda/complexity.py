"""Cost of a model per time step (models.md section 5): parameters, multiply-accumulates (MAC), accumulates (AC)
and other operations, counted with forward hooks on one batch, so measured spike rates enter the counts.

- Linear / Conv2d: ``N_in * N`` (conv: ``k^2 C_in C_out H_out W_out``) operations. In He et al.'s spiking nets
  (arch "snn") every such layer receives events (spikes, or event counts at the input), and each event costs one
  accumulate per connection: AC = dense count x mean input value (the measured spike rate), as He et al. count.
  Everywhere else (RNN activations, snn-iir's filtered currents) they are MACs.
- IIR synapse: 3 MACs per filtered element (2 for first order). LIF neuron: 1 multiply + 1 compare.
- RNN layer: ``(N_in + N) N`` MACs + N tanh; LSTM: ``4 (N_in + N) N`` MACs + 3N sigmoid + 2N tanh + 3N products;
  convolutional ones: their two convolutions' MACs and the same nonlinearities per hidden element.
- Pooling: average pooling of events is k^2 accumulates per output times the input rate; max pooling k^2 compares.

All counts are per sample and per time step (totals over the batch divided by T x B).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .models import SequenceModel, count_parameters
from .models.recurrent import ConvRecurrent
from .neuron import LIF
from .synapse import IIRSynapse


@dataclass
class Cost:
    """Operations per sample per time step, and the measured event rate at each weighted layer's input."""

    params: int
    macs: float = 0.0
    acs: float = 0.0
    other_ops: float = 0.0
    input_rates: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"params": self.params, "macs": self.macs, "acs": self.acs, "other_ops": self.other_ops,
                "input_rates": self.input_rates}  # fmt: skip


def _recurrent_ops(module: nn.RNNBase, x: torch.Tensor) -> tuple[float, float]:
    """(MACs, other ops) of a whole nn.RNN / nn.LSTM call on ``x: [T, B, F]``."""
    gates = 4 if isinstance(module, nn.LSTM) else 1
    hidden, macs, in_features = module.hidden_size, 0, module.input_size
    for _ in range(module.num_layers):
        macs += gates * (in_features + hidden) * hidden
        in_features = hidden
    other = (8 if gates == 4 else 1) * hidden * module.num_layers
    steps = x.shape[0] * x.shape[1]
    return float(macs * steps), float(other * steps)


@torch.no_grad()
def measure_cost(model: SequenceModel, x: torch.Tensor) -> Cost:
    """Counts the operations of ``model`` on ``x: [T, B, *input_shape]`` (one forward, no gradients)."""
    cost = Cost(params=count_parameters(model))
    event_driven = model.config.get("arch") == "snn"
    rates: dict[str, list[float]] = {}

    def weighted(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            x_in = inputs[0].detach()
            fan_in = module.in_features if isinstance(module, nn.Linear) else (
                module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1])  # fmt: skip
            dense = float(output.numel() * fan_in)
            if event_driven:
                rate = x_in.float().mean().item()
                cost.acs += dense * rate
                rates.setdefault(name, []).append(rate)
            else:
                cost.macs += dense

        return hook

    def pool(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        window = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        ops = float(output.numel() * window * window)
        if isinstance(module, nn.AvgPool2d) and event_driven:
            cost.acs += ops * inputs[0].float().mean().item()
        else:
            cost.other_ops += ops

    def recurrent(module: nn.RNNBase, inputs: tuple, output) -> None:
        macs, other = _recurrent_ops(module, inputs[0])
        cost.macs += macs
        cost.other_ops += other

    def conv_recurrent(module: ConvRecurrent, inputs: tuple, output: torch.Tensor) -> None:
        # its convolutions are counted by their own hooks (the hidden one once per step); the nonlinearities as
        # for nn.RNN / nn.LSTM, per hidden element
        cost.other_ops += (8.0 if module.cell == "lstm" else 1.0) * output.numel()

    def neuron(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        cost.other_ops += 2.0 * output.numel()

    def synapse(module: IIRSynapse, inputs: tuple, output: torch.Tensor) -> None:
        cost.macs += (2.0 if module.first_order else 3.0) * output.numel()

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            handles.append(module.register_forward_hook(weighted(name)))
        elif isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
            handles.append(module.register_forward_hook(pool))
        elif isinstance(module, (nn.RNN, nn.LSTM)):
            handles.append(module.register_forward_hook(recurrent))
        elif isinstance(module, ConvRecurrent):
            handles.append(module.register_forward_hook(conv_recurrent))
        elif isinstance(module, LIF):
            handles.append(module.register_forward_hook(neuron))
        elif isinstance(module, IIRSynapse):
            handles.append(module.register_forward_hook(synapse))
    was_training = model.training
    try:
        model.eval()
        model.reset_state()
        model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    steps = x.shape[0] * x.shape[1]
    cost.macs, cost.acs, cost.other_ops = cost.macs / steps, cost.acs / steps, cost.other_ops / steps
    cost.input_rates = {name: sum(values) / len(values) for name, values in rates.items()}
    return cost


def saved_for_backward_bytes(model: SequenceModel, x: torch.Tensor) -> int:
    """Bytes that autograd keeps for the backward of one forward on ``x`` (activations; parameters and tensors
    shared between saves are counted once or not at all): the memory BPTT needs beyond the weights."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters and storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    model.reset_state()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x)
    return total
