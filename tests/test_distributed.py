"""Data-parallel training (snn_cuda.distributed) in 2 CPU processes with gloo, launched by torchrun, against one
process: the same gradients on the same global batch, per-rank carried states that are the slices of the
single-process states, and a Trainer run whose global metrics match an evaluation in one process.

This file is also the worker script: ``python -m torch.distributed.run --nproc_per_node 2 tests/test_distributed.py
OUT`` runs every scenario in each rank and saves what it saw to ``OUT/rank<r>.pt``; the tests launch it once and
compare those files with single-process runs. Everything is float64, so the sums that data parallelism splits
across processes agree to rounding and no spike flips between the two runs.
"""

from __future__ import annotations

import csv
import faulthandler
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import snn_cuda
from snn_cuda import distributed
from snn_cuda.layers import IIRLinear, OverTime
from snn_cuda.models import SequenceModel, build_model
from snn_cuda.neuron import LIF
from snn_cuda.synapse import IIRSynapse
from snn_cuda.training import BEST_CHECKPOINT, LAST_CHECKPOINT, METRICS_FILE, TrainConfig, Trainer, compute_loss

WORLD = 2
TIMEOUT_S = 300  # generous: the build machines are shared; a healthy run takes seconds
FEATURES, T, BATCH, STEPS = 6, 5, 4, 3
# one small model of each spiking family, with its loss
GRADIENT_MODELS = {
    "snn_lif": (dict(arch="snn", input_shape=[FEATURES], spec="FC8-FC3"), "mse"),
    "snn_iir": (dict(arch="iir", input_shape=[FEATURES], spec="FC8-FC3"), "ce"),
}
# dropout: its masks come from the per-rank random streams that resuming must restore
TRAINER_MODEL = dict(arch="snn", input_shape=[FEATURES], spec="FC8-D0.3-FC3")
TRAINER_SAMPLES = 13  # not a multiple of the batch or of the world size: uneven shards and a short last batch
TRAINER_CONFIG = dict(batch_size=BATCH, lr=3e-2, loss="mse", progress=False)
RESULT_FILES = sorted([BEST_CHECKPOINT, LAST_CHECKPOINT, METRICS_FILE])
REPRODUCIBLE_METRICS = ("epoch", "lr", "train_loss", "train_accuracy", "dev_loss", "dev_accuracy")  # not timings


# -- shared by the workers and the single-process references -----------------------------------------------------


def global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same ``(x: [T, BATCH, FEATURES], labels: [BATCH])`` in every process."""
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.rand(T, BATCH, FEATURES, generator=gen, dtype=torch.float64) * 2
    return x, torch.randint(0, 3, (BATCH,), generator=gen)


def shard(tensor: torch.Tensor, rank: int, *, batch_dim: int) -> torch.Tensor:
    """Rank ``rank``'s part of a global batch: samples rank, rank + WORLD, ... (the Trainer's evaluation order)."""
    return tensor[(slice(None),) * batch_dim + (slice(rank, None, WORLD),)]


def model_of(config: dict) -> SequenceModel:
    torch.manual_seed(0)
    return build_model(config, backend="cpp").double()


def stateful_model() -> SequenceModel:
    """A stateful LIF layer with a learned decay, then an snn-iir layer with preserved filter and neuron states."""
    torch.manual_seed(0)
    layers = [
        OverTime(nn.Linear(FEATURES, 8)),
        LIF((8,), alpha=0.8, theta=0.5, learn_alpha=True, stateful=True, backend="cpp"),
        IIRLinear(8, 3, tau_m=4.0, tau_s=1.0, initial_state="preserved", backend="cpp"),
    ]
    return SequenceModel(layers, (FEATURES,), "count", {}).double()


def carried_states(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every per-sample state a model carries between batches, ``[B, ...]`` each."""
    states = {}
    for name, module in model.named_modules():
        if isinstance(module, LIF):
            states |= {f"{name}.v": module.v, f"{name}.r": module.r}
        elif isinstance(module, IIRSynapse):
            states |= {f"{name}.p1": module.state[0], f"{name}.p2": module.state[1]}
    return states


