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


class MemoryOrder:
    """Runs a kernel on ``x [T, *S]`` stored time-major with its state dimensions ``S`` dense in an order other
    than the logical one, e.g. each frame channels-last (``[T, B, C, H, W]`` reshaped from a channels-last conv
    output). The kernels index ``t * N + n`` over memory, so such an x needs no copy: it is viewed with ``S``
    permuted into memory order (a contiguous view), the kernel runs on that, and the outputs are viewed back, so
    they keep x's layout, and the gradient reaching x keeps it too. A copy would gather x (and the output's
    gradient) element by element: with the output copied back into x's layout, fwd+bwd at ``[64, 16, 16, 32, 32]``
    on the CPU took 3.7x (LIF) and 2.7x (IIR) as long (benchmarks/README.md). ``order`` is None when x is
    contiguous, not dense, or not time-major (time not outermost in memory): then the op runs as given, and the
    op copies such an x once.

    Per-element parameters are taken over a trailing part ``S[j:]`` of the state shape (:func:`parameter_shape`);
    here that part must also be the last dimensions in memory, so ``j`` moves left until it is (at worst to the
    whole state, which is correct and costs one value per neuron, read once per sequence)."""

    def __init__(self, x: torch.Tensor, values):
        state_shape = x.shape[1:]
        self.order = self._memory_order(x)
        start = len(state_shape) - len(parameter_shape(values, state_shape))
        if self.order is not None:
            while sorted(self.order[start:]) != list(range(start, len(state_shape))):
                start -= 1
            # the permutations of an S tensor, a [T, *S] one and a parameter into memory order, and back
            self._state_back = tuple(self.order.index(d) for d in range(len(state_shape)))
            self._sequence = (0, *(d + 1 for d in self.order))
            self._sequence_back = (0, *(i + 1 for i in self._state_back))
            self._parameter = tuple(d - start for d in self.order[start:])
        self.parameter_shape = state_shape[start:]

    @staticmethod
    def _memory_order(x: torch.Tensor) -> tuple[int, ...] | None:
        if x.dim() < 3 or x.is_contiguous():
            return None
        # The sized dimensions by falling stride (ties in logical order), by insertion: torch.compile traces
        # comparisons of symbolic strides, not a sort keyed on them. Those of size 1 have no place in memory, so
        # each goes right after its logical predecessor, where it splits no parameter's trailing dimensions.
        state_dims = range(x.dim() - 1)
        order: list[int] = []
        for d in state_dims:
            if x.shape[d + 1] != 1:
                i = len(order)
                while i > 0 and x.stride(order[i - 1] + 1) < x.stride(d + 1):
                    i -= 1
                order.insert(i, d)
        for d in state_dims:
            if x.shape[d + 1] == 1:
                order.insert(order.index(d - 1) + 1 if d else 0, d)
        if order == list(state_dims) or not x.permute(0, *(d + 1 for d in order)).is_contiguous():
            return None
        return tuple(order)

    def sequence(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """A ``[T, *S]`` tensor in memory order (a view for one laid out as x)."""
        return t if t is None or self.order is None else t.permute(self._sequence)

    def state(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """An ``S`` tensor in memory order."""
        return t if t is None or self.order is None else t.permute(self.order)

    def parameter(self, t: torch.Tensor) -> torch.Tensor:
        """A parameter of :attr:`parameter_shape` in memory order, contiguous as the kernels take it."""
        if self.order is None:
            return t
        return t.permute(self._parameter).contiguous()

    def sequence_back(self, t: torch.Tensor) -> torch.Tensor:
        """A kernel's ``[T, *S]`` output in x's logical order (a view, laid out as x)."""
        return t if self.order is None else t.permute(self._sequence_back)

    def state_back(self, t: torch.Tensor) -> torch.Tensor:
        """A kernel's ``S`` output in logical order."""
        return t if self.order is None else t.permute(self._state_back)
