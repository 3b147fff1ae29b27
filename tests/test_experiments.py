"""The experiment drivers end to end in their smoke settings, the complexity benchmark's JSON, and the rows of the
timestep-scaling benchmark at tiny sizes."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import snn_cuda
from snn_cuda.experiment import (
    RESULT_COLUMNS,
    ConfigError,
    load_config,
    markdown_table,
    materialize,
    refuse_torchrun,
    run_from_command_line,
    write_table,
)
from snn_cuda.models import PRESETS

ROOT = Path(__file__).resolve().parents[1]
GESTURE_MODELS = ["snn_lif", "snn_iir", "rnn_mainstream", "rnn_rate", "lstm_mainstream", "lstm_rate"]


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gesture():
    return load_script(ROOT / "experiments" / "gesture.py")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("snn_data")


def read_rows(path: Path) -> list[dict]:
    with open(path) as file:
        return list(csv.DictReader(file))


def test_gesture_smoke_writes_the_comparison(gesture, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SNN_CUDA_DATA", str(data_dir))
    out = tmp_path / "gesture"
    rows = gesture.main(["--smoke", "--quiet", "--out", str(out), "--device", "cpu"])
    assert [row["model"] for row in rows] == GESTURE_MODELS
    table = read_rows(out / "results.csv")
    assert [row["model"] for row in table] == GESTURE_MODELS and list(table[0]) == list(RESULT_COLUMNS)
    for row in table:
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0 and int(row["params"]) > 0
        assert float(row["train_samples_per_s"]) > 0 and float(row["saved_activations_mb"]) > 0
        run = out / row["model"]
        assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
        assert len(read_rows(run / "metrics.csv")) == 2
    snn = next(row for row in table if row["model"] == "snn_lif")
    assert float(snn["acs_per_step"]) > 0 and float(snn["macs_per_step"]) == 0
    assert all(float(row["macs_per_step"]) > 0 for row in table if row["model"] != "snn_lif")
    markdown = (out / "results.md").read_text()
    assert all(name in markdown for name in GESTURE_MODELS) and "chance accuracy 0.091" in markdown
    for plot in ("accuracy_curves.png", "accuracy_vs_cost.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_config(out / "config.yaml")["training"]["epochs"] == 2

    # --resume of a finished run trains nothing more and reproduces the table's accuracies
    resumed = gesture.main(["--smoke", "--quiet", "--out", str(out), "--device", "cpu", "--resume",
                            "--models", "snn_lif", "lstm_rate"])  # fmt: skip
    for row in resumed:
        first = next(r for r in rows if r["model"] == row["model"])
        assert row["test_accuracy"] == first["test_accuracy"] and row["epochs"] == 2

    # --test evaluates one checkpoint with the data settings stored in it
    capsys.readouterr()
    result = gesture.main(["--test", str(out / "snn_iir" / "best.pt"), "--quiet", "--device", "cpu"])
    assert result["accuracy"] == pytest.approx(next(r for r in rows if r["model"] == "snn_iir")["test_accuracy"])
    assert "snn_iir (epoch" in capsys.readouterr().out


def test_gesture_argument_errors(gesture, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"--models: \['gru'\]"):
        gesture.main(["--smoke", "--quiet", "--out", str(tmp_path), "--models", "gru"])
    with pytest.raises(FileNotFoundError, match="config file .*missing.yaml does not exist"):
        gesture.main(["--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)])

    # --device is checked by the parser, before any output is written or data read
    out = tmp_path / "device"
    for device, message in [("bogus", "is not a torch device"), ("mps", "the drivers run on cpu or cuda")] + (
        [] if torch.cuda.is_available() else [("cuda", "has no CUDA device")]
    ):
        with pytest.raises(SystemExit) as exit_info:
            gesture.main(["--smoke", "--out", str(out), "--device", device])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not out.exists()


def test_conv_comparison_config_runs(gesture, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SNN_CUDA_DATA", str(data_dir))
    config = ROOT / "experiments" / "configs" / "gesture_conv_he2020.yaml"
    rows = gesture.main(["--config", str(config), "--smoke", "--quiet", "--out", str(tmp_path), "--device", "cpu"])
    assert [row["model"] for row in rows] == ["scnn", "conv_rnn_mainstream", "conv_rnn_rate", "conv_lstm_mainstream",
                                              "conv_lstm_rate"]  # fmt: skip
    assert (tmp_path / "results.md").is_file()
    from snn_cuda.training import load_checkpoint

    configs = {row["model"]: load_checkpoint(tmp_path / row["model"] / "best.pt")["model_config"] for row in rows}
    assert {name: (c.get("cell"), c["readout"]) for name, c in configs.items() if name != "scnn"} == {
        "conv_rnn_mainstream": ("rnn", "last"), "conv_rnn_rate": ("rnn", "rate"),
        "conv_lstm_mainstream": ("lstm", "last"), "conv_lstm_rate": ("lstm", "rate")}  # fmt: skip
    # the full config (not the smoke one) gives the SCNN the seed's dropout and the recurrent nets none
    full = yaml.safe_load(config.read_text())["models"]
    assert full["scnn"]["spec"].count("D0.5") == 4
    assert not any("-D" in m["spec"] for name, m in full.items() if name != "scnn")


def test_iir_gesture_config_runs_each_framing(gesture, data_dir, tmp_path, monkeypatch):
    from snn_cuda.training import load_checkpoint

    monkeypatch.setenv("SNN_CUDA_DATA", str(data_dir))
    config = ROOT / "experiments" / "configs" / "gesture_iir2020.yaml"
    rows = gesture.main(["--config", str(config), "--smoke", "--quiet", "--out", str(tmp_path), "--device", "cpu"])
    assert [row["model"] for row in rows] == ["iir_cnn_or_t50", "iir_cnn_or_t30", "iir_cnn_sum_max_t30"]
    assert (tmp_path / "results.md").read_text().startswith("# DVS Gesture: the snn-iir CNN, three framings")
    # each row trained on its own framing (the seed's three runs), and its checkpoint says which
    framings = {name: load_checkpoint(tmp_path / name / "best.pt")["metadata"]["data"]["framing"]
                for name in ("iir_cnn_or_t50", "iir_cnn_or_t30", "iir_cnn_sum_max_t30")}  # fmt: skip
    assert framings == {
        "iir_cnn_or_t50": {"frames": 4, "mode": "or", "downsample": 4},
        "iir_cnn_or_t30": {"frames": 3, "mode": "or", "downsample": 4},
        "iir_cnn_sum_max_t30": {"frames": 3, "mode": "sum_max", "downsample": 4},
    }
    full = load_config(config)
    assert full["data"]["framing"] == {"frames": 50, "mode": "or"}  # equal bins over each sample, 128x128
    assert full["training"]["loss"] == "ce"


# Drivers of studies with models of their own: tests/test_experiment_studies.py builds their configs' models.
STUDY_DRIVERS = ("associative_memory_", "temporal_resolution_")
COMPARISON_CONFIGS = sorted(
    p.name for p in (ROOT / "experiments" / "configs").glob("*.yaml") if not p.name.startswith(STUDY_DRIVERS)
)


@pytest.mark.parametrize("name", COMPARISON_CONFIGS)
def test_configs_build_their_models(name):
    from snn_cuda.experiment import model_settings
    from snn_cuda.models import build_model

    # configs/<driver>_<settings>.yaml belongs to experiments/<driver>.py, which knows the shape of its inputs
    stem = max((p.stem for p in (ROOT / "experiments").glob("*.py") if name.startswith(p.stem + "_")), key=len)
    driver = load_script(ROOT / "experiments" / f"{stem}.py")
    config = load_config(ROOT / "experiments" / "configs" / name)
    assert hasattr(driver, "input_shape") and "data" in config, f"{name}: not a comparison driver's config"
    for model_name in config["models"]:
        model_config, data = model_settings(config, model_name)
        model = build_model({**model_config, "input_shape": driver.input_shape(data)})
        assert model.config["spec"] == model_config["spec"]


def test_complexity_benchmark_csv_records_what_it_measured_at(tmp_path):
    script = [sys.executable, str(ROOT / "benchmarks" / "complexity.py")]
    subprocess.run(script + ["--models", "he_fc_snn_gesture", "--input-rate", "0.2", "--T", "3", "--out",
                             str(tmp_path)], capture_output=True, text=True, check=True, cwd=ROOT)  # fmt: skip
    (row,) = read_rows(tmp_path / "complexity.csv")
    assert (row["model"], row["params"], row["input_rate"], row["T"]) == ("he_fc_snn_gesture", "1054731", "0.2", "3")
    # --out is checked before anything is counted: one line, no traceback
    bad = subprocess.run(script + ["--out", str(tmp_path / "complexity.csv" / "sub")], capture_output=True,
                         text=True, cwd=ROOT)  # fmt: skip
    assert bad.returncode == 2 and "argument --out: cannot create folder" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_complexity_benchmark_json():
    command = [sys.executable, str(ROOT / "benchmarks" / "complexity.py"), "--json", "--models",
               "he_fc_snn_nmnist", "he_fc_snn_gesture", "he_rnn_nmnist", "he_lstm_nmnist", "he_scnn_gesture",
               "iir_mlp_mnist"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    costs = json.loads(result.stdout)
    assert {name: cost["params"] for name, cost in costs.items()} == {
        "he_fc_snn_nmnist": 1_189_386, "he_fc_snn_gesture": 1_054_731, "he_rnn_nmnist": 1_977_354,
        "he_lstm_nmnist": 7_894_026, "he_scnn_gesture": 2_322_891, "iir_mlp_mnist": 648_010 + 5_352,
    }  # fmt: skip
    assert costs["iir_mlp_mnist"]["iir_coefficients"] == 5_352
    assert costs["he_lstm_nmnist"]["macs_per_step"] == 4 * ((2312 + 512) * 512 + 1024 * 512) + 512 * 10
    assert costs["he_fc_snn_gesture"]["macs_per_step"] == 0 < costs["he_fc_snn_gesture"]["acs_per_step"]
    assert set(PRESETS) >= set(costs)
    # The weights are seeded per model: a model's ACs (from its spike rates) do not depend on the others listed.
    alone = subprocess.run([*command[:4], "he_scnn_gesture"], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(alone.stdout)["he_scnn_gesture"] == costs["he_scnn_gesture"]


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("timestep_scaling.py", ["--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
        ("timestep_scaling.py", ["--neurons", "1000", "--channels-last", "16"],
         "argument --channels-last: --neurons 1000 is not 16 channels of a square frame"),
        ("peers.py", ["--neurons", "-4"], "argument --neurons: must be at least 1, got -4"),
        ("complexity.py", ["--T", "x"], "argument --T: 'x' is not an integer"),
    ],
)
def test_benchmarks_check_their_sizes_before_running(script, args, message):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                            text=True, cwd=ROOT)  # fmt: skip
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_timestep_scaling_benchmark_times_the_membrane_output(tmp_path):
    """lif_membrane (asked for by name: not a default op) is timed against the reference like lif, and its fused
    rows count the membrane's tensor: one pass more than lif's in the forward and in the backward."""
    command = [sys.executable, str(ROOT / "benchmarks" / "timestep_scaling.py"), "--ops", "lif", "lif_membrane",
               "--T", "2", "--repeats", "1", "--batch", "5", "--neurons", "100000", "--copy-mb", "1", "--out",
               str(tmp_path)]  # fmt: skip
    subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    rows = read_rows(tmp_path / "timestep_scaling_cpu_float32.csv")
    assert {(row["op"], row["impl"]) for row in rows} == {(op, impl) for op in ("lif", "lif_membrane")
                                                          for impl in ("fused", "reference")}  # fmt: skip
    megabytes = {(row["op"], row["phase"]): float(row["fused_bytes_MB"]) for row in rows if row["impl"] == "fused"}
    tensor_mb = 2 * 5 * 100000 * 4 / 1e6  # one [T, batch, neurons] float32 tensor: 4 MB
    for phase, extra in (("fwd", 1), ("bwd", 1), ("fwd_bwd", 2)):
        assert megabytes[("lif_membrane", phase)] == megabytes[("lif", phase)] + extra * tensor_mb > 0
    assert all(float(row["median_ms"]) > 0 and row["speedup_vs_reference"] for row in rows if row["impl"] == "fused")


def test_timestep_scaling_benchmark_times_channels_last_frames(tmp_path):
    """With --channels-last the ops run on channels-last frames, with a third row: the op on a contiguous copy."""
    command = [sys.executable, str(ROOT / "benchmarks" / "timestep_scaling.py"), "--ops", "lif", "iir", "--T", "2",
               "--repeats", "1", "--batch", "3", "--neurons", "48", "--channels-last", "3", "--copy-mb", "1",
               "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    stem = tmp_path / "timestep_scaling_cpu_float32"
    rows = read_rows(stem.with_suffix(".csv"))
    assert {(row["op"], row["impl"]) for row in rows} == {(op, impl) for op in ("lif", "iir")
                                                          for impl in ("fused", "reference", "fused_copied")}
    assert all(row["frame"] == "3x4x4 channels-last" and row["neurons"] == "48" for row in rows)
    assert "ops [T, 3, 3, 4, 4] channels-last" in stem.with_suffix(".md").read_text()


def test_timestep_scaling_benchmark_writes_op_and_layer_rows(tmp_path):
    inputs, hidden = 6, 4
    command = [sys.executable, str(ROOT / "benchmarks" / "timestep_scaling.py"), "--T", "2", "3", "--repeats", "1",
               "--batch", "2", "--neurons", "8", "--inputs", str(inputs), "--hidden", str(hidden), "--copy-mb", "1",
               "--reference-max-T", "2", "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    stem = tmp_path / "timestep_scaling_cpu_float32"
    rows = read_rows(stem.with_suffix(".csv"))
    implementations = {(row["op"], row["impl"]) for row in rows}
    spiking = ("lif", "iir", "snn_layer", "iir_layer")
    assert implementations == {(op, impl) for op in spiking for impl in ("fused", "reference")} | {
        ("rnn", "torch.nn"), ("lstm", "torch.nn")}  # fmt: skip
    for op, impl in implementations:
        timed = {(row["T"], row["phase"]) for row in rows if (row["op"], row["impl"]) == (op, impl)}
        Ts = ("2",) if impl == "reference" else ("2", "3")  # --reference-max-T 2; torch.nn rows always run
        assert timed == {(T, phase) for T in Ts for phase in ("fwd", "bwd", "fwd_bwd")}, (op, impl)
    assert all(float(row["median_ms"]) > 0 for row in rows)
    # ops: bytes and bandwidth, no layer cost; layers: parameters and operations per step (events in: ACs)
    ops = [row for row in rows if row["op"] in ("lif", "iir")]
    assert all(row["GBps"] and not row["params"] for row in ops)
    fused = [row for row in ops if row["impl"] == "fused"]
    assert all(row["fraction_of_copy_bw"] and bool(row["speedup_vs_reference"]) == (row["T"] == "2") for row in fused)
    layers = {row["op"]: row for row in rows if row["op"] not in ("lif", "iir")}
    assert all(not row["GBps"] and row["inputs"] == str(inputs) and row["neurons"] == str(hidden)
               for row in layers.values())  # fmt: skip
    linear, filters = inputs * hidden, 3 * inputs
    assert {op: int(row["params"]) for op, row in layers.items()} == {
        "snn_layer": linear + hidden, "iir_layer": linear + hidden + filters,
        "rnn": (inputs + hidden) * hidden + 2 * hidden, "lstm": 4 * (inputs + hidden) * hidden + 8 * hidden,
    }  # fmt: skip
    assert {op: float(row["macs_per_step"]) for op, row in layers.items()} == {
        "snn_layer": 0, "iir_layer": linear + filters, "rnn": (inputs + hidden) * hidden,
        "lstm": 4 * (inputs + hidden) * hidden,
    }  # fmt: skip
    assert float(layers["snn_layer"]["acs_per_step"]) > 0
    assert "load_average_1_5_15_min" in stem.with_suffix(".md").read_text()
    assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "text, match",
    [
        ("data: [unclosed", r"is not valid YAML: expected ',' or '\]', but got '<stream end>' at line 1, column 16$"),
        ("just a string", "must hold a mapping of sections"),
        ("data: {}\nmodels: {}\n", r"lacks the sections \['training'\]"),
        ("data: {}\ntraining: {}\nmodels: {}\nepochs: 99\n", r"unknown keys \['epochs'\]"),
        ("data: {}\ntraining: {}\nmodels: {snn: {}}\nsmoke: {models: {snn_lf: {}}}\n",
         r"the smoke section's models \['snn_lf'\] are not in its models \['snn'\]"),
        ("data: {}\ntraining: {}\nmodels: {snn: {}}\nsmoke: {models: snn}\n",
         "the smoke section's models must be a mapping of model names, got 'snn'"),
    ],
)
def test_config_file_errors_name_the_problem(tmp_path, text, match):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as refused:
        load_config(path)
    assert "\n" not in str(refused.value)  # the drivers print it as one line


def test_an_empty_training_section_takes_every_default(tmp_path):
    from snn_cuda.experiment import training_config
    from snn_cuda.training import TrainConfig

    path = tmp_path / "config.yaml"
    path.write_text("data: {}\ntraining:\nmodels: {snn: {}}\n")  # was: 'NoneType' object is not iterable
    args = argparse.Namespace(epochs=None, seed=None, device="cpu", amp=None, quiet=True, channels_last=False)
    assert training_config(load_config(path), args) == TrainConfig(progress=False)


def test_config_reads_exponent_notation_as_a_float(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("training: {lr: 1e-3, lr_gamma: 5E-1, weight_decay: 1.0e-4}\nmodels: {name: {spec: '2e3'}}\n")
    config = load_config(path)
    assert config["training"] == {"lr": 1e-3, "lr_gamma": 0.5, "weight_decay": 1e-4}
    assert config["models"] == {"name": {"spec": "2e3"}}  # quoted: still a string


def test_drivers_end_bad_input_with_one_line(tmp_path):
    """From the command line a bad setting ends the run with one line naming it, no traceback; a run refused
    before training leaves a finished run's config.yaml as it was."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("kept\n")
    for args, message in [
        (["--epochs", "0"], "error: epochs must be at least 1, got 0"),
        (["--backend", "cuda", "--device", "cpu"], "error: --backend cuda runs the CUDA kernels: it needs --device"),
        (["--data-root", str(tmp_path / "missing")], f"error: --data-root {tmp_path / 'missing'} is not a folder"),
    ]:
        result = subprocess.run([sys.executable, str(ROOT / "experiments" / "gesture.py"), "--smoke", "--quiet",
                                 "--out", str(out), "--device", "cpu", *args], capture_output=True, text=True,
                                cwd=tmp_path)  # fmt: skip
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert (out / "config.yaml").read_text() == "kept\n"


