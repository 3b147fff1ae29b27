"""The README's Python examples run as written, in order in one namespace (as a reader would paste them), and
what their comments promise holds: shapes, spikes exactly 0 or 1, the SCNN's parameter count."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from snn_cuda.models import count_parameters

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.fixture(scope="module")
def namespace() -> dict:
    blocks = python_blocks()
    assert len(blocks) >= 3, "README.md lost its Python examples (the neuron, the filter, the models)"
    # The one name the examples use without defining it: "frames [T, B, 2, 32, 32]".
    namespace = {"frames": (torch.rand(3, 2, 2, 32, 32) < 0.2).float()}
    for number, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {number}", "exec"), namespace)  # noqa: S102
    return namespace


def test_neuron_example(namespace):
    x, spikes = namespace["x"], namespace["spikes"]
    assert spikes.shape == x.shape == (64, 32, 512)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert namespace["v_last"].shape == (32, 512)
    spikes.sum().backward()
    assert namespace["alpha"].grad.shape == (512,)
    # the readout: a membrane sequence, and a module that returns it with the spikes
    assert namespace["v"].shape == x.shape
    spikes_out, v_out = namespace["readout"](x)
    assert not spikes_out.any() and torch.equal(v_out, namespace["v"])


def test_filter_example(namespace):
    p, p_last = namespace["p"], namespace["p_last"]
    assert p.shape == (64, 32, 512) and p_last.shape == (32, 512)
    p.sum().backward()
    assert namespace["a1"].grad.shape == (512,)


def test_models_example(namespace):
    comment = re.search(r'build_model\("he_scnn_gesture".*?([\d,]+) params', README.read_text())
    assert comment, "the README's SCNN line no longer states its parameter count"
    assert count_parameters(namespace["snn"]) == int(comment.group(1).replace(",", ""))
    assert namespace["outputs"].shape == (3, 2, 11)
