"""lp.hessian against the dense float64 Hessian of a tiny MLP: top-k, eigenvectors, trace, density, per-layer blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import landscape_probe as lp
from landscape_probe.errors import ProbeError


def net_and_data() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    generator = torch.Generator().manual_seed(5)
    return net, (torch.randn(20, 3, generator=generator, dtype=torch.float64),
                 torch.randint(0, 3, (20,), generator=generator))


def dense_hessian(net: nn.Module, data: tuple[torch.Tensor, torch.Tensor], names: list[str]) -> torch.Tensor:
    """torch.func.hessian of the mean cross-entropy over the named parameters, flattened in that order."""
    x, y = data
    params = {k: v.detach() for k, v in net.named_parameters() if k in names}
    shapes, sizes = [params[k].shape for k in names], [params[k].numel() for k in names]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        pieces = {k: piece.view(shape) for k, piece, shape in zip(names, flat.split(sizes), shapes, strict=True)}
        return nn.functional.cross_entropy(torch.func.functional_call(net, pieces, (x,)), y)

    return torch.func.hessian(loss)(torch.cat([params[k].reshape(-1) for k in names])).detach()


@pytest.fixture(scope="module")
def per_layer_result():
    net, data = net_and_data()
    return net, data, lp.hessian(net, data, top_k=3, tolerance=1e-10, iterations=60, trace_samples=400,
                                 trace_tolerance=0.0, density_runs=40, density_steps=10, per_layer=True,
                                 include_1d=True, probe_size=20, device="cpu", dtype="float64", seed=1)


def test_top_eigenpairs_match_the_dense_hessian(per_layer_result) -> None:
    net, data, result = per_layer_result
    assert result.layer_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    dense = dense_hessian(net, data, result.layer_names)
    assert result.eigenvectors.shape == (3, dense.shape[0]) == (3, int(result.layer_sizes.sum()))
    values, vectors = torch.linalg.eigh(dense)
    np.testing.assert_allclose(result.eigenvalues, values[-3:].flip(0).numpy(), rtol=0, atol=1e-6)
    for found, exact in zip(result.eigenvectors, vectors[:, -3:].flip(1).T.numpy(), strict=True):
        assert abs(float(found @ exact)) == pytest.approx(1.0, abs=1e-6)
    assert result.eigenvalue_residuals.max() < 1e-8


def test_the_trace_is_within_three_standard_errors_of_the_dense_trace(per_layer_result) -> None:
    net, data, result = per_layer_result
    exact = float(torch.trace(dense_hessian(net, data, result.layer_names)))
    assert len(result.trace_samples) == 400
    assert result.trace_standard_error == pytest.approx(np.std(result.trace_samples, ddof=1) / 20, rel=1e-12)
    assert abs(result.trace - exact) <= 3 * result.trace_standard_error


def test_the_density_moments_match_the_dense_spectrum(per_layer_result) -> None:
    net, data, result = per_layer_result
    dense = dense_hessian(net, data, result.layer_names)
    n = dense.shape[0]
    nodes, weights = np.nan_to_num(result.density_nodes), result.density_weights
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    for power, exact in ((1, float(torch.trace(dense)) / n), (2, float(torch.trace(dense @ dense)) / n)):
        per_run = (weights * nodes**power).sum(axis=1)
        error = per_run.std(ddof=1) / math.sqrt(len(per_run))
        assert abs(per_run.mean() - exact) <= 3 * error
    area = np.trapezoid(result.density, result.density_grid)
    assert area == pytest.approx(1.0, abs=1e-3)


def test_every_layer_block_matches_its_dense_block(per_layer_result) -> None:
    net, data, result = per_layer_result
    for i, name in enumerate(result.layer_names):
        block = dense_hessian(net, data, [name])
        values = torch.linalg.eigvalsh(block).flip(0).numpy()
        found = result.layer_eigenvalues[i]
        count = min(3, len(values))
        np.testing.assert_allclose(found[:count], values[:count], rtol=0, atol=1e-6)
        assert np.isnan(found[count:]).all()
        exact = float(torch.trace(block))
        # four estimates at once, and a 3-entry block's zᵀHz takes only four values (far from normal): 4 s.e.
        assert abs(result.layer_traces[i] - exact) <= 4 * result.layer_trace_standard_errors[i]


def test_the_trace_stops_at_its_tolerance_and_select_restricts_the_layers() -> None:
    net, data = net_and_data()
    result = lp.hessian(net, data, top_k=2, trace_samples=5000, trace_tolerance=0.05, density_runs=1,
                        select="2.*", probe_size=20, device="cpu", dtype="float64")
    assert result.layer_names == ["2.weight"] and result.layer_eigenvalues is None
    assert 10 <= len(result.trace_samples) < 5000
    assert result.trace_standard_error <= 0.05 * abs(result.trace)
    exact = float(torch.trace(dense_hessian(net, data, ["2.weight"])))
    assert abs(result.trace - exact) <= 3 * result.trace_standard_error


def test_the_report_says_when_the_samples_ran_out_above_the_tolerance() -> None:
    from landscape_probe.landscape.hessian_report import hessian_text

    net, data = net_and_data()
    kwargs = dict(top_k=1, density_runs=1, probe_size=20, device="cpu", dtype="float64")
    short = lp.hessian(net, data, trace_samples=3, trace_tolerance=1e-6, **kwargs)
    relative = short.trace_standard_error / abs(short.trace)
    assert len(short.trace_samples) == 3 and relative > 1e-6
    assert f"{100 * relative:.2g}% of it, above the 0.0001% asked" in " ".join(hessian_text(short).split())
    assert "raise --trace-samples" in hessian_text(short)
    met = lp.hessian(net, data, trace_samples=5000, trace_tolerance=0.05, **kwargs)  # stopped at its tolerance
    assert "--trace-samples" not in hessian_text(met)
    unasked = lp.hessian(net, data, trace_samples=3, trace_tolerance=0.0, **kwargs)  # 0: no tolerance, all samples
    assert "--trace-samples" not in hessian_text(unasked)


def test_the_report_says_when_fewer_eigenvalues_than_asked_exist() -> None:
    from landscape_probe.landscape.hessian_report import hessian_text

    net, data = net_and_data()
    size = sum(p.numel() for name, p in net.named_parameters() if name == "2.weight")
    result = lp.hessian(net, data, top_k=size + 5, iterations=size + 5, trace_samples=2, density_runs=1,
                        select="2.*", probe_size=20, device="cpu", dtype="float64")
    text = " ".join(hessian_text(result).split())
    assert len(result.eigenvalues) == size
    assert f"top {size} eigenvalues (of the {size + 5} asked: H has only {size} rows)" in text
    assert "Hessian over 1 parameter tensor (" in text


def test_results_survive_a_round_trip_through_the_file(per_layer_result, tmp_path) -> None:
    _, _, result = per_layer_result
    path = result.save(tmp_path / "h.h5")
    loaded = lp.load(path)
    assert isinstance(loaded, lp.HessianResult)
    for name in ("eigenvalues", "eigenvectors", "trace_samples", "density_nodes", "density", "layer_eigenvalues",
                 "layer_traces", "layer_sizes"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(result, name))
    assert loaded.trace == result.trace and loaded.settings == result.settings
    assert loaded.hessian_vector_products == result.hessian_vector_products
    assert loaded.summary() == result.summary()
    frame = loaded.to_pandas()
    assert list(frame.index) == result.layer_names
    np.testing.assert_array_equal(frame["trace"].to_numpy(), result.layer_traces)


@pytest.mark.parametrize(("keywords", "words"), [
    ({"top_k": 0}, "--top-k must be at least 1"),
    ({"top_k": 5, "iterations": 3}, "--iterations must be at least --top-k"),
    ({"trace_samples": 1}, "--trace-samples must be at least 2"),
    ({"tolerance": 0.0}, "--tolerance must be a positive number"),
    ({"density_steps": 1}, "--density-steps must be at least 2"),
    ({"select": "nothing*"}, "No parameter matches --select"),
])
def test_bad_settings_are_refused_in_one_sentence(keywords, words) -> None:
    net, data = net_and_data()
    with pytest.raises(ProbeError, match=words):
        lp.hessian(net, data, device="cpu", **keywords)


def digits_checkpoint(folder) -> object:
    """A self-describing checkpoint of a 2-layer, 8-wide MLP on digits."""
    from landscape_probe.checkpoints.load import save_checkpoint
    from landscape_probe.models.zoo import build_model

    args = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 2, "width": 8}
    torch.manual_seed(0)
    checkpoint = folder / "m.pt"
    save_checkpoint(checkpoint, build_model(args), args, step=0, data={"name": "digits", "seed": 0}, config={})
    return checkpoint


def test_cli_hessian_writes_what_show_plot_export_and_load_read(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from landscape_probe.cli import app

    runner = CliRunner()
    checkpoint = digits_checkpoint(tmp_path)
    out = tmp_path / "m_hessian.h5"
    result = runner.invoke(app, ["hessian", str(checkpoint), "--top-k", "2", "--iterations", "30", "--trace-samples",
                                 "20", "--density-runs", "2", "--density-steps", "8", "--per-layer", "--probe-size",
                                 "64", "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "each layer's own block" in result.output and "trace (Hutchinson, 20 Rademacher samples)" in result.output
    names = sorted(path.name for path in (tmp_path / "m_hessian_plots").iterdir())
    assert names == ["m_hessian_per_layer.png", "m_hessian_spectral_density.png"]
    loaded = lp.load(out)
    assert isinstance(loaded, lp.HessianResult) and loaded.provenance["command_line"].startswith("probe hessian")
    assert loaded.eigenvectors.shape == (2, int(loaded.layer_sizes.sum())) and loaded.layer_eigenvalues.shape == (2, 2)
    np.testing.assert_allclose(np.linalg.norm(loaded.eigenvectors, axis=1), 1.0, rtol=1e-5)
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and f"{loaded.eigenvalues[0]:.5g}" in shown.output
    replotted = runner.invoke(app, ["plot", str(out), "-o", str(tmp_path / "again")])
    assert replotted.exit_code == 0, replotted.output
    assert (tmp_path / "again" / "m_hessian_spectral_density.png").exists()
    exported = runner.invoke(app, ["export", str(out), "--json", str(tmp_path / "h.json")])
    assert exported.exit_code == 0, exported.output
    document = json.loads((tmp_path / "h.json").read_text())
    assert document["datasets"]["eigenvalues"]["values"] == pytest.approx(loaded.eigenvalues.tolist())
    assert document["attributes"]["kind"] == "hessian"


@pytest.mark.parametrize(("options", "words"), [
    (["--top-k", "0"], "--top-k"),
    (["--trace-tolerance", "-1"], "--trace-tolerance"),
    (["--select", "nothing.*"], "--select"),
    (["--format", "gif"], "gif"),
])
def test_cli_bad_options_are_one_sentence_and_exit_2(tmp_path, options, words) -> None:
    from typer.testing import CliRunner

    from landscape_probe.cli import app
    from tests.cli_outcomes import one_sentence_exit_2

    out = tmp_path / "bad.h5"
    result = CliRunner().invoke(app, ["hessian", str(digits_checkpoint(tmp_path)), *options, "--probe-size", "32",
                                       "--device", "cpu", "-o", str(out)])
    assert words in one_sentence_exit_2(result) and not out.exists()


def test_mass_near_zero_is_a_plain_sum_over_the_runs_nodes() -> None:
    from landscape_probe.landscape.hessian_report import mass_near_zero

    nodes = np.array([[-3.0, -0.05, 0.02, 4.0], [-0.5, 0.1, np.nan, 6.0]])
    weights = np.array([[0.1, 0.6, 0.2, 0.1], [0.3, 0.5, 0.0, 0.2]])
    below = near = 0.0
    for run_nodes, run_weights in zip(nodes, weights, strict=True):
        for node, weight in zip(run_nodes, run_weights, strict=True):
            if weight > 0 and node < -0.1:
                below += weight / 2
            if weight > 0 and abs(node) <= 0.1:
                near += weight / 2
    assert mass_near_zero(nodes, weights, 0.1) == pytest.approx((below, near), abs=1e-15)
    assert (below, near) == pytest.approx((0.2, 0.65))
