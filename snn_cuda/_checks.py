"""Argument checks shared by the public ops and the reference: every error names the argument."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

ParamLike = float | int | torch.Tensor


def check_sequence(x: object, name: str = "x") -> torch.Tensor:
    """A time-major floating tensor ``[T, *S]`` with T > 0."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [T, ...], got {type(x).__name__}")
    check_dense(x, name)
    if x.dim() < 1:
        raise ValueError(f"{name} must have shape [T, ...] with at least one dimension, got a 0-dim tensor")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must have at least one time step, got T = {name}.shape[0] = 0")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def check_dense(value: torch.Tensor, name: str) -> None:
    """The ops take dense (strided) tensors: a sparse one would reach the kernels' dispatcher as an unknown key."""
    if value.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {value.layout}; use {name}.to_dense()")


def check_keys(keys: object, accepted, where: str, *, error: type[Exception] = ValueError) -> None:
    """A mapping's ``keys`` are among ``accepted`` (listed in the error in their order): a misspelt key of a config
    would otherwise be ignored. YAML keys need not be strings, so they are sorted as text."""
    unknown = sorted(set(keys) - set(accepted), key=str)
    if unknown:
        raise error(f"{where} has unknown keys {unknown}; accepted: {list(accepted)}")


def is_integer(value: object) -> bool:
    """An integer, numpy's included (np.int64 is not an int), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_float(value: object, name: str, *, low: float | None = None, high: float | None = None) -> float:
    # numbers.Real takes numpy scalars too (np.float32 is not a float)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int (or a Fraction) beyond float's range
        raise ValueError(f"{name} must be finite, got a number beyond the range of a float") from None
    # a comparison rather than math.isfinite: under torch.compile a number can be symbolic (a SymFloat, once
    # dynamo makes it dynamic), which comparisons take (as guards) and math.isfinite does not; NaN fails both
    if not -math.inf < value < math.inf:
        raise ValueError(f"{name} must be finite, got {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
    return value


def check_int(value: object, name: str, *, low: int | None = None) -> int:
    """An integer (numpy's included, not a bool or a float of integral value), at least ``low`` if given."""
    if not is_integer(value):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return value


def check_bool(value: object, name: str) -> bool:
    """A flag: True or False (numpy's too), not any object whose truth would be taken."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def dual_level_open() -> bool:
    """Whether a forward-mode ``torch.autograd.forward_ad.dual_level`` is open, outside which no tensor carries a
    tangent. Read from the module's private ``_current_level`` (-1 when none), so read with a default that says
    one may be open, where callers then look closer."""
    return getattr(torch.autograd.forward_ad, "_current_level", 0) >= 0


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The LIF kernels compute (and keep per-element parameters) in float64 for float64 input, else float32. (The
    IIR kernels compute float32 input in float64: ``ops.iir.iir_compute_dtype``.)"""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_fits(value: float, name: str, x: torch.Tensor, *, positive: bool = False) -> float:
    """A number the recurrence of x computes with: finite in ``compute_dtype(x.dtype)`` (in which the reference
    takes it, and the LIF kernels compute), so every backend sees the same value; a positive one (a surrogate's
    width) at least the smallest normal number there, not rounded to 0 or turned into an overflowing 1/p."""
    dtype = compute_dtype(x.dtype)
    finfo = torch.finfo(dtype)
    where = f"in which every backend takes numbers for x of dtype {x.dtype}"
    check_fits_dtype(value, name, dtype, where=where)
    if positive and value < finfo.tiny:
        raise ValueError(f"{name} = {value} is below {finfo.tiny}, the smallest normal {dtype}, {where}")
    return value


def check_fits_dtype(value: float, name: str, dtype: torch.dtype, *,
                     where: str = "the dtype of the tensor that holds it") -> float:  # fmt: skip
    """A number finite in ``dtype`` (a module's tensor would hold it as inf; ``where`` says why that dtype)."""
    if abs(value) > torch.finfo(dtype).max:
        raise ValueError(f"{name} = {value} overflows {dtype}, {where}")
    return value


def check_param(
    value: ParamLike, name: str, x: torch.Tensor, *, low: float | None = None, high: float | None = None
) -> ParamLike:
    """A per-element parameter: a number (range-checked) or a tensor that broadcasts against ``x.shape[1:]``."""
    if not isinstance(value, torch.Tensor):
        return check_fits(check_float(value, name, low=low, high=high), name, x)
    check_dense(value, name)
    state_shape = tuple(x.shape[1:])
    try:
        broadcast = torch.broadcast_shapes(tuple(value.shape), state_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != state_shape:
        raise ValueError(
            f"{name} of shape {tuple(value.shape)} does not broadcast against the trailing shape {state_shape} of x"
        )
    if value.device != x.device:
        raise ValueError(f"{name} is on {value.device} but x is on {x.device}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def check_state(value: torch.Tensor | None, name: str, x: torch.Tensor) -> torch.Tensor | None:
    """An initial state: None or a tensor of shape ``x.shape[1:]`` with x's dtype and device."""
    if value is None:
        return None
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(value).__name__}")
    check_dense(value, name)
    if tuple(value.shape) != tuple(x.shape[1:]):
        raise ValueError(
            f"{name} must have shape {tuple(x.shape[1:])} (the trailing shape of x), got {tuple(value.shape)}"
        )
    if value.device != x.device:
        raise ValueError(f"{name} is on {value.device} but x is on {x.device}")
    if value.dtype != x.dtype:
        raise TypeError(f"{name} has dtype {value.dtype} but x has dtype {x.dtype}")
    return value


def check_shape(value: object, name: str, *, example: str = "(F,) or (C, 1, 1)", dims: int | None = None,
                ) -> tuple[int, ...]:  # fmt: skip
    """A shape: a tuple (or list, or torch.Size) of positive ints (numpy's included), of ``dims`` entries if given;
    ``example`` shows one in the error."""
    if (not isinstance(value, (tuple, list, torch.Size)) or not all(is_integer(d) and d > 0 for d in value)
            or (dims is not None and len(value) != dims)):  # fmt: skip
        count = f"{dims} " if dims is not None else ""
        raise TypeError(f"{name} must be a tuple of {count}positive ints, such as {example}, got {value!r}")
    return tuple(int(d) for d in value)


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value
