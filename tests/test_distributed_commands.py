"""Under torchrun, slice, hessian and a training sweep split their work (or the probe set) and give one process's numbers.

One spawn of two Gloo ranks runs every call (a spawn costs seconds); each rank saves what it got, and the test
compares both ranks with the same calls made in this one process.

Tolerances: ``--shard work`` computes each point, layer block or run on one rank exactly as one process does, so
the numbers are equal bit for bit; ``--shard data`` sums each rank's part of the mean loss's gradient and
Hessian-vector products (and, for a slice, of the loss, accuracy counts, KL and squared function change), and
``probe train --shard data`` each rank's part of every batch's gradient, so the numbers differ from one process's
only by the order of the floating-point sums: relative 1e-10 in float64 here. The one process runs the ordinary
(``work``) slice, which the divided one must equal.
"""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import landscape_probe as lp
from landscape_probe import distributed
from landscape_probe.losses import loss_function
from landscape_probe.training import loop
from tests.test_distributed import free_port, net_and_data

SLICE = {"scales": (0.001, 0.01, 0.1, 0.5, 1.0), "device": "cpu", "dtype": "float64", "seed": 3}
PLANE = {"x": "-1:1:5", "y": "-0.5:0.5:4", "device": "cpu", "dtype": "float64", "seed": 3}
HESSIAN = {"top_k": 2, "iterations": 20, "trace_samples": 12, "density_runs": 2, "density_steps": 8,
           "device": "cpu", "dtype": "float64", "seed": 1}
TRAIN = {"optimizers": ("sgd", "fromage"), "depth": 2, "seeds": (0, 1), "epochs": 1, "batch_size": 20,
         "diagnostics_every": 0, "device": "cpu"}
DATA_PARALLEL = {"epochs": 2, "batch_size": 8, "diagnostics_every": 3, "diagnostic_batch_size": 16,
                 "sharpness_iterations": 5, "device": "cpu"}
"""33 training examples in batches of 8: each epoch ends with a batch of 1, so rank 1's part of it is empty."""


