"""One BPTT training loop for every model of :mod:`snn_cuda.models` (spiking, snn-iir, RNN, LSTM).

- Losses of the seeds: "mse" (He et al.: MSE between the readout, e.g. the mean output rate, and the one-hot
  label), "ce" (snn-iir: cross entropy with the readout, e.g. the spike counts, as logits), "sequence_mse"
  (snn-iir's associative memory: MSE between whole output and target sequences).
- Adam (torch's fused kernel on CPU and CUDA) with a step schedule; the model of the best dev epoch is kept
  (``best.pt``) and evaluated on the test set.
- Per-epoch metrics in ``metrics.csv``; a tqdm bar shows loss, accuracy and samples/s.
- Checkpoints are written atomically (temporary file + ``os.replace``). ``last.pt`` holds model, optimizer,
  scheduler, RNG states, epoch and history, and the shuffling of epoch e depends only on (seed, e), so
  ``fit(..., resume=True)`` reproduces an uninterrupted run exactly.
- Mixed precision on CUDA (``amp="bf16"`` or ``"fp16"``, autocast; fp16 with a gradient scaler).
- Data parallel when launched by ``torchrun`` (:mod:`snn_cuda.distributed`): each process trains a
  DistributedDataParallel replica on its shard of every global batch, metrics are summed over all processes, and
  only rank 0 prints progress and writes metrics and checkpoints.

Datasets yield ``(x: [T, *input_shape], label: int)`` (or a ``[T, F]`` target sequence for "sequence_mse");
batches are made time-major, ``x: [T, B, *input_shape]``, before the model sees them.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import numbers
import os
import pickle
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from . import distributed
from ._checks import check_bool, check_keys, is_integer
from .models import SequenceModel, apply_readout, build_model

LOSSES = ("mse", "ce", "sequence_mse")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CHECKPOINT_FORMAT = 1
METRICS_FILE, LAST_CHECKPOINT, BEST_CHECKPOINT = "metrics.csv", "last.pt", "best.pt"


NEVER = 2**62  # a learning-rate step size that no run reaches


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or is not a snn_cuda checkpoint."""


