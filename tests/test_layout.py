"""The results-format declaration: written, read back and documented from one place."""

from dataclasses import dataclass

import h5py
import numpy as np

from landscape_probe.layout import LOSS, quantities, quantity, read_quantities, render_document, write_quantities


@dataclass
class Curve:
    scales: np.ndarray = quantity("scale t", units="1", shape="(P,)")
    loss: np.ndarray = quantity("mean loss", units=LOSS, shape="(P,)")
    lambda_max: float = quantity("top eigenvalue", units=LOSS, shape="()")
    accuracy: np.ndarray | None = quantity("fraction correct", units="1", shape="(P,)", optional=True)
    note: str = "not stored"


def test_quantities_are_the_declared_fields_only():
    assert [q.name for q in quantities(Curve)] == ["scales", "loss", "lambda_max", "accuracy"]


def test_write_then_read_gives_the_values_units_and_descriptions(tmp_path):
    curve = Curve(np.array([0.1, 1.0]), np.array([2.5, np.inf]), -3.0)
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        write_quantities(h5, curve, "mse", loss={"fitted": 1.5})
    with h5py.File(tmp_path / "c.h5", "r") as h5:
        assert "accuracy" not in h5
        assert h5["loss"].attrs["units"] == "squared target units"
        assert h5["scales"].attrs["units"] == "1"
        assert h5["lambda_max"].attrs["description"] == "top eigenvalue"
        assert h5["loss"].attrs["fitted"] == 1.5
        values = read_quantities(Curve, h5)
    assert values["lambda_max"] == -3.0 and isinstance(values["lambda_max"], float)
    np.testing.assert_array_equal(values["loss"], [2.5, np.inf])
    assert values["accuracy"] is None
    assert Curve(**values).scales.tolist() == [0.1, 1.0]


def test_cross_entropy_losses_are_in_nats(tmp_path):
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        write_quantities(h5, Curve(np.zeros(1), np.zeros(1), 0.0), "cross_entropy")
        assert h5["loss"].attrs["units"] == "nats"


def test_render_document_replaces_only_the_marked_table():
    stale = ("intro\n<!-- quantities: tests.test_layout:Curve -->\n| old |\n<!-- end quantities -->\noutro\n")
    fresh = render_document(stale)
    assert fresh.startswith("intro\n<!-- quantities: tests.test_layout:Curve -->\n| dataset | shape | units |")
    assert "| old |" not in fresh and fresh.endswith("<!-- end quantities -->\noutro\n")
    assert "| `accuracy` | (P,) | 1 | fraction correct (optional) |" in fresh
    assert render_document(fresh) == fresh


def test_every_results_file_gives_gradients_and_curvatures_the_loss_units():
    """Weights are dimensionless, so ||g|| and λ are in the loss's units in every file (the plane and Hessian files
    said "1" while the slice and training files said the loss's units)."""
    from landscape_probe.landscape.hessian_result import HessianResult
    from landscape_probe.landscape.plane_result import PlaneResult
    from landscape_probe.slicing.result import SliceSweep
    from landscape_probe.training.records import RunRecords

    for cls in (SliceSweep, PlaneResult, HessianResult, RunRecords):
        checked = [q for q in quantities(cls) if q.name in ("gradient_norm", "lambda_max", "eigenvalues", "trace")]
        assert checked, f"{cls.__name__} has none of these quantities any more"
        for q in checked:
            assert q.units == LOSS, f"{cls.__name__}.{q.name} is in {q.units!r}"
