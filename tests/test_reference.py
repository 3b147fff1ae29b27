"""The reference's own cost: its backward is linear in T (the ops' speedups are measured against it, and it is the
fallback where no kernel runs). Its values are checked against hand-worked cases in test_lif.py / test_iir.py."""

from __future__ import annotations

import pytest
import torch

from snn_cuda import reference


def graph_node_names(output: torch.Tensor) -> list[str]:
    """The names of the autograd nodes ``output`` depends on, each node once."""
    names, seen, stack = [], set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


REFERENCES = {
    "lif": lambda x: reference.lif(x, alpha=0.5, theta=0.2, gamma=0.5),
    "iir": lambda x: reference.iir_filter(x, 0.9, -0.2, 1.0),
}


@pytest.mark.parametrize("op", sorted(REFERENCES))
def test_input_is_split_once_not_indexed_per_step(op):
    # x[t] would add one SelectBackward node per step, whose gradient is a zero-filled [T, *S] tensor: a backward
    # quadratic in T. x.unbind(0) adds one node whose backward stacks the T step gradients.
    T = 9
    x = torch.rand(T, 3, 4, dtype=torch.float64, requires_grad=True)
    names = graph_node_names(REFERENCES[op](x))
    assert not [name for name in names if "Select" in name], names
    assert names.count("UnbindBackward0") == 1, names

