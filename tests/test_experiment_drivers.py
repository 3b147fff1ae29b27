"""The N-MNIST and MNIST drivers end to end in their smoke settings, and what their rows claim to compare: the
two MNIST input encodings and the two filter state modes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_experiments import ROOT, load_script, read_rows

from snn_cuda.experiment import RESULT_COLUMNS, load_config
from snn_cuda.training import CheckpointError, load_checkpoint, model_from_checkpoint

NMNIST_MODELS = ["snn_lif", "snn_iir", "rnn_mainstream", "rnn_rate", "lstm_mainstream", "lstm_rate"]
MNIST_MODELS = [f"{net}_{encoding}_{state}" for net in ("mlp", "cnn") for encoding in ("copy", "poisson")
                for state in ("zero", "preserved")]  # fmt: skip
CPU = ["--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def nmnist():
    return load_script(ROOT / "experiments" / "nmnist.py")


@pytest.fixture(scope="module")
def mnist():
    return load_script(ROOT / "experiments" / "mnist.py")


@pytest.fixture(scope="module")
def mnist_run(mnist, tmp_path_factory):
    """The MNIST driver's smoke run: (rows, output folder)."""
    out = tmp_path_factory.mktemp("mnist")
    return mnist.main(["--smoke", *CPU, "--out", str(out)]), out


@pytest.fixture
def synthetic_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SNN_CUDA_DATA", str(tmp_path_factory.getbasetemp() / "snn_data"))


