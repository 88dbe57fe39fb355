"""Results files: atomic writing, overwrite refusal, provenance and self-describing datasets."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from landscape_probe.errors import ProbeError
from landscape_probe.hdf5 import (
    SCHEMA_VERSION,
    atomic_h5,
    check_writable,
    open_results,
    provenance,
    read_group,
    write_dataset,
)

ATTRS = {"command_line": "probe test", "seed": 3}


def test_successful_block_writes_file_with_kind_and_attrs(tmp_path: Path):
    path = tmp_path / "out.h5"
    with atomic_h5(path, kind="slice", attrs=ATTRS, overwrite=False) as h5:
        write_dataset(h5, "scales", np.array([0.0, 0.1]), description="scale t", units="1")
        assert not path.exists()
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]
    with h5py.File(path, "r") as h5:
        assert h5.attrs["kind"] == "slice"
        assert h5.attrs["command_line"] == "probe test" and h5.attrs["seed"] == 3
        np.testing.assert_array_equal(h5["scales"][()], [0.0, 0.1])


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_inside_block_leaves_no_file(tmp_path: Path, error: type[BaseException]):
    with pytest.raises(error):
        with atomic_h5(tmp_path / "out.h5", kind="slice", attrs=ATTRS, overwrite=False) as h5:
            write_dataset(h5, "x", np.ones(3), description="x", units="1")
            raise error("stop")
    assert os.listdir(tmp_path) == []


def test_failure_leaves_existing_file_untouched(tmp_path: Path):
    path = tmp_path / "out.h5"
    path.write_bytes(b"previous results")
    with pytest.raises(KeyboardInterrupt):
        with atomic_h5(path, kind="slice", attrs=ATTRS, overwrite=True):
            raise KeyboardInterrupt
    assert path.read_bytes() == b"previous results"
    assert os.listdir(tmp_path) == ["out.h5"]


def test_existing_file_is_refused_before_the_block_runs(tmp_path: Path):
    path = tmp_path / "out.h5"
    path.write_bytes(b"previous results")
    ran = []
    with pytest.raises(ProbeError, match="--overwrite"):
        with atomic_h5(path, kind="slice", attrs=ATTRS, overwrite=False):
            ran.append(True)
    assert ran == [] and path.read_bytes() == b"previous results"


def test_overwrite_replaces_existing_file(tmp_path: Path):
    path = tmp_path / "out.h5"
    path.write_bytes(b"previous results")
    with atomic_h5(path, kind="train", attrs={}, overwrite=True):
        pass
    with open_results(path) as h5:
        assert h5.attrs["kind"] == "train"


def test_check_writable(tmp_path: Path):
    (tmp_path / "exists.h5").write_bytes(b"")
    check_writable(tmp_path / "new.h5", overwrite=False)
    check_writable(tmp_path / "exists.h5", overwrite=True)
    with pytest.raises(ProbeError, match="already exists"):
        check_writable(tmp_path / "exists.h5", overwrite=False)
    with pytest.raises(ProbeError, match="does not exist"):
        check_writable(tmp_path / "missing" / "out.h5", overwrite=False)
    with pytest.raises(ProbeError, match="is a folder"):
        check_writable(tmp_path, overwrite=True)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_check_writable_refuses_read_only_folder(tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(ProbeError, match="not writable"):
        check_writable(folder / "out.h5", overwrite=False)


def test_provenance(tmp_path: Path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"some weights")
    digest = hashlib.sha256(b"some weights").hexdigest()  # the loader's hash (checked in tests/cli/test_slice_command.py)
    attrs = provenance(command_line="probe slice model.pt", device="cpu", seed=7, checkpoint=checkpoint,
                       checkpoint_sha256=digest)
    assert attrs["schema_version"] == SCHEMA_VERSION
    assert attrs["torch_version"] == torch.__version__
    assert attrs["checkpoint_sha256"] == digest
    assert Path(attrs["checkpoint_path"]) == checkpoint.resolve()
    created = datetime.fromisoformat(attrs["created"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=5)
    assert (attrs["device"], attrs["seed"], attrs["command_line"]) == ("cpu", 7, "probe slice model.pt")
    without = provenance(command_line="probe train", device="cpu", seed=None)
    assert (without["checkpoint_path"], without["checkpoint_sha256"], without["seed"]) == ("", "", -1)


def test_provenance_attrs_survive_hdf5(tmp_path: Path):
    attrs = provenance(command_line="probe x", device="cpu", seed=1)
    with atomic_h5(tmp_path / "out.h5", kind="slice", attrs=attrs, overwrite=False):
        pass
    with open_results(tmp_path / "out.h5") as h5:
        for key, value in attrs.items():
            assert h5.attrs[key] == value


def test_datasets_carry_description_units_and_nonfinite_values(tmp_path: Path):
    path = tmp_path / "out.h5"
    with atomic_h5(path, kind="slice", attrs={}, overwrite=False) as h5:
        group = h5.create_group("layers")
        write_dataset(group, "loss", torch.tensor([1.0, float("inf"), float("nan")]), description="loss", units="nats")
        write_dataset(group, "names", ["a.weight", "b.weight"], description="layer names", units="", index="layer")
    with open_results(path) as h5:
        assert h5.mode == "r"
        loss = h5["layers/loss"]
        assert (loss.attrs["description"], loss.attrs["units"]) == ("loss", "nats")
        assert h5["layers/names"].attrs["index"] == "layer"
        arrays = read_group(h5["layers"])
    assert arrays["loss"][0] == 1.0 and np.isposinf(arrays["loss"][1]) and np.isnan(arrays["loss"][2])
    assert arrays["names"].tolist() == ["a.weight", "b.weight"]


def test_open_results_refuses_foreign_files(tmp_path: Path):
    with pytest.raises(ProbeError, match="does not exist"):
        open_results(tmp_path / "nothing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ProbeError, match="not an HDF5 file"):
        open_results(tmp_path / "text.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as h5:
        h5["x"] = np.ones(2)
    with pytest.raises(ProbeError, match="not a landscape_probe results file"):
        open_results(tmp_path / "foreign.h5")


def test_reading_with_pandas_as_documented(tmp_path: Path):
    pandas = pytest.importorskip("pandas")
    path = tmp_path / "out.h5"
    with atomic_h5(path, kind="slice", attrs={}, overwrite=False) as h5:
        write_dataset(h5, "scale", np.array([0.01, 0.1]), description="t", units="1")
        write_dataset(h5, "loss", np.array([0.5, 0.7]), description="loss", units="nats")
    with open_results(path) as h5:
        frame = pandas.DataFrame(read_group(h5))
    assert frame.shape == (2, 2) and frame["loss"].tolist() == [0.5, 0.7]


def test_new_file_gets_the_usual_permissions(tmp_path: Path):
    umask = os.umask(0o022)
    try:
        with atomic_h5(tmp_path / "out.h5", kind="slice", attrs={}, overwrite=False):
            pass
    finally:
        os.umask(umask)
    assert (tmp_path / "out.h5").stat().st_mode & 0o777 == 0o644