def test_interrupt_says_how_to_continue():
    def interrupted(argv):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit, match="the same command with --resume continues"):
        run_from_command_line(interrupted)


def test_file_system_errors_end_with_one_line(monkeypatch):
    monkeypatch.delenv("SNN_CUDA_TRACEBACK", raising=False)

    def misplaced(argv):  # a data file given where its folder belongs
        raise NotADirectoryError(20, "Not a directory", "/data/user01_led.aedat/trials_to_train.txt")

    with pytest.raises(SystemExit, match=r"error: .*Not a directory.*user01_led\.aedat/trials_to_train"):
        run_from_command_line(misplaced)


def test_under_torchrun_only_rank_zero_prints_the_error(monkeypatch):
    monkeypatch.delenv("SNN_CUDA_TRACEBACK", raising=False)

    def bad_setting(argv):
        raise ValueError("epochs must be at least 1, got -1")

    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as ended:
        run_from_command_line(bad_setting)
    assert ended.value.code == 1  # a status, no message: rank 0 prints it
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit, match="error: epochs must be at least 1, got -1"):
        run_from_command_line(bad_setting)


def test_materialize_refuses_items_of_different_shapes():
    items = [(torch.zeros(4, 2), 0), (torch.zeros(4, 2), 1), (torch.zeros(3, 2), 2)]
    message = r"framing train: items 0 and 2 have shapes \[4, 2\] and \[3, 2\].*needs frames"
    with pytest.raises(ValueError, match=message):
        materialize(items, desc="framing train", progress=False)