class InFloat64(torch.nn.Module):
    """Data sets hold float32 inputs: the network takes them in float64."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.double()


def double_net() -> torch.nn.Module:
    return torch.nn.Sequential(InFloat64(), torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8),
                               torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()


def float64_split() -> tuple[torch.Tensor, ...]:
    (x, y), generator = net_and_data()[1], torch.Generator().manual_seed(5)
    x = torch.cat([x, torch.randn(1, 5, generator=generator)]).double()
    y = torch.cat([y, torch.randint(0, 3, (1,), generator=generator)])
    return x[:33], y[:33], x[33:], y[33:]


def calls(output: Path | None = None, progress=False) -> dict:
    """Every call compared: the same in one process and on each of two ranks."""
    net, data = net_and_data()
    train_data = (data[0].float(), data[1])
    divided = {"shard": "data" if distributed.launched() else "work",  # one process: the ordinary slice
               "probe_size": 39}  # 20 and 19 examples: unequal parts, where a mean of means would be wrong
    return {
        # passes of 2 points: rank 0 takes points 0, 1 and 4, rank 1 points 2 and 3
        "slice_layers": lp.slice(net, data, layers=True, progress=progress, points_per_pass=2, **SLICE),
        "slice_one_pass": lp.slice(net, data, points_per_pass=5, **SLICE),  # all 5 points in one pass, on rank 0
        "slice_loss": lp.slice(net, data, direction="random", measure="loss", **SLICE),
        "slice_data_layers": lp.slice(net, data, layers=True, **divided, **SLICE),
        # the parts in chunks of 7: the summed products of ChunkedHessian
        "slice_data_eigenvector": lp.slice(net, data, direction="eigenvector", chunk_size=7, **divided, **SLICE),
        "slice_data_loss": lp.slice(net, data, direction="hessian:2", measure="loss", **divided, **SLICE),
        "plane_data_gradient": lp.plane(net, data, measure="gradient", direction_x="gradient",
                                        direction_y="hessian:1", **divided, **PLANE),
        "plane_data_loss": lp.plane(net, data, **divided, **PLANE),
        "hessian_data": lp.hessian(net, data, shard="data", **HESSIAN),
        "hessian_work": lp.hessian(net, data, per_layer=True, **HESSIAN),
        "train": lp.train("mlp:width=6", train_data, output=output, **TRAIN),
        "interpolate": lp.interpolate(net, other_net(net), data, range="-0.5:1.5:9", device="cpu", dtype="float64"),
        # probe train --shard data's evaluation: blocks of 5 dealt out among the ranks, their totals added in order
        "evaluate_split": loop.evaluate(net, loss_function("cross_entropy"), data[0].double(), data[1], batch_size=5,
                                        split=distributed.launched()),
        # one run: under torchrun each batch is divided among the ranks by default
        "train_data_one": lp.train(double_net, float64_split(), optimizers="adam", **DATA_PARALLEL),
        "train_data": lp.train(double_net, float64_split(), optimizers=("momentum", "fromage", "muon"), shard="data",
                               output=output and output.parent / "data_parallel", **DATA_PARALLEL),
    }


def other_net(net: torch.nn.Module) -> torch.nn.Module:
    """The end B of an interpolation: ``net`` with every weight moved (seeded)."""
    other = copy.deepcopy(net)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return other


def numbers(results: dict) -> dict[str, np.ndarray]:
    """The numbers of each result, by name, as plain arrays (what is compared)."""
    out: dict[str, np.ndarray] = {}
    for key, result in results.items():
        if key.startswith("slice"):
            sweeps = {"": result.whole, **result.layers}
            for layer, sweep in sweeps.items():
                for name in ("loss", "relative_function_change", "relative_gradient_change",
                             "relative_gradient_change_per_layer", "kl_divergence", "accuracy", "drt_prediction",
                             "euclidean_gradient_prediction", "taylor_loss_model", "quadratic_loss_model", "lambda_max",
                             "loss_at_zero", "gradient_norm", "slope", "curvature", "unit_step_norm"):
                    out[f"{key}/{layer}/{name}"] = np.asarray(getattr(sweep, name), dtype=float)
        elif key.startswith("plane"):
            for name in ("loss", "accuracy", "relative_function_change", "relative_gradient_change",
                         "euclidean_gradient_prediction", "drt_prediction", "loss_at_zero", "gradient_norm",
                         "lambda_max", "direction_norms", "direction_cosine"):
                value = getattr(result, name)
                out[f"{key}/{name}"] = np.asarray(np.nan if value is None else value, dtype=float)
        elif key == "interpolate":
            for name in ("alphas", "loss", "accuracy", "relative_function_change", "drt_prediction",
                         "barrier_height", "loss_a", "loss_b"):
                out[f"interpolate/{name}"] = np.asarray(getattr(result, name), dtype=float)
        elif key == "evaluate_split":
            out[key] = np.asarray(result, dtype=float)
        elif key.startswith("hessian"):
            for name in ("eigenvalues", "trace", "density", "loss_at_point", "gradient_norm", "layer_eigenvalues",
                         "layer_traces"):
                value = getattr(result, name)
                if value is not None:
                    out[f"{key}/{name}"] = np.asarray(value, dtype=float)
        else:
            for run in result.runs:
                for name, values in run.records.items():
                    out[f"{key}/{run.name}/{name}"] = np.asarray(values, dtype=float)
                out[f"{key}/{run.name}/weights"] = np.concatenate(
                    [p.detach().double().flatten().numpy() for p in run.model.parameters()])
    return out


def on_rank(rank: int, port: int, folder: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), PROBE_DIST_TIMEOUT="60")
    torch.set_num_threads(1)
    # as a user's own torchrun script may: one process group for all the calls, which use it and leave it
    torch.distributed.init_process_group("gloo")
    from landscape_probe.training import grid

    train_run, trained = grid.train_run, []
    grid.train_run = lambda *args: trained.append((*args[2:6], args[12])) or train_run(*args)
    reports = []
    got = numbers(calls(Path(folder) / "sweep", progress=lambda *report: reports.append(report)))
    got["progress"] = np.array(reports, dtype=object)
    got["trained_here"] = np.array([f"{optimizer}{lr}{depth}{seed}{'/data' * data}"
                                    for optimizer, lr, depth, seed, data in trained])
    with open(Path(folder) / f"rank{rank}.pkl", "wb") as handle:
        pickle.dump(got, handle)
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Both ranks' numbers (one spawn for every test of this file), and the folder the sweep wrote."""
    folder = tmp_path_factory.mktemp("ranks")
    torch.multiprocessing.start_processes(on_rank, args=(free_port(), str(folder)), nprocs=2, start_method="spawn")
    return folder, [pickle.loads((folder / f"rank{rank}.pkl").read_bytes()) for rank in (0, 1)]


@pytest.fixture(scope="module")
def one_process() -> dict[str, np.ndarray]:
    torch.set_num_threads(1)
    return numbers(calls())


