"""Backend selection shared by the ops: "auto", "cpp" (compiled CPU), "cuda" or "torch" (the reference)."""

from __future__ import annotations

import warnings

import torch
from torch.autograd import forward_ad

from .. import _ext
from .._checks import dual_level_open

try:  # private, so guarded: without it the transforms fail with PyTorch's own message
    from torch._C._functorch import TransformType
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters as _all_functorch_interpreters
except ImportError:
    _all_functorch_interpreters = None

BACKENDS = ("auto", "cpp", "cuda", "torch")

# Storage dtypes each compiled backend implements (half and bfloat16 are computed in float32). The CPU kernels'
# dispatch (SNN_DISPATCH_CPU_TYPES, csrc/torch/cpu_launch.h) lists the same.
KERNEL_DTYPES = {
    "cpu": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}
_BACKEND_DEVICE = {"cpp": "cpu", "cuda": "cuda"}
# The public function of each op, for messages.
PUBLIC_NAME = {"lif": "snn_cuda.lif", "iir": "snn_cuda.iir_filter"}
_warned: set[tuple[str, str]] = set()


def _unavailable_reason(op: str, device_type: str, dtype: torch.dtype) -> str | None:
    if not _ext.loaded():
        return f"the compiled extension snn_cuda._C could not be loaded ({_ext.load_error()})"
    if not _ext.has_kernel(f"{op}_fwd", device_type):
        return f"snn_cuda was built without {device_type} kernels"
    if dtype not in KERNEL_DTYPES.get(device_type, ()):
        return f"the {device_type} kernel of {op} does not implement {dtype}"
    return None


def _differentiating_transform() -> str | None:
    """The name of a torch.func transform that differentiates ("Grad": grad, vjp, jacrev; "Jvp": jvp, jacfwd)
    active around this call, if any: those refuse autograd formulas written in C++, as the compiled ops' are.
    (vmap alone runs them, through PyTorch's per-sample fallback.)"""
    if _all_functorch_interpreters is None or torch.compiler.is_compiling():
        return None
    for interpreter in _all_functorch_interpreters():
        if interpreter.key() in (TransformType.Grad, TransformType.Jvp):
            return interpreter.key().name
    return None


def _carries_tangent(tensors: tuple) -> bool:
    """Whether a tensor among ``tensors`` is a forward-mode dual tensor (``torch.autograd.forward_ad``, which
    ``torch.autograd.functional.jacobian(strategy="forward-mode")`` uses too): the compiled ops' C++ autograd
    formula has no forward derivative, and PyTorch would drop the tangent without a word. Dual tensors exist only
    inside a ``dual_level``. While torch.compile traces, a tensor's tangent cannot be asked for: any open
    ``dual_level`` counts then."""
    if not dual_level_open():
        return False
    if torch.compiler.is_compiling():
        return True
    return any(isinstance(t, torch.Tensor) and forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def _reference_only_reason(tensors: tuple) -> str | None:
    """Why this call must run the reference whatever the backend, if it must."""
    transform = _differentiating_transform()
    if transform is not None:
        return f"under torch.func's {transform} transform, which refuses the compiled ops' C++ autograd formula"
    if _carries_tangent(tensors):
        return "on forward-mode dual tensors (torch.autograd.forward_ad), for which the compiled ops have no formula"
    return None


def select(op: str, backend: str, x: torch.Tensor, others: tuple = ()) -> str:
    """Returns "kernel" or "torch" for running ``op`` on ``x`` (with the op's other tensor arguments ``others``);
    raises if an explicit backend cannot run it."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(repr(b) for b in BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return "torch"
    device_type = x.device.type
    reason = _reference_only_reason((x, *others))
    if reason is not None:
        if backend != "auto":
            raise RuntimeError(f"backend={backend!r} cannot run {PUBLIC_NAME[op]} {reason}; use backend='torch' "
                               "(or 'auto', which takes it)")  # fmt: skip
        return "torch"
    if backend == "auto":
        if _ext.reference_forced():
            return "torch"
        reason = _unavailable_reason(op, device_type, x.dtype)
        if reason is None:
            return "kernel"
        key = (op, reason)
        if key not in _warned:
            _warned.add(key)
            warnings.warn(f"{PUBLIC_NAME[op]}: using the pure-torch reference because {reason}", stacklevel=3)
        return "torch"
    wanted = _BACKEND_DEVICE[backend]
    if device_type != wanted:
        raise ValueError(f"backend={backend!r} runs on {wanted} tensors, but x is on {x.device}")
    reason = _unavailable_reason(op, device_type, x.dtype)
    if reason is not None:
        raise RuntimeError(f"backend={backend!r} is not available for {PUBLIC_NAME[op]}: {reason}")
    return "kernel"


def parameter_shape(values, state_shape: torch.Size) -> torch.Size:
    """The shape in which the kernels take per-element parameters: the shortest trailing part ``S[j:]`` of the
    state shape ``S`` over which every tensor among ``values`` varies (numbers vary over none). The kernels repeat
    a parameter over the leading dimensions ``S[:j]`` (csrc/core/lif_params.h), so a per-feature parameter is not
    copied for every sample of the batch, and a number is one value."""
    start = len(state_shape)
    for value in values:
        if isinstance(value, torch.Tensor):
            # The parameter's dimensions, right-aligned against S; the first that is not 1.
            offset = len(state_shape) - value.dim()
            varying = [offset + d for d, size in enumerate(value.shape) if size != 1]
            if varying:
                start = min(start, varying[0])
    return state_shape[start:]


def as_parameter(value, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A number or broadcastable tensor as a contiguous ``dtype`` tensor of ``shape`` (from
    :func:`parameter_shape`); autograd reduces the broadcast."""
    if isinstance(value, torch.Tensor):
        value = value.to(dtype)
        if value.dim() > len(shape):  # leading dimensions of size 1, outside the parameter's shape
            value = value.reshape(value.shape[value.dim() - len(shape) :])
        return value.expand(shape).contiguous()
    return torch.full(shape, float(value), dtype=dtype, device=device)
