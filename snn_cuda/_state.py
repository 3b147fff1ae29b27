"""States that modules carry from one call to the next (LIF, IIRSynapse with preserved states)."""

from __future__ import annotations

import torch


def carried_state(state: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The state a module kept from its last call, as the initial state of this one, in the input's dtype.

    A state kept from a call under `torch.inference_mode()` is an inference tensor, which autograd refuses to save
    for backward; outside that mode it is copied into a normal tensor, so evaluating a stateful model and then
    training it on from where it stopped works.
    """
    return outside_inference(state.to(dtype))


def outside_inference(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """A tensor made under `torch.inference_mode()` and used outside it where gradients are recorded: a normal copy,
    which autograd can save for the backward (it refuses an inference tensor); any other tensor (or None) as it is."""
    # torch.compile cannot trace is_inference(); a compiled call's tensors come from compiled or eager code alike
    if tensor is None or torch.compiler.is_compiling() or torch.is_inference_mode_enabled():
        return tensor
    if not torch.is_grad_enabled():  # nothing is saved for a backward
        return tensor
    return tensor.clone() if tensor.is_inference() else tensor


def refuse_recomputation(module: str) -> None:
    """Called by a module that carries state, before it reads it. Activation checkpointing
    (``torch.utils.checkpoint``) runs a forward again during the backward pass; a carried state has advanced
    since the first run, so the recomputed outputs, and with them the gradients, would be silently wrong."""
    # Not under torch.compile, which cannot trace the graph task: a compiled stateful layer inside a checkpointed
    # region is not caught (README). Any call in a backward pass is refused, with gradients on or off: a
    # checkpointed block may run a stateful layer under no_grad (a frozen encoder), and its recomputation would
    # still start from the advanced state.
    if torch.compiler.is_compiling():
        return
    if torch._C._current_graph_task_id() != -1:  # the private hook torch.utils.checkpoint itself uses
        raise RuntimeError(
            f"{module} carries its state across calls and was called during a backward pass (activation "
            "checkpointing recomputing it?): the state has advanced since the first call, so the recomputation "
            "would differ. Leave such layers out of checkpointed regions, or pass the state explicitly "
            "(snn_cuda.lif(v0=..., r0=...), snn_cuda.iir_filter(p1=..., p2=...))."
        )


def apply_to_state(state, fn):
    """``fn`` (what ``Module._apply`` applies to parameters and buffers: a device move, a dtype cast) applied to
    a carried state: None, a tensor, or a tuple of them. The state is not a buffer, which would make it part of
    ``buffers()`` (and DDP would broadcast rank 0's state, computed from its own samples, to every rank)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(fn(tensor) for tensor in state)
    return fn(state)
