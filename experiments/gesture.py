"""Main job: SNN (LIF), SNN (IIR synapses), vanilla RNN and LSTM (mainstream and rate-coded readouts) on DVS128
Gesture under one protocol (He et al. 2020; models.md section 6, question 1): the same framing, BPTT, optimizer,
epochs and loss family for every model; the best dev epoch of each is tested.

    python experiments/gesture.py                          # embedded synthetic set (generated on first use)
    python experiments/gesture.py --data-root DVSGesture/  # the real set (trials, label CSVs, trial lists)
    python experiments/gesture.py --config experiments/configs/gesture_he2020.yaml --device cuda --amp bf16
    python experiments/gesture.py --smoke                  # a run of seconds
    python experiments/gesture.py --resume                 # continue an interrupted run from its checkpoints
    python experiments/gesture.py --test results/gesture/snn_lif/best.pt

Writes into --out (default results/gesture): results.csv and results.md (accuracy, parameters, MACs and ACs per
step with measured spike rates, training and inference throughput, memory), accuracy_curves.png,
accuracy_vs_cost.png, config.yaml, and per model metrics.csv, last.pt and best.pt.
"""

from __future__ import annotations

from pathlib import Path

from snn_cuda.data import DVSGesture, Framing, synthetic_gesture
from snn_cuda.experiment import materialize_splits, run_driver, run_from_command_line

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "gesture_quick.yaml"
SENSOR = 128
CLASSES = 11
DATA_KEYS = ("framing", "synthetic", "dev_fraction")  # what the datasets read from a data config


def gesture_datasets(data: dict, data_root: str | None, progress: bool) -> dict:
    """Train / dev / test sets of frames ``[T, 2, H, W]`` in memory, from ``data_root`` or the synthetic set."""
    root = data_root if data_root is not None else synthetic_gesture(**data.get("synthetic", {}), progress=progress)
    framing = Framing.from_config(data["framing"])
    options = dict(framing=framing, dev_fraction=data.get("dev_fraction", 128 / 1056), progress=progress)
    return materialize_splits(lambda split: DVSGesture(root, split, **options), desc="framing", progress=progress)


def input_shape(data: dict) -> list[int]:
    side = SENSOR // data["framing"].get("downsample", 1)
    return [2, side, side]


def describe_data(data: dict, data_root: str | None) -> list[str]:
    source = data_root or "the embedded synthetic set"
    return [f"DVS Gesture from {source}; framing {data['framing']}; chance accuracy {1 / CLASSES:.3f}"]


def main(argv: list[str] | None = None) -> list[dict] | dict:
    return run_driver(argv, __doc__, DEFAULT_CONFIG, name="gesture", datasets=gesture_datasets,
                      data_help="real DVS Gesture folder (default: synthetic set)", input_shape=input_shape,
                      describe_data=describe_data, data_keys=DATA_KEYS,
                      title="DVS Gesture: SNN vs RNN vs LSTM under one protocol")  # fmt: skip


if __name__ == "__main__":
    run_from_command_line(main)
