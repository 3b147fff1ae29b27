"""The study drivers: snn-iir's associative memory (patterns, corruption, delayed filtered targets, the fixed output
filter, recall table) and He et al.'s temporal-resolution sweep (framing at each dt, train x test matrix), each end
to end in its smoke settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_experiments import load_script, read_rows

import snn_cuda
from snn_cuda.experiment import RESULT_COLUMNS, load_config
from snn_cuda.models import build_model, count_parameters
from snn_cuda.training import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"


@pytest.fixture(scope="module")
def memory():
    return load_script(ROOT / "experiments" / "associative_memory.py")


@pytest.fixture(scope="module")
def resolution():
    return load_script(ROOT / "experiments" / "temporal_resolution.py")


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    """The synthetic sets of this module's tests, generated once into a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SNN_CUDA_DATA", str(tmp_path_factory.mktemp("snn_data")))
        yield


# ---- associative memory -----------------------------------------------------------------------------------


def test_associative_memory_net_parameter_count():
    # 300-500-200-500-300: weights and biases, and one (a1, a2, b) per input element of each layer; the output
    # filter holds buffers, not parameters
    model = build_model("iir_associative_memory")
    weights = 300 * 500 + 500 + 500 * 200 + 200 + 200 * 500 + 500 + 500 * 300 + 300
    coefficients = 3 * (300 + 500 + 200 + 500)
    assert (weights, coefficients) == (501_500, 4_500)
    assert count_parameters(model) == weights + coefficients
    assert not list(model.layers[-1].parameters())


@pytest.mark.parametrize("kind", ["delete", "add", "jitter"])
@pytest.mark.parametrize("level", [0.0, 0.1, 0.3, 0.7])
def test_corruption_changes_the_cue_by_the_level(memory, kind, level):
    pattern = memory.random_patterns(1, 100, 50, [1, 3], seed=3)[0]
    spikes = int(pattern.sum())
    cue = memory.corrupt(pattern, kind, level, np.random.default_rng(0), jitter_steps=2)
    changed = round(level * spikes)
    removed = int(((pattern == 1) & (cue == 0)).sum())
    added = int(((pattern == 0) & (cue == 1)).sum())
    assert set(np.unique(cue)) <= {0.0, 1.0}
    if kind == "delete":
        assert (removed, added) == (changed, 0)
    elif kind == "add":
        assert (removed, added) == (0, changed)
    else:
        # every moved spike leaves its place for an empty one of its own neuron, 1 or 2 steps away
        assert (removed, added) == (changed, changed) and cue.sum() == spikes
        for step, neuron in zip(*np.nonzero((pattern == 0) & (cue == 1)), strict=True):
            vacated = np.nonzero((pattern[:, neuron] == 1) & (cue[:, neuron] == 0))[0]
            assert np.abs(vacated - step).min() <= 2


def test_corruption_arguments_are_checked(memory):
    pattern = memory.random_patterns(1, 10, 4, [1, 2], seed=0)[0]
    with pytest.raises(ValueError, match="kind must be one of"):
        memory.corrupt(pattern, "shuffle", 0.1, np.random.default_rng(0), jitter_steps=2)
    with pytest.raises(ValueError, match=r"level must lie in \[0, 1\]"):
        memory.corrupt(pattern, "add", 1.5, np.random.default_rng(0), jitter_steps=2)
    with pytest.raises(ValueError, match="spikes_per_neuron"):
        memory.random_patterns(1, 10, 4, [3, 11], seed=0)


def test_random_patterns_have_the_configured_spikes_per_neuron(memory):
    patterns = memory.random_patterns(3, 40, 25, [2, 5], seed=1)
    per_neuron = patterns.sum(axis=1)
    assert patterns.shape == (3, 40, 25) and per_neuron.min() >= 2 and per_neuron.max() <= 5
    assert not np.array_equal(patterns[0], patterns[1])
    np.testing.assert_array_equal(patterns, memory.random_patterns(3, 40, 25, [2, 5], seed=1))


