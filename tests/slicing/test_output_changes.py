"""OutputChanges (a sweep's ||F(t) − F(0)||, correct answers and KL) against a float64 loop over the examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape_probe.slicing.changes import OutputChanges


def per_point(reference: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int, float]:
    """The three numbers of one point written out: a plain loop over the examples."""
    distance_squared, correct, kl = 0.0, 0, 0.0
    for row0, row, target in zip(reference.tolist(), outputs.tolist(), targets.tolist(), strict=True):
        distance_squared += sum((a - b) ** 2 for a, b in zip(row, row0))
        correct += int(max(range(len(row)), key=row.__getitem__) == target)
        p0 = np.exp(np.array(row0) - np.logaddexp.reduce(row0))
        log_pt = np.array(row) - np.logaddexp.reduce(row)
        kl += float(np.sum(p0 * (np.log(p0) - log_pt)))
    return distance_squared**0.5, correct, kl / len(targets)


def test_each_point_equals_a_loop_over_the_examples():
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(9, 4, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 4, (9,), generator=generator)
    points = [reference + scale * torch.randn(9, 4, generator=generator, dtype=torch.float64)
              for scale in (0.0, 1e-3, 0.1, 1.0, 3.0, 10.0, 30.0)]
    changes = OutputChanges(reference, targets)
    for outputs in points:
        changes.add(outputs)
    columns = changes.finished()
    expected = np.array([per_point(reference, outputs, targets) for outputs in points])
    np.testing.assert_allclose(columns["function_change"].numpy(), expected[:, 0], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(columns["correct"].numpy(), expected[:, 1])
    np.testing.assert_allclose(columns["kl_divergence"].numpy(), expected[:, 2], rtol=1e-10, atol=1e-15)
    assert columns["kl_divergence"][0] == 0.0 and columns["function_change"][0] == 0.0
    log_p0 = torch.log_softmax(reference, dim=1)
    kl_div = torch.stack([torch.nn.functional.kl_div(torch.log_softmax(outputs, dim=1), log_p0, reduction="batchmean",
                                                     log_target=True) for outputs in points])
    assert torch.equal(columns["kl_divergence"], kl_div)  # what it replaced, to the bit


def test_regression_outputs_have_only_the_function_change():
    reference = torch.zeros(5, 3, dtype=torch.float64)
    changes = OutputChanges(reference, None)
    changes.add(torch.full((5, 3), 2.0, dtype=torch.float64))
    columns = changes.finished()
    assert set(columns) == {"function_change"}
    assert float(columns["function_change"][0]) == pytest.approx(2.0 * 15**0.5, rel=1e-15)


def test_no_points_give_no_columns():
    assert OutputChanges(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long)).finished() == {}
