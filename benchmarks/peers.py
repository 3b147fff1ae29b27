"""snn_cuda against its peers (snnTorch, SpikingJelly, Norse) on the same LIF equation.

Three settings:

- ``neuron``: the LIF alone on ``[T, batch, neurons]`` (default ``[T, 64, 4096]``, T = 8, 32, 64, 128 on CPU;
  ``[T, 64, 65536]`` on CUDA); gradients with respect to the input.
- ``linear``: the Open Neuromorphic benchmark, ``Linear(n, n)`` + LIF on ``[500, 16, n]``, n = 4096 and 8192 on
  CPU (up to 16384 on CUDA); gradients with respect to the weights and bias. The same ``nn.Linear`` runs over all
  T x batch rows at once for every library, so the libraries differ only in the neuron.
- ``synapse``: a first-order synaptic current (snn_cuda's ``iir_filter``) feeding the LIF, against snnTorch's
  ``Synaptic``, SpikingJelly's ``CUBALIFNode`` and ``SynapseFilter`` + ``LIFNode``, and Norse's ``LIF``.

Each peer runs the equation its API states exactly (``benchmarks/peer_neurons.py``); snn_cuda runs that same
equation, once per distinct equation. Before any timing, every peer is checked against snn_cuda on small inputs,
in float64 and in the benchmark dtype: equal spikes and close gradients, or the run stops (SpikingJelly's
SynapseFilter differs by design and is reported as such). Then, per library and size: peak memory of one
training step (``_common.peak_memory_mb``: the CPU allocator's records under torch.profiler, or
``torch.cuda.max_memory_allocated``), and medians of forward, backward and forward+backward over ``--repeats``
steps after warm-up, the device synchronised. Peers that are not installed are skipped with a note
(``make peers`` installs them).

    make bench-peers                                  # the documented CPU run (THP on, default sizes)
    python benchmarks/peers.py --device cuda          # GPU sizes; SpikingJelly's torch, cuda and triton kernels
    python benchmarks/peers.py --settings neuron --T 8 --neurons 256 --repeats 2 --out /tmp/peers   # seconds

Writes peers_cpu.{csv,md,png} (peers_gpu.* on CUDA; another --dtype adds it to the name) under
benchmarks/results/, which holds the documented run: a run with other settings, sizes or repeats needs --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
from pathlib import Path

import torch
from _common import (
    RESULTS,
    copy_bandwidth_gbps,
    device_argument,
    environment,
    figure_title,
    forward_backward_ms,
    non_negative_int,
    number_in,
    output_folder,
    peak_memory_mb,
    positive_int,
    write_csv,
)
from peer_neurons import (
    SPIKINGJELLY_CUDA_IMPLEMENTATIONS,
    LifSetting,
    NotExpressible,
    build,
    unavailable,
)
from torch import nn

from snn_cuda.experiment import markdown_table

SETTINGS = ("neuron", "linear", "synapse")
PEERS = ("snntorch", "spikingjelly", "norse")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Inputs are uniform in [0, scale): enough drive for a mean spike rate between about 0.1 and 0.5.
INPUT_SCALE = {"neuron": 1.5, "linear": 4.0, "synapse": 0.5}
# Equivalence checks: spikes must be equal; gradients within (rtol, atol) by dtype. snnTorch returns float32
# spikes whatever the input dtype, so its float64 gradients pass through float32 (they agree to about 1e-7).
CHECK_SHAPE = (16, 4, 32)
CHECK_TOLERANCE = {torch.float64: (1e-9, 1e-9), torch.float32: (1e-4, 1e-5)}
SNNTORCH_FLOAT64_TOLERANCE = (1e-6, 1e-6)


def equations(alpha: float, theta: float, synapse_decay: float) -> dict[str, dict[str, LifSetting]]:
    """Each peer's equation per setting: one common LIF (hard reset to 0, atan(2) surrogate, detached reset),
    changed only where a peer cannot state it (peer_neurons.py): Norse's gain is 1 - alpha, its reset is not
    detached and its surrogate is 1/(1+|u|)^2; snnTorch's Synaptic subtracts theta at the next step."""
    common = LifSetting(alpha=alpha, theta=theta, reset="hard", detach_reset=True, surrogate="atan",
                        surrogate_param=2.0)  # fmt: skip
    norse = dataclasses.replace(common, detach_reset=False, surrogate="fast_sigmoid", surrogate_param=1.0,
                                input_gain=1.0 - alpha)  # fmt: skip
    neuron = {"snntorch": common, "spikingjelly": common, "norse": norse}
    synapse = {
        "snntorch": dataclasses.replace(common, reset="subtract_next", synapse_decay=synapse_decay),
        "spikingjelly": dataclasses.replace(common, synapse_decay=synapse_decay),
        "spikingjelly-synapsefilter": dataclasses.replace(common, synapse_decay=synapse_decay),
        "norse": dataclasses.replace(norse, synapse_decay=synapse_decay),
    }
    return {"neuron": neuron, "linear": neuron, "synapse": synapse}


