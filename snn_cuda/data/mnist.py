"""MNIST inputs for the snn-iir experiments: real IDX files or scikit-learn's bundled digits, and the two
encodings over time ("copy along time" and Poisson / Bernoulli rate coding)."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .._checks import check_int
from .splits import SPLITS, split_indices

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ENCODINGS = ("copy", "poisson")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (``.gz`` too): magic ``0 0 type ndim``, ``ndim`` big-endian uint32 sizes, data.
    Raises ValueError naming the file for a bad magic number or a size mismatch."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # a truncated or broken download
            raise ValueError(f"{path}: not a complete gzip file ({exc}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: {len(raw)} bytes, shorter than its header of {ndim} sizes")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: {len(raw)} bytes, but the header {shape} of {dtype} needs {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)


def _idx_file(root: Path, name: str) -> Path:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"MNIST file {name} (or {name}.gz) not found in {root}")


def load_mnist(root: str | os.PathLike | None, part: str, *, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """``(images: [N, size, size] float32 in [0, 1], labels: [N] int64)`` of ``part`` ("train" or "test").

    With ``root``: the real IDX files there (``size`` must be 28). Without: scikit-learn's 1,797 bundled 8x8
    digits, the last sixth (in the bundled order) as "test", bilinearly upsampled to ``size`` (8 keeps them)."""
    if part not in IDX_FILES:
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    if root is not None:
        if size != 28:
            raise ValueError(f"size must be 28 for the real MNIST files, got {size}")
        images_name, labels_name = IDX_FILES[part]
        images = read_idx(_idx_file(Path(root), images_name)).astype(np.float32) / 255.0
        labels = read_idx(_idx_file(Path(root), labels_name)).astype(np.int64)
        if len(images) != len(labels):
            raise ValueError(f"{root}: {len(images)} {part} images but {len(labels)} labels")
        return images, labels
    from sklearn.datasets import load_digits

    digits = load_digits()
    first_test = len(digits.images) - len(digits.images) // 6
    part_slice = slice(None, first_test) if part == "train" else slice(first_test, None)
    images = torch.from_numpy(digits.images[part_slice].astype(np.float32) / 16.0)[:, None]
    if size != 8:
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear").clamp(0.0, 1.0)
    return images[:, 0].numpy(), digits.target[part_slice].astype(np.int64)


def copy_along_time(image: torch.Tensor, steps: int) -> torch.Tensor:
    """``image: [*S]`` -> ``[T, *S]``, the same values at every step (snn-iir's "copy along time dimension")."""
    return image.unsqueeze(0).expand(steps, *image.shape).contiguous()


def poisson_encode(image: torch.Tensor, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``image: [*S]`` intensities in [0, 1] -> spikes ``[T, *S]``: a Bernoulli draw per step with probability
    equal to the intensity (snn-iir's "rate-based poisson", ``uniform < intensity``)."""
    if image.min() < 0 or image.max() > 1:
        raise ValueError(f"image intensities must lie in [0, 1], got [{image.min():.3g}, {image.max():.3g}]")
    draws = torch.rand((steps, *image.shape), generator=generator, dtype=image.dtype, device=image.device)
    return (draws < image).to(image.dtype)


class MNIST(torch.utils.data.Dataset):
    """MNIST as spike trains: items ``(x: [T, 1, H, W] float32, label: int)``.

    Args:
        root: folder with the real IDX files, or None for scikit-learn's bundled digits (see :func:`load_mnist`).
        split: "train" / "dev" (5:1 of the training images, ``seed`` 42: snn-iir's 50,000 / 10,000), "train_all",
            "test".
        encoding: "copy" (the image at every step) or "poisson" (Bernoulli per step). Poisson draws are fresh
            each access unless ``poisson_seed`` is given, then fixed per (seed, index).
        steps: T (25 in snn-iir).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "train",
        *,
        encoding: str = "copy",
        steps: int = 25,
        size: int = 28,
        seed: int = 42,
        poisson_seed: int | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        steps = check_int(steps, "steps", low=1)
        size = check_int(size, "size", low=1)
        images, labels = load_mnist(root, "test" if split == "test" else "train", size=size)
        chosen = split_indices(len(images), split, dev_fraction=1 / 6, seed=seed)
        self.images = torch.from_numpy(np.ascontiguousarray(images[chosen]))
        self.labels = torch.from_numpy(labels[chosen])
        self.encoding, self.steps, self.poisson_seed, self.transform = encoding, steps, poisson_seed, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = range(len(self))[index]  # a negative index is the same item, with the same Poisson draw
        image = self.images[index].unsqueeze(0)
        if self.encoding == "copy":
            x = copy_along_time(image, self.steps)
        else:
            generator = None
            if self.poisson_seed is not None:
                generator = torch.Generator().manual_seed(self.poisson_seed * 1_000_003 + index)
            x = poisson_encode(image, self.steps, generator)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[index])
