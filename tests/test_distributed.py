"""Under torchrun: two Gloo processes on this CPU split a plane's rows and give the single process's numbers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import landscape_probe as lp
from landscape_probe import distributed
from tests.landscape.test_probe_hessian import digits_checkpoint

GRID = {"x": "-1:1:5", "y": "-0.5:0.5:4"}


def free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def net_and_data() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    generator = torch.Generator().manual_seed(2)
    return net, (torch.randn(40, 5, generator=generator), torch.randint(0, 3, (40,), generator=generator))


def plane_on_rank(rank: int, port: int, folder: str) -> None:
    """One of two ranks: lp.plane inside a torchrun-like environment, its result saved per rank (not by lp)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), PROBE_DIST_TIMEOUT="60")
    net, data = net_and_data()
    result = lp.plane(net, data, device="cpu", dtype="float64", measure="gradient", seed=3, **GRID)
    np.savez(Path(folder) / f"rank{rank}.npz", loss=result.loss, accuracy=result.accuracy,
             change=result.relative_gradient_change, function=result.relative_function_change, done=result.done)


def test_without_torchrun_there_is_one_rank_with_all_the_work() -> None:
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert distributed.share([1, 2, 3]) == [1, 2, 3] and distributed.gather("x") == ["x"]


def test_two_ranks_give_every_rank_the_single_process_plane(tmp_path) -> None:
    net, data = net_and_data()
    single = lp.plane(net, data, device="cpu", dtype="float64", measure="gradient", seed=3, **GRID)
    torch.multiprocessing.start_processes(plane_on_rank, args=(free_port(), str(tmp_path)), nprocs=2,
                                          start_method="spawn")
    for rank in (0, 1):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert got["done"].all()
        np.testing.assert_array_equal(got["loss"], single.loss)  # each cell is computed by one rank, the same way
        np.testing.assert_array_equal(got["accuracy"], single.accuracy)
        np.testing.assert_array_equal(got["change"], single.relative_gradient_change)
        np.testing.assert_array_equal(got["function"], single.relative_function_change)


def torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "landscape_probe", *args]  # --standalone: a local rendezvous on a free port
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PROBE_DIST_TIMEOUT": "60",
                   "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                  os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=environment)


def test_probe_plane_under_torchrun_writes_once_and_resumes_a_single_process_file(tmp_path, monkeypatch) -> None:
    checkpoint = digits_checkpoint(tmp_path)
    options = ["--x", GRID["x"], "--y", GRID["y"], "--probe-size", "64", "--device", "cpu"]
    single = lp.plane(checkpoint, x=GRID["x"], y=GRID["y"], probe_size=64, device="cpu")
    out = tmp_path / "two.h5"
    run = torchrun("plane", str(checkpoint), *options, "-o", str(out), "--no-plots")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count(f"wrote {out}") == 1  # rank 0 alone prints (and writes)
    written = lp.load(out)
    assert written.complete and np.array_equal(written.loss, single.loss)

    # A plane that one process left half done is finished by two.
    from landscape_probe.forward import ForwardEvaluator

    run_forward, calls = ForwardEvaluator.run, []

    def stop_in_row_3(self, with_accuracy=True):
        calls.append(1)
        if len(calls) == 11:
            raise KeyboardInterrupt
        return run_forward(self, with_accuracy)

    monkeypatch.setattr(ForwardEvaluator, "run", stop_in_row_3)
    partial = tmp_path / "partial.h5"
    with pytest.raises(KeyboardInterrupt):
        lp.plane(checkpoint, x=GRID["x"], y=GRID["y"], probe_size=64, device="cpu", output=partial)
    monkeypatch.setattr(ForwardEvaluator, "run", run_forward)
    assert 0 < lp.load(partial).done.sum() < 20  # some rows done, written by the one process
    resumed = torchrun("plane", str(checkpoint), *options, "-o", str(partial), "--resume", "--no-plots")
    assert resumed.returncode == 0, resumed.stderr[:3000]
    finished = lp.load(partial)
    assert finished.complete and np.array_equal(finished.loss, single.loss)