def compare(two_ranks, one_process, prefix: str, rtol: float) -> None:
    keys = [key for key in one_process if key.startswith(prefix)]
    assert keys
    for got in two_ranks[1]:
        assert set(got) - {"trained_here", "progress"} == set(one_process)
        for key in keys:
            if rtol == 0:
                np.testing.assert_array_equal(got[key], one_process[key], err_msg=key)
            else:
                np.testing.assert_allclose(got[key], one_process[key], rtol=rtol, atol=1e-13, err_msg=key,
                                           equal_nan=True)


def test_slice_points_and_layers_split_among_ranks_equal_one_process_bit_for_bit(two_ranks, one_process) -> None:
    compare(two_ranks, one_process, "slice_layers/", rtol=0)
    assert {key.split("/")[1] for key in one_process if key.startswith("slice_layers/")} == {"", "0.weight",
                                                                                             "2.weight"}
    compare(two_ranks, one_process, "slice_loss/", rtol=0)
    compare(two_ranks, one_process, "slice_one_pass/", rtol=0)


def test_slice_of_the_probe_set_split_among_ranks_equals_one_process_to_reduction_order(
        two_ranks, one_process) -> None:
    for prefix in ("slice_data_layers/", "slice_data_eigenvector/", "slice_data_loss/"):
        compare(two_ranks, one_process, prefix, rtol=1e-10)
    assert {key.split("/")[1] for key in one_process if key.startswith("slice_data_layers/")} == {"", "0.weight",
                                                                                                  "2.weight"}
    same_on_every_rank(two_ranks, "slice_data")


def test_plane_of_the_probe_set_split_among_ranks_equals_one_process_to_reduction_order(
        two_ranks, one_process) -> None:
    compare(two_ranks, one_process, "plane_data_gradient/", rtol=1e-10)
    compare(two_ranks, one_process, "plane_data_loss/", rtol=1e-10)
    assert np.isfinite(one_process["plane_data_gradient/relative_gradient_change"]).all()
    assert np.isfinite(one_process["plane_data_loss/accuracy"]).all()
    same_on_every_rank(two_ranks, "plane_data")


def same_on_every_rank(two_ranks, prefix: str) -> None:
    """Every rank holds the same sums (all-reduced), bit for bit."""
    rank_0, rank_1 = two_ranks[1]
    keys = [key for key in rank_0 if key.startswith(prefix)]
    assert keys
    for key in keys:
        np.testing.assert_array_equal(rank_0[key], rank_1[key], err_msg=key)


def test_hessian_of_the_probe_set_split_among_ranks_equals_one_process_to_reduction_order(
        two_ranks, one_process) -> None:
    compare(two_ranks, one_process, "hessian_data/", rtol=1e-10)
    net, (x, y) = net_and_data()  # the loss the summed shards give, against the loss of the whole set
    loss = torch.nn.functional.cross_entropy(net(x.double()), y).item()
    assert two_ranks[1][0]["hessian_data/loss_at_point"] == pytest.approx(loss, rel=1e-12)


def test_hessian_blocks_split_among_ranks_equal_one_process_bit_for_bit(two_ranks, one_process) -> None:
    compare(two_ranks, one_process, "hessian_work/", rtol=0)