def backward(replica: nn.Module, model: SequenceModel, x: torch.Tensor, labels: torch.Tensor, loss: str) -> None:
    """One forward and backward through ``replica`` (the model, or its DDP wrapper)."""
    value, _ = compute_loss(replica(x), labels, model.readout, loss)
    value.backward()


def train_stateful(replica: nn.Module, model: SequenceModel, rank: int | None) -> SequenceModel:
    """STEPS Adam steps on consecutive global batches (rank ``rank``'s shards of them; None: whole batches)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(STEPS):
        x, labels = global_batch(step)
        if rank is not None:
            x, labels = shard(x, rank, batch_dim=1), shard(labels, rank, batch_dim=0)
        optimizer.zero_grad()
        backward(replica, model, x, labels, "ce")
        optimizer.step()
    return model


def trainer_data() -> torch.utils.data.TensorDataset:
    gen = torch.Generator().manual_seed(7)
    x = torch.randint(0, 3, (TRAINER_SAMPLES, T, FEATURES), generator=gen).double()
    return torch.utils.data.TensorDataset(x, torch.arange(TRAINER_SAMPLES) % 3)


def fit(out_dir: Path, epochs: int, *, resume: bool = False) -> Trainer:
    trainer = Trainer(model_of(TRAINER_MODEL), TrainConfig(epochs=epochs, **TRAINER_CONFIG), out_dir, name="m")
    trainer.fit(trainer_data(), trainer_data(), resume=resume)
    return trainer


def reproducible(history: list[dict]) -> list[dict]:
    return [{key: row[key] for key in REPRODUCIBLE_METRICS} for row in history]


# -- the worker (one per rank) -----------------------------------------------------------------------------------


def worker(out: Path) -> None:
    # A rank that hangs dumps its threads' stacks into the log and exits, well before launch() gives up: torchrun
    # starts each worker in a session of its own, out of reach of the launcher's kill, and a live worker holds the
    # pipe that launch() reads to its end.
    faulthandler.dump_traceback_later(TIMEOUT_S - 60, exit=True)
    with distributed.session("cpu"):
        rank = distributed.rank()
        assert distributed.world_size() == WORLD and torch.distributed.get_backend() == "gloo"
        device = torch.device("cpu")
        gradients = {}
        for name, (config, loss) in GRADIENT_MODELS.items():
            model = model_of(config)
            x, labels = global_batch(0)
            backward(distributed.data_parallel(model, device), model, shard(x, rank, batch_dim=1),
                     shard(labels, rank, batch_dim=0), loss)  # fmt: skip
            gradients[name] = {key: p.grad for key, p in model.named_parameters()}
        model = stateful_model()
        train_stateful(distributed.data_parallel(model, device), model, rank)
        stateful = {"states": carried_states(model), "parameters": dict(model.named_parameters())}

        # which result files each rank writes: every write goes through os.replace (atomic)
        written, replace = [], os.replace

        def recording_replace(source, target) -> None:
            written.append(Path(target).name)
            replace(source, target)

        os.replace = recording_replace
        try:
            straight = fit(out / "straight", 2)
            fit(out / "resumed", 1)
            resumed = fit(out / "resumed", 2, resume=True)
        finally:
            os.replace = replace
        evaluation = straight.evaluate(trainer_data())
        result = dict(gradients=gradients, stateful=stateful, written=sorted(set(written)),
                      straight=straight.history, resumed=resumed.history, evaluation=evaluation)  # fmt: skip
        torch.save(result, out / f"rank{rank}.pt")


# -- the tests -----------------------------------------------------------------------------------------------------


def launch(out: Path) -> None:
    """Runs the worker in WORLD processes (torchrun on a free port); on failure or timeout, fails with its log."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
               __file__, str(out)]  # fmt: skip
    package_root = str(Path(snn_cuda.__file__).resolve().parents[1])  # the workers import this same snn_cuda
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    # a session of its own, so a timeout ends the launcher and both workers together
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        log, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        try:
            log, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a worker outside the session still holds the pipe
            log = "(no output: a worker kept the pipe open)"
        pytest.fail(f"{WORLD} torchrun workers did not finish in {TIMEOUT_S} s; their output:\n{log[-6000:]}")
    if process.returncode != 0:
        pytest.fail(f"{WORLD} torchrun workers failed (exit {process.returncode}); their output:\n{log[-6000:]}")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[Path, list[dict]]:
    """The workers' output folder and what each rank saved, in rank order."""
    out = tmp_path_factory.mktemp("ddp")
    launch(out)
    return out, [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]


