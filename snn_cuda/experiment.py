"""What every experiment driver shares: YAML configs with a ``smoke`` section, in-memory datasets, training a set
of models under one protocol, the comparison table (CSV + markdown) and plots (PNG), and the command line
(:func:`run_driver`: :func:`driver_parser`, :func:`run_comparison`, :func:`evaluate_checkpoint`).

A model entry of a config may hold a ``data`` section merged over the config's ``data`` for that model alone
(e.g. ``{encoding: poisson}``), so one table can compare input encodings; the merged settings are stored in the
model's checkpoints, so ``--test`` reads the data the way the model was trained on it."""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import math
import os
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from . import __version__, distributed
from ._checks import check_keys
from .complexity import measure_cost, saved_for_backward_bytes
from .models import build_model
from .training import (
    LAST_CHECKPOINT,
    CheckpointError,
    TrainConfig,
    Trainer,
    check_resumable,
    load_checkpoint,
    model_from_checkpoint,
)

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


class ConfigError(ValueError):
    """An experiment config that cannot be read or lacks what its driver needs."""


# The top-level keys of the drivers' configs: the comparison drivers read "data", the temporal-resolution sweep
# "dataset" and "datasets".
CONFIG_KEYS = ("title", "data", "dataset", "datasets", "training", "models", "smoke")


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, except that a number in exponent notation without a dot (``lr: 1e-3``, as
    papers write it) is a float, as in YAML 1.2, not the string "1e-3"."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _yaml_reason(exc: Exception) -> str:
    """One line: PyYAML's problem and where (its own message spans several, with the line quoted)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(exc).strip().splitlines()[0]


def load_config(path: str | os.PathLike, *, smoke: bool = False, sections: tuple[str, ...] = ("training", "models"),
                ) -> dict:  # fmt: skip
    """Reads a YAML experiment config; with ``smoke`` its ``smoke`` section is merged over it (a run of seconds).
    The config must hold ``sections`` (a driver names those it reads), and no key outside ``CONFIG_KEYS``: a
    misspelt one would otherwise be ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} {'is a folder' if path.is_dir() else 'does not exist'}")
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=_ConfigLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_reason(exc)}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections {list(sections)}, got "
                          f"{type(config).__name__}")  # fmt: skip
    missing = [key for key in sections if key not in config]
    if missing:
        raise ConfigError(f"config file {path} lacks the sections {missing}")
    check_keys(config, CONFIG_KEYS, f"config file {path}", error=ConfigError)
    for key, value in config.items():
        if key not in ("title", "dataset") and not isinstance(value, dict | None):
            raise ConfigError(f"config file {path}: section {key!r} must be a mapping, got {value!r}")
    for name, entry in (config.get("models") or {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("data", {}), dict):
            raise ConfigError(f"config file {path}: model {name!r} must be a mapping of its settings (with an "
                              f"optional mapping 'data'), got {entry!r}")  # fmt: skip
    smoke_section = config.pop("smoke", {}) or {}
    if not isinstance(smoke_section.get("models") or {}, dict):
        raise ConfigError(f"config file {path}: the smoke section's models must be a mapping of model names, got "
                          f"{smoke_section['models']!r}")  # fmt: skip
    strays = sorted(set(smoke_section.get("models") or {}) - set(config.get("models") or {}))
    if strays:
        raise ConfigError(f"config file {path}: the smoke section's models {strays} are not in its models "
                          f"{list(config.get('models') or {})}")  # fmt: skip
    return merge(config, smoke_section) if smoke else config


def refuse_torchrun(driver: str) -> None:
    """For the drivers that run in one process: under torchrun every rank would run the whole study and write
    the same files."""
    if distributed.launched_by_torchrun() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(f"{driver} runs in one process; torchrun is for the comparison drivers (gesture.py, "
                         "nmnist.py, mnist.py)")  # fmt: skip


def run_from_command_line(main: Callable[[list[str]], object]) -> None:
    """Runs a driver's ``main`` on ``sys.argv``, as its ``__main__`` block does. A bad setting, config, data
    folder or checkpoint ends the run with one line naming it (``SNN_CUDA_TRACEBACK=1`` shows the traceback);
    Ctrl-C says how to continue."""
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit("\ninterrupted: every finished epoch is checkpointed under --out; the same command with --resume "
                 "continues from there")  # fmt: skip
    except (ValueError, TypeError, KeyError, OSError, CheckpointError) as exc:  # OSError: a missing, unreadable
        # or misplaced file or folder (FileNotFoundError, NotADirectoryError, PermissionError, ...)
        if os.environ.get("SNN_CUDA_TRACEBACK") == "1":
            raise
        if not distributed.is_main_process():  # under torchrun every rank fails alike: rank 0 says it once
            sys.exit(1)
        sys.exit(f"error: {exc if not isinstance(exc, KeyError) else f'missing key {exc}'} "
                 "(SNN_CUDA_TRACEBACK=1 shows the traceback)")  # fmt: skip


def materialize(dataset, *, desc: str, progress: bool = True) -> torch.utils.data.TensorDataset:
    """Reads every item of ``dataset`` once into memory: ``(x: [N, T, ...], labels: [N])``, so epochs do not
    frame events again."""
    items = [dataset[i] for i in tqdm(range(len(dataset)), desc=desc, disable=not progress, leave=False)]
    if not items:
        raise ValueError(f"{desc}: the dataset is empty")
    other = next((index for index, (inputs, _) in enumerate(items) if inputs.shape != items[0][0].shape), None)
    if other is not None:
        raise ValueError(f"{desc}: items 0 and {other} have shapes {list(items[0][0].shape)} and "
                         f"{list(items[other][0].shape)}; batches need one shape (a framing by dt_ms needs frames "
                         "to fix the number of frames)")  # fmt: skip
    inputs, labels = zip(*items, strict=True)
    return torch.utils.data.TensorDataset(torch.stack(inputs), torch.as_tensor(labels))


def first_inputs(dataset, count: int) -> torch.Tensor:
    """The inputs of the first ``count`` items of ``dataset`` stacked: ``[count, T, ...]``."""
    return torch.stack([dataset[index][0] for index in range(min(count, len(dataset)))])


def materialize_splits(make_dataset: Callable[[str], torch.utils.data.Dataset], *, desc: str,
                       progress: bool = True) -> dict[str, torch.utils.data.TensorDataset]:  # fmt: skip
    """:func:`materialize` of ``make_dataset(split)`` for the "train", "dev" and "test" splits."""
    return {split: materialize(make_dataset(split), desc=f"{desc} {split}", progress=progress)
            for split in ("train", "dev", "test")}  # fmt: skip


def train_and_measure(
    name: str, model_config: dict, training: TrainConfig, data: dict, out_dir: Path, *, resume: bool = False,
    backend: str = "auto", metadata: dict | None = None, on_start: Callable[[], None] | None = None,
) -> tuple[dict, list[dict]]:  # fmt: skip
    """Trains one model (``data``: "train", "dev", "test" datasets), tests its best dev checkpoint, and measures
    its cost on a test batch. Returns the result row and the per-epoch history. ``on_start``: see
    :meth:`Trainer.fit`."""
    torch.manual_seed(training.seed)  # the same initialisation whether or not other models ran before
    model = build_model(model_config, backend=backend)
    trainer = Trainer(model, training, out_dir / name, name=name, metadata=metadata)
    device = trainer.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    history = trainer.fit(data["train"], data["dev"], resume=resume, on_start=on_start)
    # Summed over the epochs, so a resumed run counts the epochs of its earlier sessions too (histories saved
    # before epoch_seconds existed give NaN).
    train_seconds = sum(row.get("epoch_seconds", float("nan")) for row in history)
    test = trainer.test(data["test"])
    x = first_inputs(data["test"], training.batch_size).to(device).transpose(0, 1)
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
        # four significant digits (0.9412, 6.426, 133.4), whole numbers with separators from 1000 on
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(rows: list[dict], columns: tuple[str, ...] = RESULT_COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def software_note() -> str:
    """What the numbers of a results table were measured with."""
    return (f"snn_cuda {__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
            f"{torch.get_num_threads()} CPU threads x {distributed.world_size()} process(es)")  # fmt: skip


def write_table(rows: list[dict], columns: tuple[str, ...], out_dir: Path, *, title: str, notes: list[str],
                name: str = "results", body: str | None = None) -> None:  # fmt: skip
    """Writes ``<name>.csv`` (the ``columns`` of ``rows``) and ``<name>.md``: title, notes, then ``body``
    (default: the same table in markdown), into ``out_dir``."""
    with open(out_dir / f"{name}.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    notes_text = "".join(f"- {note}\n" for note in [*notes, software_note()])
    body = markdown_table(rows, columns) if body is None else body
    (out_dir / f"{name}.md").write_text(f"# {title}\n\n{notes_text}\n{body}\n")


def write_results(rows: list[dict], histories: dict[str, list[dict]], out_dir: Path, *, title: str,
                  notes: list[str]) -> None:  # fmt: skip
    """Writes ``results.csv``, ``results.md`` (title, notes, table), ``accuracy_curves.png`` and
    ``accuracy_vs_cost.png`` into ``out_dir``."""
    write_table(rows, RESULT_COLUMNS, out_dir, title=title, notes=notes)
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


# ---- the command line every driver shares -------------------------------------------------------------------

DatasetsFn = Callable[[dict, "str | None", bool], dict]  # (data config, data root, progress) -> split -> dataset


def driver_parser(doc: str, default_config: Path, *, name: str, data_help: str) -> argparse.ArgumentParser:
    """The options of every experiment driver (results go to ``results/<name>`` by default); a driver adds its
    own before parsing."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(default_config), help="YAML experiment config")
    parser.add_argument("--data-root", default=None, help=data_help)
    parser.add_argument("--out", default=f"results/{name}", help="output folder")
    parser.add_argument("--smoke", action="store_true", help="merge the config's smoke section: a run of seconds")
    parser.add_argument("--models", nargs="+", default=None,
                        help="train only these models of the config (the results table then holds only them)")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--backend", default="auto", choices=("auto", "cpp", "cuda", "torch"))
    parser.add_argument("--device", type=device_argument, default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu, cuda or cuda:N (default: cuda where available)")  # fmt: skip
    parser.add_argument("--amp", default=None, choices=("bf16", "fp16"), help="mixed precision (CUDA only)")
    parser.add_argument("--channels-last", action="store_true",
                        help="conv nets' weights and input frames channels-last, as convolutions prefer")  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    parser.add_argument("--test", metavar="CHECKPOINT", default=None, help="only evaluate this checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def device_argument(value: str) -> str:
    """``--device``, checked before any data is read: a device torch knows, and CUDA only where available."""
    try:
        device = torch.device(value)
    except RuntimeError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a torch device ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{value!r}: this torch ({torch.__version__}) has no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{value!r}: the drivers run on cpu or cuda")
    return value


# Training settings of where a run goes and what it shows: the machine's, not the protocol's that a config records
# (config.yaml leaves them out, so a run's record serves as --config again).
FROM_COMMAND_LINE = {"device": "--device", "amp": "--amp", "progress": "--quiet", "channels_last": "--channels-last"}


def command_line_settings(args: argparse.Namespace) -> dict:
    """The training settings of FROM_COMMAND_LINE, as the command line gives them."""
    return {"device": args.device, "amp": args.amp, "progress": not args.quiet, "channels_last": args.channels_last}


def training_config(config: dict, args: argparse.Namespace) -> TrainConfig:
    """The config's training section with the command line's overrides."""
    section = config["training"] or {}  # an empty section: every default
    settable = sorted({field.name for field in dataclasses.fields(TrainConfig)} - set(FROM_COMMAND_LINE))
    # device, amp and progress are known, and refused below with the option that sets them
    check_keys(set(section) - set(FROM_COMMAND_LINE), settable, "training config", error=ConfigError)
    misplaced = [key for key in FROM_COMMAND_LINE if key in section]
    if misplaced:
        options = ", ".join(FROM_COMMAND_LINE[key] for key in misplaced)
        raise ConfigError(f"training {misplaced} are set on the command line ({options}), not in the config")
    overrides = {"epochs": args.epochs, "seed": args.seed}
    return TrainConfig.from_dict({
        **section, **{k: v for k, v in overrides.items() if v is not None}, **command_line_settings(args),
    })  # fmt: skip


def selected_models(config: dict, args: argparse.Namespace) -> list[str]:
    """``--models`` (default: all of the config), checked against the config."""
    if not config["models"]:
        raise ConfigError(f"{args.config}: the config lists no model")
    names = args.models or list(config["models"])
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"--models: {repeated} listed more than once")
    unknown = sorted(set(names) - set(config["models"]))
    if unknown:
        raise ValueError(f"--models: {unknown} are not in {args.config} (it has {list(config['models'])})")
    return names


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars unless ``--quiet``, and under torchrun from rank 0 only."""
    return not args.quiet and distributed.is_main_process()


def run_metadata(driver: str, data: dict, args: argparse.Namespace) -> dict:
    """What a driver stores in each checkpoint besides the model and the training settings: which driver wrote it,
    the data settings, and the data folder (None: the synthetic set). A resumed run must match it
    (:func:`snn_cuda.training.check_resumable`), and ``--test`` reads the data the same way."""
    root = None if args.data_root is None else str(Path(args.data_root).resolve())
    return {"driver": driver, "data": data, "data_root": root}


def checkpoint_metadata(checkpoint: dict, path: str, driver: str) -> dict:
    """The metadata of a checkpoint ``--test`` evaluates, refused if another driver wrote it (its data settings
    mean something else there). Checkpoints of snn_cuda <= 0.1.0 record no driver: taken as they are."""
    metadata = checkpoint.get("metadata") or {}
    written_by = metadata.get("driver", driver)
    if written_by != driver:
        raise CheckpointError(f"checkpoint {path} was written by experiments/{written_by}.py, not {driver}.py: "
                              "test it with that driver")  # fmt: skip
    if "data" not in metadata:
        raise CheckpointError(f"checkpoint {path} records no data settings: it was not written by an experiment "
                              "driver")  # fmt: skip
    return metadata


def data_root_for_testing(metadata: dict, path: str, args: argparse.Namespace) -> str | None:
    """The data folder to test a checkpoint on: ``--data-root``, else the one it was trained on (None: the synthetic
    set), which must then exist here. Says so when the two differ."""
    trained_on = metadata.get("data_root")
    if args.data_root is None and trained_on is not None:
        if not Path(trained_on).is_dir():
            raise FileNotFoundError(f"checkpoint {path} was trained on data in {trained_on}, not a folder here: "
                                    "give --data-root")  # fmt: skip
        distributed.print_once(f"testing on {trained_on}, the data the checkpoint was trained on")
        return trained_on
    if "data_root" in metadata and (args.data_root and str(Path(args.data_root).resolve())) != trained_on:
        distributed.print_once(f"note: {path} was trained on {trained_on or 'the synthetic set'}, tested on "
                               f"{args.data_root or 'the synthetic set'}")  # fmt: skip
    return args.data_root


def evaluate_checkpoint(path: str, args: argparse.Namespace, datasets: DatasetsFn, *, driver: str) -> dict:
    """``--test``: the test accuracy of one checkpoint of ``driver``, with the data settings stored in it."""
    checkpoint = load_checkpoint(path)
    metadata = checkpoint_metadata(checkpoint, path, driver)
    data_root = data_root_for_testing(metadata, path, args)
    with distributed.main_process_first():  # see run_comparison
        sets = datasets(metadata["data"], data_root, show_progress(args))
    model = model_from_checkpoint(path, backend=args.backend)
    training = TrainConfig.from_dict({**checkpoint["train_config"], **command_line_settings(args)})
    result = Trainer(model, training, Path(path).parent, name=checkpoint["name"]).evaluate(sets["test"], desc="test")
    distributed.print_once(f"{checkpoint['name']} (epoch {checkpoint['epoch']}): test accuracy "
                           f"{result['accuracy']:.4f}, loss {result['loss']:.4f}, "
                           f"{result['samples_per_s']:.0f} samples/s")  # fmt: skip
    return result


def start_run(config: dict, args: argparse.Namespace) -> tuple[TrainConfig, list[str], Path, Callable[[], None]]:
    """The training settings and model names of a run, its output folder ``args.out`` (created), and
    ``record_config``, which writes the config as run (command-line overrides included) to ``config.yaml`` (rank 0
    under torchrun; the first call only). Drivers pass it to :func:`train_and_measure`, which calls it once the
    data is ready and the first model's checkpoint (on --resume) was accepted: a run refused before that (a bad
    setting, data folder or checkpoint) leaves a finished run's record in --out as it was."""
    training = training_config(config, args)
    names = selected_models(config, args)
    if args.backend == "cuda" and torch.device(args.device).type != "cuda":
        raise ValueError(f"--backend cuda runs the CUDA kernels: it needs --device cuda, got --device {args.device}")
    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise FileNotFoundError(f"--data-root {args.data_root} is not a folder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    protocol = {key: value for key, value in vars(training).items() if key not in FROM_COMMAND_LINE}
    text = yaml.safe_dump({**config, "training": protocol}, sort_keys=False)
    written = []

    def record_config() -> None:
        if not written and distributed.is_main_process():
            (out / "config.yaml").write_text(text)
        written.append(True)

    return training, names, out, record_config


def training_note(training: TrainConfig, args: argparse.Namespace) -> str:
    """The training protocol in one line, for the notes of a results table."""
    return (
        f"training: {training.epochs} epochs, batch {training.batch_size}, Adam lr {training.lr}"
        + (f" x{training.lr_gamma} every {training.lr_step_epochs} epochs" if training.lr_step_epochs else "")
        + f", loss {training.loss}, seed {training.seed}, device {training.device}, backend {args.backend}"
        + (", conv nets channels-last" if training.channels_last else "")
    )


def model_settings(config: dict, name: str) -> tuple[dict, dict]:
    """``(model config, data config)`` of model ``name``: its entry without its ``data`` section, and the config's
    ``data`` with that section merged in."""
    entry = dict(config["models"][name])
    return entry, merge(config["data"], entry.pop("data", None) or {})


def check_data_keys(data: dict, accepted: tuple[str, ...], where: str) -> None:
    """A data section holds only keys its driver reads: a misspelt one would otherwise be ignored."""
    check_keys(data, accepted, f"{where}: data", error=ConfigError)


def check_models(runs: list[tuple[str, dict, dict]], training: TrainConfig, args: argparse.Namespace, out: Path,
                 ) -> None:  # fmt: skip
    """Builds every model of a run, ``runs = [(name, model config, metadata)]``, and on ``--resume`` checks its
    checkpoint, before any model trains: a run refused by its last model would otherwise have retrained the first
    ones over a finished run's checkpoints. The global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        for name, model_config, metadata in runs:
            try:
                model = build_model(model_config, backend=args.backend)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"model {name}: {exc}") from None
            last = out / name / LAST_CHECKPOINT
            if args.resume and last.exists():
                check_resumable(last, load_checkpoint(last), training, model.config, metadata)


def run_comparison(
    config: dict, args: argparse.Namespace, datasets: DatasetsFn, *, input_shape: Callable[[dict], list[int]],
    title: str, notes: list[str], driver: str, data_keys: tuple[str, ...],
) -> list[dict]:  # fmt: skip
    """Trains every selected model of ``config`` under one protocol and writes config.yaml, results.csv / .md and
    the plots into ``args.out``. ``datasets`` makes the "train", "dev" and "test" sets of a data config (read
    once per distinct config: models with their own ``data`` section get their own sets), ``input_shape`` gives
    the per-frame shape they yield, ``data_keys`` are the keys a data config may hold; ``notes`` describe the
    data. Under torchrun rank 0 writes."""
    training, names, out, record_config = start_run(config, args)
    check_data_keys(config["data"], data_keys, "config")
    runs = []
    for name in names:
        model_config, data = model_settings(config, name)
        check_data_keys(data, data_keys, f"model {name}")
        runs.append((name, {**model_config, "input_shape": input_shape(data)}, run_metadata(driver, data, args)))
    check_models(runs, training, args, out)
    distributed.print_once(f"{training.epochs} epochs, batch {training.batch_size}, lr {training.lr}, loss "
                           f"{training.loss}, device {training.device}")  # fmt: skip
    sets_by_data: dict[str, dict] = {}
    rows, histories, sizes = [], {}, []
    for name, model_config, metadata in runs:
        data = metadata["data"]
        key = yaml.safe_dump(data, sort_keys=True)
        if key not in sets_by_data:
            # Generating a synthetic set or caching parsed files writes shared folders: under torchrun one
            # process does it, then the others read what it wrote.
            with distributed.main_process_first():
                sets = sets_by_data[key] = datasets(data, args.data_root, show_progress(args))
            size = f"train {len(sets['train'])}, dev {len(sets['dev'])}, test {len(sets['test'])} samples"
            if size not in sizes:
                sizes.append(size)
            distributed.print_once(f"data {data}: {size}; inputs {list(sets['train'][0][0].shape)}")
        sets = sets_by_data[key]
        row, history = train_and_measure(name, model_config, training, sets, out, resume=args.resume,
                                         backend=args.backend, metadata=metadata, on_start=record_config)  # fmt: skip
        distributed.print_once(f"{name}: test accuracy {row['test_accuracy']:.4f} (best dev epoch "
                               f"{row['best_epoch']}), {row['train_seconds']:.0f} s")  # fmt: skip
        rows.append(row)
        histories[name] = history
    models_by_own_data: dict[str, list[str]] = {}
    for name in names:
        if config["models"][name].get("data"):
            models_by_own_data.setdefault(str(config["models"][name]["data"]), []).append(name)
    notes = [
        *notes,
        *(f"data settings {settings} for {', '.join(models)}" for settings, models in models_by_own_data.items()),
        "; ".join(sizes),
        training_note(training, args),
        "test accuracy of the best dev epoch; operations per sample and time step; AC counted from the measured "
        "input event / spike rate (He et al.'s SNN only), mean_spike_rate = mean rate at the inputs of the "
        "hidden-to-output layers; saved_activations_mb = what autograd keeps for the backward of one batch",
    ]
    if not distributed.is_main_process():
        return rows
    write_results(rows, histories, out, title=title, notes=notes)
    print(markdown_table(rows))
    print(f"written: {out / 'results.csv'}, {out / 'results.md'}, {out / 'accuracy_curves.png'}, "
          f"{out / 'accuracy_vs_cost.png'}")  # fmt: skip
    return rows


def run_driver(
    argv: list[str] | None, doc: str, default_config: Path, *, name: str, data_help: str, datasets: DatasetsFn,
    input_shape: Callable[[dict], list[int]], describe_data: Callable[[dict, str | None], list[str]], title: str,
    data_keys: tuple[str, ...],
) -> list[dict] | dict:  # fmt: skip
    """The main function of an experiment driver: parses ``argv`` (:func:`driver_parser`), then evaluates one
    checkpoint (``--test``) or runs the comparison of the config. ``describe_data(data config, data root)``
    gives the notes on the data for results.md (the first one is printed before the data is read); a config's
    ``title`` replaces ``title``; ``data_keys`` are the keys ``datasets`` reads from a data config."""
    args = driver_parser(doc, default_config, name=name, data_help=data_help).parse_args(argv)
    with distributed.session(args.device):  # joins the process group under torchrun; nothing otherwise
        if args.test is not None:
            return evaluate_checkpoint(args.test, args, datasets, driver=name)
        config = load_config(args.config, smoke=args.smoke, sections=("data", "training", "models"))
        notes = describe_data(config["data"], args.data_root)
        distributed.print_once(notes[0])
        return run_comparison(config, args, datasets, input_shape=input_shape, title=config.get("title", title),
                              notes=notes, driver=name, data_keys=data_keys)  # fmt: skip
