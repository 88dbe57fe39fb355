"""``lp.plane``: the loss on a 2-D grid W + a·d₁ + b·d₂, and with ``measure="gradient"`` the trust region on it.

Directions (each filter-normalised, Li et al., NeurIPS 2018: every output row
of d_l rescaled to the norm of the same row of W_l):

- ``random``: Gaussian, seeded (the y direction with the next seed);
- ``gradient``: the descent direction −∇L(W);
- ``hessian:K`` / ``hessian:FILE.h5:K``: the unit K-th Hessian eigenvector
  (:mod:`~landscape_probe.curvature.hessian_direction`), *not* filter-normalised,
  which would make it no eigenvector; a plane ``hessian:1`` × ``hessian:2``
  is PyHessian's and Yao et al.'s (2020) top-eigenvector plane.

Only the selected layers move (by default every parameter with ndim ≥ 2;
biases and normalisation parameters stay fixed unless ``include_1d``). With
``measure="loss"`` (the default) every cell costs one forward pass. With
``measure="gradient"`` every cell also records the relative gradient change
||g(W + Δ) − g(W)|| / ||g(W)|| (over the moved layers) and the two predictions
of it at that cell's step Δ = a·d₁ + b·d₂: deep relative trust
Π_l (1 + ||Δ_l||_F / ||W_l||_F) − 1 and Euclidean trust |λ_max|·||Δ|| / ||g(W)||
(DESIGN.md §4), so that the figures can draw where each reaches the
threshold beside where the measurement does.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> data = (torch.randn(32, 4), torch.randint(0, 3, (32,)))
    >>> result = plane(model, data, x="-1:1:3", y="-1:1:5", device="cpu")
    >>> result.loss.shape
    (5, 3)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from landscape_probe.devices import exact_float32
from landscape_probe.errors import ProbeError
from landscape_probe.landscape.plane_result import DIRECTIONS, MEASURES, PlaneResult
from landscape_probe.progress import Progress, progress_callback

SAVE_EVERY_S = 30.0
"""How often a plane given ``output`` is saved while its grid fills, so that an interruption loses little."""


@exact_float32()  # no TF32 on a GPU: see devices.exact_float32
def plane(
    model: nn.Module | str | Path,
    data: Any = None,
    *,
    x: str | None = None,
    y: str | None = None,
    trajectory: Path | str | None = None,
    direction_x: str = "random",
    direction_y: str = "random",
    measure: str = "loss",
    threshold: float = 1.0,
    select: str | None = None,
    include_1d: bool = False,
    probe_size: int = 512,
    split: str = "train",
    loss: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
    power_iterations: int = 50,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust_checkpoint: bool = False,
    output: Path | str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | Progress = False,
    output_key: str | None = None,
    command_line: str | None = None,
    shard: str = "work",
) -> PlaneResult:
    """Evaluate the model at W + a·d₁ + b·d₂ for every a in ``x`` and b in ``y`` (``START:STOP:COUNT``).

    Args:
        model, data, probe_size, split, loss, device, dtype, seed, arch, arch_kwargs, trust_checkpoint: as ``lp.slice``.
        x, y: the grid's coordinates along d₁ and d₂, ``"START:STOP:COUNT"`` or ``(start, stop, count)`` (default
            ``-1:1:21``, or with ``trajectory`` 21 points covering the projected path with a fifth of its span to spare).
        trajectory: a ``probe train`` run folder saved with ``save_every``: d₁ and d₂ become the first two
            principal directions of its saved weights around W (unit vectors, not filter-normalised), and
            the path is projected on the plane (:mod:`landscape_probe.landscape.trajectory_pca`).
        direction_x, direction_y: ``random`` or ``gradient`` (filter-normalised), or ``hessian:K`` /
            ``hessian:FILE.h5:K`` (a unit Hessian eigenvector, as ``lp.slice``); ignored with ``trajectory``.
        measure: ``loss`` (forward passes only) or ``gradient`` (also the relative gradient change and the
            DRT and Euclidean predictions of it at every cell).
        threshold: the relative gradient change whose contour the figures draw.
        select, include_1d: which parameters move, as ``probe slice --select / --include-1d``.
        power_iterations: most Hessian-vector products for λ_max (``measure="gradient"``) and each Hessian direction.
        output: a results file to save to while the grid fills (every 30 s and at the end), so that an
            interrupted plane can be resumed; ``resume`` continues the one already there.
        overwrite: replace an existing ``output`` (without ``resume``).
        progress: True for a progress bar; or a callable ``progress(done, total, label)``.
        output_key: for a model returning a tuple, dict or ``ModelOutput``, the output to measure (as ``lp.slice``).
        command_line: the command to record as provenance (the CLI's); default: this call.
        shard: under ``torchrun``, ``work``: the rows of the grid are divided among the ranks (each cell
            computed by one rank, as one process computes it); or ``data``: the probe set is, every rank
            evaluating every cell on its contiguous part, with the loss, accuracy counts, function change,
            gradient and λ_max's Hessian-vector products summed over the ranks (docs/distributed.md).

    Raises:
        ProbeError: for bad settings, a model that does not fit the data, a zero direction, or (``resume``)
            a file made with other settings or another checkpoint.
    """
    import torch

    from landscape_probe.hdf5 import check_writable
    from landscape_probe.landscape.grid import parse_range
    from landscape_probe.landscape.setup import probe_problem

    if trajectory is not None:
        direction_x = direction_y = "pca"
    settings = _settings(direction_x, direction_y, measure, threshold, select, include_1d, split, dtype, seed)
    settings["trajectory"] = str(Path(trajectory).resolve()) if trajectory is not None else ""
    xs = parse_range(x, "--x") if x is not None else None if trajectory is not None else parse_range("-1:1:21")
    ys = parse_range(y, "--y") if y is not None else None if trajectory is not None else parse_range("-1:1:21")
    from landscape_probe import distributed

    distributed.check_shard(shard)
    with distributed.process_group(device):
        previous, main = None, distributed.is_main()  # under torchrun only rank 0 opens the results file
        if output is not None and resume:
            previous = distributed.from_main(PlaneResult.load(output) if main and Path(output).exists() else None)
        elif output is not None and main:
            check_writable(output, overwrite)
        problem = probe_problem(model, data, probe_size=probe_size, split=split, loss=loss, device=device, dtype=dtype,
                                seed=seed, arch=arch, arch_kwargs=arch_kwargs, trust_checkpoint=trust_checkpoint,
                                output_key=output_key)
        from landscape_probe.data_shard import ProbeShard
        from landscape_probe.landscape.plane_grid import PlaneGrid

        grid = PlaneGrid(problem, settings, power_iterations, ProbeShard(problem.x, problem.y, shard))
        if grid.path is not None:
            from landscape_probe.landscape.trajectory_pca import covering_range

            xs = xs if xs is not None else covering_range(grid.path.coordinates[:, 0])
            ys = ys if ys is not None else covering_range(grid.path.coordinates[:, 1])
        result = grid.empty_result(xs, ys, settings, command_line or _call_text(model), seed)
        if previous is not None:
            result = _continue_from(previous, result)
        rows = grid.probe.share(list(np.unique(np.nonzero(~result.done)[0])))
        # the cells done before (resumed) and this rank's share of the rest: the whole grid for one process
        started, total = time.monotonic(), int(result.done.sum() + sum((~result.done[row]).sum() for row in rows))
        try:
            with progress_callback(progress) as report, torch.no_grad():
                for row in rows:
                    grid.fill_row(result, int(row), np.nonzero(~result.done[row])[0])
                    if report:
                        report(int(result.done.sum()), total, "plane")
                    if output is not None and main and time.monotonic() - started > SAVE_EVERY_S:
                        result.save(output, overwrite=True)
                        started = time.monotonic()
        except KeyboardInterrupt:
            if output is not None and main:
                result.save(output, overwrite=True)
            raise
        grid.forward.restore()
        if distributed.launched() and not grid.probe.divided:
            _merge_ranks(result)
        result.complete = True
        if output is not None and main:
            result.save(output, overwrite=True)
        return result


def _merge_ranks(result: PlaneResult) -> None:
    """Every rank's evaluated cells into ``result`` on every rank (each cell was evaluated by one rank)."""
    from landscape_probe import distributed

    names = [name for name in ("loss", "accuracy", "relative_function_change", "relative_gradient_change")
             if getattr(result, name) is not None]
    mine = (result.done, {name: getattr(result, name)[result.done] for name in names})
    for done, values in distributed.gather(mine):
        for name in names:
            getattr(result, name)[done] = values[name]
        result.done |= done


def _settings(direction_x: str, direction_y: str, measure: str, threshold: float, select: str | None,
              include_1d: bool, split: str, dtype: str, seed: int) -> dict[str, Any]:
    directions = (*DIRECTIONS, "hessian:K", "hessian:FILE.h5:K") if direction_x != "pca" else ("pca",)
    for option, value, choices in (("--direction-x", direction_x, directions), ("--direction-y", direction_y,
                                   directions), ("--measure", measure, MEASURES)):
        if value.startswith("hessian:") and option != "--measure":
            from landscape_probe.curvature.hessian_direction import parse_hessian_direction

            parse_hessian_direction(value)
        elif value not in choices:
            raise ProbeError(f"Unknown {option} '{value}'; use one of {', '.join(choices)}.")
    if direction_x == direction_y and direction_x not in ("random", "pca"):
        raise ProbeError(f"Both directions are {direction_x}, which spans a line, not a plane; change one of them.")
    if not (np.isfinite(threshold) and threshold > 0):
        raise ProbeError(f"--threshold must be a positive number, got {threshold}.")
    return {"direction_x": direction_x, "direction_y": direction_y, "measure": measure, "threshold": float(threshold),
            "select": select or "", "include_1d": bool(include_1d), "split": split, "dtype": dtype, "seed": seed}


def _continue_from(previous: PlaneResult, fresh: PlaneResult) -> PlaneResult:
    """The saved plane, if it was made with the same settings, grid and checkpoint; else one sentence."""
    if previous.complete:
        raise ProbeError(f"'{previous.path}' is already complete; nothing to resume (use --overwrite, overwrite=True in Python, to redo it).")
    same = (np.array_equal(previous.x_coordinates, fresh.x_coordinates)
            and np.array_equal(previous.y_coordinates, fresh.y_coordinates)
            and all(previous.settings.get(k) == v for k, v in fresh.settings.items())
            and previous.provenance.get("checkpoint_sha256") == fresh.provenance.get("checkpoint_sha256")
            and np.allclose(previous.direction_norms, fresh.direction_norms, rtol=1e-5))
    if not same:
        raise ProbeError(f"'{previous.path}' was made with other settings, grid or checkpoint, so it cannot be "
                         "resumed with these; run it again with the same options, or use --overwrite.")
    previous.provenance = fresh.provenance
    return previous


def _call_text(model: Any) -> str:
    return f"lp.plane({repr(str(model)) if isinstance(model, (str, Path)) else type(model).__name__})"
