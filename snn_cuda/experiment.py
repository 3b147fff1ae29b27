"""What every experiment driver shares: YAML configs with a ``smoke`` section, in-memory datasets, training a set
of models under one protocol, and the comparison table (CSV + markdown) and plots (PNG)."""

from __future__ import annotations

import copy
import csv
import math
import os
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from .complexity import measure_cost, saved_for_backward_bytes
from .models import build_model
from .training import TrainConfig, Trainer

RESULT_COLUMNS = (
    "model", "test_accuracy", "best_dev_accuracy", "best_epoch", "epochs", "params", "macs_per_step",
    "acs_per_step", "other_ops_per_step", "mean_spike_rate", "train_samples_per_s", "inference_samples_per_s",
    "saved_activations_mb", "peak_cuda_mb", "train_seconds",
)  # fmt: skip


def merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in, nested dicts recursively (neither is modified)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(path: str | os.PathLike, *, smoke: bool = False) -> dict:
    """Reads a YAML experiment config; with ``smoke`` its ``smoke`` section is merged over it (a run of seconds)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    smoke_section = config.pop("smoke", {}) or {}
    return merge(config, smoke_section) if smoke else config


def materialize(dataset, *, desc: str, progress: bool = True) -> torch.utils.data.TensorDataset:
    """Reads every item of ``dataset`` once into memory: ``(x: [N, T, ...], labels: [N])``, so epochs do not
    frame events again."""
    items = [dataset[i] for i in tqdm(range(len(dataset)), desc=desc, disable=not progress, leave=False)]
    if not items:
        raise ValueError(f"{desc}: the dataset is empty")
    inputs, labels = zip(*items, strict=True)
    return torch.utils.data.TensorDataset(torch.stack(inputs), torch.as_tensor(labels))


def train_and_measure(
    name: str, model_config: dict, training: TrainConfig, data: dict, out_dir: Path, *, resume: bool = False,
    backend: str = "auto", metadata: dict | None = None,
) -> tuple[dict, list[dict]]:  # fmt: skip
    """Trains one model (``data``: "train", "dev", "test" datasets), tests its best dev checkpoint, and measures
    its cost on a test batch. Returns the result row and the per-epoch history."""
    torch.manual_seed(training.seed)  # the same initialisation whether or not other models ran before
    model = build_model(model_config, backend=backend)
    trainer = Trainer(model, training, out_dir / name, name=name, metadata=metadata)
    device = trainer.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    history = trainer.fit(data["train"], data["dev"], resume=resume)
    train_seconds = time.perf_counter() - start
    test = trainer.test(data["test"])
    x = data["test"].tensors[0][: training.batch_size].to(device).transpose(0, 1)
    cost = measure_cost(model, x)
    rates = list(cost.input_rates.values())
    row = {
        "model": name, "test_accuracy": test["accuracy"], "best_dev_accuracy": trainer.best["accuracy"],
        "best_epoch": test["best_epoch"], "epochs": trainer.epoch, "params": cost.params, "macs_per_step": cost.macs,
        "acs_per_step": cost.acs, "other_ops_per_step": cost.other_ops,
        "mean_spike_rate": sum(rates[1:]) / len(rates[1:]) if len(rates) > 1 else float("nan"),
        "train_samples_per_s": history[-1]["train_samples_per_s"],
        "inference_samples_per_s": test["samples_per_s"],
        "saved_activations_mb": saved_for_backward_bytes(model, x) / 2**20,
        "peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan"),
        "train_seconds": train_seconds,
    }  # fmt: skip
    return row, history


def _format(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(rows: list[dict], columns: tuple[str, ...] = RESULT_COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_results(rows: list[dict], histories: dict[str, list[dict]], out_dir: Path, *, title: str,
                  notes: list[str]) -> None:  # fmt: skip
    """Writes ``results.csv``, ``results.md`` (title, notes, table), ``accuracy_curves.png`` and
    ``accuracy_vs_cost.png`` into ``out_dir``."""
    with open(out_dir / "results.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    notes_text = "".join(f"- {note}\n" for note in notes)
    (out_dir / "results.md").write_text(f"# {title}\n\n{notes_text}\n{markdown_table(rows)}\n")
    _plot(rows, histories, out_dir)


def _plot(rows: list[dict], histories: dict[str, list[dict]], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, history in histories.items():
        epochs = [row["epoch"] for row in history]
        line = axis.plot(epochs, [row["dev_accuracy"] for row in history], marker="o", label=f"{name} dev")[0]
        axis.plot(epochs, [row["train_accuracy"] for row in history], linestyle="--", color=line.get_color())
    axis.set(xlabel="epoch", ylabel="accuracy", title="Accuracy per epoch (solid: dev, dashed: train)", ylim=(0, 1))
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out_dir / "accuracy_curves.png", dpi=120)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        operations = row["macs_per_step"] + row["acs_per_step"]
        marker = "o" if row["acs_per_step"] > row["macs_per_step"] else "s"
        axis.scatter(operations, row["test_accuracy"], marker=marker, s=60)
        axis.annotate(row["model"], (operations, row["test_accuracy"]), fontsize=8, xytext=(4, 4),
                      textcoords="offset points")  # fmt: skip
    axis.set_xscale("log")
    axis.set(xlabel="operations per sample per time step (MAC + AC; circles: mostly AC)", ylabel="test accuracy",
             title="Accuracy vs cost", ylim=(0, 1.05))  # fmt: skip
    figure.tight_layout()
    figure.savefig(out_dir / "accuracy_vs_cost.png", dpi=120)
    plt.close(figure)