@pytest.mark.parametrize(("arguments", "sentence"), [
    (["hessian", "--shard", "pieces"], "Unknown --shard 'pieces'; use one of work, data."),
    (["plane", "--shard", "pieces"], "Unknown --shard 'pieces'; use one of work, data."),
    (["hessian"], "probe hessian --shard work divides the layer blocks of --per-layer among the ranks"),
])
def test_a_shard_the_command_does_not_offer_is_one_sentence(tmp_path, monkeypatch, arguments, sentence) -> None:
    from typer.testing import CliRunner

    from landscape_probe.cli import app
    from tests.cli_outcomes import one_sentence_exit_2
    from tests.landscape.test_probe_hessian import digits_checkpoint

    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun; every refusal comes before the ranks are joined
    monkeypatch.setenv("RANK", "0")
    command, *options = arguments
    result = CliRunner().invoke(app, [command, str(digits_checkpoint(tmp_path)), "--device", "cpu", *options,
                                      "-o", str(tmp_path / "out.h5")])
    assert sentence in one_sentence_exit_2(result)
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize(("options", "sentence"), [
    (["--shard", "data", "--batch-size", "63", "--optimizer", "sgd", "--optimizer", "adam"],
     "--shard data divides every batch equally among the 2 ranks, so --batch-size must be a multiple of 2, not 63."),
    (["--optimizer", "kfac"], "kfac reads each layer's inputs and output gradients, of which a rank under --shard "
                              "data sees only its part of the batch; train it with --shard work or as one process."),
    (["--norm", "batch"], "The network has batch normalisation, whose statistics under --shard data would be"),
    (["--shard", "pieces"], "Unknown --shard 'pieces'; use one of work, data."),
    (["--shard", "work", "--save-every", "5"], "save_every writes each run's weights while it trains, which under "
                                               "torchrun with --shard work would be every rank writing"),
])
def test_what_a_run_divided_among_ranks_cannot_train_is_one_sentence(tmp_path, monkeypatch, options,
                                                                        sentence) -> None:
    import contextlib

    from typer.testing import CliRunner

    from landscape_probe import distributed
    from landscape_probe.cli import app
    from tests.cli_outcomes import one_sentence_exit_2

    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun, rank 0; every refusal comes before a collective
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(distributed, "process_group", lambda device: contextlib.nullcontext())
    result = CliRunner().invoke(app, ["train", "--epochs", "1", "--width", "8", "--depth", "2", "--device", "cpu",
                                      *options, "-o", str(tmp_path / "out")])
    assert sentence in one_sentence_exit_2(result)
    assert not (tmp_path / "out").exists()


def test_a_training_sweep_divided_among_ranks_equals_one_process_and_rank_0_wrote_it(two_ranks,
                                                                                      one_process) -> None:
    folder, got = two_ranks
    compare(two_ranks, one_process, "train/", rtol=0)
    sweep = [[run for run in got[rank]["trained_here"] if not run.endswith("/data")] for rank in (0, 1)]
    # each run was trained once, by the rank that was free first (so not necessarily two each)
    assert len(sweep[0]) + len(sweep[1]) == 4 and len(set(sweep[0]) | set(sweep[1])) == 4
    written = lp.load(folder / "sweep" / "results.h5")
    assert not written.incomplete and len(written.runs) == 4
    for run in written.runs:  # the file and the checkpoints hold the runs the ranks trained
        np.testing.assert_array_equal(run.records["loss"], got[0][f"train/{run.name}/loss"])
        assert (folder / "sweep" / run.name / "checkpoint.pt").is_file()


def test_interpolation_points_split_among_ranks_equal_one_process_bit_for_bit(two_ranks, one_process) -> None:
    compare(two_ranks, one_process, "interpolate/", rtol=0)
    assert len(one_process["interpolate/alphas"]) == 9  # -0.5 ... 1.5 in steps of 0.25: 0 and 1 among them


def test_rank_0_alone_reports_progress_counting_its_share(two_ranks) -> None:
    got = two_ranks[1]
    assert len(got[1]["progress"]) == 0  # rank 1 reports nothing
    done, total, label = got[0]["progress"][-1]
    # 5 scales in passes of 2: rank 0 has points 0, 1 and 4 of the whole sweep and the first of the two layers'
    assert done == total == 3 + 5 and label.endswith("(rank 0's share of 2 ranks)")
    assert {report[0] for report in got[0]["progress"]} == set(range(9))  # counted point by point


def test_a_run_trained_on_every_rank_with_its_batches_divided_equals_one_process_to_reduction_order(
        two_ranks, one_process) -> None:
    folder, got = two_ranks
    compare(two_ranks, one_process, "train_data/", rtol=1e-10)
    compare(two_ranks, one_process, "train_data_one/", rtol=1e-10)
    for rank in (0, 1):  # every rank trained every run of both calls, on its part of the batches
        assert [run for run in got[rank]["trained_here"] if run.endswith("/data")] == [
            "adam0.00130/data", "momentum0.0130/data", "fromage0.0130/data", "muon0.0230/data"]
    for key in one_process:
        if key.startswith("train_data"):  # the ranks took the same steps from the same numbers
            np.testing.assert_array_equal(got[0][key], got[1][key], err_msg=key)
    records = one_process["train_data/fromage_lr0.01_depth3_seed0/epoch_train_loss"]
    assert len(records) == 2 and len(one_process["train_data/fromage_lr0.01_depth3_seed0/sharpness"]) == 4
    written = lp.load(folder / "data_parallel" / "results.h5")
    assert not written.incomplete and len(written.runs) == 3
    for run in written.runs:
        np.testing.assert_array_equal(run.records["loss"], got[0][f"train_data/{run.name}/loss"])
        assert (folder / "data_parallel" / run.name / "checkpoint.pt").is_file()
