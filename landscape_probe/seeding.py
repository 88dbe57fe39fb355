"""torch's global random generators: seeded for one block and put back, and saved with a run to resume it.

``torch.random.fork_rng(devices=[])`` saves and restores the CPU generator only, while
``torch.manual_seed`` also reseeds every CUDA generator (once CUDA starts, if it has not yet), so
the pair would leave a GPU's random numbers changed. :func:`seeded` seeds the CPU generator alone,
which gives the numbers ``torch.manual_seed`` gives on the CPU, and, with ``cuda``, the CUDA
generators as well; both are put back afterwards.

Example:
    >>> import torch
    >>> before = torch.get_rng_state()
    >>> with seeded(0):
    ...     first = torch.rand(2)
    >>> with seeded(0):
    ...     again = torch.rand(2)
    >>> torch.equal(first, again), torch.equal(torch.get_rng_state(), before)
    (True, True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def seeded(seed: int, *, cuda: bool = False) -> Iterator[None]:
    """Draw from the global generators seeded with ``seed``; they are as they were afterwards.

    Args:
        seed: the seed of the CPU generator (and of every CUDA generator with ``cuda``).
        cuda: also seed and restore the CUDA generators when CUDA is available, for code
            that may draw on a GPU (a user's model factory); this starts CUDA.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        if not (cuda and torch.cuda.is_available()):
            yield
            return
        states = torch.cuda.get_rng_state_all()
        torch.cuda.manual_seed_all(seed)
        try:
            yield
        finally:
            torch.cuda.set_rng_state_all(states)


def rng_state() -> dict[str, Any]:
    """The global generators' states, to resume a run with: the CPU's, and the CUDA devices' once CUDA has started."""
    import torch

    state: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` saved; the CUDA states only where there are as many CUDA devices.

    A state saved without CUDA (on the CPU, or by a version before CUDA's was saved) leaves CUDA's alone.
    """
    import torch

    torch.set_rng_state(state["torch_rng"])
    cuda = state.get("cuda_rng")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
