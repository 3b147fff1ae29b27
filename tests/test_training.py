"""The training loop: every model family learns, compiled and reference backends train identically, resuming
reproduces an uninterrupted run, checkpoints are atomic and a corrupt one is named, metrics are written."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch

from snn_cuda import iir_filter, normalised_dual_exp, training
from snn_cuda.models import build_model
from snn_cuda.training import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    METRICS_FILE,
    CheckpointError,
    TrainConfig,
    Trainer,
    compute_loss,
    load_checkpoint,
    model_from_checkpoint,
)

# One small model per family and readout, its loss and a learning rate at which it fits 16 random samples.
FAMILIES = {
    "he_fc_snn": (dict(arch="snn", input_shape=[2, 4, 4], spec="FC48-FC4"), "mse", 3e-3),
    "he_scnn": (dict(arch="snn", input_shape=[2, 4, 4], spec="16C3p1-AP2-FC64-FC4", surrogate_width=1.0), "mse",
                3e-3),
    "rnn_last": (dict(arch="rnn", cell="rnn", input_shape=[2, 4, 4], spec="FC32-FC32-FC4", readout="last"), "mse",
                 3e-3),
    "lstm_rate": (dict(arch="rnn", cell="lstm", input_shape=[2, 4, 4], spec="FC32-FC4", readout="rate"), "mse",
                  3e-3),
    "conv_lstm": (dict(arch="rnn", cell="lstm", input_shape=[2, 4, 4], spec="4C3p1-AP2-FC4", readout="rate"), "mse",
                  3e-3),
    # the snn-iir neuron has no membrane leak to integrate small currents: it starts nearly silent and learns
    # more slowly, so it gets a larger step
    "iir_mlp": (dict(arch="iir", input_shape=[2, 4, 4], spec="FC48-D0.1-FC4"), "ce", 1e-2),
    "iir_cnn": (dict(arch="iir", input_shape=[2, 4, 4], spec="8C3p1-MP2-FC4"), "ce", 1e-2),
}  # fmt: skip


def classification_set(gen: torch.Generator, *, samples: int = 16, T: int = 6, dtype=torch.float32):
    # event counts 0..3 per pixel and frame, like frames of summed events
    x = torch.randint(0, 4, (samples, T, 2, 4, 4), generator=gen).to(dtype)
    labels = torch.arange(samples) % 4
    return torch.utils.data.TensorDataset(x, labels)


def train(model_config: dict, config: TrainConfig, data, out_dir, *, backend: str = "cpp", resume: bool = False,
          metadata: dict | None = None):  # fmt: skip
    torch.manual_seed(config.seed)
    model = build_model(model_config, backend=backend)
    trainer = Trainer(model, config, out_dir, name="m", metadata=metadata)
    trainer.fit(data, data, resume=resume)
    return trainer


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_model_family_learns(family, tmp_path):
    model_config, loss, lr = FAMILIES[family]
    config = TrainConfig(epochs=12, batch_size=8, lr=lr, loss=loss, progress=False)
    # fixed data: a deterministic run (seeded initialisation and shuffling), not a lucky draw
    history = train(model_config, config, classification_set(torch.Generator().manual_seed(0)), tmp_path).history
    losses = [row["train_loss"] for row in history]
    print(family, [round(value, 4) for value in losses])
    assert min(losses[-3:]) < 0.9 * losses[0]


def test_associative_memory_sequence_loss_goes_down(tmp_path):
    gen = torch.Generator().manual_seed(0)  # fixed data: a deterministic run
    x = torch.randint(0, 4, (8, 12, 20), generator=gen).float()
    # as in snn-iir: the targets are spike trains through the same normalised filter as the outputs
    spikes = (torch.rand(12, 8, 10, generator=gen) < 0.3).float()
    a1, a2, b = normalised_dual_exp(8.0, 2.0)
    targets = iir_filter(spikes, a1, a2, b, backend="torch").transpose(0, 1)
    data = torch.utils.data.TensorDataset(x, targets)
    model_config = dict(arch="iir", input_shape=[20], spec="FC30-FC10", tau_m=8.0, tau_s=2.0, output_filter=True,
                        readout="none")  # fmt: skip
    trainer = train(model_config, TrainConfig(epochs=10, batch_size=4, lr=3e-3, loss="sequence_mse",
                                              progress=False), data, tmp_path)  # fmt: skip
    losses = [row["train_loss"] for row in trainer.history]
    print([round(value, 5) for value in losses])
    assert losses[-1] < 0.9 * losses[0]
    assert all(row["dev_accuracy"] != row["dev_accuracy"] for row in trainer.history)  # NaN: no accuracy


@pytest.mark.parametrize("family", ["he_fc_snn", "he_scnn", "iir_mlp"])
def test_compiled_and_reference_backends_train_identically(family, gen, tmp_path):
    model_config, loss, _ = FAMILIES[family]
    data = classification_set(gen, samples=8, dtype=torch.float64)
    config = TrainConfig(epochs=3, batch_size=4, lr=3e-3, loss=loss, progress=False)
    runs = {}
    for backend in ("cpp", "torch"):
        torch.manual_seed(0)
        model = build_model(model_config, backend=backend).double()
        trainer = Trainer(model, config, tmp_path / backend, name=backend)
        trainer.fit(data, data)
        runs[backend] = trainer
    for cpp_row, torch_row in zip(runs["cpp"].history, runs["torch"].history, strict=True):
        print(cpp_row["train_loss"], torch_row["train_loss"])
        assert cpp_row["train_loss"] == pytest.approx(torch_row["train_loss"], rel=1e-9, abs=1e-12)
    reference = dict(runs["torch"].model.named_parameters())
    for name, parameter in runs["cpp"].model.named_parameters():
        torch.testing.assert_close(parameter, reference[name], rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize("family", ["he_scnn", "iir_cnn", "conv_lstm", "he_fc_snn"])
def test_channels_last_trains_as_the_default_layout_does(family, gen, tmp_path):
    """channels_last stores the conv weights and the input frames channels-last, and the spiking ops keep the
    layout: the same training, up to the convolutions' rounding. A net without convolutions is left alone."""
    model_config, loss, _ = FAMILIES[family]
    has_conv = "C3" in model_config["spec"]
    data = classification_set(gen, samples=8)
    runs = {}
    for channels_last in (False, True):
        config = TrainConfig(epochs=2, batch_size=4, lr=3e-3, loss=loss, progress=False, channels_last=channels_last)
        torch.manual_seed(0)
        trainer = Trainer(build_model(model_config), config, tmp_path / str(channels_last), name="m")
        inputs = []
        trainer.model.register_forward_pre_hook(lambda module, args, seen=inputs: seen.append(args[0]))
        trainer.fit(data, data)
        runs[channels_last] = trainer
        # frames [T, B, C, H, W], each stored channels-last (or not), time outermost
        converted = channels_last and has_conv
        assert trainer.config.channels_last == converted  # as the checkpoints record it
        assert load_checkpoint(tmp_path / str(channels_last) / LAST_CHECKPOINT)["train_config"][
            "channels_last"] == converted  # fmt: skip
        assert inputs and all(x.permute(0, 1, 3, 4, 2).is_contiguous() == converted for x in inputs)
        for conv in (m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)):
            assert conv.weight.is_contiguous(memory_format=torch.channels_last) == converted
    for plain, permuted in zip(runs[False].history, runs[True].history, strict=True):
        print(plain["train_loss"], permuted["train_loss"])
        assert permuted["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-4)
    plain = dict(runs[False].model.named_parameters())
    for name, parameter in runs[True].model.named_parameters():
        torch.testing.assert_close(parameter, plain[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("first, then", [(False, True), (True, False)])
def test_resuming_in_the_other_layout_continues_the_run(first, then, gen, tmp_path):
    """A run resumed with channels_last switched continues as an uninterrupted run does, up to the convolutions'
    rounding: the optimizer's moments follow their parameters' new layout (fused Adam pairs them in memory)."""
    model_config, loss, _ = FAMILIES["he_scnn"]
    data = classification_set(gen, samples=8)
    config = dict(batch_size=4, lr=3e-3, loss=loss, progress=False)
    straight = train(model_config, TrainConfig(epochs=4, channels_last=first, **config), data, tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    train(model_config, TrainConfig(epochs=2, channels_last=first, **config), data, interrupted)
    resumed = train(model_config, TrainConfig(epochs=4, channels_last=then, **config), data, interrupted,
                    resume=True)  # fmt: skip
    for a, b in zip(resumed.history, straight.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    plain = dict(straight.model.named_parameters())
    for name, parameter in resumed.model.named_parameters():
        torch.testing.assert_close(parameter, plain[name], rtol=1e-4, atol=1e-5, msg=name)


def test_resume_reproduces_an_uninterrupted_run(gen, tmp_path):
    # dropout and shuffling draw random numbers, the learning rate steps every epoch: all must be restored
    model_config = dict(arch="iir", input_shape=[2, 4, 4], spec="FC24-D0.3-FC4")
    data = classification_set(gen)
    config = dict(batch_size=4, lr=3e-3, lr_step_epochs=1, lr_gamma=0.5, loss="ce", seed=3, progress=False)
    straight = train(model_config, TrainConfig(epochs=4, **config), data, tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    train(model_config, TrainConfig(epochs=2, **config), data, interrupted)
    resumed = train(model_config, TrainConfig(epochs=4, **config), data, interrupted, resume=True)
    assert resumed.epoch == 4 and len(resumed.history) == 4
    assert straight.optimizer.param_groups[0]["fused"] and resumed.optimizer.param_groups[0]["fused"]
    for key in ("train_loss", "train_accuracy", "dev_loss", "dev_accuracy", "lr"):
        assert [row[key] for row in resumed.history] == [row[key] for row in straight.history], key
    resumed_state = resumed.model.state_dict()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed_state[name]), name
    finished = train(model_config, TrainConfig(epochs=4, **config), data, interrupted, resume=True)
    assert finished.history == resumed.history  # a finished run resumes to itself without training


def test_extending_a_finished_run_keeps_a_constant_rate(gen, tmp_path):
    """Resuming a finished run with more epochs continues it as if it had been asked for them all at once; the
    constant learning rate used to drop tenfold at the old run's length (its scheduler stepped at epochs + 1)."""
    model_config = dict(arch="iir", input_shape=[2, 4, 4], spec="FC24-D0.3-FC4")
    data = classification_set(gen)
    config = dict(batch_size=4, lr=3e-3, loss="ce", seed=3, progress=False)
    straight = train(model_config, TrainConfig(epochs=4, **config), data, tmp_path / "straight")
    train(model_config, TrainConfig(epochs=2, **config), data, tmp_path / "extended")
    extended = train(model_config, TrainConfig(epochs=4, **config), data, tmp_path / "extended", resume=True)
    assert [row["lr"] for row in extended.history] == [3e-3] * 4
    assert all(row["epoch_seconds"] > 0 for row in extended.history)  # the first session's epochs kept their times
    for key in ("train_loss", "dev_loss", "dev_accuracy"):
        assert [row[key] for row in extended.history] == [row[key] for row in straight.history], key


@pytest.mark.parametrize(
    "model_change, config_change, match",
    [
        ({}, dict(lr=1e-2), r"other settings \(lr: 0.003 -> 0.01\)"),
        ({}, "data", r"other settings \(data.framing.frames: 4 -> 8; data.samples: None -> 20\)"),
        ({}, dict(lr_step_epochs=1), "lr_step_epochs: None -> 1"),
        (dict(spec="FC16-D0.3-FC4"), {}, "model spec: 'FC24-D0.3-FC4' -> 'FC16-D0.3-FC4'"),
        ({}, dict(epochs=1), "it has trained 2 epochs, more than epochs = 1"),
    ],
)
def test_resuming_with_other_settings_is_refused(gen, tmp_path, model_change, config_change, match):
    """Model, training and data settings (the experiment's metadata) must be those the run was saved with."""
    model_config = dict(arch="iir", input_shape=[2, 4, 4], spec="FC24-D0.3-FC4")
    config = dict(epochs=2, batch_size=4, lr=3e-3, loss="ce", seed=3, progress=False)
    metadata = {"data": {"framing": {"frames": 4, "mode": "or"}}}
    train(model_config, TrainConfig(**config), classification_set(gen), tmp_path, metadata=metadata)
    if config_change == "data":
        config_change, metadata_change = {}, {"data": {"framing": {"frames": 8, "mode": "or"}, "samples": 20}}
    else:
        metadata_change = metadata
    with pytest.raises(CheckpointError, match=match):
        train(model_config | model_change, TrainConfig(**config | config_change), classification_set(gen), tmp_path,
              resume=True, metadata=metadata_change)  # fmt: skip
    # the device, the backend and the progress display may change
    train(model_config, TrainConfig(**config | dict(progress=True)), classification_set(gen), tmp_path, resume=True,
          backend="torch", metadata=metadata)  # fmt: skip


def test_checkpoints_metrics_and_test_of_the_best_dev_epoch(gen, tmp_path):
    model_config, loss, _ = FAMILIES["he_fc_snn"]
    data = classification_set(gen)
    trainer = train(model_config, TrainConfig(epochs=3, batch_size=8, lr=3e-3, loss=loss, progress=False), data,
                    tmp_path)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([BEST_CHECKPOINT, LAST_CHECKPOINT, METRICS_FILE])
    with open(tmp_path / METRICS_FILE) as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert {"lr", "train_loss", "train_accuracy", "train_samples_per_s", "dev_loss", "dev_accuracy"} <= set(rows[0])
    best = max(trainer.history, key=lambda row: (row["dev_accuracy"], -row["dev_loss"]))
    result = trainer.test(data)
    assert result["best_epoch"] == best["epoch"]
    assert result["accuracy"] == pytest.approx(best["dev_accuracy"])
    rebuilt = model_from_checkpoint(tmp_path / BEST_CHECKPOINT, backend="torch")
    assert rebuilt.config["backend"] == "torch" and rebuilt.config["spec"] == model_config["spec"]
    for name, value in rebuilt.state_dict().items():
        assert torch.equal(value, trainer.model.state_dict()[name]), name


def test_corrupt_or_foreign_checkpoints_are_named(gen, tmp_path):
    model_config, loss, _ = FAMILIES["he_fc_snn"]
    config = TrainConfig(epochs=1, batch_size=8, loss=loss, progress=False)
    train(model_config, config, classification_set(gen), tmp_path / "run")
    last = tmp_path / "run" / LAST_CHECKPOINT
    last.write_bytes(last.read_bytes()[:200])  # truncated, as by a crash without atomic writes
    with pytest.raises(CheckpointError, match=f"checkpoint {last} cannot be read"):
        train(model_config, config, classification_set(gen), tmp_path / "run", resume=True)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=f"checkpoint {garbage} cannot be read"):
        load_checkpoint(garbage)
    text = tmp_path / "config.yaml"
    text.write_text("data: {}\n")  # a config given to --test: torch's loader answers with lines of advice
    with pytest.raises(CheckpointError, match=f"checkpoint {text} cannot be read: not a file torch.save") as refused:
        load_checkpoint(text)
    assert "\n" not in str(refused.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match=f"checkpoint {foreign} is not a snn_cuda checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    weights_only = tmp_path / "run" / BEST_CHECKPOINT
    weights_only.rename(tmp_path / "run" / LAST_CHECKPOINT)
    with pytest.raises(CheckpointError, match="holds only weights"):
        train(model_config, config, classification_set(gen), tmp_path / "run", resume=True)


def test_config_errors_name_the_setting():
    with pytest.raises(ValueError, match=r"unknown keys \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        TrainConfig(amp="bf16", device="cpu")
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        TrainConfig(epochs=0)
    for values, error, match in [
        ({"lr": "1e-3"}, TypeError, r"training lr must be a number, got '1e-3' \(str\)"),
        ({"lr": 0.0}, ValueError, "lr must be positive and finite, got 0.0"),
        ({"weight_decay": -1e-4}, ValueError, "weight_decay must be at least 0"),
        ({"epochs": 2.5}, TypeError, "training epochs must be an integer, got 2.5"),
        ({"max_batches": "2"}, TypeError, "training max_batches must be an integer or None"),
        ({"lr_step_epochs": 0}, ValueError, "lr_step_epochs must be at least 1"),
        ({"progress": "yes"}, TypeError, "training progress must be True or False"),
    ]:
        with pytest.raises(error, match=match):
            TrainConfig.from_dict(values)
    assert TrainConfig(lr=1, epochs=np.int64(3)).lr == 1  # numpy integers and Python ints are numbers too


def test_losses_by_hand():
    outputs = torch.tensor([[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]])  # [T=2, B=1, C=3]
    target = torch.tensor([1])
    loss, scores = compute_loss(outputs, target, "rate", "mse")
    torch.testing.assert_close(scores, torch.tensor([[1.0, 0.5, 0.0]]))
    assert loss.item() == pytest.approx((1.0 + 0.25 + 0.0) / 3)
    loss, scores = compute_loss(outputs, target, "count", "ce")
    assert loss.item() == pytest.approx(-torch.log_softmax(torch.tensor([2.0, 1.0, 0.0]), 0)[1].item())
    loss, scores = compute_loss(outputs, outputs * 0.5, "none", "sequence_mse")
    assert scores is None and loss.item() == pytest.approx((outputs * 0.5).pow(2).mean().item())


def test_progress_leaves_one_line_per_epoch_and_counts_every_batch(gen, tmp_path, capsys, monkeypatch):
    counted = []
    real_update = training.tqdm.update

    def update(bar, n=1):  # the bar's count after each batch, as its display would show it
        result = real_update(bar, n)
        counted.append((bar.desc, bar.n, bar.total))
        return result

    monkeypatch.setattr(training.tqdm, "update", update)
    model_config, loss, _ = FAMILIES["he_fc_snn"]
    data = classification_set(gen)  # 16 samples: 2 batches of 8
    train(model_config, TrainConfig(epochs=2, batch_size=8, loss=loss, progress=True), data, tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if " epoch " in line]
    assert [line.split(":")[0] for line in lines] == ["m epoch 1/2", "m epoch 2/2"]
    assert all(re.search(r"train loss \d\.\d{4} acc \d\.\d{3}, dev loss \d\.\d{4} acc \d\.\d{3}, \d+\.\d s$", line)
               for line in lines)  # fmt: skip
    assert counted[:2] == [("m epoch 1/2", 1, 2), ("m epoch 1/2", 2, 2)]  # ends at 2/2
    assert ("m dev", 2, 2) in counted


def test_loss_must_fit_the_readout_and_the_targets(gen, tmp_path):
    """A classifier (readout rate / last / count) trains with mse or ce on class labels, a sequence model (readout
    none) with sequence_mse on target sequences: a mismatch is refused instead of broadcasting (an "accuracy" of 5
    with readout none and mse)."""
    classifier = build_model(dict(arch="snn", input_shape=[2, 4, 4], spec="FC8-FC4"))
    sequence = build_model(dict(arch="snn", input_shape=[2, 4, 4], spec="FC8-FC4", readout="none"))
    for model, loss in ((sequence, "mse"), (sequence, "ce"), (classifier, "sequence_mse")):
        with pytest.raises(ValueError, match=f"loss '{loss}' does not fit the model's readout"):
            Trainer(model, TrainConfig(loss=loss, progress=False), tmp_path)
    outputs = torch.rand(6, 3, 4, generator=gen)
    with pytest.raises(ValueError, match=r"sequence_mse compares the outputs \[6, 3, 4\] with target sequences"):
        compute_loss(outputs, torch.tensor([0, 1, 2]), "none", "sequence_mse")
    with pytest.raises(ValueError, match=r"loss ce compares a readout with class labels \[B\], got targets \[6"):
        compute_loss(outputs, outputs, "rate", "ce")


def test_without_a_dev_set_the_last_epoch_is_the_best(gen, tmp_path):
    torch.manual_seed(3)
    model = build_model(dict(arch="snn", input_shape=[2, 4, 4], spec="FC8-FC4"))
    trainer = Trainer(model, TrainConfig(epochs=5, batch_size=4, lr=3e-2, progress=False), tmp_path)
    history = trainer.fit(classification_set(gen))
    assert trainer.best["epoch"] == 5 == load_checkpoint(tmp_path / BEST_CHECKPOINT)["epoch"]
    assert trainer.best["accuracy"] == history[-1]["train_accuracy"]


def test_checkpoint_weights_that_no_longer_fit_their_config_are_named(gen, tmp_path):
    # As a checkpoint of an snn_cuda whose iir CNN had no filter before its poolings: same config, other weights.
    model_config, loss, _ = FAMILIES["iir_cnn"]
    config = TrainConfig(epochs=1, batch_size=8, loss=loss, progress=False)
    train(model_config, config, classification_set(gen), tmp_path)
    for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
        checkpoint = load_checkpoint(tmp_path / name)
        checkpoint["model"] = {key: value for key, value in checkpoint["model"].items() if "layers.1." not in key}
        torch.save(checkpoint, tmp_path / name)
    with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path / BEST_CHECKPOINT}: its weights do not fit"
                       r".*Missing key\(s\) in state_dict: \"layers.1.synapse.a1\""):  # fmt: skip
        model_from_checkpoint(tmp_path / BEST_CHECKPOINT)
    # many missing keys do not push the unexpected ones out of the message
    checkpoint = load_checkpoint(tmp_path / BEST_CHECKPOINT)
    checkpoint["model"] = {f"renamed.{key}": value for key, value in checkpoint["model"].items()}
    torch.save(checkpoint, tmp_path / BEST_CHECKPOINT)
    with pytest.raises(CheckpointError, match=r"Missing key\(s\).* \.\.\.; Unexpected key\(s\) in state_dict: \"ren"):
        model_from_checkpoint(tmp_path / BEST_CHECKPOINT)
    with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path / LAST_CHECKPOINT}: its weights do not fit"):
        train(model_config, config, classification_set(gen), tmp_path, resume=True)
    # the weights fit, the optimizer's groups do not (a parameter made a buffer since, as the first-order gain)
    train(model_config, config, classification_set(gen), tmp_path / "again")
    checkpoint = load_checkpoint(tmp_path / "again" / LAST_CHECKPOINT)
    checkpoint["optimizer"]["param_groups"][0]["params"].pop()
    torch.save(checkpoint, tmp_path / "again" / LAST_CHECKPOINT)
    with pytest.raises(CheckpointError, match="its optimizer state does not fit the model's parameters"):
        train(model_config, config, classification_set(gen), tmp_path / "again", resume=True)
