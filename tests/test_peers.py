"""The peer comparison (benchmarks/peers.py): each peer library computes exactly the LIF equation snn_cuda is timed
on (equal spikes, close gradients, float64 and float32), what a peer cannot state is refused with a reason, and
the benchmark runs end to end at tiny sizes with whatever peers are installed (snn_cuda rows at least).

A peer that is not installed skips its tests (``make peers`` installs the pinned versions)."""

from __future__ import annotations

import csv
import dataclasses
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import peer_neurons  # noqa: E402
import peers  # noqa: E402

CPU = torch.device("cpu")
TABLE = peers.equations(alpha=0.5, theta=1.0, synapse_decay=0.75)
PEER_IMPLEMENTATIONS = [
    pytest.param(impl, setting, id=f"{impl.label}-{setting}")
    for setting in peers.SETTINGS
    for impl in peers.implementations(setting, list(peers.PEERS), CPU)
    if impl.library != "spikingjelly-synapsefilter"
]


def require(library: str) -> None:
    pytest.importorskip(peer_neurons.PEER_MODULES[library], reason=f"{library} is not importable (make peers)",
                        exc_type=ImportError)


@pytest.mark.parametrize(("impl", "setting"), PEER_IMPLEMENTATIONS)
def test_peer_computes_the_same_equation(impl, setting):
    require(impl.library)
    summary = peers.check_equivalence(impl, setting, TABLE[setting][impl.library], CPU, torch.float32)
    print(f"{impl.label} {setting}: {summary}")
    assert "float64 spikes equal" in summary and "float32 spikes equal" in summary


def test_spikingjelly_synapse_filter_is_reported_as_different():
    """SynapseFilter skips its decay on input, so it is timed but never called equal: check that claim holds."""
    require("spikingjelly")
    equation = TABLE["synapse"]["spikingjelly-synapsefilter"]
    filtered = peer_neurons.build("spikingjelly-synapsefilter", equation)
    assert filtered.differs
    impl = peers.Implementation("spikingjelly-synapsefilter", "spikingjelly-synapsefilter", "torch")
    with pytest.raises(AssertionError):
        peers.check_equivalence(impl, "synapse", equation, CPU, torch.float32)


@pytest.mark.parametrize(("library", "change", "reason"), [
    ("snntorch", dict(reset="soft"), "resets are"),
    ("snntorch", dict(detach_reset=False), "always detached"),
    ("snntorch", dict(input_gain=0.5), "gain 1"),
    ("spikingjelly", dict(alpha=0.0), "tau > 1"),
    ("spikingjelly", dict(surrogate="gaussian", surrogate_param=0.4), "no surrogate"),
    ("norse", dict(), "input gain is 1 - alpha"),
    ("norse", dict(input_gain=0.5), "not detached"),
])  # fmt: skip
def test_what_a_peer_cannot_state_is_refused(library, change, reason):
    require(library)
    with pytest.raises(peer_neurons.NotExpressible, match=reason):
        peer_neurons.build(library, dataclasses.replace(peer_neurons.LifSetting(), **change))


def run_benchmark(tmp_path: Path, *peer_args: str) -> list[dict]:
    peers.main(["--T", "3", "--batch", "2", "--neurons", "16", "--linear-neurons", "8", "--linear-T", "4",
                "--linear-batch", "2", "--repeats", "1", "--linear-repeats", "1", "--warmup", "1",
                "--out", str(tmp_path), *peer_args])  # fmt: skip
    for suffix in (".csv", ".md", ".png"):
        assert (tmp_path / f"peers_cpu{suffix}").stat().st_size > 0
    with open(tmp_path / "peers_cpu.csv") as file:
        return list(csv.DictReader(file))


def test_benchmark_smoke_with_installed_peers(tmp_path):
    rows = run_benchmark(tmp_path)
    for setting in peers.SETTINGS:
        libraries = {row["library"] for row in rows if row["setting"] == setting}
        expected = {"snn_cuda"} | {impl.label for impl in peers.implementations(setting, list(peers.PEERS), CPU)
                                   if peer_neurons.unavailable(impl.library) is None}  # fmt: skip
        assert libraries == expected
    for row in rows:
        assert float(row["fwd_bwd_ms"]) > 0 and float(row["peak_MB"]) >= 0
        assert (row["library"] == "snn_cuda") == (row["speedup_fwd_bwd"] == "")


def test_benchmark_smoke_without_peers(tmp_path):
    rows = run_benchmark(tmp_path, "--peers", "--settings", "neuron", "synapse")
    assert {row["library"] for row in rows} == {"snn_cuda"}
    assert {row["setting"] for row in rows} == {"neuron", "synapse"}


def load_end_to_end():
    spec = importlib.util.spec_from_file_location("peers_end_to_end", ROOT / "benchmarks" / "peers_end_to_end.py")
    end_to_end = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(end_to_end)
    return end_to_end


