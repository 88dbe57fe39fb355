"""A user's own optimiser by import path, through ``build_optimizer``, ``lp.train`` and ``probe train``.

The user's class here is Adam under another name, so its runs must equal the
built-in ``adam`` runs number for number: same model, data, seeds and diagnostics.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from torch import nn
from typer.testing import CliRunner

from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.training.api import train
from landscape_probe.optim import build_optimizer

runner = CliRunner()
USER_MODULE = '''
import torch


class MyAdam(torch.optim.Adam):
    """Adam under another name, as a user's package would define an optimiser."""
'''
TINY = {"depth": 2, "width": 8, "epochs": 1, "batch_size": 256, "diagnostics_every": 3, "device": "cpu"}


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """The import name of a fresh module holding ``MyAdam`` (a new name per test: no stale import)."""
    name = f"user_optim_{request.node.name.replace('[', '_').replace(']', '_').replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_build_optimizer_passes_parameters_lr_and_keywords(user_module: str) -> None:
    model = nn.Linear(3, 2)
    optimizer = build_optimizer(f"{user_module}:MyAdam", model, 0.05, optimizer_kwargs={"betas": [0.8, 0.9]})
    assert type(optimizer).__name__ == "MyAdam"
    assert optimizer.param_groups[0]["lr"] == 0.05 and optimizer.param_groups[0]["betas"] == (0.8, 0.9)
    assert build_optimizer(f"{user_module}:MyAdam", model).param_groups[0]["lr"] == 1e-3  # the class's own default


@pytest.mark.parametrize(
    ("name", "keywords", "message"),
    [
        ("no_such_module_xyz:Opt", None, "Cannot import module 'no_such_module_xyz'"),
        ("torch.optim:NoSuch", None, "has no 'NoSuch'"),
        ("torch.nn:Linear", None, "not a torch.optim.Optimizer class"),
        ("torch.optim:SGD", {"nosuch": 1}, "Cannot build torch.optim:SGD"),
        ("adam", {"nosuch": 1}, "cannot be built with the keywords"),
        ("madam", {"betas": [0.9, 0.99]}, "cannot be built with the keywords"),
    ],
)
def test_user_errors_are_one_sentence(name: str, keywords: dict | None, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        build_optimizer(name, nn.Linear(2, 2), 0.1, optimizer_kwargs=keywords)


def test_lp_train_compares_a_users_optimizer_with_the_built_in_ones(user_module: str, tmp_path: Path) -> None:
    path = f"{user_module}:MyAdam"
    result = train("mlp", "digits", optimizers=("adam", path), lr=0.01, optimizer_kwargs={"betas": [0.9, 0.999]},
                   **TINY, output=tmp_path / "out")
    adam, user = (next(r for r in result.runs if r.optimizer == name) for name in ("adam", path))
    for record in ("loss", "weight_norm", "relative_update", "sharpness"):
        np.testing.assert_array_equal(getattr(user, record), getattr(adam, record))
    assert (tmp_path / "out" / f"{user_module}_MyAdam_lr0.01_depth2_seed0" / "checkpoint.pt").is_file()


def test_probe_train_takes_an_import_path_and_json_keywords(user_module: str, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = runner.invoke(app, [
        "train", "--optimizer", "sgd", "--optimizer", f"{user_module}:MyAdam", "--lr", f"{user_module}:MyAdam=0.01",
        "--optimizer-kwargs", '{"betas": [0.9, 0.99]}', "--dataset", "digits", "--depth", "2", "--width", "8",
        "--epochs", "1", "--batch-size", "256", "--diagnostics-every", "3", "--device", "cpu", "--no-plots",
        "--output", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out / "results.h5", "r") as h5:
        assert f"{user_module}_MyAdam_lr0.01_depth2_seed0" in h5["runs"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--optimizer", "torch.optim:SGD", "--optimizer-kwargs", "{betas: 1}"], "not valid JSON"),
        (["--optimizer", "torch.optim:SGD", "--optimizer-kwargs", "[1, 2]"], "JSON object"),
        (["--optimizer", "adam", "--optimizer-kwargs", "{}"], None),
        (["--optimizer", "adam", "--optimizer-kwargs", '{"nosuch": 1}'], "cannot be built"),
        (["--optimizer", "nosuchpkg.optim:MyOpt"], "Cannot import module 'nosuchpkg.optim'"),
        (["--optimizer", "torch.nn:Linear"], "not a torch.optim.Optimizer class"),
    ],
)
def test_probe_train_user_errors_exit_2_without_traceback(tmp_path: Path, options: list[str],
                                                          message: str | None) -> None:
    result = runner.invoke(app, ["train", *options, "--epochs", "1", "--depth", "1", "--width", "4",
                                 "--diagnostics-every", "0", "--device", "cpu", "--no-plots",
                                 "--output", str(tmp_path / "out")])
    if message is None:  # an empty keyword object is no keyword at all
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_table_optimizers_take_their_own_keywords_one_dict_per_optimizer(tmp_path: Path) -> None:
    from landscape_probe.optim import keywords_for

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    kfac = build_optimizer("kfac", model, 0.01, optimizer_kwargs={"damping_mode": "eigen", "kl_clip": 0.001})
    assert (kfac.damping_mode, kfac.kl_clip) == ("eigen", 0.001)
    assert build_optimizer("madam", model, 0.01, optimizer_kwargs={"g_bound": 5.0}).param_groups[0]["g_bound"] == 5.0
    assert build_optimizer("adam", model, 0.01, optimizer_kwargs={"betas": [0.8, 0.9]}).param_groups[0]["betas"] == (0.8, 0.9)
    nested = {"kfac": {"kl_clip": 0.001}, "madam": {"g_bound": 5}}
    assert keywords_for(nested, "madam", ("kfac", "madam")) == {"g_bound": 5}
    assert keywords_for(nested, "adam", ("adam",)) == {}
    assert keywords_for({"betas": [0.9, 0.99]}, "adam", ("adam", "torch.optim:Adam")) == {}
    assert keywords_for({"betas": [0.9, 0.99]}, "adam", ("adam",)) == {"betas": [0.9, 0.99]}
    result = train("mlp", "digits", optimizers=("madam", "kfac"), optimizer_kwargs=nested, **TINY)
    assert {run.optimizer for run in result.runs} == {"madam", "kfac"}
    with pytest.raises(ProbeError, match="not among the optimizers trained"):
        train("mlp", "digits", optimizers=("madam",), optimizer_kwargs={"lion": {"betas": [0.9, 0.99]}}, **TINY)
