"""snn-iir (Fang et al. 2020) on MNIST: the MLP 784-500-500-10 and the CNN of models.md section 4 with trainable
IIR synapses, T = 25, cross entropy with the output spike counts as logits; each network with both input
encodings (the image copied to every step; Bernoulli / Poisson spikes with the intensity as probability) and
both filter state modes ("zero": every mini-batch starts from rest; "preserved": the states a mini-batch ends in,
detached, start the next one: truncated BPTT), one row each in one table. The full config
(configs/mnist_iir2020.yaml) adds snn-iir's MLP with first-order low-pass synapses (a model's
``synapse: first_order``).

    python experiments/mnist.py                        # scikit-learn's bundled 8x8 digits, upsampled to 28x28
    python experiments/mnist.py --data-root MNIST/     # the real IDX files (train-images-idx3-ubyte[.gz], ...)
    python experiments/mnist.py --config experiments/configs/mnist_iir2020.yaml --device cuda
    python experiments/mnist.py --smoke                # a run of seconds
    python experiments/mnist.py --models mlp_copy_zero mlp_copy_preserved
    python experiments/mnist.py --resume               # continue an interrupted run from its checkpoints
    python experiments/mnist.py --test results/mnist/mlp_poisson_zero/best.pt

A model entry's ``data: {encoding: poisson}`` selects its encoding (the config's ``data.encoding`` is the
default); ``initial_state`` its state mode. Images stay in memory and are encoded when a batch is drawn, so the
training set gets fresh Poisson spikes every epoch (as in snn-iir), while dev and test draws are fixed per sample
(repeatable evaluations). Writes into --out (default results/mnist) what experiments/gesture.py writes.
"""

from __future__ import annotations

from pathlib import Path

from snn_cuda.data import MNIST
from snn_cuda.experiment import run_driver, run_from_command_line

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "mnist_quick.yaml"
CLASSES = 10
DATA_KEYS = ("encoding", "steps", "size")  # what the datasets read from a data config
EVALUATION_POISSON_SEED = 0


def mnist_datasets(data: dict, data_root: str | None, progress: bool) -> dict:
    """Train / dev / test sets of encoded images ``[T, 1, size, size]`` (train / dev: the training images split
    5:1 as snn-iir does), from the IDX files in ``data_root`` or scikit-learn's digits. ``progress`` is unused:
    nothing is read ahead."""
    options = dict(encoding=data["encoding"], steps=data["steps"], size=data.get("size", 28))
    return {split: MNIST(data_root, split, **options,
                         poisson_seed=None if split == "train" else EVALUATION_POISSON_SEED)
            for split in ("train", "dev", "test")}  # fmt: skip


def input_shape(data: dict) -> list[int]:
    size = data.get("size", 28)
    return [1, size, size]


def describe_data(data: dict, data_root: str | None) -> list[str]:
    size = data.get("size", 28)
    source = data_root or f"scikit-learn's 1,797 8x8 digits upsampled to {size}x{size} (no --data-root)"
    return [f"MNIST from {source}; T = {data['steps']} steps, encoding {data['encoding']} unless a model sets its "
            f"own; chance accuracy {1 / CLASSES:.3f}"]  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict] | dict:
    return run_driver(argv, __doc__, DEFAULT_CONFIG, name="mnist", datasets=mnist_datasets,
                      data_help="folder with the real MNIST IDX files (default: scikit-learn's digits)",
                      input_shape=input_shape, describe_data=describe_data, data_keys=DATA_KEYS,
                      title="MNIST: snn-iir MLP and CNN, input encodings x filter state modes")  # fmt: skip


if __name__ == "__main__":
    run_from_command_line(main)