@dataclasses.dataclass(frozen=True)
class Implementation:
    """One row label of the results: a library (and, for SpikingJelly on CUDA, which of its kernels)."""

    label: str
    library: str
    cuda_implementation: str = "triton"

    def neuron(self, equation: LifSetting) -> nn.Module:
        return build(self.library, equation, cuda_implementation=self.cuda_implementation)


SNN_CUDA = Implementation("snn_cuda", "snn_cuda")


def implementations(setting: str, peers: list[str], device: torch.device,
                    dtype: torch.dtype = torch.float32) -> list[Implementation]:  # fmt: skip
    """The peer implementations to run for ``setting``. SpikingJelly's LIFNode once per CUDA kernel on CUDA (on
    CPU it is always its torch loop); in the synapse setting its CUBALIFNode (a torch loop on every device) and
    its SynapseFilter + LIFNode (LIFNode on SpikingJelly's own choice of kernel). Its kernels are chosen by name
    for float32 input only (it refuses a named kernel for other dtypes), so for other dtypes one row,
    ``spikingjelly-auto``, times what it picks itself, rather than one row per name all timing that."""
    chosen = []
    for library in peers:
        if library == "spikingjelly" and setting == "synapse":
            chosen += [Implementation("spikingjelly-cubalif", library),
                       Implementation("spikingjelly-synapsefilter", "spikingjelly-synapsefilter", "auto")]
        elif library == "spikingjelly":
            if device.type != "cuda":
                kernels = ("torch",)
            else:
                kernels = SPIKINGJELLY_CUDA_IMPLEMENTATIONS if dtype == torch.float32 else ("auto",)
            chosen += [Implementation(f"spikingjelly-{kernel}", library, kernel) for kernel in kernels]
        else:
            chosen.append(Implementation(library, library))
    return chosen


@dataclasses.dataclass
class Case:
    """The input of one setting at one size, the gradients a step computes, and the shared Linear (if any)."""

    x: torch.Tensor
    targets: list[torch.Tensor]
    linear: nn.Linear | None

    @classmethod
    def make(cls, setting: str, shape: tuple[int, int, int], device: torch.device, dtype: torch.dtype) -> Case:
        generator = torch.Generator().manual_seed(1)
        x = (torch.rand(shape, generator=generator, dtype=torch.float64) * INPUT_SCALE[setting]).to(device, dtype)
        if setting != "linear":
            x.requires_grad_()
            return cls(x, [x], None)
        torch.manual_seed(0)
        linear = nn.Linear(shape[-1], shape[-1]).to(device, dtype)
        return cls(x, list(linear.parameters()), linear)

    def model(self, neuron: nn.Module) -> nn.Module:
        return neuron if self.linear is None else nn.Sequential(self.linear, neuron)


def check_equivalence(impl: Implementation, setting: str, equation: LifSetting, device: torch.device,
                      dtype: torch.dtype) -> str:  # fmt: skip
    """Proves on small inputs that ``impl`` computes what snn_cuda computes for ``equation``: equal spikes and
    close gradients (for one random output gradient), in float64 and in ``dtype`` (float32 for float16 and
    bfloat16). Returns a one-line summary;
    raises AssertionError naming what differs."""
    summaries = []
    # 16-bit runs are checked in float32: the same code, with a tolerance that means something (in 16 bits each
    # library's rounding may flip a spike at the threshold)
    for check_dtype in dict.fromkeys((torch.float64, dtype if dtype in CHECK_TOLERANCE else torch.float32)):
        name = str(check_dtype).removeprefix("torch.")
        case = Case.make(setting, CHECK_SHAPE, device, check_dtype)
        out = case.model(impl.neuron(equation))(case.x)
        expected = case.model(SNN_CUDA.neuron(equation))(case.x)
        grad_out = torch.rand_like(expected)
        grads = torch.autograd.grad(out, case.targets, grad_out)
        expected_grads = torch.autograd.grad(expected, case.targets, grad_out)
        mismatch = int((out != expected).sum())
        if mismatch:
            raise AssertionError(f"{impl.label} ({setting}, {name}): {mismatch} of {out.numel()} spikes differ "
                                 "from snn_cuda's")  # fmt: skip
        rtol, atol = CHECK_TOLERANCE[check_dtype]
        if impl.library == "snntorch" and check_dtype == torch.float64:
            rtol, atol = SNNTORCH_FLOAT64_TOLERANCE
        for got, want in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=rtol, atol=atol,
                                       msg=lambda m, name=name: f"{impl.label} ({setting}, {name}) gradients: {m}")
        worst = max(float((got - want).abs().max()) for got, want in zip(grads, expected_grads, strict=True))
        summaries.append(f"{name} spikes equal (rate {float(expected.detach().float().mean()):.2f}), "
                         f"max grad diff {worst:.1e}")  # fmt: skip
    return "; ".join(summaries)