@pytest.mark.parametrize("name", sorted(GRADIENT_MODELS))
def test_gradients_equal_those_of_one_process_on_the_global_batch(ranks, name):
    config, loss = GRADIENT_MODELS[name]
    model = model_of(config)
    backward(model, model, *global_batch(0), loss)
    for rank, result in enumerate(ranks[1]):
        for key, parameter in model.named_parameters():
            gradient = result["gradients"][name][key]
            print(f"{name} rank {rank} {key}: max |diff| {(gradient - parameter.grad).abs().max().item():.2e}")
            torch.testing.assert_close(gradient, parameter.grad, rtol=1e-12, atol=1e-14, msg=f"{name} {key}")


def test_each_rank_keeps_the_states_of_its_own_samples(ranks):
    model = stateful_model()
    train_stateful(model, model, None)
    states = carried_states(model)
    for rank, result in enumerate(ranks[1]):
        for key, value in result["stateful"]["parameters"].items():
            torch.testing.assert_close(value, dict(model.named_parameters())[key], rtol=1e-10, atol=1e-12,
                                       msg=f"rank {rank} parameter {key}")  # fmt: skip
        assert result["stateful"]["states"].keys() == states.keys()
        for key, value in result["stateful"]["states"].items():
            assert value.shape[0] == BATCH // WORLD, key
            torch.testing.assert_close(value, shard(states[key], rank, batch_dim=0), rtol=1e-10, atol=1e-12,
                                       msg=f"rank {rank} state {key}")  # fmt: skip


def test_trainer_writes_once_and_reports_global_metrics(ranks, tmp_path):
    out, (main, other) = ranks
    assert main["written"] == RESULT_FILES and other["written"] == []
    for run in ("straight", "resumed"):
        assert sorted(path.name for path in (out / run).iterdir()) == RESULT_FILES, run
    with open(out / "straight" / METRICS_FILE) as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == [1, 2]
    # metrics are global: every rank reports the same numbers
    assert main["straight"] == other["straight"] and main["evaluation"] == other["evaluation"]
    # resuming under DDP (every rank loads last.pt, its own random stream included) reproduces the straight run
    assert reproducible(main["resumed"]) == reproducible(main["straight"])

    checkpoint = torch.load(out / "straight" / LAST_CHECKPOINT, weights_only=True)
    model = model_of(TRAINER_MODEL)
    model.load_state_dict(checkpoint["model"])
    single = Trainer(model, TrainConfig(epochs=1, **TRAINER_CONFIG), tmp_path).evaluate(trainer_data())
    print("2 processes:", main["evaluation"], "one process:", single)
    assert main["straight"][-1]["dev_accuracy"] == main["evaluation"]["accuracy"] == single["accuracy"]
    assert main["evaluation"]["loss"] == pytest.approx(single["loss"], rel=1e-12)


if __name__ == "__main__":
    worker(Path(sys.argv[1]))


def test_session_drains_the_collectives_before_leaving_unless_the_rank_failed(monkeypatch):
    """A driver's session leaves the group after a barrier (gloo's threads finish with the GIL free, see
    distributed.teardown); a rank that failed leaves at once, since its peers may never reach the barrier."""
    calls = []
    monkeypatch.setattr(distributed, "setup", lambda device="cpu": True)
    monkeypatch.setattr(distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    with distributed.session("cpu") as grouped:
        assert grouped
    assert calls == ["barrier", "destroy"]
    calls.clear()
    with pytest.raises(RuntimeError, match="this rank failed"), distributed.session("cpu"):
        raise RuntimeError("this rank failed")
    assert calls == ["destroy"]
