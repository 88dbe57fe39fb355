"""A rank killed mid-run: the other exits non-zero in one sentence, within the timeout, and leaves no half-written output.

The two ranks are started here (with RANK, WORLD_SIZE, MASTER_ADDR/PORT set as ``torchrun`` sets them, but no
``torchrun`` agent that would stop the survivor for us), so what ends rank 0 is its own collective failing.
Rank 1 dies by ``os._exit`` inside its work, as a killed process does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import landscape_probe as lp
from tests.test_distributed import free_port

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 20
"""``PROBE_DIST_TIMEOUT`` of the ranks: a dead peer must end the survivor within it."""

DIE = """
import os, runpy, sys, time
import {module} as target
original, calls = target.{name}, []
def dying(*args, **kwargs):
    calls.append(1)
    if len(calls) {compare} {at}:
        {action}
    return original(*args, **kwargs)
target.{name} = dying
sys.argv = ["probe", *sys.argv[1:]]
runpy.run_module("landscape_probe", run_name="__main__")
"""


def two_ranks(arguments: list[str], module: str, name: str, at: int, action: str = "os._exit(9)",
              timeout: float = 120, collective_timeout: int = TIMEOUT_S,
              compare: str = "==") -> list[subprocess.CompletedProcess]:
    """``probe ARGUMENTS`` on two ranks; rank 1 runs ``action`` (dies) on its ``at``-th call of ``module.name``
    (``compare=">="``: on that call and every later one).

    Rank 0 has ``timeout`` seconds; a rank still running 5 s after rank 0 ended is killed (returncode -9),
    as ``torchrun``'s agent ends the other workers when one fails.
    """
    port = free_port()
    processes = []
    for rank in (0, 1):
        environment = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
                       "PROBE_DIST_TIMEOUT": str(collective_timeout),
                       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        code = ["-m", "landscape_probe"] if rank == 0 else ["-c", DIE.format(module=module, name=name, at=at,
                                                                              action=action, compare=compare)]
        processes.append(subprocess.Popen([sys.executable, *code, *arguments], env=environment, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return [subprocess.CompletedProcess(p.args, _wait(p, timeout if rank == 0 else 5), *p.communicate())
            for rank, p in enumerate(processes)]


def _wait(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def test_a_killed_rank_stops_the_other_and_leaves_no_slice(tmp_path) -> None:
    out = tmp_path / "s.h5"
    started = time.monotonic()
    # one point per pass: one ProbeEvaluator.evaluate per point, so rank 1 dies inside its share of the sweep
    ranks = two_ranks(["slice", str(ROOT / "sample_checkpoints" / "mlp2_digits.pt"), "--layers", "--probe-size", "64", "--device",
                       "cpu", "--points", "9", "--points-per-pass", "1", "-o", str(out), "--no-plots"],
                      "landscape_probe.slicing.evaluator", "ProbeEvaluator.evaluate", at=3)
    took = time.monotonic() - started
    assert ranks[1].returncode == 9
    assert ranks[0].returncode == 2, ranks[0].stderr[-2000:]
    stderr = " ".join(ranks[0].stderr.split())  # one sentence, naming what happened
    assert stderr.startswith("Error: Rank 0 of 2 lost the other ranks while gathering results (one failed")
    assert stderr.endswith("nothing more is written.") and stderr.count(". ") == 0, stderr
    assert took < TIMEOUT_S + 60  # the start of two interpreters, the work, and at most the timeout
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written


SWEEP = ["--optimizer", "sgd", "--optimizer", "fromage", "--seeds", "0,1", "--depth", "2", "--width", "8",
         "--epochs", "1", "--batch-size", "128", "--diagnostics-every", "0", "--device", "cpu"]


def one_process_sweep() -> lp.TrainResult:
    return lp.train("mlp", "digits", optimizers=("sgd", "fromage"), seeds=(0, 1), depth=2, width=8, epochs=1,
                    batch_size=128, diagnostics_every=0, device="cpu")


def test_a_sweep_whose_rank_was_killed_keeps_its_finished_runs_and_one_process_resumes_it(tmp_path) -> None:
    started = time.monotonic()
    ranks = two_ranks(["train", *SWEEP, "--output", str(tmp_path / "sweep")], "landscape_probe.training.grid",
                      "train_run", at=1, collective_timeout=8)  # rank 1 dies as it starts its first run
    assert ranks[1].returncode == 9 and ranks[0].returncode == 2, ranks[0].stderr[-2000:]
    stderr = " ".join(ranks[0].stderr.split())  # rank 0 trained the other runs, then waited for rank 1's heartbeat
    assert stderr == ("Error: Rank 0 of 2 lost the other ranks while waiting for their runs (rank 1 failed, was "
                      "killed, or has not finished a step in PROBE_DIST_TIMEOUT=8 s); nothing more is written.")
    assert 8 <= time.monotonic() - started < 60
    whole = {run.name: run for run in one_process_sweep().runs}
    saved = lp.load(tmp_path / "sweep" / "results.h5")  # each save is whole: every run but the one rank 1 took
    assert saved.incomplete and len(saved.runs) == 3 and {run.name for run in saved.runs} < set(whole)
    for run in saved.runs:
        np.testing.assert_array_equal(run.records["loss"], whole[run.name].records["loss"])
    resumed = lp.train(data=None, output=tmp_path / "sweep", resume=True)  # one process finishes it
    assert not resumed.incomplete and [r.name for r in resumed.runs] == list(whole)
    for got in resumed.runs:
        np.testing.assert_array_equal(got.records["loss"], whole[got.name].records["loss"])


def test_a_rank_free_first_takes_the_next_run_and_waits_for_a_slow_one_past_the_timeout(tmp_path) -> None:
    steps = tmp_path / "rank1_steps"
    slow = f"time.sleep(0.7); open({str(steps)!r}, 'a').write('.')"  # alive: it beats between its slow steps
    ranks = two_ranks(["train", *SWEEP, "--output", str(tmp_path / "sweep"), "--no-plots"],
                      "landscape_probe.training.recorder", "Recorder.record_step", at=1, action=slow, compare=">=",
                      collective_timeout=6)
    assert ranks[0].returncode == 0 and ranks[1].returncode == 0, ranks[0].stderr[-2000:]
    # 12 steps a run: rank 1 trained one run (8 s, longer than PROBE_DIST_TIMEOUT), rank 0 the other three
    assert len(steps.read_text()) == 12
    saved = lp.load(tmp_path / "sweep" / "results.h5")
    whole = {run.name: run for run in one_process_sweep().runs}
    assert not saved.incomplete and {run.name for run in saved.runs} == set(whole)
    for got in saved.runs:  # each run trained by one rank as one process trains it
        np.testing.assert_array_equal(got.records["loss"], whole[got.name].records["loss"])
        assert got.best_of_grid == whole[got.name].best_of_grid


def test_a_rank_that_hangs_makes_the_other_fail_after_the_timeout(tmp_path) -> None:
    out = tmp_path / "h.h5"
    started = time.monotonic()
    ranks = two_ranks(["hessian", str(ROOT / "sample_checkpoints" / "mlp2_digits.pt"), "--shard", "data",
                       "--probe-size", "64", "--device", "cpu", "-o", str(out), "--no-plots"],
                      "landscape_probe.data_shard", "SummedGraph.flat_hessian_vector_product", at=5,
                      action="time.sleep(600)", timeout=60, collective_timeout=8)
    assert ranks[0].returncode == 2, ranks[0].stderr[-2000:]  # rank 0 gave up on its own, after the timeout
    assert 8 <= time.monotonic() - started < 60
    assert ranks[1].returncode == -9  # the hung rank, ended here as torchrun's agent ends it
    assert "took longer than PROBE_DIST_TIMEOUT=8 s" in " ".join(ranks[0].stderr.split())
    assert not out.exists()