def test_probe_interpolate_under_torchrun_writes_once_the_single_process_line(tmp_path) -> None:
    from tests.landscape.test_interpolate import _checkpoints

    a, b = _checkpoints(tmp_path)
    options = ["--range", "-0.5:1.5:7", "--probe-size", "64", "--device", "cpu", "--no-plots"]
    single = lp.interpolate(a, b, range="-0.5:1.5:7", probe_size=64, device="cpu")
    out = tmp_path / "ab.h5"
    run = torchrun("interpolate", str(a), str(b), *options, "-o", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count(f"wrote {out}") == 1  # rank 0 alone prints (and writes)
    written = lp.load(out)
    for name in ("alphas", "loss", "accuracy", "relative_function_change", "drt_prediction"):
        np.testing.assert_array_equal(getattr(written, name), getattr(single, name), err_msg=name)
    assert written.barrier_height == single.barrier_height


def test_a_command_that_does_not_split_its_work_is_refused_under_torchrun(tmp_path) -> None:
    checkpoint = digits_checkpoint(tmp_path)
    run = torchrun("advise", str(checkpoint), "--device", "cpu")
    assert run.returncode != 0 and "does not split its work among torchrun's ranks" in run.stderr


def test_shard_data_in_one_process_is_the_whole_probe_set() -> None:
    """Without torchrun, --shard data takes its divided path with one part: the same numbers as --shard work."""
    net, data = net_and_data()
    kwargs = {"device": "cpu", "dtype": "float64", "seed": 3}
    work, divided = (lp.slice(net, data, scales=[0.1, 0.5, 1.0], layers=True, shard=shard, **kwargs)
                     for shard in ("work", "data"))
    for name in ("loss", "relative_function_change", "relative_gradient_change", "kl_divergence"):
        np.testing.assert_array_equal(getattr(divided.whole, name), getattr(work.whole, name), err_msg=name)
    assert divided.whole.lambda_max == work.whole.lambda_max
    planes = [lp.plane(net, data, measure="gradient", shard=shard, **GRID, **kwargs) for shard in ("work", "data")]
    for name in ("loss", "relative_gradient_change"):
        np.testing.assert_array_equal(getattr(planes[1], name), getattr(planes[0], name), err_msg=name)


def test_contiguous_parts_cover_the_rows_once_in_order(monkeypatch):
    parts = []
    for rank in range(3):
        monkeypatch.setattr(distributed, "world_size", lambda: 3)
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        parts.append(distributed.contiguous_part(torch.arange(7)))
    assert [len(part) for part in parts] == [3, 2, 2]
    assert torch.equal(torch.cat(parts), torch.arange(7))


@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_under_torchrun_each_rank_makes_its_own_gpu_current_before_nccl_starts(monkeypatch, device: str) -> None:
    """NCCL's object collectives (behind gather) put their bytes on the current GPU: rank 1 must be on cuda:1.

    No GPU here: CUDA and the process group are stood in for, and the calls recorded in order.
    """
    import torch.distributed as dist

    calls: list[tuple[str, object]] = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda where: calls.append(("set_device", where)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls.append(("init", backend)))
    monkeypatch.setattr(dist, "barrier", lambda *a, **kw: None)
    monkeypatch.setattr(dist, "destroy_process_group", lambda *a, **kw: calls.append(("destroy", None)))
    with distributed.process_group(device):
        pass
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "nccl"), ("destroy", None)]
    calls.clear()
    with distributed.process_group("cpu"):  # Gloo on the CPU: no GPU made current
        pass
    assert calls == [("init", "gloo"), ("destroy", None)]


def test_a_numbered_gpu_is_refused_under_torchrun_and_where_it_is_not_there(monkeypatch) -> None:
    from landscape_probe.devices import resolve_device
    from landscape_probe.errors import ProbeError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ProbeError, match="2 visible GPU"):
        resolve_device("cuda:2")
    for bad in ("cuda:x", "cuda:", "cuda:²", "cuda:-1"):
        with pytest.raises(ProbeError, match="Unknown device"):
            resolve_device(bad)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(ProbeError, match="every torchrun rank on one GPU"):
        resolve_device("cuda:0")
