"""snn-iir's associative memory (Fang et al. 2020; models.md section 4, last row): a 300-500-200-500-300 snn-iir
network (tau_m 8, tau_s 2) with a fixed normalised dual-exp filter on its output spikes learns to reproduce
stored spike patterns, 4 steps late, from corrupted cues; the loss is the MSE between the filtered output spikes
and the equally filtered, delayed stored pattern. Then recall is measured against the corruption of the cue.

    python experiments/associative_memory.py               # reduced settings (configs/associative_memory_quick)
    python experiments/associative_memory.py --config experiments/configs/associative_memory_iir2020.yaml
    python experiments/associative_memory.py --smoke       # a run of seconds
    python experiments/associative_memory.py --test results/associative_memory/snn_iir/best.pt

Patterns: every one of ``neurons`` inputs fires a random number of spikes (``spikes_per_neuron``, inclusive
range) at distinct random steps of ``steps`` (the seed's ``generate_rand_pattern``; its published run used
binarised images on a sparse lattice instead). A cue is a stored pattern with one corruption of a given level,
``level`` x (number of spikes) spikes changed exactly: "delete" removes that many spikes, "add" puts that many
spikes at empty places, "jitter" moves that many spikes by 1 to ``jitter_steps`` steps within their neuron.

Recall (``recall.csv`` / ``.md``, ``recall.png``), per corruption kind and level, on fresh cues of every stored
pattern: ``output_cosine``, the cosine similarity between the filtered output and the filtered delayed stored
pattern; ``recall_accuracy``, how often that pattern is the most similar stored pattern; ``output_mse``, the
loss. ``cue_cosine`` and ``cue_recall_accuracy`` score the cue itself through the same delay and filter: what
copying the input would reach, so the net completes patterns where it scores above them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from snn_cuda import iir_filter, normalised_dual_exp
from snn_cuda.experiment import (
    check_models,
    checkpoint_metadata,
    driver_parser,
    load_config,
    markdown_table,
    refuse_torchrun,
    run_from_command_line,
    run_metadata,
    start_run,
    train_and_measure,
    training_note,
    write_table,
)
from snn_cuda.training import load_checkpoint, model_from_checkpoint

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "associative_memory_quick.yaml"
CORRUPTIONS = ("delete", "add", "jitter")
RECALL_COLUMNS = (
    "kind", "level", "cue_cosine", "output_cosine", "cue_recall_accuracy", "recall_accuracy", "output_mse",
)  # fmt: skip
# Independent random streams of one run seed, so that e.g. more training cues do not change the test cues.
PATTERN_STREAM, TRAIN_STREAM, DEV_STREAM, TEST_STREAM, RECALL_STREAM = range(5)


def random_patterns(count: int, steps: int, neurons: int, spikes_per_neuron: list[int], seed: int) -> np.ndarray:
    """``count`` binary patterns ``[count, steps, neurons]``: each neuron fires a uniform random number of spikes
    in ``spikes_per_neuron = [low, high]`` at distinct random steps."""
    low, high = spikes_per_neuron
    if not 0 <= low <= high <= steps:
        raise ValueError(f"spikes_per_neuron must be [low, high] with 0 <= low <= high <= steps, got {[low, high]}")
    rng = np.random.default_rng([seed, PATTERN_STREAM])
    patterns = np.zeros((count, steps, neurons), dtype=np.float32)
    for pattern in patterns:
        for neuron in range(neurons):
            times = rng.choice(steps, rng.integers(low, high + 1), replace=False)
            pattern[times, neuron] = 1.0
    return patterns


def corrupt(
    pattern: np.ndarray, kind: str, level: float, rng: np.random.Generator, *, jitter_steps: int
) -> np.ndarray:
    """A cue: ``pattern: [steps, neurons]`` (binary) with ``round(level * spikes)`` spikes deleted, added at empty
    places, or moved ("jitter") by 1 to ``jitter_steps`` steps to a place empty in the pattern. A spike with no
    such place (only in dense patterns) stays."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"corruption kind must be one of {CORRUPTIONS}, got {kind!r}")
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"corruption level must lie in [0, 1], got {level}")
    cue = pattern.copy()
    spikes = np.flatnonzero(pattern)
    count = round(level * len(spikes))
    if kind == "delete":
        cue.flat[rng.choice(spikes, count, replace=False)] = 0.0
    elif kind == "add":
        cue.flat[rng.choice(np.flatnonzero(pattern == 0), count, replace=False)] = 1.0
    else:
        steps, neurons = pattern.shape
        offsets = np.array([d for d in range(-jitter_steps, jitter_steps + 1) if d])
        for index in rng.choice(spikes, count, replace=False):
            step, neuron = divmod(int(index), neurons)
            # landing only where the pattern has no spike keeps the change exact: one spike gone, one new
            targets = [step + d for d in offsets if 0 <= step + d < steps]
            free = [t for t in targets if pattern[t, neuron] == 0 and cue[t, neuron] == 0]
            if free:
                cue[step, neuron] = 0.0
                cue[rng.choice(free), neuron] = 1.0
    return cue


