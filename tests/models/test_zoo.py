"""The zoo: initialisation statistics, forward passes against hand-written loops, specs and errors."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_probe.errors import ProbeError
from landscape_probe.models.blocks import init_linear_weight
from landscape_probe.models.zoo import MLP, build_model, complete_model_args, parse_zoo_spec

DIGITS_LIKE = SimpleNamespace(input_shape=(64,), num_outputs=10)
MNIST1D_LIKE = SimpleNamespace(input_shape=(40,), num_outputs=10)


@pytest.mark.parametrize(
    ("init", "activation", "expected_std"),
    [
        ("lecun", "relu", 1 / math.sqrt(1000)),
        ("xavier", "relu", math.sqrt(2 / (1000 + 500))),
        ("kaiming", "relu", math.sqrt(2 / 1000)),
        ("kaiming", "tanh", (5 / 3) / math.sqrt(1000)),
    ],
)
def test_gaussian_inits_have_the_stated_std(init: str, activation: str, expected_std: float) -> None:
    torch.manual_seed(0)
    weight = torch.empty(500, 1000)
    init_linear_weight(weight, init, activation)
    assert abs(weight.mean().item()) < 0.01 * expected_std
    assert weight.std().item() == pytest.approx(expected_std, rel=0.01)


def test_lecun_on_a_conv_kernel_uses_channels_times_kernel_as_fan_in() -> None:
    torch.manual_seed(0)
    kernel = torch.empty(256, 64, 3, 3)
    init_linear_weight(kernel, "lecun")
    assert kernel.std().item() == pytest.approx(1 / math.sqrt(64 * 9), rel=0.01)


@pytest.mark.parametrize(("activation", "gain_squared"), [("relu", 2.0), ("tanh", 25 / 9), ("gelu", 1.0)])
def test_orthogonal_rows_are_orthogonal_with_the_activation_gain(activation: str, gain_squared: float) -> None:
    torch.manual_seed(0)
    weight = torch.empty(30, 80)
    init_linear_weight(weight, "orthogonal", activation)
    assert torch.allclose(weight @ weight.T, gain_squared * torch.eye(30), atol=1e-5)


def _manual_mlp(model: MLP, x: torch.Tensor, activation, residual: bool) -> torch.Tensor:
    h = x.flatten(1)
    for i in range(len(model.hidden)):
        weight, bias = model.hidden[i].weight, model.hidden[i].bias
        out = activation(h @ weight.T + bias)
        h = h + out if residual and out.shape == h.shape else out
    return h @ model.output.weight.T + model.output.bias


@pytest.mark.parametrize("residual", [False, True])
def test_mlp_forward_matches_a_plain_loop(residual: bool) -> None:
    torch.manual_seed(1)
    model = MLP(in_features=6, num_outputs=3, depth=4, width=5, activation="tanh", residual=residual).double()
    x = torch.randn(7, 6, dtype=torch.float64)
    assert torch.allclose(model(x), _manual_mlp(model, x, torch.tanh, residual), atol=1e-12)


def test_residual_changes_the_function_only_where_widths_match() -> None:
    torch.manual_seed(2)
    plain = MLP(in_features=6, num_outputs=3, depth=2, width=5, residual=False)
    residual = MLP(in_features=6, num_outputs=3, depth=2, width=5, residual=True)
    residual.load_state_dict(plain.state_dict())
    x = torch.randn(4, 6)
    assert torch.allclose(plain(x), residual(x))


def test_mlp_layer_norm_normalises_each_hidden_preactivation() -> None:
    torch.manual_seed(3)
    model = MLP(in_features=6, num_outputs=2, depth=2, width=8, norm="layer", activation="tanh").double()
    x = torch.randn(5, 6, dtype=torch.float64)
    pre = x @ model.hidden[0].weight.T + model.hidden[0].bias
    normalised = (pre - pre.mean(1, keepdim=True)) / torch.sqrt(pre.var(1, unbiased=False, keepdim=True) + 1e-5)
    expected = torch.tanh(normalised) @ model.output.weight.T + model.output.bias
    assert torch.allclose(model(x), expected, atol=1e-10)


def test_cnn_2d_forward_matches_functional_ops() -> None:
    torch.manual_seed(4)
    model = build_model({"name": "cnn", "input_shape": [1, 8, 8], "num_outputs": 3, "depth": 2, "channels": [4, 6]})
    x = torch.randn(5, 64)
    h = x.reshape(5, 1, 8, 8)
    for conv in model.convs:
        h = F.max_pool2d(F.relu(F.conv2d(h, conv.weight, conv.bias, padding=1)), 2)
    assert h.shape == (5, 6, 2, 2)
    expected = h.mean(dim=(2, 3)) @ model.output.weight.T + model.output.bias
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_cnn_1d_stops_pooling_at_length_one() -> None:
    torch.manual_seed(5)
    model = build_model({"name": "cnn", "input_shape": [1, 5], "num_outputs": 2, "depth": 4, "channels": 3})
    x = torch.randn(2, 5)
    h = x.reshape(2, 1, 5)
    for i, conv in enumerate(model.convs):
        h = F.relu(F.conv1d(h, conv.weight, conv.bias, padding=1))
        h = F.max_pool1d(h, 2) if i < 2 else h
    assert h.shape == (2, 3, 1)
    assert torch.allclose(model(x), h.mean(2) @ model.output.weight.T + model.output.bias, atol=1e-6)


def test_self_attention_matches_torch_multihead_attention() -> None:
    torch.manual_seed(6)
    model = build_model({"name": "transformer", "input_shape": [5, 2], "num_outputs": 3, "d_model": 8, "heads": 2})
    attention = model.blocks[0].attention
    reference = nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        projections = [attention.query, attention.key, attention.value]
        reference.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))
        reference.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
        reference.out_proj.weight.copy_(attention.out.weight)
        reference.out_proj.bias.copy_(attention.out.bias)
    h = torch.randn(4, 5, 8)
    expected, _ = reference(h, h, h, need_weights=False)
    assert torch.allclose(attention(h), expected, atol=1e-5)


def test_transformer_forward_matches_a_plain_loop() -> None:
    torch.manual_seed(7)
    model = build_model(
        {"name": "transformer", "input_shape": [6, 1], "num_outputs": 3, "d_model": 8, "heads": 2, "depth": 2}
    ).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    h = x.reshape(3, 6, 1) @ model.embed.weight.T + model.embed.bias + model.position
    for block in model.blocks:
        h = h + block.attention(F.layer_norm(h, (8,), block.attention_norm.weight, block.attention_norm.bias))
        z = F.layer_norm(h, (8,), block.ff_norm.weight, block.ff_norm.bias)
        h = h + F.gelu(z @ block.ff_in.weight.T + block.ff_in.bias) @ block.ff_out.weight.T + block.ff_out.bias
    pooled = F.layer_norm(h, (8,), model.final_norm.weight, model.final_norm.bias).mean(1)
    assert torch.allclose(model(x), pooled @ model.output.weight.T + model.output.bias, atol=1e-12)


FAMILIES = [
    {"name": "mlp", "depth": 3, "width": 16, "norm": "batch"},
    {"name": "cnn", "depth": 2, "channels": 4, "norm": "layer"},
    {"name": "transformer", "d_model": 8, "heads": 2, "ff_width": 16, "depth": 1},
]


@pytest.mark.parametrize("data", [DIGITS_LIKE, MNIST1D_LIKE], ids=["digits", "mnist1d"])
@pytest.mark.parametrize("args", FAMILIES, ids=[f["name"] for f in FAMILIES])
def test_every_family_maps_flat_examples_to_num_outputs(args: dict, data: SimpleNamespace) -> None:
    torch.manual_seed(0)
    model = build_model(json.loads(json.dumps(complete_model_args(args, data)))).eval()
    x = torch.randn(3, data.input_shape[0])
    assert model(x).shape == (3, 10)
    params = {name: p.detach() * 2 for name, p in model.named_parameters()}
    doubled = build_model(complete_model_args(args, data)).eval()
    doubled.load_state_dict({**model.state_dict(), **params})
    assert torch.allclose(torch.func.functional_call(model, params, (x,)), doubled(x), atol=1e-6)


@pytest.mark.parametrize("args", FAMILIES, ids=[f["name"] for f in FAMILIES])
def test_models_are_deterministic_given_the_seed(args: dict) -> None:
    def weights(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return list(build_model(complete_model_args(args, DIGITS_LIKE)).state_dict().values())

    assert all(torch.equal(a, b) for a, b in zip(weights(0), weights(0)))
    assert not all(torch.equal(a, b) for a, b in zip(weights(0), weights(1)))


@pytest.mark.parametrize("args", FAMILIES, ids=[f["name"] for f in FAMILIES])
def test_trace_and_script_give_the_eager_outputs_at_another_batch_size(args: dict) -> None:
    torch.manual_seed(0)
    model = build_model(complete_model_args(args, DIGITS_LIKE)).eval()
    traced = torch.jit.trace(model, torch.randn(4, 64))
    scripted = torch.jit.script(model)
    x = torch.randn(7, 64)
    assert torch.allclose(traced(x), model(x), atol=1e-6)
    assert torch.allclose(scripted(x), model(x), atol=1e-6)


def test_complete_model_args_fills_shapes_and_keeps_given_values() -> None:
    assert complete_model_args({"name": "mlp"}, DIGITS_LIKE) == {"name": "mlp", "in_features": 64, "num_outputs": 10}
    assert complete_model_args({"name": "cnn"}, MNIST1D_LIKE)["input_shape"] == [1, 40]
    assert complete_model_args({"name": "cnn"}, DIGITS_LIKE)["input_shape"] == [1, 8, 8]
    images = SimpleNamespace(input_shape=(3, 8, 8), num_outputs=2)
    assert complete_model_args({"name": "cnn"}, images)["input_shape"] == [3, 8, 8]
    assert complete_model_args({"name": "transformer"}, images)["input_shape"] == [3, 64]
    assert complete_model_args({"name": "mlp", "num_outputs": 4}, DIGITS_LIKE)["num_outputs"] == 4


def test_parse_zoo_spec_reads_numbers_bools_and_shapes() -> None:
    spec = "cnn:input_shape=1x8x8,channels=4x8,depth=2,norm=batch,residual=True,scale=0.5"
    assert parse_zoo_spec(spec) == {
        "name": "cnn",
        "input_shape": [1, 8, 8],
        "channels": [4, 8],
        "depth": 2,
        "norm": "batch",
        "residual": True,
        "scale": 0.5,
    }


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"name": "resnet"}, "Unknown model"),
        ({"name": "mlp", "in_features": 4, "num_outputs": 2, "colour": "red"}, "cannot be built"),
        ({"name": "mlp", "num_outputs": 2}, "cannot be built"),
        ({"name": "mlp", "in_features": 4, "num_outputs": 2, "activation": "swish"}, "activation"),
        ({"name": "mlp", "in_features": 4, "num_outputs": 2, "depth": 1, "norm": "group"}, "norm"),
        ({"name": "mlp", "in_features": 4, "num_outputs": 2, "init": "zeros"}, "init"),
        ({"name": "mlp", "in_features": 4, "num_outputs": 2, "depth": 0}, "depth"),
        ({"name": "cnn", "input_shape": [8, 8, 8, 8], "num_outputs": 2}, "input_shape"),
        ({"name": "cnn", "input_shape": [1, 8], "num_outputs": 2, "depth": 3, "channels": [4, 4]}, "channel"),
        ({"name": "transformer", "input_shape": [8, 1], "num_outputs": 2, "d_model": 10, "heads": 4}, "multiple"),
    ],
)
def test_bad_model_args_raise_one_clear_sentence(args: dict, words: str) -> None:
    with pytest.raises(ProbeError, match=words):
        build_model(args)


def test_bad_spec_items_are_refused() -> None:
    with pytest.raises(ProbeError, match="key=value"):
        parse_zoo_spec("mlp:depth")
