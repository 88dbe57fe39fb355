"""Every form of ``data`` the Python API accepts becomes the same Dataset."""

import numpy as np
import pytest
import torch

from landscape_probe.data.inputs import as_dataset
from landscape_probe.errors import ProbeError

X = torch.arange(24, dtype=torch.float32).reshape(8, 3)
Y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])


@pytest.mark.parametrize(
    "data",
    [
        (X, Y),
        (X.numpy(), Y.numpy()),
        torch.utils.data.TensorDataset(X, Y),
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=3),
    ],
    ids=["tensors", "numpy", "torch-dataset", "dataloader"],
)
def test_each_form_gives_the_examples_in_order(data):
    dataset = as_dataset(data)
    torch.testing.assert_close(dataset.x_train, X)
    torch.testing.assert_close(dataset.y_train, Y)
    assert dataset.task == "classification" and dataset.num_classes == 3


def test_four_arrays_keep_their_test_split():
    dataset = as_dataset((X[:6], Y[:6], X[6:], Y[6:].double()[:0].long().new_tensor([1, 0])))
    assert len(dataset.x_train) == 6 and dataset.y_test.tolist() == [1, 0]


def test_float_targets_mean_regression():
    assert as_dataset((X, torch.randn(8))).task == "regression"


def test_a_name_loads_the_built_in_set():
    assert as_dataset("synthetic:n_train=32,n_test=8").x_train.shape == (32, 16)


@pytest.mark.parametrize("data", [42, (X,), (X, [1, 2]), torch.utils.data.TensorDataset(X)])
def test_other_things_get_one_sentence(data):
    with pytest.raises(ProbeError):
        as_dataset(data)
