"""A short demo: train a small spiking MLP on random data with the fused LIF kernel and with the pure-torch
reference, and print the time per training step of each.

    python experiments/demo.py [--steps 30] [--T 32] [--batch 64] [--device cpu]

The data is random (input currents and labels), so the loss falling only shows that gradients flow through the
neurons; the point is the timing. The real experiments live next to this file.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import snn_cuda
from snn_cuda.info import report


class SpikingMLP(nn.Module):
    """Linear -> LIF -> Linear -> LIF on time-major input ``[T, B, F]``; returns output spikes ``[T, B, C]``."""

    def __init__(self, features: int, hidden: int, classes: int, backend: str) -> None:
        super().__init__()
        lif = dict(alpha=0.7, theta=0.5, reset="hard", surrogate="atan", backend=backend)
        self.layers = nn.Sequential(
            nn.Linear(features, hidden), snn_cuda.LIF((hidden,), learn_alpha=True, **lif),
            nn.Linear(hidden, classes), snn_cuda.LIF((classes,), **lif),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def train(backend: str, args: argparse.Namespace, data: torch.Tensor, labels: torch.Tensor) -> list[float]:
    torch.manual_seed(0)
    model = SpikingMLP(data.shape[-1], args.hidden, args.classes, backend).to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    target = nn.functional.one_hot(labels, args.classes).float()
    step_ms, losses = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        rate = model(data).mean(0)  # mean over time of the output spikes, as in He et al.
        loss = nn.functional.mse_loss(rate, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if data.device.type == "cuda":
            torch.cuda.synchronize()
        step_ms.append((time.perf_counter() - start) * 1e3)
        losses.append(loss.item())
    print(f"{backend:>5}: loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
          f"median step {statistics.median(step_ms[2:] or step_ms):.1f} ms")  # fmt: skip
    return step_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--T", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    print(report())
    gen = torch.Generator().manual_seed(0)
    data = (torch.rand(args.T, args.batch, args.features, generator=gen) < 0.2).float().to(args.device)
    labels = torch.randint(0, args.classes, (args.batch,), generator=gen).to(args.device)
    fused = "cuda" if torch.device(args.device).type == "cuda" else "cpp"
    print(f"training a {args.features}-{args.hidden}-{args.classes} spiking MLP, T={args.T}, batch {args.batch}, "
          f"{args.steps} steps on {args.device}")  # fmt: skip
    fused_ms = train(fused, args, data, labels)
    reference_ms = train("torch", args, data, labels)
    speedup = statistics.median(reference_ms[2:]) / statistics.median(fused_ms[2:])
    print(f"fused kernels: {speedup:.1f}x faster per training step than the pure-torch reference "
          "(the matmuls are shared; the neuron alone is timed by benchmarks/timestep_scaling.py)")  # fmt: skip


if __name__ == "__main__":
    main()