def test_single_process_drivers_refuse_torchrun(monkeypatch):
    refuse_torchrun("temporal_resolution.py")  # one process: nothing to refuse
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="temporal_resolution.py runs in one process"):
        refuse_torchrun("temporal_resolution.py")


def test_results_record_the_software_and_refuse_repeated_models(gesture, tmp_path):
    write_table([{"model": "a", "params": 1}], ("model", "params"), tmp_path, title="t", notes=["n"])
    markdown = (tmp_path / "results.md").read_text()
    assert f"- snn_cuda {snn_cuda.__version__}, torch {torch.__version__}, Python" in markdown
    with pytest.raises(ValueError, match=r"--models: \['snn_lif'\] listed more than once"):
        gesture.main(["--smoke", "--out", str(tmp_path / "run"), "--models", "snn_lif", "rnn_rate", "snn_lif"])


def test_markdown_tables_keep_four_significant_digits():
    row = {"ms": 20.024, "speedup": 3.8, "accuracy": 0.94123, "params": 1189386, "macs": 7301234.7, "gb": math.nan}
    table = markdown_table([row], tuple(row))
    assert table.splitlines()[-1] == "| 20.02 | 3.8 | 0.9412 | 1,189,386 | 7,301,235 | - |"


TWO_MODELS = """
data:
  framing: {frames: 4, dt_ms: 300, downsample: 8}
  synthetic: {users: 3, test_users: 1, lightings: [fluorescent], gesture_ms: 600}
training: {epochs: 1, batch_size: 8, max_batches: 2, loss: mse}
models:
  first: {arch: snn, spec: FC16-FC11}
  second: {arch: snn, spec: FC16-FC11}
"""