@dataclass
class TrainConfig:
    """Training settings (YAML-friendly). ``batch_size``: the global batch, split evenly over the processes of a
    data-parallel run (so the protocol does not depend on how many there are). ``lr_step_epochs``: multiply the
    learning rate by ``lr_gamma`` every so many epochs (None: constant). ``max_batches``: cap on batches per epoch
    and per evaluation (smoke runs). ``channels_last``: store the model's conv weights and the input frames
    channels-last, the layout oneDNN's and cuDNN's convolutions prefer (the spiking ops keep it,
    without a copy); a setting of the machine, like ``device``: results differ by rounding only. A model without
    convolutions is left as it is (its first layer would only copy the frames back)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    lr_step_epochs: int | None = None
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    loss: str = "mse"
    seed: int = 0
    device: str = "cpu"
    amp: str | None = None
    max_batches: int | None = None
    progress: bool = True
    channels_last: bool = False

    def __post_init__(self) -> None:
        # Types first: a YAML value of the wrong type ("1e-3" read as a string, say) would otherwise fail deep in
        # the optimizer or the data loader, without naming the setting.
        for name in ("epochs", "batch_size", "seed", "lr_step_epochs", "max_batches"):
            value, optional = getattr(self, name), name in ("lr_step_epochs", "max_batches")
            if not (is_integer(value) or (optional and value is None)):
                raise TypeError(f"training {name} must be an integer{' or None' if optional else ''}, got {value!r} "
                                f"({type(value).__name__})")  # fmt: skip
            if value is not None and value < (0 if name == "seed" else 1):
                raise ValueError(f"{name} must be at least {0 if name == 'seed' else 1}, got {value}")
        for name in ("lr", "lr_gamma", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"training {name} must be a number, got {value!r} ({type(value).__name__})")
            if not (value > 0 if name != "weight_decay" else value >= 0) or not math.isfinite(value):
                raise ValueError(f"{name} must be {'positive' if name != 'weight_decay' else 'at least 0'} and "
                                 f"finite, got {value}")  # fmt: skip
        for name in ("loss", "device"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"training {name} must be a string, got {getattr(self, name)!r}")
        check_bool(self.progress, "training progress")
        check_bool(self.channels_last, "training channels_last")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be None or one of {tuple(AMP_DTYPES)}, got {self.amp!r}")
        # CUDA only: under torch.autocast("cpu", bfloat16) a training step of the gesture FC-SNN ran 4x slower
        # than in float32 (snn-iir 20x) on a 2-core AVX2 machine without bfloat16 instructions, and oneDNN's
        # LSTM refused bfloat16. The spiking ops themselves take bfloat16 CPU tensors.
        if self.amp is not None and torch.device(self.device).type != "cuda":
            raise ValueError(f"amp={self.amp!r} needs a CUDA device, got device={self.device!r}")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        check_keys(values, sorted(field.name for field in dataclasses.fields(cls)), "training config")
        return cls(**values)


def seed_everything(seed: int) -> None:
    """Seeds Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def time_major(
    batch: tuple[torch.Tensor, torch.Tensor], device: torch.device, *, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x: [B, T, ...], target: [B] or [B, T, F])`` -> ``(x: [T, B, ...], target: [B] or [T, B, F])``; with
    ``channels_last``, frames ``[T, B, C, H, W]`` are stored time-major with each frame channels-last."""
    x, target = batch
    x = x.to(device, non_blocking=True).transpose(0, 1)
    if channels_last and x.dim() == 5:
        x = x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    target = target.to(device, non_blocking=True)
    return x, target.transpose(0, 1) if target.dim() >= 2 else target


def compute_loss(outputs: torch.Tensor, target: torch.Tensor, readout: str, loss: str):
    """``outputs: [T, B, C]`` -> ``(loss, scores)``; scores ``[B, C]`` are the readout (None for sequences)."""
    if outputs.dtype in (torch.float16, torch.bfloat16):
        outputs = outputs.float()  # the loss of a mixed-precision forward in float32
    if loss == "sequence_mse":
        if target.shape != outputs.shape:
            raise ValueError(f"loss sequence_mse compares the outputs {list(outputs.shape)} with target sequences of "
                             f"the same shape, got targets {list(target.shape)} (class labels call for mse or ce)")
        return F.mse_loss(outputs, target.to(outputs.dtype)), None
    if target.dim() != 1:
        raise ValueError(f"loss {loss} compares a readout with class labels [B], got targets {list(target.shape)} "
                         "(target sequences call for sequence_mse)")  # fmt: skip
    scores = apply_readout(outputs, readout)
    if loss == "mse":
        return F.mse_loss(scores, F.one_hot(target, scores.shape[-1]).to(scores.dtype)), scores
    return F.cross_entropy(scores, target), scores


def _atomic_save(obj: object, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(obj, temporary)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Reads a checkpoint written by :class:`Trainer`; a missing, corrupt or foreign file raises
    :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's weights-only loader refused it: several lines of advice to load it unsafely, which does not fit
        raise CheckpointError(f"checkpoint {path} cannot be read: not a file torch.save wrote with tensors and plain "
                              "data (corrupt or truncated, or another kind of file?)") from None  # fmt: skip
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path} cannot be read (corrupt or truncated?): {reason}") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a snn_cuda checkpoint of format {CHECKPOINT_FORMAT}")
    return checkpoint


def load_weights(model: torch.nn.Module, checkpoint: dict, path: str | os.PathLike) -> None:
    """Loads a checkpoint's weights into ``model``; weights that do not fit the model its config builds (a
    checkpoint of an snn_cuda whose architecture for that config differed) raise :class:`CheckpointError` naming
    the file."""
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        # torch's message: a header line, then one line per kind of mismatch (missing keys, unexpected keys, sizes),
        # each shortened on its own so that none pushes out the others
        lines = [line.strip() for line in str(error).strip().splitlines()[1:] if line.strip()]
        details = "; ".join(line if len(line) <= 160 else line[:160] + " ..." for line in lines)
        raise CheckpointError(f"checkpoint {path}: its weights do not fit the model its config builds (written by "
                              f"a version of snn_cuda that built this config differently?): {details}") from None


def model_from_checkpoint(path: str | os.PathLike, **overrides) -> SequenceModel:
    """Rebuilds the model stored in a checkpoint (its config, then its weights); ``overrides`` as in
    :func:`snn_cuda.models.build_model` (e.g. ``backend``)."""
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint["model_config"], **overrides)
    load_weights(model, checkpoint, path)
    return model


def _rng_state() -> dict:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]),
        "python": random.getstate(),
    }


def _set_rng_state(states: list[dict] | dict) -> None:
    """Restores this rank's RNG states from a checkpoint's per-rank list (a dict: one process, older checkpoints).
    A run resumed on more processes than it was saved from continues the extra ranks from rank 0's stream."""
    states = [states] if isinstance(states, dict) else states
    state = states[distributed.rank()] if distributed.rank() < len(states) else states[0]
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])


