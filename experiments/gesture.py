"""Main job: SNN (LIF), SNN (IIR synapses), vanilla RNN and LSTM (mainstream and rate-coded readouts) on DVS128
Gesture under one protocol (He et al. 2020; models.md section 6, question 1): the same framing, BPTT, optimizer,
epochs and loss family for every model; the best dev epoch of each is tested.

    python experiments/gesture.py                          # embedded synthetic set (generated on first use)
    python experiments/gesture.py --data-root DVSGesture/  # the real set (trials, label CSVs, trial lists)
    python experiments/gesture.py --config experiments/configs/gesture_he2020.yaml --device cuda --amp bf16
    python experiments/gesture.py --smoke                  # a run of seconds
    python experiments/gesture.py --resume                 # continue an interrupted run from its checkpoints
    python experiments/gesture.py --test results/gesture/snn_lif/best.pt
    torchrun --nproc_per_node 2 experiments/gesture.py --smoke --device cpu   # data parallel: 2 processes (gloo)
    torchrun --nproc_per_node 4 experiments/gesture.py --device cuda          # one GPU per process (nccl)

Under torchrun every process trains a DistributedDataParallel replica on its share of each batch (the configured
batch size is the global batch, so the protocol does not depend on the number of processes); rank 0 prints and
writes.

Writes into --out (default results/gesture): results.csv and results.md (accuracy, parameters, MACs and ACs per
step with measured spike rates, training and inference throughput, memory), accuracy_curves.png,
accuracy_vs_cost.png, config.yaml, and per model metrics.csv, last.pt and best.pt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

from snn_cuda import distributed
from snn_cuda.data import DVSGesture, Framing, synthetic_gesture
from snn_cuda.experiment import load_config, markdown_table, materialize, train_and_measure, write_results
from snn_cuda.training import TrainConfig, Trainer, load_checkpoint, model_from_checkpoint

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "gesture_quick.yaml"
SENSOR = 128


def gesture_datasets(data: dict, data_root: str | None, *, progress: bool) -> dict:
    """Train / dev / test sets of frames ``[T, 2, H, W]`` in memory, from ``data_root`` or the synthetic set."""
    # Generating the synthetic set and caching parsed trials write shared folders: one process does it, then the
    # others read what it wrote.
    with distributed.main_process_first():
        root = data_root or synthetic_gesture(**data.get("synthetic", {}), progress=progress)
        framing = Framing(**data["framing"])
        options = dict(framing=framing, dev_fraction=data.get("dev_fraction", 128 / 1056), progress=progress)
        return {split: materialize(DVSGesture(root, split, **options), desc=f"framing {split}", progress=progress)
                for split in ("train", "dev", "test")}  # fmt: skip


def input_shape(data: dict) -> list[int]:
    side = SENSOR // data["framing"].get("downsample", 1)
    return [2, side, side]


def evaluate_checkpoint(path: str, args: argparse.Namespace) -> dict:
    """``--test``: the test accuracy of one checkpoint, with the data settings stored in it."""
    checkpoint = load_checkpoint(path)
    data = checkpoint["metadata"]["data"]
    sets = gesture_datasets(data, args.data_root, progress=show_progress(args))
    model = model_from_checkpoint(path, backend=args.backend)
    training = TrainConfig.from_dict({**checkpoint["train_config"], "device": args.device, "amp": args.amp,
                                      "progress": not args.quiet})  # fmt: skip
    result = Trainer(model, training, Path(path).parent, name=checkpoint["name"]).evaluate(sets["test"], desc="test")
    distributed.print_once(f"{checkpoint['name']} (epoch {checkpoint['epoch']}): test accuracy "
                           f"{result['accuracy']:.4f}, loss {result['loss']:.4f}, "
                           f"{result['samples_per_s']:.0f} samples/s")  # fmt: skip
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML experiment config")
    parser.add_argument("--data-root", default=None, help="real DVS Gesture folder (default: synthetic set)")
    parser.add_argument("--out", default="results/gesture", help="output folder")
    parser.add_argument("--smoke", action="store_true", help="merge the config's smoke section: a run of seconds")
    parser.add_argument("--models", nargs="+", default=None, help="train only these models of the config")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--backend", default="auto", choices=("auto", "cpp", "cuda", "torch"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", default=None, choices=("bf16", "fp16"), help="mixed precision (CUDA only)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    parser.add_argument("--test", metavar="CHECKPOINT", default=None, help="only evaluate this checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and distributed.is_main_process()


def main(argv: list[str] | None = None) -> list[dict] | dict:
    args = parse_args(argv)
    distributed.setup(args.device)  # joins the process group under torchrun; nothing otherwise
    try:
        return evaluate_checkpoint(args.test, args) if args.test is not None else compare(args)
    finally:
        distributed.teardown()


def compare(args: argparse.Namespace) -> list[dict]:
    """Trains and tests every model of the config; writes the comparison (rank 0)."""
    config = load_config(args.config, smoke=args.smoke)
    data, models = config["data"], config["models"]
    overrides = {"epochs": args.epochs, "seed": args.seed}
    training = TrainConfig.from_dict({
        **config["training"], **{k: v for k, v in overrides.items() if v is not None},
        "device": args.device, "amp": args.amp, "progress": not args.quiet,
    })  # fmt: skip
    names = args.models or list(models)
    unknown = sorted(set(names) - set(models))
    if unknown:
        raise SystemExit(f"--models: {unknown} are not in {args.config} (it has {list(models)})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if distributed.is_main_process():
        (out / "config.yaml").write_text(yaml.safe_dump({**config, "training": vars(training)}, sort_keys=False))

    source = args.data_root or "the embedded synthetic set"
    distributed.print_once(f"DVS Gesture from {source}; framing {data['framing']}; {training.epochs} epochs, "
                           f"batch {training.batch_size}, lr {training.lr}, loss {training.loss}, "
                           f"device {training.device}")  # fmt: skip
    sets = gesture_datasets(data, args.data_root, progress=show_progress(args))
    distributed.print_once(f"samples: train {len(sets['train'])}, dev {len(sets['dev'])}, test {len(sets['test'])}; "
                           f"frames {list(sets['train'].tensors[0].shape[1:])}")  # fmt: skip
    rows, histories = [], {}
    for name in names:
        model_config = {**models[name], "input_shape": input_shape(data)}
        row, history = train_and_measure(name, model_config, training, sets, out, resume=args.resume,
                                         backend=args.backend, metadata={"data": data})  # fmt: skip
        distributed.print_once(f"{name}: test accuracy {row['test_accuracy']:.4f} (best dev epoch "
                               f"{row['best_epoch']}), {row['train_seconds']:.0f} s")  # fmt: skip
        rows.append(row)
        histories[name] = history
    chance = 1 / 11
    notes = [
        f"data: {source}; framing {data['framing']}; train {len(sets['train'])}, dev {len(sets['dev'])}, "
        f"test {len(sets['test'])} samples; chance accuracy {chance:.3f}",
        f"training: {training.epochs} epochs, batch {training.batch_size}, Adam lr {training.lr}, "
        f"loss {training.loss}, seed {training.seed}, device {training.device}, backend {args.backend}",
        "test accuracy of the best dev epoch; operations per sample and time step; AC counted from the measured "
        "input event / spike rate (He et al.'s SNN only), mean_spike_rate = mean rate at the inputs of the "
        "hidden-to-output layers; saved_activations_mb = what autograd keeps for the backward of one batch",
    ]
    if not distributed.is_main_process():
        return rows
    write_results(rows, histories, out, title="DVS Gesture: SNN vs RNN vs LSTM under one protocol", notes=notes)
    print(markdown_table(rows))
    print(f"written: {out / 'results.csv'}, {out / 'results.md'}, {out / 'accuracy_curves.png'}, "
          f"{out / 'accuracy_vs_cost.png'}")  # fmt: skip
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
