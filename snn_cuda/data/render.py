"""Draws samples as PNG: a strip of frames for one sample, or a gallery with one sample per class.

    python -m snn_cuda.data.render --dataset gesture --index 0 --out sample.png
    python -m snn_cuda.data.render --dataset nmnist --gallery --out gallery.png [--root FOLDER]

Without ``--root`` the synthetic set is used (generated on first use). ON events are drawn red, OFF blue.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot is imported
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .framing import Framing  # noqa: E402
from .gesture import CLASSES, DVSGesture  # noqa: E402
from .nmnist import NMNIST  # noqa: E402
from .synthetic import synthetic_gesture, synthetic_nmnist  # noqa: E402


def frames_to_rgb(frames: torch.Tensor) -> np.ndarray:
    """``frames: [T, 2, H, W]`` -> ``[T, H, W, 3]`` in [0, 1]: ON (channel 1) red, OFF (channel 0) blue,
    each scaled by its maximum over the sample."""
    frames = frames.float()
    scale = frames.amax(dim=(0, 2, 3), keepdim=True).clamp(min=1e-9)
    on, off = (frames / scale)[:, 1], (frames / scale)[:, 0]
    return torch.stack([on, torch.zeros_like(on), off], dim=-1).clamp(0, 1).numpy()


def open_dataset(name: str, root: str | None, split: str, frames: int) -> torch.utils.data.Dataset:
    framing = Framing(frames=frames, mode="sum")
    if name == "nmnist":
        return NMNIST(root or synthetic_nmnist(), split, framing)
    return DVSGesture(root or synthetic_gesture(), split, framing)


def class_name(dataset_name: str, label: int) -> str:
    return CLASSES[label] if dataset_name == "gesture" else str(label)


def render(dataset_name: str, dataset: torch.utils.data.Dataset, indices: list[int], out: Path) -> None:
    """One row of frames per index, labelled with the class."""
    rows = [dataset[index] for index in indices]
    count = rows[0][0].shape[0]
    figure, axes = plt.subplots(len(rows), count, figsize=(1.3 * count, 1.45 * len(rows)), squeeze=False)
    for row, (index, (frames, label)) in enumerate(zip(indices, rows, strict=True)):
        for column, image in enumerate(frames_to_rgb(frames)):
            axis = axes[row, column]
            axis.imshow(image, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(f"t{column}", fontsize=7)
        axes[row, 0].set_ylabel(f"#{index}\n{class_name(dataset_name, label)}", fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("gesture", "nmnist"), required=True)
    parser.add_argument("--root", help="data folder (default: the synthetic set)")
    parser.add_argument("--split", default="test", choices=("train", "dev", "train_all", "test"))
    parser.add_argument("--index", type=int, default=0, help="sample to draw (without --gallery)")
    parser.add_argument("--gallery", action="store_true", help="the first sample of every class instead")
    parser.add_argument("--frames", type=int, default=8, help="T: equal time bins over each sample")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    args = parser.parse_args(argv)
    dataset = open_dataset(args.dataset, args.root, args.split, args.frames)
    if args.gallery:
        labels = dataset.labels
        indices = [labels.index(label) for label in sorted(set(labels))]
    else:
        if not 0 <= args.index < len(dataset):
            parser.error(f"--index must lie in [0, {len(dataset) - 1}] for this split, got {args.index}")
        indices = [args.index]
    render(args.dataset, dataset, indices, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
