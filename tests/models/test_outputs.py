"""Models returning a tuple, a dict or a ModelOutput: which tensor is measured, and that it is recorded."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import landscape_probe as lp
from landscape_probe.errors import ProbeError
from landscape_probe.models.outputs import choose_output


class Wrapped(nn.Module):
    """The same MLP, its logits returned alone, in a tuple after an auxiliary tensor, or in a dict."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
        self.kind = kind

    def forward(self, x: torch.Tensor):
        logits = self.net(x)
        if self.kind == "tuple":
            return None, logits, {"aux": x}
        if self.kind == "dict":
            return OrderedDict(features=x, logits=logits)
        if self.kind == "pair":  # the auxiliary tensor first: only --output-key 1 measures the logits
            return x, logits
        return logits


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(40, 5, generator=generator), torch.randint(0, 3, (40,), generator=generator)


def test_choose_output_takes_logits_or_the_first_tensor_or_the_key_given() -> None:
    a, b = torch.zeros(1), torch.ones(1)
    assert choose_output(a) == (a, "")
    assert choose_output({"hidden": a, "logits": b})[1] == "logits"
    assert choose_output({"hidden": a, "scores": b})[1] == "hidden"
    assert choose_output({"hidden": a, "scores": b}, "scores")[0] is b
    assert choose_output((None, a, b))[1] == "1" and choose_output((a, b), "1")[0] is b
    assert choose_output((a, b), "-1")[0] is b


@pytest.mark.parametrize(("outputs", "key", "words"), [
    ({"hidden": torch.zeros(1)}, "logits", "keys are hidden"),
    ((torch.zeros(1), None), "1", "tensor indices are 0"),
    ((None, "text"), None, "holds no tensor"),
    (torch.zeros(1), "logits", "returns one tensor"),
    ("text", None, "returns a str"),
])
def test_a_missing_output_is_one_sentence(outputs, key, words: str) -> None:
    with pytest.raises(ProbeError, match=words):
        choose_output(outputs, key)


@pytest.mark.parametrize(("kind", "recorded"), [("tuple", "1"), ("dict", "logits")])
def test_slice_plane_and_interpolate_measure_the_chosen_output_and_record_it(kind: str, recorded: str) -> None:
    data, plain, wrapped = _data(), Wrapped("tensor"), Wrapped(kind)
    kwargs = dict(scales=[0.01, 0.1], device="cpu", dtype="float64")
    expected, got = lp.slice(plain, data, **kwargs), lp.slice(wrapped, data, **kwargs)
    np.testing.assert_allclose(got.relative_gradient_change, expected.relative_gradient_change, rtol=1e-12)
    assert got.provenance["output_key"] == recorded and expected.provenance["output_key"] == ""
    assert not wrapped._forward_hooks  # the user's module is given back without the hook
    plane = lp.plane(wrapped, data, x="-1:1:3", y="-1:1:3", device="cpu", dtype="float64")
    assert plane.provenance["output_key"] == recorded
    np.testing.assert_allclose(plane.loss, lp.plane(plain, data, x="-1:1:3", y="-1:1:3", device="cpu",
                                                    dtype="float64").loss, rtol=1e-12)
    line = lp.interpolate(wrapped, Wrapped(kind), data, alphas=[0.5], device="cpu")
    assert line.provenance["output_key"] == recorded


def test_a_bad_output_key_is_one_sentence_naming_the_keys() -> None:
    with pytest.raises(ProbeError, match="keys are features, logits"):
        lp.slice(Wrapped("dict"), _data(), scales=[0.1], device="cpu", output_key="scores")


@pytest.mark.parametrize(("kind", "key", "recorded"), [("dict", None, "logits"), ("pair", "1", "1")])
def test_hessian_of_the_chosen_output_is_the_plain_models_hessian(kind: str, key: str | None, recorded: str) -> None:
    kwargs = dict(top_k=3, density_runs=2, density_steps=10, per_layer=True, device="cpu", dtype="float64")
    expected = lp.hessian(Wrapped("tensor"), _data(), **kwargs)
    got = lp.hessian(Wrapped(kind), _data(), output_key=key, **kwargs)
    for name in ("eigenvalues", "trace", "density", "layer_eigenvalues", "layer_traces"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(np.abs(got.eigenvectors), np.abs(expected.eigenvectors), rtol=1e-10, atol=1e-12)
    assert got.loss_at_point == pytest.approx(expected.loss_at_point, rel=1e-12)
    assert got.provenance["output_key"] == recorded and expected.provenance["output_key"] == ""


def test_a_bad_output_key_for_the_hessian_names_the_indices() -> None:
    kwargs = dict(top_k=1, density_runs=1, density_steps=5, device="cpu", dtype="float64")
    with pytest.raises(ProbeError, match="tensor indices are 0, 1"):
        lp.hessian(Wrapped("pair"), _data(), output_key="2", **kwargs)
