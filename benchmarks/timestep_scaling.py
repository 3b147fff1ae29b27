"""Headline benchmark: time of the fused recurrences vs the pure-torch reference as T grows.

For each op and T: forward (training mode, saving what the backward needs), backward, and forward+backward,
medians after warm-up, allocation included for both implementations. Each fused row also reports the bytes
the kernel must move and the achieved fraction of the copy bandwidth measured in the same run.

    python benchmarks/timestep_scaling.py                       # [T, 64, 4096], T = 8 .. 256, float32, CPU
    python benchmarks/timestep_scaling.py --device cuda --dtype float16 --neurons 65536
    python benchmarks/timestep_scaling.py --T 8 16 --repeats 3 --reference-max-T 16

Writes timestep_scaling_<device>_<dtype>.{csv,md,png} under benchmarks/results/ (or --out).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import RESULTS, copy_bandwidth_gbps, environment, median_ms, write_csv

import snn_cuda
from snn_cuda.experiment import markdown_table

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Case:
    """One op at one size: the input leaves, the two implementations, and the bytes the fused kernels move."""

    inputs: list[torch.Tensor]
    fused: Callable[..., torch.Tensor]
    reference: Callable[..., torch.Tensor]
    bytes_forward: int
    bytes_backward: int


def lif_case(T: int, batch: int, neurons: int, dtype: torch.dtype, device: torch.device, backend: str) -> Case:
    x = (torch.rand(T, batch, neurons, device=device) * 1.5).to(dtype).requires_grad_()
    options = dict(alpha=0.5, theta=1.0, reset="hard", surrogate="atan")
    tensor_bytes = x.numel() * x.element_size()
    return Case(
        inputs=[x],
        fused=lambda x: snn_cuda.lif(x, backend=backend, **options),
        reference=lambda x: snn_cuda.lif(x, backend="torch", **options),
        # forward reads x, writes spikes and h; backward reads grad_spikes and h, writes grad_x
        bytes_forward=3 * tensor_bytes,
        bytes_backward=3 * tensor_bytes,
    )


def iir_case(T: int, batch: int, neurons: int, dtype: torch.dtype, device: torch.device, backend: str) -> Case:
    x = torch.rand(T, batch, neurons, device=device).to(dtype).requires_grad_()
    # Learnable per-feature dual-exp coefficients (tau_m 4, tau_s 1), as in an snn-iir layer.
    a1, a2, b = (torch.full((neurons,), v, device=device, requires_grad=True) for v in snn_cuda.dual_exp(4, 1))
    tensor_bytes = x.numel() * x.element_size()
    return Case(
        inputs=[x, a1, a2, b],
        fused=lambda x, a1, a2, b: snn_cuda.iir_filter(x, a1, a2, b, backend=backend),
        reference=lambda x, a1, a2, b: snn_cuda.iir_filter(x, a1, a2, b, backend="torch"),
        # forward reads x, writes p; backward reads grad_p, p and x, writes grad_x
        bytes_forward=2 * tensor_bytes,
        bytes_backward=4 * tensor_bytes,
    )


OPS = {"lif": lif_case, "iir": iir_case}


def measure(case: Case, impl: str, device: torch.device, repeats: int) -> dict[str, float]:
    fn = case.fused if impl == "fused" else case.reference
    out = fn(*case.inputs)
    grad_out = torch.rand_like(out)

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


def run(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    backend = "cuda" if device.type == "cuda" else "cpp"
    bandwidth = copy_bandwidth_gbps(device)
    print(f"copy bandwidth: {bandwidth:.1f} GB/s (read + write)")
    rows = []
    for op in args.ops:
        for T in args.T:
            case = OPS[op](T, args.batch, args.neurons, dtype, device, backend)
            impls = ["fused"] + (["reference"] if T <= args.reference_max_T else [])
            timings = {impl: measure(case, impl, device, args.repeats) for impl in impls}
            for impl, phases in timings.items():
                for phase, ms in phases.items():
                    moved = {"fwd": case.bytes_forward, "bwd": case.bytes_backward}.get(
                        phase, case.bytes_forward + case.bytes_backward
                    )
                    achieved = moved / (ms * 1e-3) / 1e9
                    speedup = timings["reference"][phase] / ms if "reference" in timings else float("nan")
                    rows.append({
                        "op": op, "impl": impl, "T": T, "batch": args.batch, "neurons": args.neurons,
                        "dtype": args.dtype, "device": device.type, "phase": phase, "median_ms": round(ms, 3),
                        "fused_bytes_MB": round(moved / 1e6, 1), "GBps": round(achieved, 2),
                        "fraction_of_copy_bw": round(achieved / bandwidth, 3) if impl == "fused" else "",
                        "speedup_vs_reference": round(speedup, 1) if impl == "fused" else "",
                    })  # fmt: skip
            summary = ", ".join(f"{impl} fwd+bwd {t['fwd_bwd']:.2f} ms" for impl, t in timings.items())
            print(f"{op} T={T}: {summary}", flush=True)
            del case
    for row in rows:
        row["copy_bw_GBps"] = round(bandwidth, 1)
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_bw) = plt.subplots(1, 2, figsize=(11, 4))
    for op in sorted({r["op"] for r in rows}):
        for impl, style in (("fused", "-o"), ("reference", "--s")):
            sel = [r for r in rows if r["op"] == op and r["impl"] == impl and r["phase"] == "fwd_bwd"]
            if sel:
                ax_time.plot([r["T"] for r in sel], [r["median_ms"] for r in sel], style, label=f"{op} {impl}")
        sel = [r for r in rows if r["op"] == op and r["impl"] == "fused"]
        for phase in ("fwd", "bwd", "fwd_bwd"):
            pts = [r for r in sel if r["phase"] == phase]
            ax_bw.plot([r["T"] for r in pts], [100 * r["fraction_of_copy_bw"] for r in pts], "-o",
                       label=f"{op} {phase}")  # fmt: skip
    ax_time.set(xscale="log", yscale="log", xlabel="T", ylabel="forward+backward median (ms)")
    ax_time.set_title("time vs T")
    ax_bw.set(xscale="log", xlabel="T", ylabel="% of measured copy bandwidth", ylim=(0, 110))
    ax_bw.set_title("fused kernels: achieved bandwidth")
    for ax in (ax_time, ax_bw):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=list(OPS))
    parser.add_argument("--T", nargs="+", type=int, default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--neurons", type=int, default=4096)
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-max-T", type=int, default=256, help="skip the (slow) reference above this T")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    env = environment(torch.device(args.device))
    rows = run(args)
    stem = args.out / f"timestep_scaling_{torch.device(args.device).type}_{args.dtype}"
    write_csv(stem.with_suffix(".csv"), rows)
    header = ", ".join(f"{k} {v}" for k, v in env.items())
    columns = ["op", "impl", "T", "phase", "median_ms", "GBps", "fraction_of_copy_bw", "speedup_vs_reference"]
    table = markdown_table(rows, tuple(columns))
    shape = f"[T, {args.batch}, {args.neurons}] {args.dtype}"
    stem.with_suffix(".md").write_text(
        f"# Timestep scaling, {shape}\n\n{header}\n\ncopy bandwidth {rows[0]['copy_bw_GBps']} GB/s\n\n{table}\n"
    )
    plot(rows, stem.with_suffix(".png"), f"{shape}; {header}")
    print(table)
    print(f"wrote {stem}.csv/.md/.png")


if __name__ == "__main__":
    main()