def _metrics_text(metrics: dict) -> str:
    """``loss 0.1234 acc 0.567`` (no accuracy for a regression loss, whose accuracy is NaN)."""
    accuracy = metrics["accuracy"]
    return f"loss {metrics['loss']:.4f}" + ("" if math.isnan(accuracy) else f" acc {accuracy:.3f}")


def _changed_entries(saved: object, current: object, prefix: str = "") -> list[str]:
    """``"key.sub: old -> new"`` for each entry of two nested dicts that differs (the whole value if not dicts)."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [entry for key in sorted(set(saved) | set(current), key=str)
                for entry in _changed_entries(saved.get(key), current.get(key), f"{prefix}{key}.")]  # fmt: skip
    return [] if saved == current else [f"{prefix.rstrip('.')}: {saved!r} -> {current!r}"]


def check_resumable(path: Path, checkpoint: dict, config: TrainConfig, model_config: dict, metadata: dict) -> None:
    """A run continues from ``checkpoint`` only with the model, the training settings and the metadata (an
    experiment's driver, data settings and data folder) it was saved with; only the number of epochs may grow (and
    the device, the backend, the memory layout and the progress display change). A metadata entry the checkpoint
    lacks was not recorded by the version that wrote it, and is not compared."""
    free = {"epochs", "device", "progress", "channels_last"}
    saved, current = checkpoint["train_config"], dataclasses.asdict(config)
    changed = [f"{key}: {saved.get(key)!r} -> {current[key]!r}" for key in current
               if key not in free and saved.get(key) != current[key]]  # fmt: skip
    saved_model = {k: v for k, v in checkpoint["model_config"].items() if k != "backend"}
    current_model = {k: v for k, v in model_config.items() if k != "backend"}
    changed += [f"model {key}: {saved_model.get(key)!r} -> {current_model.get(key)!r}"
                for key in sorted(set(saved_model) | set(current_model))
                if saved_model.get(key) != current_model.get(key)]  # fmt: skip
    # the metadata an experiment stores: its data settings (framing, T, encoding, ...) above all
    saved_metadata = checkpoint.get("metadata", {})
    changed += _changed_entries(saved_metadata, {k: v for k, v in metadata.items() if k in saved_metadata})
    if changed:
        raise CheckpointError(
            f"cannot resume from {path}: the run was saved with other settings ({'; '.join(changed)}); resume "
            "with its settings, or start a new run without resuming"
        )
    if checkpoint["epoch"] > config.epochs:
        raise CheckpointError(
            f"cannot resume from {path}: it has trained {checkpoint['epoch']} epochs, more than epochs = "
            f"{config.epochs}"
        )


class Trainer:
    """Trains ``model`` by BPTT with ``config``, writing metrics and checkpoints into ``out_dir``; ``metadata``
    (YAML-like values) is stored in every checkpoint.

    ``fit(train_set, dev_set)`` trains (or resumes), ``evaluate(dataset)`` measures loss, accuracy and
    throughput, ``test(test_set)`` evaluates the best dev checkpoint. Under ``torchrun`` every process creates its
    Trainer and calls the same methods; the results are global (all processes' samples).
    """

    def __init__(
        self, model: SequenceModel, config: TrainConfig, out_dir: str | os.PathLike, *, name: str = "model",
        metadata: dict | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.device = distributed.rank_device(config.device)
        self.model = model.to(self.device)
        if config.channels_last and not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
            # what the model ran with, as its checkpoints record it
            self.config = config = dataclasses.replace(config, channels_last=False)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)  # conv weights; the optimizer takes them as they are
        self.world_size = distributed.world_size()
        if config.batch_size % self.world_size:
            raise ValueError(f"batch_size {config.batch_size} (the global batch) must be divisible by the number of "
                             f"processes, {self.world_size}")  # fmt: skip
        # what batches go through: the model, or its DDP replica whose backward averages gradients over the ranks
        self.replica = distributed.data_parallel(self.model, self.device)
        self.is_main_process = distributed.is_main_process()
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.metadata = metadata or {}  # stored in every checkpoint, e.g. the data settings an experiment used
        # fused: torch's one-pass Adam kernel instead of a dozen element-wise passes over every parameter (the
        # gesture SNN on 2 CPU cores: 3.3 of a 23 ms training step, 1.3 of 19 ms fused; rounding differs by ulps).
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                          fused=True if self.device.type in ("cpu", "cuda") else None)  # fmt: skip
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=self._lr_step_size(), gamma=config.lr_gamma
        )
        if (model.readout == "none") != (config.loss == "sequence_mse"):
            # a classification loss needs the readout's scores [B, C]; sequence_mse the outputs of every step
            raise ValueError(f"loss {config.loss!r} does not fit the model's readout {model.readout!r}: classifiers "
                             "(readout rate, last or count) train with mse or ce, sequence models (readout none) "
                             "with sequence_mse")  # fmt: skip
        self.scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
        self.epoch = 0  # completed epochs
        self.history: list[dict] = []
        self.best: dict = {}

    def _lr_step_size(self) -> int:
        # Without lr_step_epochs the rate never steps; a step size beyond any run, not epochs + 1, so a run extended
        # by resuming with more epochs does not step at its old length.
        return self.config.lr_step_epochs or NEVER

    # -- batches -------------------------------------------------------------------------------------------

    def _loader(self, dataset, *, shuffle_epoch: int | None) -> torch.utils.data.DataLoader:
        # An explicit generator: shuffling depends only on (seed, epoch), and creating the loader never draws
        # from the global RNG (which dropout uses), so resumed and uninterrupted runs see the same numbers.
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + (shuffle_epoch or 0))
        options = dict(batch_size=self.config.batch_size // self.world_size, generator=generator,
                       pin_memory=self.device.type == "cuda")  # fmt: skip
        if self.world_size == 1:
            return torch.utils.data.DataLoader(dataset, shuffle=shuffle_epoch is not None, **options)
        if shuffle_epoch is None:
            # Every sample exactly once, so the summed metrics are those of one process: rank r takes samples
            # r, r + W, r + 2W ..., so local batch k of all ranks together is the single-process batch k (and
            # preserved states are reset at the same batches). Ranks may see unequal numbers of batches: an
            # evaluation has no collective operation per batch.
            sampler = range(distributed.rank(), len(dataset), self.world_size)
        else:
            # Every rank must take the same number of steps (each backward all-reduces the gradients), so
            # DistributedSampler pads the shards to equal length by repeating up to W - 1 samples (counted in
            # the training metrics). Its shuffling depends only on (seed, epoch), as resuming needs.
            sampler = torch.utils.data.DistributedSampler(dataset, shuffle=True, seed=self.config.seed)
            sampler.set_epoch(shuffle_epoch)
        return torch.utils.data.DataLoader(dataset, sampler=sampler, **options)

    def _show_progress(self) -> bool:
        return self.config.progress and self.is_main_process

    def _autocast(self):
        if self.config.amp is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=AMP_DTYPES[self.config.amp])

    def _run(self, dataset, *, train: bool, desc: str) -> dict:
        """One pass over ``dataset``: loss, accuracy (classification) and samples per second, over all ranks."""
        self.replica.train(train)
        model = self.replica if train else self.model  # an evaluation has no gradients to all-reduce
        loader = self._loader(dataset, shuffle_epoch=self.epoch if train else None)
        total_loss, correct, seen, seconds, size = 0.0, 0, 0, 0.0, 0
        batches = len(loader) if self.config.max_batches is None else min(len(loader), self.config.max_batches)
        # Advanced by hand after each batch (not by iterating the loader through it), so the count includes the
        # batch whose metrics the postfix shows, and the bar ends at N/N.
        bar = tqdm(total=batches, desc=desc, disable=not self._show_progress(), leave=False)
        # Layers with preserved initial states carry them across the batches of one pass, never across passes
        # or into a batch of another size.
        self.model.reset_state()
        with torch.set_grad_enabled(train), bar:
            for index, batch in enumerate(loader):
                if index == batches:
                    break
                x, target = time_major(batch, self.device, channels_last=self.config.channels_last)
                if index and x.shape[1] != size:
                    self.model.reset_state()
                start = time.perf_counter()
                with self._autocast():
                    outputs = model(x)
                loss, scores = compute_loss(outputs, target, self.model.readout, self.config.loss)
                if train:
                    self.optimizer.zero_grad(set_to_none=True)
                    if self.scaler is not None:
                        self.scaler.scale(loss).backward()
                        self.scaler.step(self.optimizer)
                        self.scaler.update()
                    else:
                        loss.backward()
                        self.optimizer.step()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                seconds += time.perf_counter() - start
                size = x.shape[1]
                total_loss += loss.item() * size
                seen += size
                if scores is not None:
                    correct += (scores.argmax(-1) == target).sum().item()
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}",
                                samples_s=f"{seen / max(seconds, 1e-9):.0f}", refresh=False)  # fmt: skip
                bar.update()
        total_loss, correct, seen = distributed.sum_over_ranks([total_loss, correct, seen])
        seconds = distributed.max_over_ranks(seconds)  # the ranks run side by side: the slowest sets the pace
        if seen == 0:
            raise ValueError(f"{desc}: the dataset gave no batch")
        accuracy = correct / seen if self.config.loss != "sequence_mse" else float("nan")
        return {"loss": total_loss / seen, "accuracy": accuracy, "samples_per_s": seen / max(seconds, 1e-9)}

    def evaluate(self, dataset, *, desc: str = "eval") -> dict:
        """``{"loss", "accuracy", "samples_per_s"}`` of the current model on ``dataset`` (no gradients)."""
        return self._run(dataset, train=False, desc=f"{self.name} {desc}")

    # -- checkpoints ---------------------------------------------------------------------------------------

    def _checkpoint(self, *, rng_states: list[dict] | None = None) -> dict:
        """The model's weights; with the RNG states of all ranks, also everything else resuming needs."""
        checkpoint = {
            "format": CHECKPOINT_FORMAT, "name": self.name, "model_config": self.model.config,
            "model": self.model.state_dict(), "epoch": self.epoch, "train_config": dataclasses.asdict(self.config),
            "metadata": self.metadata,
        }  # fmt: skip
        if rng_states is not None:
            checkpoint |= {
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None, "rng": rng_states,
                "history": self.history, "best": self.best,
            }  # fmt: skip
        return checkpoint

    def _restore(self, path: Path) -> None:
        checkpoint = load_checkpoint(path, map_location=self.device)
        if "optimizer" not in checkpoint:
            raise CheckpointError(f"checkpoint {path} holds only weights; resuming needs a last.pt checkpoint")
        self._check_resumable(path, checkpoint)
        load_weights(self.model, checkpoint, path)
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except ValueError as error:  # torch's: the saved groups' sizes differ from the model's parameters
            raise CheckpointError(f"checkpoint {path}: its optimizer state does not fit the model's parameters "
                                  f"(written by a version of snn_cuda that trained others?): {error}") from None
        self._lay_out_optimizer_state_as_parameters()
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        # Checkpoints written before NEVER hold step_size = their epochs + 1 for a constant rate.
        self.scheduler.step_size = self._lr_step_size()
        if self.scaler is not None and checkpoint["scaler"] is not None:
            self.scaler.load_state_dict(checkpoint["scaler"])
        _set_rng_state(checkpoint["rng"])
        self.epoch, self.history, self.best = checkpoint["epoch"], checkpoint["history"], checkpoint["best"]

    def _lay_out_optimizer_state_as_parameters(self) -> None:
        """Adam's moments in their parameters' memory layout. A run resumed in the other layout (--channels-last
        switched) loads them as saved, and torch's fused Adam pairs a parameter, its gradient and its state element
        by element in memory: mismatched layouts train wrong weights without an error."""
        for group in self.optimizer.param_groups:
            for parameter in group["params"]:
                state = self.optimizer.state.get(parameter, {})
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
                        state[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)

    def _check_resumable(self, path: Path, checkpoint: dict) -> None:
        check_resumable(path, checkpoint, self.config, self.model.config, self.metadata)

    def _write_metrics(self) -> None:
        path = self.out_dir / METRICS_FILE
        with open(path.with_suffix(".tmp"), "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(self.history[0]))
            writer.writeheader()
            writer.writerows(self.history)
        os.replace(path.with_suffix(".tmp"), path)

    # -- training ------------------------------------------------------------------------------------------

    def _improved(self, dev: dict) -> bool:
        if not self.best:
            return True
        if self.config.loss == "sequence_mse":
            return dev["loss"] < self.best["loss"]
        return (dev["accuracy"], -dev["loss"]) > (self.best["accuracy"], -self.best["loss"])

    def fit(self, train_set, dev_set=None, *, resume: bool = False, on_start: Callable[[], None] | None = None,
            on_epoch: Callable[[dict], None] | None = None) -> list[dict]:  # fmt: skip
        """Trains up to ``config.epochs`` epochs; returns the per-epoch history. With ``resume``, continues from
        ``out_dir/last.pt`` when it exists (and says so, or that there is none). Without ``dev_set`` the last
        epoch counts as the best. ``on_start()`` runs before the first epoch, once a resumed checkpoint has been
        accepted; ``on_epoch(row)`` after each."""
        last = self.out_dir / LAST_CHECKPOINT
        if resume and last.exists():
            self._restore(last)
            distributed.print_once(f"{self.name}: resuming from {last} after epoch {self.epoch} of "
                                   f"{self.config.epochs}")  # fmt: skip
        else:
            if resume:
                distributed.print_once(f"{self.name}: no checkpoint {last} to resume from; training from the start")
            # one random stream per rank (independent dropout masks for the samples of different shards); rank 0's
            # is that of a single process
            seed_everything(self.config.seed + distributed.rank())
        if on_start is not None:
            on_start()
        while self.epoch < self.config.epochs:
            start = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train = self._run(train_set, train=True, desc=f"{self.name} epoch {self.epoch + 1}/{self.config.epochs}")
            self.scheduler.step()
            self.epoch += 1
            dev = self.evaluate(dev_set, desc="dev") if dev_set is not None else train
            # epoch_seconds (training and dev evaluation, wall clock; the slowest rank's, so every rank keeps the
            # same history): what sums to the time of a run resumed across sessions
            seconds = distributed.max_over_ranks(time.perf_counter() - start)
            row = {"epoch": self.epoch, "lr": lr, **{f"train_{k}": v for k, v in train.items()},
                   **{f"dev_{k}": v for k, v in dev.items()}, "epoch_seconds": seconds}  # fmt: skip
            self.history.append(row)
            if self._show_progress():  # the bars vanish when done: one line per epoch stays
                passes = {"train": train, **({"dev": dev} if dev_set is not None else {})}
                tqdm.write(f"{self.name} epoch {self.epoch}/{self.config.epochs}: "
                           + ", ".join(f"{split} {_metrics_text(metrics)}" for split, metrics in passes.items())
                           + f", {seconds:.1f} s")  # fmt: skip
            # the same on every rank: the metrics are global; without a dev set the last epoch is the best
            improved = dev_set is None or self._improved(dev)
            if improved:
                self.best = {"epoch": self.epoch, "loss": dev["loss"], "accuracy": dev["accuracy"]}
            rng_states = distributed.gather_objects(_rng_state())
            if self.is_main_process:
                if improved:
                    _atomic_save(self._checkpoint(), self.out_dir / BEST_CHECKPOINT)
                _atomic_save(self._checkpoint(rng_states=rng_states), last)
                self._write_metrics()
            distributed.barrier()  # no rank reads the checkpoints (test(), a resume) before rank 0 has written them
            if on_epoch is not None:
                on_epoch(row)
        return self.history

    def test(self, test_set) -> dict:
        """Evaluates the best dev checkpoint on ``test_set`` (the model keeps those weights afterwards)."""
        checkpoint = load_checkpoint(self.out_dir / BEST_CHECKPOINT, map_location=self.device)
        load_weights(self.model, checkpoint, self.out_dir / BEST_CHECKPOINT)
        return {"best_epoch": checkpoint["epoch"], **self.evaluate(test_set, desc="test")}
