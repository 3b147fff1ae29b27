"""End to end: one training epoch of He et al.'s gesture SCNN (preset ``he_scnn_gesture``, models.md section 4,
without its dropout) with its LIF neurons from snn_cuda, SpikingJelly and snnTorch.

The three networks are one network: the snn_cuda model is built once (seeded), and each library's copy replaces
only its LIF layers by that library's neuron (``benchmarks/peer_neurons.py``); convolutions, pooling and linear
layers stay the same torch modules with the same initial weights. The neuron is He et al.'s (decay 0.3,
threshold 0.3, hard reset to 0, rectangular surrogate of width 1) with the reset gradient detached by default,
because snnTorch always detaches it (``--reset-gradient through`` is He et al.'s exact neuron, without snnTorch).
Each library then trains one epoch on the same batches in the same order (synthetic DVS Gesture, framed as
experiments/gesture.py frames it; Adam, MSE between the mean output rate and the one-hot label).

Before training, the three networks are checked on one small batch in float64: equal output spikes and close
weight gradients. Reported per library: epoch time, samples per second, peak memory of one training step (as in
benchmarks/peers.py), the mean training loss of the epoch, the loss after the epoch on a fixed batch, and how
far its final weights are from snn_cuda's.

    make bench-peers-e2e      # the documented run: 20 frames of 75 ms, 32x32, 64 samples (minutes on 2 cores)
    python benchmarks/peers_end_to_end.py                   # the config's data: 60 frames of 25 ms, all samples
    python benchmarks/peers_end_to_end.py --device cuda --libraries snn_cuda spikingjelly
    python benchmarks/peers_end_to_end.py --smoke --out /tmp/e2e   # seconds (the tests)
    python benchmarks/peers_end_to_end.py --frames 20 --dt-ms 75 --max-samples 64 --quiet --channels-last \
        --out benchmarks/results/peers_end_to_end_layouts/channels_last   # conv weights and frames channels-last

With ``--channels-last`` every library's network stores its conv weights and input frames channels-last (the
training drivers' ``--channels-last``); the neurons see frames in that layout.

Writes peers_end_to_end_cpu.{csv,md} (``_gpu`` on CUDA) under benchmarks/results/ (or --out).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import time
from pathlib import Path

import torch
from _common import (
    RESULTS,
    device_argument,
    environment,
    number_in,
    output_folder,
    peak_memory_mb,
    positive_int,
    synchronize,
    write_csv,
)
from peer_neurons import LifSetting, NotExpressible, build, unavailable

import snn_cuda
from snn_cuda.experiment import load_config, markdown_table
from snn_cuda.models import HE_SCNN, build_model
from snn_cuda.training import compute_loss, seed_everything, time_major

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "configs" / "gesture_conv_he2020.yaml"
LIBRARIES = ("snn_cuda", "spikingjelly", "snntorch")
COLUMNS = ("library", "epoch_s", "samples_per_s", "peak_MB", "mean_train_loss", "final_loss",
           "max_weight_diff_vs_snn_cuda", "speedup")  # fmt: skip


def load_gesture_script():
    """experiments/gesture.py, for its dataset framing (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("gesture", ROOT / "experiments" / "gesture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def he_neuron(template: torch.nn.Module, reset_gradient: str) -> LifSetting:
    """He et al.'s LIF as the preset configures it, with the reset gradient ``detached`` or ``through``."""
    config = template.config
    return LifSetting(alpha=config["alpha"], theta=config["theta"], reset="hard",
                      detach_reset=reset_gradient == "detached", surrogate="rectangular",
                      surrogate_param=config["surrogate_width"])  # fmt: skip


def with_neurons(template: torch.nn.Module, library: str, neuron: LifSetting) -> torch.nn.Module:
    """A copy of ``template`` (same weights) whose LIF layers are ``library``'s neuron."""
    model = copy.deepcopy(template)
    for index, layer in enumerate(model.layers):
        if isinstance(layer, snn_cuda.LIF):
            model.layers[index] = build(library, neuron)
    return model


def loader(dataset, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    # The same shuffling for every library: a generator seeded the same way.
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                       generator=torch.Generator().manual_seed(seed))  # fmt: skip


def loss_of(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return compute_loss(model(x), target, "rate", "mse")[0]


def spikes_and_gradients(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor):
    """A float64 copy of ``model`` on ``x``: its output spikes and the gradients of the loss by parameter name."""
    model = copy.deepcopy(model).double()
    out = model(x.double())
    names, parameters = zip(*model.named_parameters(), strict=True)
    grads = torch.autograd.grad(compute_loss(out, target, "rate", "mse")[0], parameters)
    return out, dict(zip(names, grads, strict=True))


def check_same_network(models: dict[str, torch.nn.Module], x: torch.Tensor, target: torch.Tensor) -> list[str]:
    """Equal output spikes and close weight gradients of every model against snn_cuda's, in float64."""
    expected, expected_grads = spikes_and_gradients(models["snn_cuda"], x, target)
    summaries = []
    for library, model in models.items():
        if library == "snn_cuda":
            continue
        out, grads = spikes_and_gradients(model, x, target)
        mismatch = int((out != expected).sum())
        if mismatch:
            raise AssertionError(f"{library}: {mismatch} of {out.numel()} output spikes differ from snn_cuda's")
        worst = 0.0
        for name, want in expected_grads.items():
            # Relative to the largest entry: snnTorch's float32 spikes carry its float64 gradients (peers.py).
            scale = float(want.abs().max().clamp_min(1e-30))
            message = f"{library} gradient of {name}"
            torch.testing.assert_close(grads[name], want, rtol=1e-5, atol=1e-5 * scale,
                                       msg=lambda m, message=message: f"{message}: {m}")  # fmt: skip
            worst = max(worst, float((grads[name] - want).abs().max()) / scale)
        rate = float(expected.detach().mean())
        summaries.append(f"{library}: output spikes equal (rate {rate:.3f}), weight gradients within {worst:.1e} "
                         "of the largest entry (float64)")  # fmt: skip
    return summaries


def train_epoch(model: torch.nn.Module, dataset, args: argparse.Namespace, device: torch.device) -> dict:
    """One epoch (Adam, MSE rate loss): seconds of the training steps (device synchronised) and mean loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    seconds, total_loss, seen = 0.0, 0.0, 0
    for batch in loader(dataset, args.batch_size, args.seed):
        x, target = time_major(batch, device, channels_last=args.channels_last)
        synchronize(device)
        start = time.perf_counter()
        loss = loss_of(model, x, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)
        seconds += time.perf_counter() - start
        total_loss += loss.item() * x.shape[1]
        seen += x.shape[1]
    return {"epoch_s": seconds, "samples_per_s": seen / seconds, "mean_train_loss": total_loss / seen}


def writes_committed_results(args: argparse.Namespace) -> bool:
    return args.out.resolve() == RESULTS.resolve()


def refuse_partial_comparison(skipped: list[str], args: argparse.Namespace) -> None:
    """As in peers.py: the committed peers_end_to_end_<device>.* hold the full comparison."""
    if skipped and writes_committed_results(args):
        raise SystemExit(f"peers_end_to_end.py: {skipped} skipped (above); a partial comparison is not written over "
                         f"{RESULTS}: pass --out, or --libraries with the ones that run")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG, help="experiment config whose data section to use")
    parser.add_argument("--frames", type=positive_int, default=None, help="override the config's frames (T)")
    parser.add_argument("--dt-ms", type=float, default=None, help="override the config's frame width")
    parser.add_argument("--downsample", type=positive_int, default=None, help="override the config's downsampling")
    parser.add_argument("--max-samples", type=positive_int, default=None, help="the first N training samples")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default: the config's")
    parser.add_argument("--lr", type=number_in(0.0, 1.0, low_open=True), default=None, help="default: the config's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES,
                        help="snn_cuda always runs first: it is the reference of every comparison")
    parser.add_argument("--reset-gradient", default="detached", choices=("detached", "through"),
                        help="He et al.'s reset passes gradients (through); snnTorch can only detach it")
    parser.add_argument("--device", type=device_argument, default="cpu")
    parser.add_argument("--channels-last", action="store_true", help="conv weights and input frames channels-last")
    parser.add_argument("--out", type=output_folder, default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="the config's smoke data and batch size: seconds")
    parser.add_argument("--quiet", action="store_true", help="no progress bars while framing")
    args = parser.parse_args(argv)
    config = load_config(args.config, smoke=args.smoke)
    overrides = {"frames": args.frames, "dt_ms": args.dt_ms, "downsample": args.downsample}
    config["data"]["framing"].update({k: v for k, v in overrides.items() if v is not None})
    args.data = config["data"]
    args.batch_size = args.batch_size or config["training"]["batch_size"]
    args.lr = args.lr if args.lr is not None else config["training"]["lr"]
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    # Refused before the data is framed: a missing peer, and runs that are not the documented one.
    missing = {library: unavailable(library) for library in dict.fromkeys(["snn_cuda", *args.libraries])}
    if writes_committed_results(args):
        for library, reason in missing.items():
            if reason is not None:
                print(f"{library}: skipped: {reason}")
    refuse_partial_comparison([library for library in args.libraries if missing[library] is not None], args)
    for flag, what in (("smoke", "times a few samples"), ("channels_last", "times another layout")):
        if getattr(args, flag) and writes_committed_results(args):
            raise SystemExit(f"peers_end_to_end.py: --{flag.replace('_', '-')} {what}, not written over the "
                             f"committed results in {RESULTS}: pass --out")  # fmt: skip
    device = torch.device(args.device)
    load_before = os.getloadavg()
    gesture = load_gesture_script()
    train = gesture.gesture_datasets(args.data, None, progress=not args.quiet)["train"]
    if args.max_samples is not None:
        train = torch.utils.data.Subset(train, range(min(args.max_samples, len(train))))
    seed_everything(args.seed)
    # Without the SCNN's dropout: every library then computes the same thing, and no random masks differ.
    template = build_model("he_scnn_gesture", spec=HE_SCNN, input_shape=gesture.input_shape(args.data)).to(device)
    if args.channels_last:
        template.to(memory_format=torch.channels_last)
    neuron = he_neuron(template, args.reset_gradient)
    notes = [f"data: synthetic DVS Gesture, framing {args.data['framing']}, {len(train)} training samples, batch "
             f"{args.batch_size}; Adam lr {args.lr}; neuron: {neuron.describe()}"
             + ("; conv weights and input frames channels-last" if args.channels_last else "")]  # fmt: skip
    models = {}
    for library, reason in missing.items():
        try:
            if reason is not None:
                raise NotExpressible(reason)
            models[library] = with_neurons(template, library, neuron)
        except NotExpressible as error:
            notes.append(f"{library}: skipped: {error}")
            print(notes[-1])
    refuse_partial_comparison([library for library in args.libraries if library not in models], args)
    layout = dict(channels_last=args.channels_last)
    check_x, check_target = time_major(next(iter(loader(train, min(args.batch_size, 4), args.seed))), device,
                                       **layout)  # fmt: skip
    for summary in check_same_network(models, check_x, check_target):
        notes.append(summary)
        print(summary, flush=True)

    eval_x, eval_target = time_major(next(iter(loader(train, args.batch_size, args.seed + 1))), device, **layout)
    rows, final_weights, epoch_seconds = [], {}, []
    for library, model in models.items():
        # One forward+backward on a copy: the memory measurement, and a warm-up that leaves the weights alone.
        probe = copy.deepcopy(model)
        peak = peak_memory_mb(lambda probe=probe: loss_of(probe, eval_x, eval_target).backward(), device)
        del probe
        result = train_epoch(model, train, args, device)
        with torch.no_grad():
            final_loss = float(loss_of(model, eval_x, eval_target))
        final_weights[library] = torch.cat([p.detach().flatten() for p in model.parameters()])
        epoch_seconds.append(result["epoch_s"])
        weight_diff = float((final_weights[library] - final_weights["snn_cuda"]).abs().max())
        # Losses as text with 6 digits: equal-within-noise needs more digits than the table's default 4.
        rows.append({"library": library, "device": device.type, "T": args.data["framing"]["frames"],
                     "samples": len(train), "batch_size": args.batch_size, "epoch_s": round(result["epoch_s"], 2),
                     "samples_per_s": round(result["samples_per_s"], 2), "peak_MB": round(peak, 1),
                     "mean_train_loss": f"{result['mean_train_loss']:.6f}", "final_loss": f"{final_loss:.6f}",
                     "max_weight_diff_vs_snn_cuda": f"{weight_diff:.1e}"})  # fmt: skip
        print(f"{library}: epoch {result['epoch_s']:.1f} s, {result['samples_per_s']:.1f} samples/s, peak "
              f"{peak:.0f} MB, mean loss {result['mean_train_loss']:.5f}, final loss {final_loss:.5f}", flush=True)
    for row, seconds in zip(rows, epoch_seconds, strict=True):  # of the times measured, not of the rounded ones
        row["speedup"] = round(seconds / epoch_seconds[0], 2)
    load_after = os.getloadavg()

    load = (f"load average (1, 5, 15 min) {', '.join(f'{v:.2f}' for v in load_before)} at the start, "
            f"{', '.join(f'{v:.2f}' for v in load_after)} at the end")  # fmt: skip
    header = ", ".join(f"{k} {v}" for k, v in environment(device).items())
    stem = args.out / f"peers_end_to_end_{'gpu' if device.type == 'cuda' else 'cpu'}"
    write_csv(stem.with_suffix(".csv"), rows)
    table = markdown_table(rows, COLUMNS)
    notes_text = "".join(f"- {note}\n" for note in notes)
    stem.with_suffix(".md").write_text(
        f"# He et al. gesture SCNN, one epoch: snn_cuda vs peers ({device.type})\n\n{header}\n\n{load}\n\n"
        f"speedup = the library's epoch time / snn_cuda's; final_loss = the loss after the epoch on a "
        f"fixed training batch; peak_MB = the largest growth of allocated memory during one forward+backward.\n\n"
        f"{notes_text}\n{table}\n"
    )
    print(table)
    print(load)
    print(f"wrote {stem}.csv/.md")
    return rows


if __name__ == "__main__":
    main()
