"""`probe export`: CSV tables and JSON hold exactly the values of the results file."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.export import export_csv, export_json
from landscape_probe.hdf5 import atomic_h5, write_dataset

runner = CliRunner()
KAPPA = np.array([[0.1, 0.2], [1.0, 2.0], [10.0, 20.0]])


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A small slice-like results file: 3 scales, 2 layers, one per-layer group, a NaN and a scalar."""
    path = tmp_path / "r.h5"
    with atomic_h5(path, kind="slice", attrs={"direction": "gradient", "seed": 3}, overwrite=False) as h5:
        write_dataset(h5, "loss", [0.5, float("nan"), 2.0], description="loss", units="nats")
        write_dataset(h5, "scales", [0.01, 0.1, 1.0], description="t", units="1")
        write_dataset(h5, "kappa", KAPPA, description="κ", units="1")
        write_dataset(h5, "layer_names", ["fc1.weight", "fc2.weight"], description="layers", units="")
        write_dataset(h5, "lambda_max", np.float64(3.5), description="λ", units="nats")
        group = h5.create_group("layers/fc1.weight")
        group.attrs["verdict"] = "fine"
        write_dataset(group, "loss", [0.4, 0.6, 0.9], description="loss", units="nats")
    return path


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_csv_tables_hold_the_values(results: Path, tmp_path: Path):
    written = export_csv(results, tmp_path / "out")
    names = sorted(path.name for path in written)
    assert names == ["attributes.csv", "layers__fc1.weight.csv", "root.csv", "root__kappa.csv",
                     "root__layer_names.csv", "scalars.csv"]
    root = read_csv(tmp_path / "out" / "root.csv")
    assert root[0] == ["scales", "loss"]
    assert [[float(v) if v else math.nan for v in row] for row in root[1:]][0] == [0.01, 0.5]
    assert root[2] == ["0.1", ""]  # NaN is an empty cell
    kappa = read_csv(tmp_path / "out" / "root__kappa.csv")
    assert kappa[0] == ["fc1.weight", "fc2.weight"]
    np.testing.assert_array_equal(np.array(kappa[1:], dtype=float), KAPPA)
    assert ["/", "lambda_max", "3.5", "nats"] in read_csv(tmp_path / "out" / "scalars.csv")
    attributes = read_csv(tmp_path / "out" / "attributes.csv")
    assert ["layers/fc1.weight", "", "verdict", "fine"] in attributes
    assert ["/", "", "seed", "3"] in attributes
    assert ["/", "loss", "units", "nats"] in attributes


def test_json_nests_groups_and_writes_nan_as_null(results: Path, tmp_path: Path):
    document = json.loads(export_json(results, tmp_path / "r.json").read_text())
    assert document["attributes"]["direction"] == "gradient" and document["attributes"]["kind"] == "slice"
    assert document["datasets"]["loss"]["values"] == [0.5, None, 2.0]
    assert document["datasets"]["kappa"]["values"] == KAPPA.tolist()
    assert document["datasets"]["lambda_max"] == {"values": 3.5, "description": "λ", "units": "nats"}
    assert document["groups"]["layers"]["groups"]["fc1.weight"]["datasets"]["loss"]["values"] == [0.4, 0.6, 0.9]


def test_existing_files_are_kept_without_overwrite(results: Path, tmp_path: Path):
    export_json(results, tmp_path / "r.json")
    with pytest.raises(ProbeError, match="already exists"):
        export_json(results, tmp_path / "r.json")
    export_csv(results, tmp_path / "out")
    with pytest.raises(ProbeError, match="already exists"):
        export_csv(results, tmp_path / "out")
    export_csv(results, tmp_path / "out", overwrite=True)


def test_cli_needs_exactly_one_target(results: Path, tmp_path: Path):
    for args in ([], ["--csv", str(tmp_path / "c"), "--json", str(tmp_path / "j.json")]):
        outcome = runner.invoke(app, ["export", str(results), *args])
        assert outcome.exit_code == 2 and "exactly one of" in outcome.output
    outcome = runner.invoke(app, ["export", str(results), "--json", str(tmp_path / "j.json")])
    assert outcome.exit_code == 0 and (tmp_path / "j.json").is_file()


def test_cli_refuses_a_file_that_is_not_results(tmp_path: Path):
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    outcome = runner.invoke(app, ["export", str(tmp_path / "x.h5"), "--json", str(tmp_path / "j.json")])
    assert outcome.exit_code == 2 and "not an HDF5 file" in outcome.output
    assert not (tmp_path / "j.json").exists()
