"""He et al. 2020's N-MNIST comparison: FC-SNN (LIF) 2312-512-10, SNN with IIR synapses, vanilla RNN and LSTM
(2 layers of 512, mainstream and rate-coded readouts) under one protocol (models.md sections 4 and 6); the
snn-iir N-MNIST CNN runs through the same driver with configs/nmnist_iir_cnn.yaml.

    python experiments/nmnist.py                          # embedded synthetic N-MNIST (generated on first use)
    python experiments/nmnist.py --data-root N-MNIST/     # the real set (Train/<digit>/*.bin, Test/<digit>/*.bin)
    python experiments/nmnist.py --config experiments/configs/nmnist_he2020.yaml --device cuda --amp bf16
    python experiments/nmnist.py --config experiments/configs/nmnist_iir_cnn.yaml --device cuda
    python experiments/nmnist.py --smoke                  # a run of seconds
    python experiments/nmnist.py --resume                 # continue an interrupted run from its checkpoints
    python experiments/nmnist.py --test results/nmnist/snn_lif/best.pt

Writes into --out (default results/nmnist) what experiments/gesture.py writes: results.csv and results.md,
accuracy_curves.png, accuracy_vs_cost.png, config.yaml, and per model metrics.csv, last.pt and best.pt.
The frames of every split are held in memory (the real set at T = 15: about 10 GB of float32).
"""

from __future__ import annotations

from pathlib import Path

from snn_cuda.data import NMNIST, Framing, synthetic_nmnist
from snn_cuda.data.nmnist import SENSOR_SIZE
from snn_cuda.experiment import materialize_splits, run_driver, run_from_command_line

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "nmnist_quick.yaml"
CLASSES = 10
DATA_KEYS = ("framing", "synthetic")  # what the datasets read from a data config


def nmnist_datasets(data: dict, data_root: str | None, progress: bool) -> dict:
    """Train / dev / test sets of frames ``[T, 2, H, W]`` in memory, from ``data_root`` or the synthetic set
    (train / dev: the training folder split 5:1 as snn-iir does)."""
    root = data_root if data_root is not None else synthetic_nmnist(**data.get("synthetic", {}), progress=progress)
    framing = Framing.from_config(data["framing"])
    return materialize_splits(lambda split: NMNIST(root, split, framing), desc="framing", progress=progress)


def input_shape(data: dict) -> list[int]:
    downsample = data["framing"].get("downsample", 1)
    return [2, SENSOR_SIZE[0] // downsample, SENSOR_SIZE[1] // downsample]


def describe_data(data: dict, data_root: str | None) -> list[str]:
    source = data_root or "the embedded synthetic set"
    return [f"N-MNIST from {source}; framing {data['framing']}; chance accuracy {1 / CLASSES:.3f}"]


def main(argv: list[str] | None = None) -> list[dict] | dict:
    return run_driver(argv, __doc__, DEFAULT_CONFIG, name="nmnist", datasets=nmnist_datasets,
                      data_help="real N-MNIST folder with Train/ and Test/ (default: synthetic set)",
                      input_shape=input_shape, describe_data=describe_data, data_keys=DATA_KEYS,
                      title="N-MNIST: SNN vs RNN vs LSTM under one protocol")  # fmt: skip


if __name__ == "__main__":
    run_from_command_line(main)
