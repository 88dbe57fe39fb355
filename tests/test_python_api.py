"""The public API: `import landscape_probe as lp` is light, every name resolves, and docs/python-api.md runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import landscape_probe as lp

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "python-api.md"


def test_importing_the_package_loads_no_heavy_module():
    heavy = ("torch", "numpy", "h5py", "matplotlib")
    code = f"import sys, landscape_probe as lp; lp.__all__; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", [name for name in lp.__all__ if name != "__version__"])
def test_every_public_name_resolves_to_what_its_name_says(name):
    value = getattr(lp, name)
    assert value.__name__ == name
    assert name in dir(lp)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'slise'"):
        lp.slise  # noqa: B018


def test_the_notebook_in_docs_python_api_runs(tmp_path, capsys, monkeypatch):
    """Every example of the document, in order, in one namespace, as a notebook user would run them."""
    examples = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(examples) >= 7
    (tmp_path / "sample_checkpoints").symlink_to(ROOT / "sample_checkpoints")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {}
    for index, code in enumerate(examples):
        exec(compile(code, f"python-api.md example {index}", "exec"), namespace)
        assert capsys.readouterr().out.strip(), f"example {index} printed nothing"
    assert (tmp_path / "my_slice.h5").is_file() and (tmp_path / "my_loop.h5").is_file()
    assert (tmp_path / "runs" / "fromage-vs-adam" / "results.h5").is_file()
    assert os.listdir(tmp_path / "my_slice_plots")


def test_load_gives_each_kind_its_own_result(tmp_path):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    lp.slice(model, (x, y), scales=[0.1, 1.0], power_iterations=3).save(tmp_path / "s.h5")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = lp.TrainingProbe(model, optimizer)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        probe.step(loss)
    probe.save(tmp_path / "t.h5")
    assert type(lp.load(tmp_path / "s.h5")) is lp.SliceResult
    trained = lp.load(tmp_path / "t.h5")
    assert type(trained) is lp.TrainResult and len(trained.runs[0].loss) == 3


def test_an_existing_output_names_the_python_keyword_too(tmp_path):
    """A Python user told only of --overwrite would look for a flag; the sentence names overwrite=True."""
    from landscape_probe.errors import ProbeError
    from landscape_probe.hdf5 import check_writable

    path = tmp_path / "s.h5"
    path.write_bytes(b"")
    with pytest.raises(ProbeError, match=r"--overwrite \(overwrite=True in Python\)"):
        check_writable(path, overwrite=False)
    check_writable(path, overwrite=True)  # and with it, nothing is refused


@pytest.mark.parametrize("points", ["3", 3.0, True])
def test_points_that_are_not_a_whole_number_are_one_sentence(points):
    import torch

    from landscape_probe.errors import ProbeError

    model, x = torch.nn.Linear(4, 3), torch.randn(16, 4)
    with pytest.raises(ProbeError, match="must be a whole number"):
        lp.slice(model, (x, torch.randint(0, 3, (16,))), points=points, device="cpu")
