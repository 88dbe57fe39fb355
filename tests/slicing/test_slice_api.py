"""lp.slice on a user's own module and data, in every form the API takes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from landscape_probe.errors import ProbeError
from landscape_probe.slicing.api import slice as slice_model

SCALES = (0.01, 0.1, 1.0)


def model_and_data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    generator = torch.Generator().manual_seed(1)
    return model, torch.randn(40, 4, generator=generator), torch.randint(0, 3, (40,), generator=generator)


def test_tensors_dataset_and_dataloader_give_the_same_slice():
    model, x, y = model_and_data()
    settings = dict(scales=SCALES, device="cpu", power_iterations=5)
    from_tensors = slice_model(model, (x, y), **settings)
    dataset = torch.utils.data.TensorDataset(x, y)
    from_loader = slice_model(model, torch.utils.data.DataLoader(dataset, batch_size=7), **settings)
    from_arrays = slice_model(model, (x.numpy(), y.numpy()), **settings)
    for other in (from_loader, from_arrays):
        np.testing.assert_array_equal(other.relative_gradient_change, from_tensors.relative_gradient_change)
    assert from_tensors.loss_name == "cross_entropy" and from_tensors.classification
    assert from_tensors.provenance["checkpoint_format"] == "module"
    assert from_tensors.provenance["architecture"] == "Sequential"
    assert from_tensors.provenance["checkpoint_sha256"] == ""


def test_the_users_module_is_left_as_it_was():
    model, x, y = model_and_data()
    model.train()
    before = copy.deepcopy(model.state_dict())
    slice_model(model, (x, y), scales=SCALES, device="cpu", dtype="float64", power_iterations=3)
    assert model.training
    for name, tensor in model.state_dict().items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, before[name])


def test_progress_callback_counts_every_point():
    model, x, y = model_and_data()
    calls: list[tuple[int, int, str]] = []
    slice_model(model, (x, y), scales=SCALES, layers=True, device="cpu", power_iterations=2,
                progress=lambda done, total, label: calls.append((done, total, label)))
    advanced = [call for call in calls if not call[2].endswith("λ_max")]
    assert [done for done, _, _ in advanced] == list(range(1, 10))
    assert {total for _, total, _ in calls} == {9}
    assert {label for _, _, label in advanced} == {"all layers", "0.weight", "2.weight"}


def test_a_checkpoint_path_records_its_sha256_and_its_own_data(tmp_path):
    import hashlib

    from landscape_probe.checkpoints.load import save_checkpoint
    from landscape_probe.models.zoo import build_model

    args = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 2, "width": 8}
    tiny_checkpoint = tmp_path / "tiny.pt"
    save_checkpoint(tiny_checkpoint, build_model(args), args, data={"name": "digits", "seed": 0})
    result = slice_model(tiny_checkpoint, None, scales=SCALES, device="cpu", power_iterations=2, probe_size=16)
    assert result.provenance["checkpoint_sha256"] == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert result.provenance["checkpoint_path"] == str(tiny_checkpoint.resolve())
    assert '"name": "digits"' in result.provenance["data"]


def test_mistakes_are_one_sentence():
    model, x, y = model_and_data()
    with pytest.raises(ProbeError, match="data="):
        slice_model(model, None, scales=SCALES, device="cpu")
    with pytest.raises(ProbeError, match="Scales must be distinct and in increasing order"):
        slice_model(model, (x, y), scales=(0.1, 0.01), device="cpu")
    with pytest.raises(ProbeError, match="outputs"):
        slice_model(model, (x, torch.randint(0, 5, (40,))), scales=SCALES, device="cpu")


def test_a_checkpoint_of_another_architecture_is_refused_even_when_the_perturbed_layers_match(tmp_path):
    from landscape_probe.checkpoints.load import save_checkpoint
    from landscape_probe.models.zoo import build_model

    args = {"name": "mlp", "in_features": 4, "num_outputs": 3, "width": 8}
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "deeper.pt", build_model({**args, "depth": 3}), {**args, "depth": 3})
    shallow = build_model({**args, "depth": 2})
    _, x, y = model_and_data()
    assert {"hidden.0.weight", "output.weight"} < dict(build_model({**args, "depth": 3}).named_parameters()).keys()
    with pytest.raises(ProbeError, match=r"unexpected 'hidden\.1\.bias', 'hidden\.1\.weight'"):
        slice_model(shallow, (x, y), direction=f"checkpoint:{tmp_path / 'deeper.pt'}", scales=SCALES)


@pytest.mark.parametrize("iterations", [0, -3])
def test_lambda_max_needs_at_least_one_power_iteration(iterations):
    model, x, y = model_and_data()
    with pytest.raises(ProbeError, match="at least 1"):
        slice_model(model, (x, y), scales=SCALES, power_iterations=iterations)


def test_the_recorded_probe_size_is_the_number_of_examples_used():
    model, x, y = model_and_data()
    result = slice_model(model, (x, y), scales=SCALES, power_iterations=3, probe_size=500)
    assert result.config.probe_size == len(x) == 40
    assert slice_model(model, (x, y), scales=SCALES, power_iterations=3, probe_size=25).config.probe_size == 25