def test_target_is_the_pattern_delayed_4_steps_through_the_normalised_filter(memory):
    # one spike of neuron 2 at step 5: the target is the normalised dual-exp impulse response from step 9 on
    spikes = torch.zeros(30, 4)
    spikes[5, 2] = 1.0
    model_config = {"tau_m": 8.0, "tau_s": 2.0}
    target = memory.filtered_targets(spikes, model_config, 4)
    a = np.exp(-1 / 8.0)
    c = np.exp(-1 / 2.0)
    scale = snn_cuda.synapse.dual_exp_peak_scale(8.0, 2.0)
    n = np.arange(30 - 9)
    torch.testing.assert_close(
        target[9:, 2], torch.tensor(scale * (a ** (n + 1) - c ** (n + 1)), dtype=torch.float32)
    )
    assert target[:9].abs().max() == 0 and target[:, [0, 1, 3]].abs().max() == 0
    assert target.max().item() == pytest.approx(1.0, abs=0.02)  # normalised: the peak is about 1
    shifted = memory.delayed(spikes, 4)
    assert shifted[9, 2] == 1 and shifted.sum() == 1


def test_cue_dataset_pairs_cues_with_their_patterns_targets(memory):
    data = load_config(CONFIGS / "associative_memory_quick.yaml", smoke=True)["data"]
    model_config = {"tau_m": 8.0, "tau_s": 2.0}
    patterns, targets, sets = memory.pattern_sets(data, model_config, seed=0)
    assert len(sets["train"]) == data["patterns"] * data["train_copies"]
    assert len(sets["dev"]) == data["patterns"] * data["dev_copies"]
    for index in range(len(sets["train"])):
        cue, target = sets["train"][index]
        assert cue.shape == target.shape == (data["steps"], data["neurons"])
        own = patterns[index % data["patterns"]]
        expected = memory.filtered_targets(torch.from_numpy(own), model_config, data["delay"])
        torch.testing.assert_close(target, expected)
        # a cue is its own pattern, or one corruption of at most max_level of its spikes
        changed = (cue.numpy() != own).sum()
        assert changed <= 2 * round(data["train_corruption"]["max_level"] * own.sum())
    # the same index gives the same cue: epochs and resumed runs see the same data
    torch.testing.assert_close(sets["train"][3][0], sets["train"][3][0])


def test_associative_memory_smoke_writes_the_recall_table(memory, tmp_path, capsys):
    out = tmp_path / "memory"
    results = memory.main(["--smoke", "--quiet", "--out", str(out), "--device", "cpu"])
    config = load_config(CONFIGS / "associative_memory_quick.yaml", smoke=True)
    recall = config["data"]["recall"]
    rows = results["snn_iir"]
    table = read_rows(out / "recall.csv")
    assert list(table[0]) == list(memory.RECALL_COLUMNS)
    assert len(rows) == len(table) == len(recall["kinds"]) * len(recall["levels"])
    assert [(row["kind"], float(row["level"])) for row in table] == [
        (kind, level) for kind in recall["kinds"] for level in recall["levels"]
    ]
    for row in rows:
        for column in ("cue_cosine", "output_cosine", "cue_recall_accuracy", "recall_accuracy"):
            assert -1.0 <= row[column] <= 1.0 + 1e-6
        assert row["output_mse"] >= 0
    clean = [row for row in rows if row["level"] == 0.0]
    assert all(row["cue_cosine"] == pytest.approx(1.0) and row["cue_recall_accuracy"] == 1.0 for row in clean)
    assert "recall from corrupted cues" in (out / "recall.md").read_text()
    assert (out / "recall.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(read_rows(out / "snn_iir" / "metrics.csv")) == config["training"]["epochs"]

    # the output filter is fixed: its coefficients are buffers, still the normalised dual-exp after training
    checkpoint = load_checkpoint(out / "snn_iir" / "best.pt")
    model = build_model(checkpoint["model_config"])
    output_filter = f"layers.{len(model.layers) - 1}."
    trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trained and not any(name.startswith(output_filter) for name in trained)
    a1, a2, b = snn_cuda.normalised_dual_exp(8.0, 2.0)
    for name, value in (("a1", a1), ("a2", a2), ("b", b)):
        torch.testing.assert_close(checkpoint["model"][output_filter + name],
                                   torch.full((config["data"]["neurons"],), value))  # fmt: skip

    # --test recomputes the recall table of a checkpoint from the data settings and seed stored in it
    capsys.readouterr()
    tested = memory.main(["--test", str(out / "snn_iir" / "best.pt"), "--quiet", "--device", "cpu"])
    assert [row["output_cosine"] for row in tested] == pytest.approx([row["output_cosine"] for row in rows])
    assert "| kind | level |" in capsys.readouterr().out


def test_associative_memory_needs_matching_output_size_and_loss(memory, tmp_path):
    config = load_config(CONFIGS / "associative_memory_quick.yaml", smoke=True)
    data = config["data"]
    with pytest.raises(ValueError, match="output layer must have 12 neurons"):
        memory.model_config_of({"models": {"net": {"spec": "FC8-FC5"}}}, "net", data)
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "associative_memory_quick.yaml").read_text().replace("loss: sequence_mse", "loss: mse"))
    with pytest.raises(ValueError, match="trains with loss sequence_mse, not mse"):
        memory.main(["--config", str(bad), "--smoke", "--quiet", "--out", str(tmp_path / "out")])


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("associative_memory_*.yaml")))
def test_associative_memory_configs_build_their_models(memory, name):
    config = load_config(CONFIGS / name)
    assert config["training"]["loss"] == "sequence_mse"
    for model_name in config["models"]:
        model = build_model(memory.model_config_of(config, model_name, config["data"]))
        assert model.readout == "none" and isinstance(model.layers[-1], snn_cuda.IIRSynapse)