@pytest.mark.parametrize("layout", [[], ["--channels-last"]])
def test_end_to_end_smoke(tmp_path, monkeypatch, layout):
    """One epoch of the He SCNN on the smoke data: every installed peer trains to the same loss as snn_cuda, with
    the conv weights and frames in the default layout and channels-last."""
    monkeypatch.setenv("SNN_CUDA_DATA", str(tmp_path / "data"))
    end_to_end = load_end_to_end()
    rows = end_to_end.main(["--smoke", "--quiet", "--max-samples", "8", "--out", str(tmp_path), *layout])
    expected = ["snn_cuda"] + [name for name in end_to_end.LIBRARIES[1:] if peer_neurons.unavailable(name) is None]
    assert [row["library"] for row in rows] == expected
    for row in rows:
        assert float(row["final_loss"]) == pytest.approx(float(rows[0]["final_loss"]), abs=1e-5)
        assert float(row["epoch_s"]) > 0
        # the ratio of the times measured (epoch_s is rounded to 0.01 s, too coarse for a ratio of short epochs)
        throughput_ratio = float(rows[0]["samples_per_s"]) / float(row["samples_per_s"])
        assert float(row["speedup"]) == pytest.approx(throughput_ratio, rel=0.02, abs=0.006)
    assert (tmp_path / "peers_end_to_end_cpu.md").stat().st_size > 0


def test_a_partial_comparison_is_not_written_over_the_committed_one(monkeypatch):
    """Without --out, a run missing a peer, or naming none, stops before timing rather than replace
    results/peers_cpu.*."""
    monkeypatch.setattr(peers, "measure", lambda *args: pytest.fail("timed despite the guard"))
    with pytest.raises(SystemExit, match="no peer to compare with; snn_cuda alone is not written over"):
        peers.main(["--settings", "neuron", "--T", "3", "--peers"])
    monkeypatch.setattr(peers, "unavailable", lambda peer: f"No module named {peer!r}")
    with pytest.raises(SystemExit, match=r"'snntorch', 'spikingjelly'\] not installed .* not written over"):
        peers.main(["--settings", "neuron", "--T", "3"])
    # every peer there, but not the documented run (the docstring's example once replaced the committed tables)
    monkeypatch.setattr(peers, "unavailable", lambda peer: None)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0")
    with pytest.raises(SystemExit, match="--settings, --T, --neurons, --repeats changed from the documented run"):
        peers.main(["--settings", "neuron", "--T", "8", "--neurons", "256", "--repeats", "2"])

    class PastTheGuard(Exception):
        pass

    def stop(*args):
        raise PastTheGuard

    monkeypatch.setattr(peers, "implementations", stop)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)  # --threads must not outlive the test
    with pytest.raises(PastTheGuard):  # the documented run, in another dtype, with fewer threads, goes on
        peers.main(["--dtype", "bfloat16", "--threads", "1", "--settings", "synapse", "linear", "neuron",
                    "--neurons", "4096"])  # fmt: skip
    with pytest.raises(SystemExit, match="--peers changed from the documented run"):  # a subset of the peers
        peers.main(["--peers", "snntorch"])


def test_benchmark_flags_are_checked_before_anything_runs(capsys):
    for flag, value in (("--alpha", "1.5"), ("--theta", "nan"), ("--warmup", "-3"), ("--synapse-decay", "-0.1")):
        with pytest.raises(SystemExit) as ended:
            peers.parse_args([flag, value])
        assert ended.value.code == 2 and f"argument {flag}" in capsys.readouterr().err
    end_to_end = load_end_to_end()
    with pytest.raises(SystemExit):
        end_to_end.parse_args(["--smoke", "--lr", "0"])
    assert "argument --lr: must lie in (0.0, 1.0]" in capsys.readouterr().err


def test_a_partial_end_to_end_comparison_is_not_written_over_the_committed_one(tmp_path, monkeypatch):
    """The same for peers_end_to_end.py: a missing library, --smoke and --channels-last stop it before the data
    is framed, without --out only."""
    monkeypatch.setenv("SNN_CUDA_DATA", str(tmp_path / "data"))
    end_to_end = load_end_to_end()
    results = end_to_end.RESULTS
    monkeypatch.setattr(end_to_end, "RESULTS", tmp_path / "committed")  # so a failing guard writes nothing real
    monkeypatch.setattr(end_to_end, "load_gesture_script", lambda: pytest.fail("framed the data despite the guard"))
    monkeypatch.setattr(end_to_end, "unavailable", lambda name: f"No module named {name!r}" if name == "snntorch"
                        else None)  # fmt: skip
    monkeypatch.setattr(end_to_end, "train_epoch", lambda *args: pytest.fail("trained despite the guard"))
    with pytest.raises(SystemExit, match=r"\['snntorch'\] skipped .* not written over"):
        end_to_end.main(["--smoke", "--quiet", "--max-samples", "2"])
    monkeypatch.setattr(end_to_end, "unavailable", lambda name: None)
    with pytest.raises(SystemExit, match="--smoke times a few samples, not written over the committed results"):
        end_to_end.main(["--smoke", "--quiet", "--max-samples", "2", "--libraries", "snn_cuda"])
    with pytest.raises(SystemExit, match="--channels-last times another layout, not written over the committed"):
        end_to_end.main(["--quiet", "--max-samples", "2", "--libraries", "snn_cuda", "--channels-last"])
    assert not (tmp_path / "committed").exists() and results.is_dir()