def delayed(spikes: torch.Tensor, delay: int) -> torch.Tensor:
    """``spikes: [T, ...]`` shifted ``delay`` steps later in time (zeros first, the last ``delay`` steps cut)."""
    shifted = torch.zeros_like(spikes)
    shifted[delay:] = spikes[: spikes.shape[0] - delay]
    return shifted


def filtered_targets(spikes: torch.Tensor, model_config: dict, delay: int) -> torch.Tensor:
    """``spikes: [T, ...]`` delayed, then through the model's fixed output filter (normalised dual-exp with the
    model's tau_m, tau_s): what the filtered output spikes are trained to match. Computed where the spikes are
    (on the CPU here, whatever ``--backend`` the model runs with)."""
    a1, a2, b = normalised_dual_exp(model_config["tau_m"], model_config["tau_s"])
    return iir_filter(delayed(spikes, delay), a1, a2, b)


class CueDataset(torch.utils.data.Dataset):
    """Corrupted cues of the stored patterns: item ``i`` is ``(cue: [T, neurons], target: [T, neurons])`` for
    pattern ``i % patterns``, the target being its filtered delayed pattern. With probability ``clean_fraction``
    the cue is the pattern itself, otherwise one corruption of a random kind at a level uniform in
    ``[0, max_level]``; item ``i`` is drawn from its own seeded stream, so epochs and resumed runs see the same
    cues."""

    def __init__(self, patterns: np.ndarray, targets: torch.Tensor, *, copies: int, corruption: dict, seed: int,
                 stream: int, jitter_steps: int) -> None:  # fmt: skip
        self.patterns, self.targets, self.copies = patterns, targets, copies
        self.clean_fraction, self.max_level = corruption["clean_fraction"], corruption["max_level"]
        self.kinds = corruption.get("kinds", list(CORRUPTIONS))
        self.seed, self.stream, self.jitter_steps = seed, stream, jitter_steps

    def __len__(self) -> int:
        return len(self.patterns) * self.copies

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        which = index % len(self.patterns)
        rng = np.random.default_rng([self.seed, self.stream, index])
        cue = self.patterns[which]
        if rng.random() >= self.clean_fraction:
            kind = self.kinds[rng.integers(len(self.kinds))]
            cue = corrupt(cue, kind, rng.uniform(0.0, self.max_level), rng, jitter_steps=self.jitter_steps)
        return torch.from_numpy(cue), self.targets[which]


def in_memory(dataset: CueDataset) -> torch.utils.data.TensorDataset:
    """Every cue of ``dataset`` drawn once: the Trainer measures cost on a test batch of these tensors."""
    cues, targets = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.utils.data.TensorDataset(torch.stack(cues), torch.stack(targets))


def pattern_sets(data: dict, model_config: dict, seed: int) -> tuple[np.ndarray, torch.Tensor, dict]:
    """The stored patterns ``[P, T, neurons]``, their filtered delayed targets ``[P, T, neurons]``, and the
    "train" (generated on access), "dev" and "test" cue sets (in memory)."""
    patterns = random_patterns(data["patterns"], data["steps"], data["neurons"], data["spikes_per_neuron"], seed)
    targets = filtered_targets(torch.from_numpy(patterns).transpose(0, 1), model_config, data["delay"])
    targets = targets.transpose(0, 1).contiguous()
    options = dict(corruption=data["train_corruption"], seed=seed, jitter_steps=data["jitter_steps"])
    sets = {
        "train": CueDataset(patterns, targets, copies=data["train_copies"], stream=TRAIN_STREAM, **options),
        "dev": in_memory(CueDataset(patterns, targets, copies=data["dev_copies"], stream=DEV_STREAM, **options)),
        "test": in_memory(CueDataset(patterns, targets, copies=data["dev_copies"], stream=TEST_STREAM, **options)),
    }  # fmt: skip
    return patterns, targets, sets


