"""Headline benchmark: time of the fused recurrences vs the pure-torch reference as T grows, and of whole layers:
spiking layers vs torch.nn.RNN / torch.nn.LSTM of the same hidden size at the same T.

For each case and T: forward (training mode, saving what the backward needs), backward (to the input and every
parameter, as in training), and forward+backward, medians after warm-up, allocation included for every
implementation.

- Ops (``lif``, ``iir``) on ``[T, batch, neurons]``: the fused kernel vs the reference. Each fused row also
  reports the bytes the kernel must move and the achieved fraction of the copy bandwidth measured in the run.
  ``lif_membrane`` (not in the default list) is ``lif`` with the membrane sequence as a second output, both
  outputs differentiated: the cost of ``return_membrane=True``. With ``--channels-last C`` the ops' neurons are C
  channels of a square frame, ``[T, batch, C, H, W]`` stored channels-last per frame (a channels-last conv's
  output, its gradient laid out alike), with one more row, ``fused_copied``: the op on ``x.contiguous()``, its
  output copied back into x's layout, which is what a kernel that copies such an input costs a channels-last net.
- Layers on ``[T, batch, inputs]`` -> ``hidden`` units (defaults: He et al.'s gesture net, 2048 -> 512):
  ``snn_layer`` (Linear + LIF, He et al.'s neuron), ``iir_layer`` (IIR synapses on the input, Linear, snn-iir
  neuron), each with the fused ops and with the reference; ``rnn`` and ``lstm`` (one torch.nn.RNN / LSTM layer:
  cuDNN on CUDA, torch's own CPU kernels otherwise). Each row also holds the parameters and the MACs and ACs per
  sample and step (:func:`snn_cuda.complexity.measure_cost`; the spiking layer's input is events at rate 0.1,
  so its synaptic operations are ACs).

    python benchmarks/timestep_scaling.py                       # every case, T = 8 .. 256, float32, CPU
    python benchmarks/timestep_scaling.py --ops lif iir --device cuda --dtype float16 --neurons 65536
    python benchmarks/timestep_scaling.py --ops snn_layer lstm --hidden 256 --inputs 1024 --T 8 16 --repeats 3
    python benchmarks/timestep_scaling.py --ops lif iir --T 64 --batch 16 --neurons 16384 --channels-last 16 \
        --out benchmarks/results/cpu_thp1_channels_last

Writes timestep_scaling_<device>_<dtype>.{csv,md,png} under benchmarks/results/ (or --out).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from _common import (
    RESULTS,
    copy_bandwidth_gbps,
    device_argument,
    environment,
    figure_title,
    lif_tensor_passes,
    median_ms,
    output_folder,
    positive_int,
    write_csv,
)

import snn_cuda
from snn_cuda.complexity import measure_cost
from snn_cuda.experiment import markdown_table
from snn_cuda.models import SequenceModel, StackedRecurrent, build_model

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
INPUT_EVENT_RATE = 0.1  # of the layers' input: events, as the frames of an event camera


@dataclass
class Sizes:
    batch: int
    neurons: int  # of the ops
    inputs: int  # of the layers
    hidden: int
    channels: int | None = None  # of the ops' channels-last frames (--channels-last), or flat neurons

    @property
    def frame(self) -> tuple[int, int, int] | None:
        """(C, H, W) of the ops' channels-last frames, H = W (``neurons = C * H * W``), or None."""
        if self.channels is None:
            return None
        side = math.isqrt(self.neurons // self.channels)
        return self.channels, side, side


def op_input(T: int, sizes: Sizes, dtype: torch.dtype, device: torch.device, scale: float) -> torch.Tensor:
    """An op's input, uniform in [0, scale): ``[T, batch, neurons]``, or ``[T, batch, C, H, W]`` stored
    channels-last per frame (``neurons = C * H * W``, ``H = W``) with ``sizes.channels`` C."""
    if sizes.frame is None:
        return (torch.rand(T, sizes.batch, sizes.neurons, device=device) * scale).to(dtype).requires_grad_()
    C, H, W = sizes.frame
    stored = torch.rand(T, sizes.batch, H, W, C, device=device) * scale
    return stored.to(dtype).permute(0, 1, 4, 2, 3).requires_grad_()


def op_implementations(op: Callable[..., torch.Tensor], backend: str, sizes: Sizes) -> dict[str, Callable]:
    """The implementations timed for ``op(x, *coefficients, backend=...)``: fused and reference, and with
    channels-last frames the fused op on a contiguous copy of x, its output copied back into x's layout."""

    def copied(x, *coefficients):
        out = op(x.contiguous(), *coefficients, backend=backend)
        laid_out_as_x = [torch.empty_like(x).copy_(t) for t in (out if isinstance(out, tuple) else (out,))]
        return tuple(laid_out_as_x) if isinstance(out, tuple) else laid_out_as_x[0]

    implementations = {"fused": partial(op, backend=backend), "reference": partial(op, backend="torch")}
    if sizes.frame is not None:
        implementations["fused_copied"] = copied
    return implementations


@dataclass
class Case:
    """One op or layer at one size in one implementation: the function, the leaves its backward differentiates
    (the input, and the parameters), the neurons (a layer's: its hidden units, fed by ``layer_inputs``), the
    bytes a fused op must move (None for layers: matmuls are not bandwidth-bound) and a layer's cost per sample
    and step."""

    inputs: list[torch.Tensor]
    fn: Callable[..., torch.Tensor]
    neurons: int
    layer_inputs: int | None = None
    bytes_forward: int | None = None
    bytes_backward: int | None = None
    params: int | None = None
    macs_per_step: float | None = None
    acs_per_step: float | None = None


def lif_cases(membrane: bool):
    """The LIF op, with the membrane sequence as a second output or not."""

    def cases(T: int, sizes: Sizes, dtype: torch.dtype, device: torch.device, backend: str) -> dict[str, Case]:
        x = op_input(T, sizes, dtype, device, 1.5)
        options = dict(alpha=0.5, theta=1.0, reset="hard", surrogate="atan", return_membrane=membrane)
        tensor_bytes = x.numel() * x.element_size()
        forward_passes, backward_passes = lif_tensor_passes(device.type)
        # the membrane: one more tensor written by the forward, its gradient read by the backward
        moved = dict(bytes_forward=(forward_passes + membrane) * tensor_bytes,
                     bytes_backward=(backward_passes + membrane) * tensor_bytes)
        implementations = op_implementations(partial(snn_cuda.lif, **options), backend, sizes)
        return {impl: Case([x], fn, sizes.neurons, **moved) for impl, fn in implementations.items()}

    return cases  # fmt: skip


def iir_case(T: int, sizes: Sizes, dtype: torch.dtype, device: torch.device, backend: str) -> dict[str, Case]:
    x = op_input(T, sizes, dtype, device, 1.0)
    # Learnable dual-exp coefficients (tau_m 4, tau_s 1) per feature or per element of a frame, as in an snn-iir
    # layer.
    a1, a2, b = (torch.full(x.shape[2:], v, device=device, requires_grad=True) for v in snn_cuda.dual_exp(4, 1))
    tensor_bytes = x.numel() * x.element_size()
    # forward reads x, writes p; backward reads grad_p, p and x, writes grad_x
    moved = dict(bytes_forward=2 * tensor_bytes, bytes_backward=4 * tensor_bytes)
    implementations = op_implementations(snn_cuda.iir_filter, backend, sizes)
    return {impl: Case([x, a1, a2, b], fn, sizes.neurons, **moved) for impl, fn in implementations.items()}


def layer_case(model: SequenceModel, x: torch.Tensor, sizes: Sizes) -> Case:
    """A one-layer model on ``x: [T, B, inputs]``, differentiated to the input and every parameter."""
    cost = measure_cost(model, x)
    return Case([x, *model.parameters()], lambda x, *parameters: model(x), sizes.hidden, sizes.inputs,
                params=cost.params, macs_per_step=cost.macs, acs_per_step=cost.acs)  # fmt: skip


def layer_input(T: int, sizes: Sizes, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    events = torch.rand(T, sizes.batch, sizes.inputs, device=device) < INPUT_EVENT_RATE
    return events.to(dtype).requires_grad_()


def spiking_layer_cases(arch: str):
    """Cases of a one-layer spiking net of ``arch`` (``"snn"``: Linear + LIF; ``"iir"``: snn-iir layer), with the
    fused ops and with the reference."""

    def cases(T: int, sizes: Sizes, dtype: torch.dtype, device: torch.device, backend: str) -> dict[str, Case]:
        x = layer_input(T, sizes, dtype, device)
        config = dict(arch=arch, input_shape=[sizes.inputs], spec=f"FC{sizes.hidden}")
        return {impl: layer_case(build_model(config, backend=model_backend).to(device, dtype), x, sizes)
                for impl, model_backend in (("fused", backend), ("reference", "torch"))}  # fmt: skip

    return cases


def recurrent_layer_cases(cell: str):
    """The case of one torch.nn.RNN / torch.nn.LSTM layer (``cell`` "rnn" / "lstm")."""

    def cases(T: int, sizes: Sizes, dtype: torch.dtype, device: torch.device, backend: str) -> dict[str, Case]:
        layer = StackedRecurrent(cell, sizes.inputs, sizes.hidden, num_layers=1)
        model = SequenceModel([layer], (sizes.inputs,), "rate", {"arch": "rnn", "cell": cell}).to(device, dtype)
        return {"torch.nn": layer_case(model, layer_input(T, sizes, dtype, device), sizes)}

    return cases


OPS = {
    "lif": lif_cases(membrane=False), "lif_membrane": lif_cases(membrane=True), "iir": iir_case,
    "snn_layer": spiking_layer_cases("snn"), "iir_layer": spiking_layer_cases("iir"),
    "rnn": recurrent_layer_cases("rnn"), "lstm": recurrent_layer_cases("lstm"),
}  # fmt: skip
DEFAULT_OPS = [op for op in OPS if op != "lif_membrane"]


def measure(case: Case, device: torch.device, repeats: int) -> dict[str, float]:
    fn = case.fn
    out = fn(*case.inputs)  # a tensor, or a tuple of them (lif_membrane): every output gets a gradient
    grad_out = tuple(torch.rand_like(t) for t in out) if isinstance(out, tuple) else torch.rand_like(out)

    def forward():
        return fn(*case.inputs)

    def backward():
        torch.autograd.grad(out, case.inputs, grad_out, retain_graph=True)

    def forward_backward():
        torch.autograd.grad(fn(*case.inputs), case.inputs, grad_out)

    return {
        "fwd": median_ms(forward, device, repeats=repeats),
        "bwd": median_ms(backward, device, repeats=repeats),
        "fwd_bwd": median_ms(forward_backward, device, repeats=repeats),
    }


def blank_if_none(value: object) -> object:
    return "" if value is None else value


def run(args: argparse.Namespace, sizes: Sizes) -> list[dict]:
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    backend = "cuda" if device.type == "cuda" else "cpp"
    bandwidth = copy_bandwidth_gbps(device, megabytes=args.copy_mb)
    print(f"copy bandwidth: {bandwidth:.1f} GB/s (read + write)")
    frame = "" if sizes.frame is None else "x".join(map(str, sizes.frame)) + " channels-last"
    rows = []
    for op in args.ops:
        for T in args.T:
            cases = OPS[op](T, sizes, dtype, device, backend)
            if T > args.reference_max_T:
                cases.pop("reference", None)  # rnn and lstm have none: torch.nn is theirs
            timings = {impl: measure(case, device, args.repeats) for impl, case in cases.items()}
            for impl, phases in timings.items():
                case = cases[impl]
                for phase, ms in phases.items():
                    row = {
                        "op": op, "impl": impl, "T": T, "batch": args.batch, "neurons": case.neurons,
                        "inputs": blank_if_none(case.layer_inputs),
                        "frame": frame if case.layer_inputs is None else "", "dtype": args.dtype,
                        "device": device.type,
                        "phase": phase, "median_ms": round(ms, 3), "fused_bytes_MB": "", "GBps": "",
                        "fraction_of_copy_bw": "", "speedup_vs_reference": "", "params": blank_if_none(case.params),
                        "macs_per_step": blank_if_none(case.macs_per_step),
                        "acs_per_step": blank_if_none(case.acs_per_step),
                    }  # fmt: skip
                    if impl == "fused" and "reference" in timings:
                        row["speedup_vs_reference"] = round(timings["reference"][phase] / ms, 1)
                    if case.bytes_forward is not None:
                        moved = {"fwd": case.bytes_forward, "bwd": case.bytes_backward}.get(
                            phase, case.bytes_forward + case.bytes_backward
                        )
                        achieved = moved / (ms * 1e-3) / 1e9
                        row |= {"fused_bytes_MB": round(moved / 1e6, 1), "GBps": round(achieved, 2)}
                        if impl == "fused":
                            row["fraction_of_copy_bw"] = round(achieved / bandwidth, 3)
                    rows.append(row)
            summary = ", ".join(f"{impl} fwd+bwd {t['fwd_bwd']:.2f} ms" for impl, t in timings.items())
            print(f"{op} T={T}: {summary}", flush=True)
            del cases
    for row in rows:
        row["copy_bw_GBps"] = round(bandwidth, 1)
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"fused": "-o", "reference": "--s", "fused_copied": "-.x", "torch.nn": ":^"}
    fig, (ax_time, ax_bw) = plt.subplots(1, 2, figsize=(11, 4))
    for op in dict.fromkeys(r["op"] for r in rows):
        for impl, style in styles.items():
            sel = [r for r in rows if r["op"] == op and r["impl"] == impl and r["phase"] == "fwd_bwd"]
            if sel:
                ax_time.plot([r["T"] for r in sel], [r["median_ms"] for r in sel], style, label=f"{op} {impl}")
        sel = [r for r in rows if r["op"] == op and r["fraction_of_copy_bw"] != ""]
        for phase in ("fwd", "bwd", "fwd_bwd"):
            pts = [r for r in sel if r["phase"] == phase]
            if pts:
                ax_bw.plot([r["T"] for r in pts], [100 * r["fraction_of_copy_bw"] for r in pts], "-o",
                           label=f"{op} {phase}")  # fmt: skip
    ax_time.set(xscale="log", yscale="log", xlabel="T", ylabel="forward+backward median (ms)")
    ax_time.set_title("time vs T")
    # above 100 % where a pass runs from cache faster than the copy of a large buffer: keep those points in view
    fractions = [100 * r["fraction_of_copy_bw"] for r in rows if r["fraction_of_copy_bw"] != ""]
    top = max([110.0, *(1.1 * f for f in fractions)])
    ax_bw.set(xscale="log", xlabel="T", ylabel="% of measured copy bandwidth", ylim=(0, top))
    ax_bw.set_title("fused kernels: achieved bandwidth")
    for ax in (ax_time, ax_bw):
        if ax.has_data():
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(figure_title(title, width=130), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", nargs="+", default=DEFAULT_OPS, choices=list(OPS),
                        help=f"ops and layers to time (default: {' '.join(DEFAULT_OPS)})")  # fmt: skip
    parser.add_argument("--T", nargs="+", type=positive_int, default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--batch", type=positive_int, default=64)
    parser.add_argument("--neurons", type=positive_int, default=4096, help="neurons of the ops")
    parser.add_argument("--inputs", type=positive_int, default=2048, help="input features of the layers")
    parser.add_argument("--hidden", type=positive_int, default=512, help="hidden units (neurons) of the layers")
    parser.add_argument("--channels-last", type=positive_int, default=None, metavar="C",
                        help="the ops' neurons as C channels of square frames stored channels-last")  # fmt: skip
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES))
    parser.add_argument("--device", type=device_argument, default="cpu")
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--reference-max-T", type=int, default=256, help="skip the (slow) reference above this T")
    parser.add_argument("--copy-mb", type=positive_int, default=512, help="size of the bandwidth copy")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs and weights")
    parser.add_argument("--out", type=output_folder, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = Sizes(batch=args.batch, neurons=args.neurons, inputs=args.inputs, hidden=args.hidden,
                  channels=args.channels_last)  # fmt: skip
    if sizes.frame is not None and math.prod(sizes.frame) != args.neurons:
        parser.error(f"argument --channels-last: --neurons {args.neurons} is not {args.channels_last} channels "
                     "of a square frame")  # fmt: skip

    torch.manual_seed(args.seed)  # the same inputs every run, so rows differ only in time
    rows = run(args, sizes)
    env = environment(torch.device(args.device))  # after the run: its load average covers the run
    stem = args.out / f"timestep_scaling_{torch.device(args.device).type}_{args.dtype}"
    write_csv(stem.with_suffix(".csv"), rows)
    header = ", ".join(f"{k} {v}" for k, v in env.items())
    columns = ["op", "impl", "T", "phase", "median_ms", "GBps", "fraction_of_copy_bw", "speedup_vs_reference",
               "params", "macs_per_step", "acs_per_step"]  # fmt: skip
    table = markdown_table(rows, tuple(columns))
    ops_shape = f"[T, {args.batch}, {args.neurons}]"
    if sizes.frame is not None:
        ops_shape = f"[T, {args.batch}, {', '.join(map(str, sizes.frame))}] channels-last"
    shape = f"ops {ops_shape}, layers [T, {args.batch}, {args.inputs}] -> {args.hidden}, {args.dtype}"
    stem.with_suffix(".md").write_text(
        f"# Timestep scaling, {shape}\n\n{header}\n\ncopy bandwidth {rows[0]['copy_bw_GBps']} GB/s; params, MACs "
        f"and ACs per sample and time step\n\n{table}\n"
    )
    plot(rows, stem.with_suffix(".png"), f"{shape}; {header}")
    print(table)
    print(f"wrote {stem}.csv/.md/.png")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
