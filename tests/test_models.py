"""Model builders: exact parameter counts of models.md section 4, output shapes, the layer-spec notation, the
seeds' neuron and synapse settings, and the per-step cost counting of models.md section 5."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import snn_cuda
from snn_cuda.complexity import measure_cost, saved_for_backward_bytes
from snn_cuda.models import PRESETS, StackedRecurrent, apply_readout, build_model, count_parameters, parse_spec
from snn_cuda.models.spec import Conv, Dense, Dropout, Pool

IIR_COEFFICIENTS = ("a1", "a2", "b")

# models.md section 4, computed from the seeds' code shapes: (weights and biases, IIR coefficients)
SEED_COUNTS = {
    "he_fc_snn_nmnist": (1_189_386, 0),
    "he_fc_snn_gesture": (1_054_731, 0),
    "he_rnn_nmnist": (1_977_354, 0),
    "he_lstm_nmnist": (7_894_026, 0),
    "he_scnn_gesture": (2_322_891, 0),
    "iir_mlp_mnist": (648_010, 5_352),
}


def split_counts(model: nn.Module) -> tuple[int, int]:
    iir = sum(p.numel() for k, p in model.named_parameters() if k.rsplit(".", 1)[-1] in IIR_COEFFICIENTS)
    return count_parameters(model) - iir, iir


@pytest.mark.parametrize("name", sorted(SEED_COUNTS))
def test_seed_parameter_counts(name):
    assert split_counts(build_model(name)) == SEED_COUNTS[name]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_map_time_major_input_to_per_step_outputs(name, gen):
    model = build_model(name, backend="cpp") if PRESETS[name]["arch"] != "rnn" else build_model(name)
    classes = int(PRESETS[name]["spec"].rsplit("FC", 1)[1])
    x = (torch.rand(3, 2, *model.input_shape, generator=gen) < 0.2).float()
    with torch.no_grad():
        y = model(x)
    assert y.shape == (3, 2, classes)
    if PRESETS[name]["arch"] == "snn" or (PRESETS[name]["arch"] == "iir" and not PRESETS[name].get("output_filter")):
        assert set(y.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ["he_fc_snn_nmnist", "iir_mlp_mnist"])
def test_spiking_presets_compile_whole_with_dynamic_shapes(name):
    """A spiking preset compiles as one graph with symbolic shapes (its neurons' surrogate parameters among the
    symbolic numbers) and runs as eagerly on two batch sizes (in eval mode: no dropout masks to compare)."""
    model = build_model(name, backend="cpp").eval()
    compiled = torch.compile(model, backend="aot_eager", dynamic=True, fullgraph=True)
    for batch in (2, 3):
        x = (torch.rand(4, batch, *model.input_shape) < 0.2).float()
        assert torch.equal(compiled(x), model(x))


def test_wrong_input_shape_is_named():
    model = build_model("he_fc_snn_gesture")
    with pytest.raises(ValueError, match=r"x must have shape \[T, B, 2, 32, 32\]"):
        model(torch.zeros(2, 3, 2, 34, 34))


def test_spec_notation():
    assert parse_spec("64C7s3p1-MP2p1-AP2-D0.3-FC11") == [
        Conv(64, 7, 3, 1), Pool("max", 2, 1), Pool("avg", 2), Dropout(0.3), Dense(11),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="cannot read token 'X3'"):
        parse_spec("FC10-X3-FC2")
    with pytest.raises(ValueError, match="must end with the output layer"):
        parse_spec("FC10-D0.5")
    with pytest.raises(ValueError, match="dropout probability"):
        parse_spec("D1.5-FC2")
    with pytest.raises(ValueError, match="sizes must be positive"):
        parse_spec("0C3-FC2")
    with pytest.raises(ValueError, match="needs frames of shape"):
        build_model(dict(arch="snn", input_shape=[10], spec="4C3-FC2"))


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown model preset 'nope'"):
        build_model("nope")
    with pytest.raises(ValueError, match="'arch' must be one of"):
        build_model(dict(arch="gru", input_shape=[4], spec="FC2"))
    with pytest.raises(ValueError, match=r"unknown keys \['hidden'\]"):
        build_model(dict(arch="snn", input_shape=[4], spec="FC2", hidden=3))
    with pytest.raises(ValueError, match="readout must be one of"):
        build_model(dict(arch="snn", input_shape=[4], spec="FC2", readout="max"))
    with pytest.raises(ValueError, match="cell must be one of"):
        build_model(dict(arch="rnn", input_shape=[4], spec="FC2", cell="gru"))
    with pytest.raises(ValueError, match="needs input_shape"):
        build_model(dict(arch="snn", spec="FC2"))
    with pytest.raises(TypeError, match=r"input_shape must be a tuple of positive ints, such as \[784\]"):
        build_model(dict(arch="snn", spec="FC2", input_shape=784))


def test_config_round_trip_rebuilds_the_same_architecture():
    model = build_model("he_scnn_gesture", backend="torch")
    rebuilt = build_model(model.config)
    assert rebuilt.config == model.config
    assert [tuple(p.shape) for p in rebuilt.parameters()] == [tuple(p.shape) for p in model.parameters()]


def test_he_neurons_follow_the_seed():
    mlp, cnn = build_model("he_fc_snn_gesture", backend="torch"), build_model("he_scnn_gesture")
    for model, width in ((mlp, 0.5), (cnn, 1.0)):
        neurons = [m for m in model.modules() if isinstance(m, snn_cuda.LIF)]
        assert len(neurons) == sum(1 for t in parse_spec(model.config["spec"]) if not isinstance(t, Dropout))
        for neuron in neurons:
            assert neuron.alpha.item() == pytest.approx(0.3) and neuron.theta.item() == pytest.approx(0.3)
            assert neuron.options["reset"] == "hard" and neuron.options["v_reset"] == 0.0
            assert neuron.options["surrogate"] == "rectangular" and neuron.options["surrogate_param"] == width
    assert mlp.layers[1].options["backend"] == "torch"


def test_he_scnn_drops_spikes_where_the_seed_does():
    # scnn_gesture.py: F.dropout(p=0.5) on the conv0 spikes, the pool-1 spikes, the flattened pool-2 spikes and
    # the fc1 spikes; not in the fully connected SNN
    kinds = [type(m).__name__ for m in build_model("he_scnn_gesture", backend="torch").layers]
    after = [kinds[i - 1] for i, kind in enumerate(kinds) if kind == "Dropout"]
    assert after == ["LIF"] * 4
    convs, dropouts = [i for i, k in enumerate(kinds) if k == "OverTime"], [i for i, k in enumerate(kinds) if
                                                                           k == "Dropout"]  # fmt: skip
    assert [sum(c < d for c in convs) for d in dropouts] == [1, 3, 5, 6]  # after conv0, pool1, pool2, fc1
    model = build_model("he_scnn_gesture", backend="torch")
    assert all(m.p == 0.5 for m in model.modules() if isinstance(m, nn.Dropout))
    assert not any(isinstance(m, nn.Dropout) for m in build_model("he_fc_snn_gesture", backend="torch").modules())


def test_he_pooling_layer_is_lif_on_avg_pooled_spikes(gen):
    model = build_model(dict(arch="snn", input_shape=[1, 4, 4], spec="AP2-FC3"), backend="torch")
    x = (torch.rand(5, 2, 1, 4, 4, generator=gen) < 0.5).float()
    pooled = nn.functional.avg_pool2d(x.flatten(0, 1), 2).unflatten(0, (5, 2))
    expected = snn_cuda.lif(pooled, alpha=0.3, theta=0.3, surrogate="rectangular", surrogate_param=0.5,
                            backend="torch")  # fmt: skip
    torch.testing.assert_close(model.layers[:2](x), expected)


def test_recurrent_layers_of_one_size_share_one_cudnn_module():
    model = build_model("he_lstm_nmnist")
    stacks = [m for m in model.modules() if isinstance(m, StackedRecurrent)]
    assert len(stacks) == 1
    lstm = stacks[0].recurrent
    assert isinstance(lstm, nn.LSTM) and lstm.num_layers == 2 and lstm.hidden_size == 512 and not lstm.batch_first
    assert lstm.input_size == 2 * 34 * 34


def test_recurrent_net_matches_torch_rnn_over_time(gen):
    model = build_model(dict(arch="rnn", cell="rnn", input_shape=[6], spec="FC5-FC5-FC3", readout="rate"))
    x = torch.randn(7, 2, 6, generator=gen)
    rnn, readout = model.layers[0].recurrent, model.layers[1].module
    h = torch.zeros(2, 2, 5)
    expected = []
    for step in x:  # the Elman recurrence written out, time-major
        h0 = torch.tanh(step @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h[0] @ rnn.weight_hh_l0.T + rnn.bias_hh_l0)
        h1 = torch.tanh(h0 @ rnn.weight_ih_l1.T + rnn.bias_ih_l1 + h[1] @ rnn.weight_hh_l1.T + rnn.bias_hh_l1)
        h = torch.stack([h0, h1])
        expected.append(readout(h1))
    torch.testing.assert_close(model(x), torch.stack(expected))


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_conv_recurrent_is_causal(cell, gen):
    model = build_model(dict(arch="rnn", cell=cell, input_shape=[2, 6, 6], spec="3C3p1-AP2-FC4-FC5"))
    x = torch.randn(5, 2, 2, 6, 6, generator=gen)
    changed = x.clone()
    changed[3:] += 1.0
    with torch.no_grad():
        y, y_changed = model(x), model(changed)
    torch.testing.assert_close(y[:3], y_changed[:3])
    assert not torch.allclose(y[3:], y_changed[3:])
    with pytest.raises(ValueError, match="odd kernel"):
        build_model(dict(arch="rnn", cell=cell, input_shape=[2, 6, 6], spec="3C2-FC5"))


def test_iir_pooling_filters_then_pools_and_the_next_layer_filters_again():
    # snn-iir's snn_conv_1_mnist.py: axon4 (64x28x28) -> pool4 -> axon5 (64x14x14) -> conv5 -> neuron
    model = build_model("iir_cnn_mnist", backend="torch")
    stages = [m for m in model.layers if isinstance(m, (snn_cuda.IIRLayer, snn_cuda.IIRPooling))]
    assert [type(m).__name__ for m in stages] == ["IIRLayer"] * 3 + ["IIRPooling", "IIRLayer", "IIRPooling"] + [
        "IIRLayer"] * 2  # fmt: skip
    shapes = [tuple(m.synapse.a1.shape) for m in stages]
    assert shapes == [(1, 28, 28), (32, 28, 28), (32, 28, 28), (64, 28, 28), (64, 14, 14), (64, 14, 14),
                      (64, 7, 7), (512,)]  # fmt: skip
    assert isinstance(stages[3].pool.module, nn.MaxPool2d) and not hasattr(stages[3], "neuron")
    coefficients = sum(p.numel() for m in model.modules() if isinstance(m, snn_cuda.IIRSynapse)
                       for p in m.parameters())  # fmt: skip
    assert coefficients == 3 * 129_872  # the seed's eight dual_exp_iir_layers: 389,616 coefficients
    a1, a2, b = snn_cuda.dual_exp(4.0, 1.0)
    assert stages[0].synapse.a1[0, 0, 0].item() == pytest.approx(a1)
    assert stages[0].synapse.a2[0, 0, 0].item() == pytest.approx(a2)
    assert stages[0].synapse.b[0, 0, 0].item() == pytest.approx(b)


def test_iir_pooling_stage_by_hand():
    # One channel, 2x2 -> 1x1 average: the stage is the filter of each position, then the mean of the four.
    model = build_model(dict(arch="iir", input_shape=[1, 2, 2], spec="AP2-FC1"), backend="torch")
    pooling, dense = model.layers
    x = torch.rand(6, 3, 1, 2, 2, dtype=torch.float64)
    filtered = snn_cuda.reference.iir_filter(x, *[c.double() for c in (pooling.synapse.a1, pooling.synapse.a2,
                                                                       pooling.synapse.b)])  # fmt: skip
    pooling.double()
    torch.testing.assert_close(pooling(x), filtered.mean(dim=(-2, -1), keepdim=True))
    assert tuple(dense.synapse.a1.shape) == (1, 1, 1)
    # A dropout may follow a pooling: it drops pooled, filtered values, which the next layer filters.
    with_dropout = build_model(dict(arch="iir", input_shape=[1, 4, 4], spec="MP2-D0.5-FC10"), backend="torch")
    assert [type(m).__name__ for m in with_dropout.layers] == ["IIRPooling", "Dropout", "IIRLayer"]


def test_associative_memory_output_filter_is_fixed():
    model = build_model("iir_associative_memory", backend="torch")
    output_filter = model.layers[-1]
    assert isinstance(output_filter, snn_cuda.IIRSynapse) and not list(output_filter.parameters())
    a1, a2, b = snn_cuda.normalised_dual_exp(8.0, 2.0)
    assert output_filter.b[0].item() == pytest.approx(b)
    assert model.readout == "none"


def test_readouts_by_hand():
    outputs = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]], [[1.0, 1.0]]])  # [T=3, B=1, C=2]
    torch.testing.assert_close(apply_readout(outputs, "rate"), torch.tensor([[2 / 3, 1 / 3]]))
    torch.testing.assert_close(apply_readout(outputs, "count"), torch.tensor([[2.0, 1.0]]))
    torch.testing.assert_close(apply_readout(outputs, "last"), torch.tensor([[1.0, 1.0]]))
    assert apply_readout(outputs, "none") is outputs
    with pytest.raises(ValueError, match="readout must be one of"):
        apply_readout(outputs, "max")


def test_cost_of_he_snn_counts_accumulates_from_measured_rates(gen):
    model = build_model(dict(arch="snn", input_shape=[20], spec="FC8-FC3"), backend="torch")
    x = (torch.rand(6, 4, 20, generator=gen) < 0.3).float()
    hidden = model.layers[:2](x)
    cost = measure_cost(model, x)
    rate_in, rate_hidden = x.mean().item(), hidden.mean().item()
    assert cost.macs == 0
    assert cost.acs == pytest.approx(20 * 8 * rate_in + 8 * 3 * rate_hidden)
    assert cost.other_ops == 2 * (8 + 3)  # one multiply and one compare per neuron
    assert cost.input_rates == pytest.approx({"layers.0.module": rate_in, "layers.2.module": rate_hidden})


def test_cost_of_rnn_lstm_and_iir_follows_models_md():
    x = torch.ones(3, 2, 10)
    F, H, C = 10, 6, 4
    for cell, gates, other in (("rnn", 1, H), ("lstm", 4, 8 * H)):
        model = build_model(dict(arch="rnn", cell=cell, input_shape=[F], spec=f"FC{H}-FC{H}-FC{C}"))
        cost = measure_cost(model, x)
        assert cost.macs == gates * ((F + H) * H + (H + H) * H) + H * C
        assert cost.acs == 0 and cost.other_ops == 2 * other
    model = build_model(dict(arch="iir", input_shape=[F], spec=f"FC{H}-FC{C}"), backend="torch")
    cost = measure_cost(model, x)
    assert cost.macs == F * H + H * C + 3 * (F + H)
    assert cost.other_ops == 2 * (H + C)


def test_cost_of_convolutional_rnn_and_lstm_counts_their_nonlinearities():
    x = torch.ones(3, 2, 2, 6, 6)
    hidden = 4 * 6 * 6  # 4 channels of 6x6: "4C3p1" keeps the size
    for cell, gates, other in (("rnn", 1, hidden), ("lstm", 4, 8 * hidden)):
        model = build_model(dict(arch="rnn", cell=cell, input_shape=[2, 6, 6], spec="4C3p1-FC3"))
        cost = measure_cost(model, x)
        # input convolution (3x3 over 2 channels) and hidden convolution (3x3 over 4) per gate and hidden element
        assert cost.macs == gates * hidden * (2 * 9 + 4 * 9) + hidden * 3
        assert cost.acs == 0 and cost.other_ops == other


def test_saved_for_backward_grows_with_T():
    model = build_model(dict(arch="snn", input_shape=[16], spec="FC32-FC4"), backend="cpp")
    small, large = (saved_for_backward_bytes(model, torch.rand(T, 2, 16)) for T in (4, 8))
    assert 0 < small < large


@pytest.mark.parametrize(
    "config, error, match",
    [
        (dict(arch="snn", input_shape=[2, 8, 8], spec="4C3-AP8-FC3"), ValueError,
         r"AvgPool2d.*cannot take frames of shape \[4, 6, 6\]"),
        (dict(arch="snn", input_shape=[2, 8, 8], spec="MP2p2-FC3"), ValueError, "pad should be at most half"),
        (dict(arch="rnn", input_shape=[2, 8, 8], spec="4C9-FC3"), ValueError,
         r"cannot take frames of shape \[2, 8, 8\]"),
        (dict(arch="iir", input_shape=[2, 8, 8], spec="4C3s4-AP4-FC3"), ValueError, "cannot take frames"),
        (dict(arch="iir", input_shape=[4], spec="FC4-AP2-FC3"), ValueError, r"needs frames of shape \[C, H, W\]"),
        (dict(arch="snn", input_shape=[], spec="FC3"), ValueError, "input_shape must have at least one dimension"),
        (dict(arch="iir", input_shape=[4], spec="FC3", output_filter="no"), TypeError,
         "output_filter must be True or False"),
    ],
)  # fmt: skip
def test_specs_that_do_not_fit_the_input_name_the_layer(config, error, match):
    """Kernels, strides or poolings that leave nothing of the frame fail with the library's error naming the layer,
    not torch's from inside a forward pass."""
    with pytest.raises(error, match=match):
        build_model(config)