def check_written_table(rows: list[dict], out: Path, names: list[str], epochs: int) -> list[dict]:
    """The rows returned and written are those of ``names``, with checkpoints, metrics and plots."""
    assert [row["model"] for row in rows] == names
    table = read_rows(out / "results.csv")
    assert [row["model"] for row in table] == names and list(table[0]) == list(RESULT_COLUMNS)
    for row in table:
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0 and int(row["params"]) > 0
        assert float(row["train_samples_per_s"]) > 0
        assert (out / row["model"] / "best.pt").is_file() and (out / row["model"] / "last.pt").is_file()
        assert len(read_rows(out / row["model"] / "metrics.csv")) == epochs
    for plot in ("accuracy_curves.png", "accuracy_vs_cost.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return table


def test_nmnist_smoke_writes_the_comparison(nmnist, synthetic_data, tmp_path, capsys):
    out = tmp_path / "nmnist"
    rows = nmnist.main(["--smoke", *CPU, "--out", str(out)])
    table = check_written_table(rows, out, NMNIST_MODELS, epochs=2)
    snn = next(row for row in table if row["model"] == "snn_lif")
    assert float(snn["acs_per_step"]) > 0 and float(snn["macs_per_step"]) == 0
    markdown = (out / "results.md").read_text()
    assert markdown.startswith("# N-MNIST: SNN vs RNN vs LSTM") and "chance accuracy 0.100" in markdown
    assert load_config(out / "config.yaml")["data"]["framing"] == {"frames": 4, "dt_ms": 20, "mode": "or"}

    capsys.readouterr()
    result = nmnist.main(["--test", str(out / "lstm_rate" / "best.pt"), *CPU])
    assert result["accuracy"] == pytest.approx(rows[-1]["test_accuracy"])
    assert "lstm_rate (epoch" in capsys.readouterr().out


def test_nmnist_iir_cnn_config_runs_channels_last(nmnist, synthetic_data, tmp_path):
    """The snn-iir CNN's config, with --channels-last: a setting of the machine, noted in the table, not recorded
    in the run's config (whose record serves as --config again)."""
    config = ROOT / "experiments" / "configs" / "nmnist_iir_cnn.yaml"
    rows = nmnist.main(["--config", str(config), "--smoke", *CPU, "--channels-last", "--out", str(tmp_path)])
    check_written_table(rows, tmp_path, ["iir_cnn"], epochs=1)
    markdown = (tmp_path / "results.md").read_text()
    assert markdown.startswith("# N-MNIST: the snn-iir CNN") and "channels-last" in markdown
    checkpoint = load_checkpoint(tmp_path / "iir_cnn" / "best.pt")
    assert checkpoint["train_config"]["loss"] == "ce" and checkpoint["train_config"]["channels_last"]
    assert "channels_last" not in load_config(tmp_path / "config.yaml")["training"]


def test_mnist_smoke_compares_encodings_and_state_modes(mnist_run):
    rows, out = mnist_run
    check_written_table(rows, out, MNIST_MODELS, epochs=2)
    markdown = (out / "results.md").read_text()
    assert "data settings {'encoding': 'poisson'} for mlp_poisson_zero, mlp_poisson_preserved" in markdown
    for name in MNIST_MODELS:
        checkpoint = load_checkpoint(out / name / "best.pt")
        # each row trained on its own encoding and with its own state mode, and its checkpoint says which
        assert checkpoint["metadata"]["data"] == {"encoding": name.split("_")[1], "steps": 6, "size": 28}
        assert checkpoint["model_config"]["initial_state"] == name.split("_")[2]


def test_mnist_full_config_has_the_seeds_first_order_rows():
    import math

    from snn_cuda import IIRSynapse
    from snn_cuda.experiment import model_settings
    from snn_cuda.models import build_model

    # snn-iir's snn_mlp_2 runs: the MLP with first-order low-pass synapses (a1 = e^(-1/tau_m), a2 = 0, b = 1)
    config = load_config(ROOT / "experiments" / "configs" / "mnist_iir2020.yaml")
    first_order = [name for name in config["models"] if config["models"][name].get("synapse") == "first_order"]
    assert first_order == ["mlp_first_order_copy_zero", "mlp_first_order_poisson_zero"]
    for name in config["models"]:
        model_config, data = model_settings(config, name)
        synapses = [m for m in build_model({**model_config, "input_shape": [1, 28, 28]}).modules()
                    if isinstance(m, IIRSynapse)]  # fmt: skip
        assert len(synapses) == (3 if name.startswith("mlp") else 8)  # the CNN: a filter on each side of a pooling
        for synapse in synapses:
            assert synapse.first_order == (name in first_order)
            if synapse.first_order:  # the seed's first_order_low_pass_cell trains alpha_1, its gain stays 1
                assert torch.all(synapse.a1 == math.exp(-1 / 4)) and torch.all(synapse.b == 1)
                assert [n for n, _ in synapse.named_parameters()] == ["a1"]
            else:
                assert [n for n, _ in synapse.named_parameters()] == ["a1", "a2", "b"]
        assert data["encoding"] == ("poisson" if "_poisson_" in name else "copy")


def test_mnist_encodings_differ(mnist):
    copy = mnist.mnist_datasets({"encoding": "copy", "steps": 400, "size": 28}, None, False)
    poisson = mnist.mnist_datasets({"encoding": "poisson", "steps": 400, "size": 28}, None, False)
    image = copy["test"].images[3]
    copied, spikes = copy["test"][3][0], poisson["test"][3][0]
    assert copied.shape == spikes.shape == (400, 1, 28, 28)
    assert torch.equal(copied, image.expand(400, 1, 28, 28))  # the image at every step
    assert set(spikes.unique().tolist()) == {0.0, 1.0}  # spikes, with the intensity as rate
    assert (spikes.mean(0)[0] - image).abs().max() < 0.1 and (spikes.mean(0)[0] - image).abs().mean() < 0.02
    assert torch.equal(spikes, poisson["test"][3][0])  # evaluations are repeatable
    assert not torch.equal(poisson["train"][3][0], poisson["train"][3][0])  # training draws are fresh


def filter_outputs_of_two_calls(model, x: torch.Tensor) -> list[torch.Tensor]:
    """What the first layer's IIR synapse gives for two consecutive calls of ``model`` on the same batch."""
    outputs = []
    hook = model.layers[0].synapse.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    with torch.no_grad():
        model(x)
        model(x)
    hook.remove()
    return outputs


@pytest.mark.parametrize("name", ["mlp_copy_zero", "mlp_copy_preserved", "cnn_poisson_zero", "cnn_poisson_preserved"])
def test_mnist_preserved_states_carry_across_batches(mnist, mnist_run, name):
    model = model_from_checkpoint(mnist_run[1] / name / "best.pt").eval()
    data = mnist.mnist_datasets(load_checkpoint(mnist_run[1] / name / "best.pt")["metadata"]["data"], None, False)
    x = torch.stack([data["test"][index][0] for index in range(4)]).transpose(0, 1)
    first, second = filter_outputs_of_two_calls(model, x)
    if name.endswith("zero"):
        assert torch.equal(first, second)  # every batch starts from rest
    else:
        assert not torch.allclose(first, second)  # the second batch starts where the first ended
        model.reset_state()
        assert torch.equal(filter_outputs_of_two_calls(model, x)[0], first)


def learning_curve(metrics: Path) -> list[dict]:
    """The rows of a metrics.csv without the throughputs and times (which vary from run to run)."""
    return [{key: value for key, value in row.items() if "samples_per_s" not in key and key != "epoch_seconds"}
            for row in read_rows(metrics)]  # fmt: skip


def test_mnist_resume_continues_an_interrupted_run(mnist, mnist_run, tmp_path, capsys):
    rows, out = mnist_run
    name = "mlp_poisson_preserved"  # fresh Poisson draws and carried states: both must resume where they were
    options = ["--smoke", *CPU, "--out", str(tmp_path), "--models", name]
    mnist.main([*options, "--epochs", "1"])
    capsys.readouterr()
    resumed = mnist.main([*options, "--resume"])
    assert f"{name}: resuming from {tmp_path / name / 'last.pt'} after epoch 1 of 2" in capsys.readouterr().out
    assert resumed[0]["test_accuracy"] == next(row for row in rows if row["model"] == name)["test_accuracy"]
    assert learning_curve(tmp_path / name / "metrics.csv") == learning_curve(out / name / "metrics.csv")
    # A refused resume leaves the run's config.yaml as it was; one into an empty folder says it starts afresh.
    record = (tmp_path / "config.yaml").read_text()
    assert load_config(tmp_path / "config.yaml")["training"]["epochs"] == 2
    with pytest.raises(CheckpointError, match=r"other settings \(seed: 2 -> 5\)"):
        mnist.main([*options, "--resume", "--seed", "5"])
    assert (tmp_path / "config.yaml").read_text() == record
    mnist.main(["--smoke", *CPU, "--out", str(tmp_path / "typo"), "--models", name, "--epochs", "1", "--resume"])
    assert f"no checkpoint {tmp_path / 'typo' / name / 'last.pt'} to resume from" in capsys.readouterr().out
