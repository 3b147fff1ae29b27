"""States that modules carry from one call to the next (LIF, IIRSynapse with preserved states)."""

from __future__ import annotations

import torch


def carried_state(state: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The state a module kept from its last call, as the initial state of this one, in the input's dtype.

    A state kept from a call under `torch.inference_mode()` is an inference tensor, which autograd refuses to save
    for backward; outside that mode it is copied into a normal tensor, so evaluating a stateful model and then
    training it on from where it stopped works.
    """
    state = state.to(dtype)
    # torch.compile cannot trace is_inference(); a compiled module's state comes from a compiled call
    if not torch.compiler.is_compiling() and state.is_inference() and not torch.is_inference_mode_enabled():
        state = state.clone()
    return state


def apply_to_state(state, fn):
    """``fn`` (what ``Module._apply`` applies to parameters and buffers: a device move, a dtype cast) applied to
    a carried state: None, a tensor, or a tuple of them. The state is not a buffer, which would make it part of
    ``buffers()`` (and DDP would broadcast rank 0's state, computed from its own samples, to every rank)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(fn(tensor) for tensor in state)
    return fn(state)