def measure(model: nn.Module, case: Case, device: torch.device, repeats: int, warmup: int) -> dict[str, float]:
    """Peak memory of one training step (which is also the first warm-up step), then median times."""
    grad_out = torch.rand_like(case.x)

    def forward() -> torch.Tensor:
        return model(case.x)

    def backward(out: torch.Tensor) -> None:
        torch.autograd.grad(out, case.targets, grad_out)

    peak = peak_memory_mb(lambda: backward(forward()), device)
    times = forward_backward_ms(forward, backward, device, repeats=repeats, warmup=max(warmup - 1, 0))
    return {**times, "peak_MB": peak}


def sizes(setting: str, args: argparse.Namespace) -> list[tuple[int, int, int]]:
    """``(T, batch, neurons)`` of each case of ``setting``."""
    if setting == "linear":
        return [(args.linear_T, args.linear_batch, n) for n in args.linear_neurons]
    return [(T, args.batch, args.neurons) for T in args.T]


def run_setting(setting: str, impls: list[Implementation], table: dict[str, LifSetting], args: argparse.Namespace,
                device: torch.device, bandwidth: float, notes: list[str]) -> list[dict]:  # fmt: skip
    """Times snn_cuda (once per distinct equation of ``impls``) and each of ``impls`` at every size of
    ``setting``; one row each."""
    # snn_cuda runs each distinct equation once; equation_of names the peers that share it.
    equation_of = {table[impl.library]: [] for impl in impls} or {table["snntorch"]: []}
    for impl in impls:
        equation_of[table[impl.library]].append(impl.label)
    runs = [(SNN_CUDA, equation) for equation in equation_of] + [(impl, table[impl.library]) for impl in impls]
    repeats = args.linear_repeats if setting == "linear" else args.repeats
    rows = []
    for T, batch, neurons in sizes(setting, args):
        case = Case.make(setting, (T, batch, neurons), device, DTYPES[args.dtype])
        snn_cuda_times = {}
        for impl, equation in runs:
            neuron = impl.neuron(equation)
            try:
                result = measure(case.model(neuron), case, device, repeats, args.warmup)
            except torch.OutOfMemoryError:
                notes.append(f"{impl.label} ({setting}, T {T}, n {neurons}): out of memory, skipped")
                print(notes[-1], flush=True)
                continue
            row = {
                "library": impl.label, "setting": setting, "T": T, "batch": batch, "neurons": neurons,
                "dtype": args.dtype, "device": device.type, "equation": equation.describe(),
                "equation_of": ", ".join(equation_of[equation]) if impl is SNN_CUDA else "",
                "same_computation": "no" if neuron.differs else "yes",
                "fwd_ms": round(result["fwd"], 3), "bwd_ms": round(result["bwd"], 3),
                "fwd_bwd_ms": round(result["fwd_bwd"], 3), "peak_MB": round(result["peak_MB"], 1),
                "speedup_fwd": "", "speedup_bwd": "", "speedup_fwd_bwd": "", "bound_fraction": "",
            }  # fmt: skip
            if impl is SNN_CUDA:
                snn_cuda_times[equation] = result
                if setting != "linear":  # with the Linear, the matmul sets the time, not the memory traffic
                    passes = sum(neuron.tensor_passes(device.type))
                    bound_ms = passes * case.x.numel() * case.x.element_size() / (bandwidth * 1e9) * 1e3
                    row["bound_fraction"] = round(bound_ms / result["fwd_bwd"], 3)
            else:
                for phase in ("fwd", "bwd", "fwd_bwd"):
                    row[f"speedup_{phase}"] = round(result[phase] / snn_cuda_times[equation][phase], 1)
            faster = f", snn_cuda {row['speedup_fwd_bwd']}x faster" if row["speedup_fwd_bwd"] != "" else ""
            print(f"{setting} T={T} n={neurons} {impl.label}: fwd {result['fwd']:.2f} ms, bwd {result['bwd']:.2f} "
                  f"ms, fwd+bwd {result['fwd_bwd']:.2f} ms, peak {result['peak_MB']:.0f} MB{faster}",
                  flush=True)  # fmt: skip
            rows.append(row)
            del neuron
        del case
    return rows