def cosines(sequences: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every sequence ``[T, B, F]`` with every stored one ``[P, T, F]``: ``[B, P]``."""
    return F.normalize(sequences.transpose(0, 1).flatten(1), dim=1) @ F.normalize(stored.flatten(1), dim=1).T


def nearest_is_own(similarity: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``similarity: [B, P]``, ``labels: [B]`` -> ``[B]`` bool: the own pattern is strictly the most similar (a
    silent output, equally far from every pattern, recalls nothing)."""
    own = similarity[torch.arange(len(labels)), labels]
    others = similarity.scatter(1, labels[:, None], float("-inf"))
    return own > others.max(1).values


@torch.no_grad()
def recall_table(model, patterns: np.ndarray, targets: torch.Tensor, data: dict, seed: int, *, device: str,
                 batch_size: int) -> list[dict]:  # fmt: skip
    """One row per corruption kind and level of ``data["recall"]``: how well ``model`` (eval mode) recalls each
    stored pattern from fresh cues (``cues_per_pattern`` of each), next to the cue's own score (module doc)."""
    model.eval().to(device)
    recall = data["recall"]
    labels = torch.arange(len(patterns)).repeat_interleave(recall["cues_per_pattern"])
    rows = []
    for kind_index, kind in enumerate(recall.get("kinds", CORRUPTIONS)):
        for level_index, level in enumerate(recall["levels"]):
            rng = np.random.default_rng([seed, RECALL_STREAM, kind_index, level_index])
            cues = torch.from_numpy(np.stack([
                corrupt(patterns[label], kind, level, rng, jitter_steps=data["jitter_steps"]) for label in labels
            ])).transpose(0, 1)  # fmt: skip
            outputs = torch.cat([model(cues[:, i : i + batch_size].to(device)).float().cpu()
                                 for i in range(0, cues.shape[1], batch_size)], dim=1)  # fmt: skip
            filtered_cues = filtered_targets(cues, model.config, data["delay"])
            scores = {"cue": cosines(filtered_cues, targets), "output": cosines(outputs, targets)}
            own = {name: score[torch.arange(len(labels)), labels] for name, score in scores.items()}
            recalled = {name: nearest_is_own(score, labels).float() for name, score in scores.items()}
            rows.append({
                "kind": kind, "level": float(level),
                "cue_cosine": own["cue"].mean().item(), "output_cosine": own["output"].mean().item(),
                "cue_recall_accuracy": recalled["cue"].mean().item(),
                "recall_accuracy": recalled["output"].mean().item(),
                "output_mse": F.mse_loss(outputs, targets[labels].transpose(0, 1)).item(),
            })  # fmt: skip
    return rows


def plot_recall(rows: list[dict], history: list[dict], out_dir: Path) -> None:
    """``recall.png``: cosine and recall accuracy against the corruption level per kind (solid: the net's
    output, dashed: the cue itself), and the training loss per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for kind in dict.fromkeys(row["kind"] for row in rows):
        kind_rows = [row for row in rows if row["kind"] == kind]
        levels = [row["level"] for row in kind_rows]
        for axis, measure in zip(axes[:2], ("cosine", "recall_accuracy"), strict=True):
            output_key = "output_cosine" if measure == "cosine" else measure
            line = axis.plot(levels, [row[output_key] for row in kind_rows], marker="o", label=f"{kind}: output")[0]
            axis.plot(levels, [row[f"cue_{measure}"] for row in kind_rows], linestyle="--", color=line.get_color(),
                      label=f"{kind}: cue")  # fmt: skip
    axes[0].set(xlabel="corruption level (fraction of the pattern's spikes)", ylabel="cosine to the stored pattern",
                title="Similarity to the stored pattern (filtered)", ylim=(0, 1.02))  # fmt: skip
    axes[1].set(xlabel="corruption level (fraction of the pattern's spikes)", ylabel="recall accuracy",
                title="Nearest stored pattern is the right one", ylim=(0, 1.05))  # fmt: skip
    epochs = [row["epoch"] for row in history]
    axes[2].plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    axes[2].plot(epochs, [row["dev_loss"] for row in history], marker="s", label="dev")
    axes[2].set(xlabel="epoch", ylabel="MSE of the filtered output", title="Loss per epoch", yscale="log")
    for axis in axes:
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out_dir / "recall.png", dpi=120)
    plt.close(figure)


def model_config_of(config: dict, name: str, data: dict) -> dict:
    model_config = {**config["models"][name], "input_shape": [data["neurons"]]}
    outputs = int(model_config["spec"].rsplit("FC", 1)[1])
    if outputs != data["neurons"]:
        raise ValueError(f"model {name}: the output layer must have {data['neurons']} neurons (one per input), "
                         f"got {outputs} in {model_config['spec']!r}")  # fmt: skip
    return model_config


def recall_of_checkpoint(path: str, args) -> list[dict]:
    """``--test``: the recall table of one checkpoint, with the data settings and seed stored in it."""
    checkpoint = load_checkpoint(path)
    metadata = checkpoint_metadata(checkpoint, path, "associative_memory")
    data, seed = metadata["data"], metadata["seed"]
    model = model_from_checkpoint(path, backend=args.backend)
    patterns, targets, _ = pattern_sets(data, model.config, seed)
    rows = recall_table(model, patterns, targets, data, seed, device=args.device,
                        batch_size=checkpoint["train_config"]["batch_size"])  # fmt: skip
    print(markdown_table(rows, RECALL_COLUMNS))
    return rows


def main(argv: list[str] | None = None) -> dict[str, list[dict]] | list[dict]:
    parser = driver_parser(__doc__, DEFAULT_CONFIG, name="associative_memory",
                           data_help="not used: the patterns are generated from the seed")  # fmt: skip
    args = parser.parse_args(argv)
    refuse_torchrun("associative_memory.py")
    if args.test is not None:
        return recall_of_checkpoint(args.test, args)
    config = load_config(args.config, smoke=args.smoke, sections=("data", "training", "models"))
    data = config["data"]
    training, names, out, record_config = start_run(config, args)
    if training.loss != "sequence_mse":
        raise ValueError(f"{args.config}: the associative memory trains with loss sequence_mse, not {training.loss}")
    results = {}
    metadata = {**run_metadata("associative_memory", data, args), "seed": training.seed}
    model_configs = {name: model_config_of(config, name, data) for name in names}
    check_models([(name, model_configs[name], metadata) for name in names], training, args, out)
    for name in names:
        model_config = model_configs[name]
        patterns, targets, sets = pattern_sets(data, model_config, training.seed)
        print(f"{name}: {len(patterns)} patterns of {data['steps']} steps x {data['neurons']} neurons, "
              f"{patterns.sum() / len(patterns):.0f} spikes each; cues: train {len(sets['train'])}, "
              f"dev {len(sets['dev'])}; {training.epochs} epochs, batch {training.batch_size}")  # fmt: skip
        row, history = train_and_measure(name, model_config, training, sets, out, resume=args.resume,
                                         backend=args.backend, metadata=metadata, on_start=record_config)  # fmt: skip
        model = model_from_checkpoint(out / name / "best.pt", backend=args.backend)
        rows = recall_table(model, patterns, targets, data, training.seed, device=args.device,
                            batch_size=training.batch_size)  # fmt: skip
        run_out = out if len(names) == 1 else out / name
        notes = [
            f"model {name}: {model_config['spec']} on {data['neurons']} inputs, tau_m {model_config['tau_m']}, "
            f"tau_s {model_config['tau_s']}, fixed normalised dual-exp output filter; {row['params']:,} parameters; "
            f"best dev epoch {row['best_epoch']} of {row['epochs']}, trained in {row['train_seconds']:.0f} s",
            f"{len(patterns)} stored patterns of {data['steps']} steps x {data['neurons']} neurons, "
            f"{data['spikes_per_neuron']} spikes per neuron; target = pattern delayed {data['delay']} steps",
            f"training cues: {data['train_copies']} per pattern, clean with probability "
            f"{data['train_corruption']['clean_fraction']}, else one corruption at a level up to "
            f"{data['train_corruption']['max_level']}; jitter moves spikes by 1 to {data['jitter_steps']} steps",
            f"recall: {data['recall']['cues_per_pattern']} fresh cues per pattern and level; cosine over the whole "
            "filtered sequence; recall_accuracy = the nearest stored pattern (by cosine) is the cue's own; cue_* = "
            "the cue delayed and filtered like the target (what copying the input reaches)",
            training_note(training, args),
        ]
        write_table(rows, RECALL_COLUMNS, run_out, name="recall", notes=notes,
                    title="snn-iir associative memory: recall from corrupted cues")  # fmt: skip
        plot_recall(rows, history, run_out)
        print(markdown_table(rows, RECALL_COLUMNS))
        print(f"written: {run_out / 'recall.csv'}, {run_out / 'recall.md'}, {run_out / 'recall.png'}")
        results[name] = rows
    return results


if __name__ == "__main__":
    run_from_command_line(main)
