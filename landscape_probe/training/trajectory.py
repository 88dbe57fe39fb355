"""A run's weights every k steps (``probe train --save-every K``), for planes through its trajectory.

Each snapshot is ``RUN/trajectory/step_<step>.safetensors``: every floating-point
parameter and buffer of the model at that step (before the step's update; the
last one after the final update), written atomically. safetensors files hold
tensors only, so reading them back never runs code. For Schedule-Free
optimisers the snapshots hold the training-mode weights (the sequence y, not
the averaged x that checkpoints hold).

Example:
    >>> steps, states = read_trajectory("runs/x/sgd_lr0.1_depth4_seed0")  # doctest: +SKIP
    >>> steps[:3], sorted(states[0])[:2]  # doctest: +SKIP
    ([0, 50, 100], ['hidden.0.bias', 'hidden.0.weight'])
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from torch import Tensor, nn

from landscape_probe.errors import ProbeError

FOLDER = "trajectory"
_NAME = re.compile(r"^step_(\d+)\.safetensors$")
Snapshot = Callable[[int, nn.Module, bool], None]
"""``snapshot(step, model, last)``: called before every step, and with ``last`` once after the final one."""


def snapshot_writer(folder: Path, every: int) -> Snapshot:
    """A :data:`Snapshot` that saves the model at every multiple of ``every`` steps, and the last state."""

    def snapshot(step: int, model: nn.Module, last: bool = False) -> None:
        from safetensors.torch import save_file

        from landscape_probe.atomic import atomic_path

        if step % every and not last:
            return
        folder.mkdir(parents=True, exist_ok=True)
        named = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        tensors = {name: t.detach().cpu().contiguous().clone() for name, t in named.items() if t.is_floating_point()}
        with atomic_path(folder / f"step_{step:08d}.safetensors") as tmp:
            save_file(tensors, str(tmp))

    return snapshot


def read_trajectory(run_folder: Path | str) -> tuple[list[int], list[dict[str, Tensor]]]:
    """The steps and states saved in ``RUN/trajectory``, in step order.

    Raises:
        ProbeError: when the folder holds fewer than three snapshots (a plane needs two directions of change).
    """
    from safetensors.torch import load_file

    folder = Path(run_folder) / FOLDER
    if not Path(run_folder).is_dir():
        raise ProbeError(f"The run folder '{run_folder}' for --trajectory does not exist (or is not a folder).")
    files = sorted((int(m.group(1)), path) for path in folder.glob("step_*.safetensors")
                   if (m := _NAME.match(path.name))) if folder.is_dir() else []
    if len(files) < 3:
        raise ProbeError(f"'{run_folder}' holds {len(files)} weight snapshots in {FOLDER}/; a trajectory plane needs "
                         "at least 3: train with probe train --save-every K (K a fraction of the run's steps).")
    return [step for step, _ in files], [load_file(str(path)) for _, path in files]