COLUMNS = ("library", "equation_of", "T", "neurons", "same_computation", "fwd_ms", "bwd_ms", "fwd_bwd_ms", "peak_MB",
           "speedup_fwd_bwd", "bound_fraction")  # fmt: skip
STYLES = {"snn_cuda": "-o", "snntorch": "--s", "norse": "--^"}


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("neuron", "T", "fwd_bwd_ms", "LIF alone: forward+backward (ms)"),
              ("neuron", "T", "peak_MB", "LIF alone: peak memory of a step (MB)"),
              ("linear", "neurons", "fwd_bwd_ms", "Linear(n, n) + LIF: forward+backward (ms)"),
              ("synapse", "T", "fwd_bwd_ms", "synapse + LIF: forward+backward (ms)")]  # fmt: skip
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    for axis, (setting, x_key, y_key, label) in zip(axes.flat, panels, strict=True):
        selected = [row for row in rows if row["setting"] == setting]
        # snn_cuda runs once per distinct equation: one line each, named by the peers it matches.
        for key in dict.fromkeys((row["library"], row["equation_of"]) for row in selected):
            points = [row for row in selected if (row["library"], row["equation_of"]) == key]
            library, peers = key
            name = f"snn_cuda as {peers}" if peers else library
            axis.plot([row[x_key] for row in points], [row[y_key] for row in points],
                      STYLES.get(library, "--x"), label=name)  # fmt: skip
        positive = selected and all(row[y_key] > 0 for row in selected)
        axis.set(xscale="log", yscale="log" if positive else "linear", xlabel=x_key, ylabel=label)
        axis.set_title(label, fontsize=9)
        axis.grid(alpha=0.3)
        if selected:
            axis.legend(fontsize=6)
    figure.suptitle(figure_title(title), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


COMPARISON_FLAGS = ("settings", "peers", "T", "batch", "neurons", "linear_neurons", "linear_T", "linear_batch",
                    "repeats", "linear_repeats", "warmup", "alpha", "theta", "synapse_decay")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS, help="peers to run if installed")
    parser.add_argument("--device", type=device_argument, default="cpu")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES))
    parser.add_argument("--T", nargs="+", type=positive_int, default=[8, 32, 64, 128], help="neuron, synapse")
    parser.add_argument("--batch", type=positive_int, default=64, help="neuron and synapse settings")
    parser.add_argument("--neurons", type=positive_int, default=None, help="default 4096 on CPU, 65536 on CUDA")
    parser.add_argument("--linear-neurons", nargs="+", type=positive_int, default=None,
                        help="n of Linear(n, n) + LIF; default 4096 8192 on CPU, 4096 8192 16384 on CUDA")
    parser.add_argument("--linear-T", type=positive_int, default=500)
    parser.add_argument("--linear-batch", type=positive_int, default=16)
    parser.add_argument("--repeats", type=positive_int, default=None, help="timed steps (5 on CPU, 20 on CUDA)")
    parser.add_argument("--linear-repeats", type=positive_int, default=None, help="default 3 on CPU, 10 on CUDA")
    parser.add_argument("--warmup", type=non_negative_int, default=2,
                        help="untimed steps (the first measures memory)")
    parser.add_argument("--alpha", type=number_in(0.0, 1.0), default=0.5, help="membrane decay of every equation")
    parser.add_argument("--theta", type=number_in(0.0, 1e6, low_open=True), default=1.0,
                        help="threshold of every equation")
    parser.add_argument("--synapse-decay", type=number_in(0.0, 1.0), default=0.75,
                        help="synaptic current decay (synapse setting)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's); 1 keeps timings stable on a shared machine")
    parser.add_argument("--out", type=output_folder, default=RESULTS)
    args = parser.parse_args(argv)
    cuda = torch.device(args.device).type == "cuda"
    defaults = {"neurons": (4096, 65536), "linear_neurons": ([4096, 8192], [4096, 8192, 16384]),
                "repeats": (5, 20), "linear_repeats": (3, 10)}  # fmt: skip
    for name, (cpu_value, cuda_value) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, cuda_value if cuda else cpu_value)
    # What makes a run the documented comparison, which the committed peers_<device>.* hold (a default given
    # explicitly is the default; --settings and --peers in any order); --device, --dtype (other dtypes get files
    # of their own), --threads and --out do not.
    args.changed = []
    for name in COMPARISON_FLAGS:
        value, default = getattr(args, name), parser.get_default(name)
        if name in defaults:
            default = defaults[name][cuda]
        if name in ("settings", "peers"):
            value, default = sorted(value), sorted(default)
        if value != default:
            args.changed.append(name)
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    load_before = os.getloadavg()
    table = equations(args.alpha, args.theta, args.synapse_decay)
    notes = []
    present = []
    for peer in args.peers:
        reason = unavailable(peer)
        if reason is None:
            present.append(peer)
            notes.append(f"{peer} {importlib.metadata.version(peer)}")
        else:
            notes.append(f"{peer}: skipped: {reason}")
            print(notes[-1])
    if args.out.resolve() == RESULTS.resolve():
        # The committed peers_<device>.* hold the full comparison: a partial one goes elsewhere, on purpose.
        missing = sorted(set(args.peers) - set(present))
        if missing:
            raise SystemExit(f"peers.py: {missing} not installed (make peers); a partial comparison is not written "
                             f"over {RESULTS}: pass --out")  # fmt: skip
        if not present:
            raise SystemExit(f"peers.py: no peer to compare with; snn_cuda alone is not written over {RESULTS}: "
                             "pass --out")  # fmt: skip
        if args.changed:
            flags = ", ".join("--" + name.replace("_", "-") for name in args.changed)
            raise SystemExit(f"peers.py: {flags} changed from the documented run, which is not written over "
                             f"{RESULTS}: pass --out")  # fmt: skip
    # Prove each peer computes what snn_cuda computes before timing anything.
    chosen: dict[str, list[Implementation]] = {}
    for setting in args.settings:
        chosen[setting] = []
        for impl in implementations(setting, present, device, dtype):
            equation = table[setting][impl.library]
            try:
                neuron = impl.neuron(equation)
                if neuron.differs:
                    summary = f"not the same computation: {neuron.differs}"
                else:
                    summary = check_equivalence(impl, setting, equation, device, dtype)
            except (NotExpressible, RuntimeError) as error:  # RuntimeError: a CUDA kernel that is not there
                notes.append(f"{impl.label} ({setting}): skipped: {error}")
                print(notes[-1])
                continue
            notes.append(f"{impl.label} ({setting}; {equation.describe()}): {summary}")
            print(notes[-1], flush=True)
            chosen[setting].append(impl)
    bandwidth = copy_bandwidth_gbps(device)
    print(f"copy bandwidth: {bandwidth:.1f} GB/s (read + write)", flush=True)
    rows = []
    for setting in args.settings:
        rows += run_setting(setting, chosen[setting], table[setting], args, device, bandwidth, notes)
    load_after = os.getloadavg()

    env = environment(device)
    load = (f"load average (1, 5, 15 min) {', '.join(f'{v:.2f}' for v in load_before)} at the start, "
            f"{', '.join(f'{v:.2f}' for v in load_after)} at the end")  # fmt: skip
    header = ", ".join(f"{k} {v}" for k, v in env.items())
    # float32 is the comparison of record; another dtype gets files of its own instead of replacing it
    suffix = "" if dtype == torch.float32 else f"_{args.dtype}"
    stem = args.out / f"peers_{'gpu' if device.type == 'cuda' else 'cpu'}{suffix}"
    write_csv(stem.with_suffix(".csv"), rows)
    tables = "\n\n".join(f"## {setting}\n\n" + markdown_table([r for r in rows if r["setting"] == setting], COLUMNS)
                          for setting in args.settings)  # fmt: skip
    notes_text = "".join(f"- {note}\n" for note in notes)
    stem.with_suffix(".md").write_text(
        f"# snn_cuda vs peers, {args.dtype}, {device.type}\n\n{header}\n\n{load}; copy bandwidth "
        f"{bandwidth:.1f} GB/s\n\nspeedup = the peer's time / snn_cuda's time on the same equation; "
        f"bound_fraction = (bytes snn_cuda's ops must move / copy bandwidth) / snn_cuda's time; peak_MB = the "
        f"largest growth of allocated memory during one training step.\n\n{notes_text}\n{tables}\n"
    )
    plot(rows, stem.with_suffix(".png"), f"{args.dtype}; {header}; {load}")
    print(tables)
    print(load)
    print(f"wrote {stem}.csv/.md/.png")
    return rows


if __name__ == "__main__":
    main()