def test_refused_run_leaves_a_finished_run_as_it_was(gesture, data_dir, tmp_path, monkeypatch):
    """Every model is built, and on --resume its checkpoint accepted, before any trains: a run refused by its
    second model does not retrain the first over the finished run's checkpoints or rewrite its config.yaml."""
    from snn_cuda.training import CheckpointError

    monkeypatch.setenv("SNN_CUDA_DATA", str(data_dir))
    config, out = tmp_path / "config.yaml", tmp_path / "run"
    config.write_text(TWO_MODELS)
    cpu = ["--quiet", "--device", "cpu", "--out", str(out), "--config", str(config)]
    rows = gesture.main(cpu)
    record = {path: path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()}
    assert out / "first" / "last.pt" in record and out / "config.yaml" in record
    # a run's record serves as --config again (it leaves out the command line's device, amp and progress)
    again = gesture.main(["--quiet", "--device", "cpu", "--out", str(tmp_path / "again"), "--config",
                          str(out / "config.yaml")])  # fmt: skip
    assert [row["test_accuracy"] for row in again] == [row["test_accuracy"] for row in rows]

    elsewhere = tmp_path / "other_data"
    elsewhere.mkdir()
    for change, extra, error, message in [
        (("second: {arch: snn, spec: FC16-FC11}", "second: {arch: snn, spec: FC16-FC11, tau_x: 3}"), [],
         ValueError, r"model second: config for arch 'snn' has unknown keys \['tau_x'\]"),
        (("second: {arch: snn, spec: FC16-FC11}", "second: {arch: snn, spec: FC8-FC11}"), ["--resume"],
         CheckpointError, "cannot resume from .*second.*model spec: 'FC16-FC11' -> 'FC8-FC11'"),
        (("second: {arch: snn, spec: FC16-FC11}", "second: {arch: snn, spec: FC16-FC11, data: {dev_fracton: 0.5}}"),
         [], ValueError, r"model second: data has unknown keys \['dev_fracton'\]"),
        (("loss: mse}", "loss: mse, device: cuda}"), [], ValueError,
         r"training \['device'\] are set on the command line \(--device\)"),
        (("loss: mse}", "loss: mse, epoch: 3}"), [], ValueError,  # the accepted keys are the config's, not --amp's
         r"training config has unknown keys \['epoch'\]; accepted: \['batch_size', 'epochs', 'loss', 'lr', "
         r"'lr_gamma', 'lr_step_epochs', 'max_batches', 'seed', 'weight_decay'\]$"),
        (("", ""), ["--resume", "--data-root", str(elsewhere)], CheckpointError,
         f"cannot resume .*data_root: None -> '{elsewhere}'"),
    ]:  # fmt: skip
        config.write_text(TWO_MODELS.replace(*change))
        with pytest.raises(error, match=message):
            gesture.main(cpu + extra)
        assert {path: path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()} == record, message