# ---- temporal resolution ----------------------------------------------------------------------------------


def smoke_data(resolution, dataset: str) -> dict:
    config = load_config(CONFIGS / "temporal_resolution_quick.yaml", smoke=True)
    return {**config["datasets"][dataset], "dataset": dataset}


def test_frame_width_sets_frames_or_span(resolution):
    data = smoke_data(resolution, "gesture")  # span fixed at 600 ms
    assert [resolution.framing_at(data, dt)["frames"] for dt in (150, 300)] == [4, 2]
    assert resolution.data_at(data, 150)["count_scale"] == pytest.approx(75 / 150)
    frames_fixed = {**data, "sweep": {"fixed": "frames", "frames": 5, "dt_ms": [10, 20]}}
    assert resolution.framing_at(frames_fixed, 20) == {**data["framing"], "frames": 5, "dt_ms": 20}
    assert resolution.data_at(frames_fixed, 20)["count_scale"] == 1.0  # no reference: raw counts
    with pytest.raises(ValueError, match="does not divide the fixed span"):
        resolution.framing_at(data, 250)
    with pytest.raises(ValueError, match="'fixed' must be"):
        resolution.framing_at({**data, "sweep": {**data["sweep"], "fixed": "both"}}, 150)
    for mode in ("or", "sum_max"):  # marks, and counts over each frame's maximum: nothing to scale
        with pytest.raises(ValueError, match="count_reference_dt_ms scales event counts: use framing mode 'sum'"):
            resolution.data_at({**data, "framing": {**data["framing"], "mode": mode}}, 150)
    assert resolution.with_classes("FC512-FC512-FC11", 10) == "FC512-FC512-FC10"
    assert resolution.with_classes("FC11", 10) == "FC10"


def test_reframing_at_another_dt_gives_inputs_of_its_shape_and_scale(resolution, synthetic_data):
    data = smoke_data(resolution, "gesture")
    sets = {dt: resolution.framed_sets(resolution.data_at(data, dt), None, False) for dt in (150, 300)}
    side = 128 // data["framing"]["downsample"]
    for dt, frames in ((150, 4), (300, 2)):
        x = sets[dt]["test"].tensors[0]
        assert x.shape[1:] == (frames, 2, side, side)
        # scaled counts: events per 75 ms frame; unscaled, they are whole event counts
        counts = x * dt / 75
        torch.testing.assert_close(counts, counts.round())
    # the same 600 ms window at either width: the same events in all
    totals = {dt: (sets[dt]["test"].tensors[0] * dt / 75).sum(dim=(1, 2, 3, 4)) for dt in sets}
    torch.testing.assert_close(totals[150], totals[300])
    assert torch.equal(sets[150]["test"].tensors[1], sets[300]["test"].tensors[1])


