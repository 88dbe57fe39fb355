"""Losses against their definitions written out in float64."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from landscape_probe.errors import ProbeError
from landscape_probe.losses import default_loss_name, loss_function


def test_cross_entropy_is_the_mean_negative_log_softmax_of_the_true_class() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 3, 1, 1, 2, 0])
    expected = 0.0
    for row, label in zip(logits.tolist(), targets.tolist()):
        expected += -(row[label] - torch.logsumexp(torch.tensor(row, dtype=torch.float64), 0).item()) / 6
    assert loss_function("cross_entropy")(logits, targets).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("target_shape", [(5,), (5, 1)])
def test_mse_is_the_mean_squared_error_whatever_the_target_shape(target_shape: tuple[int, ...]) -> None:
    outputs = torch.arange(5, dtype=torch.float64).reshape(5, 1)
    targets = torch.full(target_shape, 1.0, dtype=torch.float32)
    expected = sum((i - 1.0) ** 2 for i in range(5)) / 5
    value = loss_function("mse")(outputs, targets)
    assert value.dtype == torch.float64 and value.item() == pytest.approx(expected)


def test_default_loss_follows_the_task() -> None:
    assert default_loss_name(SimpleNamespace(task="classification")) == "cross_entropy"
    assert default_loss_name(SimpleNamespace(task="regression")) == "mse"


def test_unknown_loss_is_refused() -> None:
    with pytest.raises(ProbeError, match="Unknown loss 'hinge'"):
        loss_function("hinge")


def test_loss_for_refuses_a_loss_that_does_not_fit_the_targets():
    import torch

    from landscape_probe.data.inputs import as_dataset
    from landscape_probe.losses import loss_for

    classes = as_dataset((torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])))
    reals = as_dataset((torch.randn(6, 2), torch.randn(6)))
    assert loss_for(classes, None) == "cross_entropy" and loss_for(reals, None) == "mse"
    assert loss_for(reals, "mse") == "mse"
    with pytest.raises(ProbeError, match="class indices"):
        loss_for(classes, "mse")
    with pytest.raises(ProbeError, match="real numbers"):
        loss_for(reals, "cross_entropy")
    with pytest.raises(ProbeError, match="Unknown loss"):
        loss_for(reals, "hinge")


def test_token_cross_entropy_averages_over_the_positions_with_a_target() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    targets = torch.tensor([[4, -100, 0], [-100, 2, 2]])
    terms = [
        -(logits[n, i, targets[n, i]] - torch.logsumexp(logits[n, i], 0)).item()
        for n in range(2) for i in range(3) if targets[n, i] != -100
    ]
    expected = sum(terms) / len(terms)
    assert loss_function("token_cross_entropy")(logits, targets).item() == pytest.approx(expected, rel=1e-12)
    assert default_loss_name(SimpleNamespace(task="tokens")) == "token_cross_entropy"


def test_token_targets_take_only_the_token_loss_and_record_no_accuracy() -> None:
    from landscape_probe.losses import classifies, loss_for

    tokens = SimpleNamespace(task="tokens", name="t")
    assert loss_for(tokens, None) == "token_cross_entropy"
    with pytest.raises(ProbeError, match="does not fit the tokens targets"):
        loss_for(tokens, "cross_entropy")
    with pytest.raises(ProbeError, match="does not fit the classification targets"):
        loss_for(SimpleNamespace(task="classification", name="c"), "token_cross_entropy")
    assert classifies(torch.tensor([0, 1])) and not classifies(torch.tensor([[0, 1]])) and not classifies(torch.ones(2))