def test_test_reads_the_data_a_checkpoint_was_trained_on(gesture, data_dir, tmp_path, monkeypatch, capsys):
    """--test refuses a checkpoint of another driver, and without --data-root tests on the data folder the
    checkpoint was trained on (the synthetic set when none)."""
    from snn_cuda.training import CheckpointError

    monkeypatch.setenv("SNN_CUDA_DATA", str(data_dir))
    config, out = tmp_path / "config.yaml", tmp_path / "run"
    config.write_text(TWO_MODELS)
    root = str(snn_cuda.data.synthetic_gesture(users=3, test_users=1, lightings=["fluorescent"], gesture_ms=600,
                                               progress=False))  # fmt: skip
    cpu = ["--quiet", "--device", "cpu"]
    rows = gesture.main(cpu + ["--out", str(out), "--config", str(config), "--models", "first", "--data-root", root])
    checkpoint = out / "first" / "best.pt"
    capsys.readouterr()
    assert gesture.main(cpu + ["--test", str(checkpoint)])["accuracy"] == pytest.approx(rows[0]["test_accuracy"])
    assert f"testing on {root}, the data the checkpoint was trained on" in capsys.readouterr().out

    moved = torch.load(checkpoint, weights_only=False)
    moved["metadata"]["data_root"] = str(tmp_path / "gone")
    torch.save(moved, tmp_path / "moved.pt")
    with pytest.raises(FileNotFoundError, match=f"trained on data in {tmp_path / 'gone'}, not a folder here"):
        gesture.main(cpu + ["--test", str(tmp_path / "moved.pt")])
    moved["metadata"] = {}
    torch.save(moved, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="records no data settings: it was not written by an experiment driver"):
        gesture.main(cpu + ["--test", str(tmp_path / "plain.pt")])
    nmnist = load_script(ROOT / "experiments" / "nmnist.py")
    with pytest.raises(CheckpointError, match="written by experiments/gesture.py, not nmnist.py"):
        nmnist.main(cpu + ["--test", str(checkpoint)])


def test_config_shape_errors_name_the_file_and_section(tmp_path):
    path = tmp_path / "config.yaml"
    for text, message in [
        ("training: {}\nmodels: {}\nsmoke: 5\n", "section 'smoke' must be a mapping, got 5"),
        ("training: {}\nmodels: {a: null}\n", "model 'a' must be a mapping of its settings"),
        ("training: {}\nmodels: {a: {arch: snn, data: poisson}}\n", "model 'a' must be a mapping"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=f"config file {path}: {message}"):
            load_config(path)
    from snn_cuda.experiment import selected_models

    with pytest.raises(ConfigError, match="the config lists no model"):
        selected_models({"models": {}}, argparse.Namespace(models=None, config="empty.yaml"))
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigError, match=f"config file {path} is not valid YAML"):
        load_config(path)
    with pytest.raises(FileNotFoundError, match=f"config file {tmp_path} is a folder"):
        load_config(tmp_path)