def test_temporal_resolution_smoke_writes_the_matrix(resolution, synthetic_data, tmp_path, capsys):
    out = tmp_path / "resolution"
    models = ["snn_lif", "lstm_rate"]
    sweep_rows, rows = resolution.main(["--smoke", "--quiet", "--out", str(out), "--device", "cpu",
                                        "--models", *models])  # fmt: skip
    dts = smoke_data(resolution, "gesture")["sweep"]["dt_ms"]
    results = read_rows(out / "results.csv")
    assert list(results[0]) == list(resolution.SWEEP_COLUMNS) and set(RESULT_COLUMNS) <= set(results[0])
    assert [(row["model"], float(row["dt_ms"]), int(row["frames"])) for row in results] == [
        (model, dt, 600 // dt) for model in models for dt in dts
    ]
    matrix = read_rows(out / "generalisation.csv")
    assert list(matrix[0]) == list(resolution.GENERALISATION_COLUMNS)
    assert [(row["model"], float(row["train_dt_ms"]), float(row["test_dt_ms"])) for row in matrix] == [
        (model, train, test) for model in models for train in dts for test in dts
    ]
    for row in matrix:
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0 and int(row["test_frames"]) == 600 // float(
            row["test_dt_ms"]
        )
    # the diagonal of the matrix is the plain sweep: the same best checkpoint on the same test set
    for result in results:
        same = next(row for row in matrix if row["model"] == result["model"] and row["train_dt_ms"] == result["dt_ms"]
                    and row["test_dt_ms"] == result["dt_ms"])  # fmt: skip
        assert float(same["test_accuracy"]) == pytest.approx(float(result["test_accuracy"]))
    markdown = (out / "generalisation.md").read_text()
    assert (
        all(f"## {model}" in markdown for model in models)
        and "| train dt (ms) | test 150 ms | test 300 ms |" in markdown
    )
    for plot in ("accuracy_vs_dt.png", "generalisation.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for model in models:
        for dt in dts:
            assert (out / resolution.run_name(model, dt) / "best.pt").is_file()

    # --test frames the test set as the checkpoint was trained (its dt and count scale, stored in it)
    checkpoint = out / resolution.run_name("snn_lif", 300) / "best.pt"
    stored = load_checkpoint(checkpoint)["metadata"]["data"]
    assert stored["framing"]["dt_ms"] == 300 and stored["count_scale"] == pytest.approx(0.25)
    result = resolution.main(["--test", str(checkpoint), "--quiet", "--device", "cpu"])
    diagonal = next(row for row in sweep_rows if row["model"] == "snn_lif" and row["dt_ms"] == 300)
    assert result["accuracy"] == pytest.approx(diagonal["test_accuracy"])


def test_temporal_resolution_on_nmnist(resolution, synthetic_data, tmp_path):
    out = tmp_path / "nmnist"
    sweep_rows, rows = resolution.main(["--smoke", "--dataset", "nmnist", "--quiet", "--out", str(out),
                                        "--device", "cpu", "--models", "snn_iir"])  # fmt: skip
    data = smoke_data(resolution, "nmnist")  # T fixed at 3 frames
    assert [(row["dt_ms"], row["frames"], row["span_ms"]) for row in sweep_rows] == [(20, 3, 60), (40, 3, 120)]
    assert len(rows) == 4 and all(row["test_frames"] == 3 for row in rows)
    checkpoint = load_checkpoint(out / "snn_iir_dt20" / "best.pt")
    assert checkpoint["model_config"]["spec"].endswith("-FC10")
    side = 34 // data["framing"]["downsample"]
    assert checkpoint["model_config"]["input_shape"] == [2, side, side]


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("temporal_resolution_*.yaml")))
def test_temporal_resolution_configs_build_their_models(resolution, name):
    config = load_config(CONFIGS / name)
    for dataset, data in config["datasets"].items():
        data = {**data, "dataset": dataset}
        for dt in data["sweep"]["dt_ms"]:
            assert resolution.framing_at(data, dt)["frames"] >= 1
        shape = resolution.input_shape(resolution.data_at(data, data["sweep"]["dt_ms"][0]))
        for model_config in config["models"].values():
            spec = resolution.with_classes(model_config["spec"], data["classes"])
            model = build_model({**model_config, "spec": spec, "input_shape": shape})
            assert model.config["spec"].endswith(f"FC{data['classes']}")


def test_temporal_resolution_refuses_a_sweep_without_frame_widths(resolution, tmp_path):
    config = load_config(CONFIGS / "temporal_resolution_quick.yaml")
    for widths in ([], [0, 150], [150, 150], "150"):
        config["datasets"]["gesture"]["sweep"]["dt_ms"] = widths
        path = tmp_path / "sweep.yaml"
        path.write_text(yaml.safe_dump(config))
        with pytest.raises(ValueError, match="sweep dt_ms must be a list of distinct positive frame widths"):
            resolution.main(["--config", str(path), "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu"])


def test_temporal_resolution_builds_every_model_before_training_any(resolution, tmp_path):
    text = (CONFIGS / "temporal_resolution_quick.yaml").read_text()
    path = tmp_path / "typo.yaml"
    path.write_text(text.replace("snn_iir: {arch: iir,", "snn_iir: {arch: iir, tau: 2,"))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"model snn_iir_dt\d+: config for arch 'iir' has unknown keys \['tau'\]"):
        resolution.main(["--config", str(path), "--smoke", "--out", str(out), "--quiet", "--device", "cpu"])
    assert list(out.iterdir()) == []  # snn_lif, listed first, did not train
