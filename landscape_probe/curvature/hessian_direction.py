"""The K-th Hessian eigenvector as a direction: ``--direction hessian:K`` or ``hessian:FILE.h5:K``.

- ``hessian:K`` computes it: the K largest (algebraic) eigenpairs of the
  Hessian of the probe-set loss over the perturbed layers, by Lanczos with full
  reorthogonalisation (:func:`~landscape_probe.curvature.spectrum.top_eigenpairs`),
  on one kept gradient graph; the K-th Ritz vector is the direction.
- ``hessian:FILE.h5:K`` reads row K−1 of the ``eigenvectors`` that
  ``probe hessian`` saved (the layout of
  :class:`~landscape_probe.landscape.hessian_result.HessianResult`, read here
  with h5py alone, so that curvature needs nothing of the landscape package).
  The file must cover the same layers, in the same order and sizes, and — when
  both are known — come from the same checkpoint (its sha256); otherwise the
  row is not an eigenvector of this Hessian, and it is refused in one sentence.

``eigenvector`` (no K) stays the eigenvector of the eigenvalue of largest
*magnitude*; ``hessian:1`` is that of the largest *algebraic* eigenvalue, the
two differing only when the most negative eigenvalue is the larger in size.

An eigenvector's sign is arbitrary; both forms turn it so that ``gᵀv ≤ 0``
(moving along +v does not raise the loss to first order), so that the same K
gives the same direction however it was found.

Example:
    >>> parse_hessian_direction("hessian:2"), parse_hessian_direction("hessian:runs/h.h5:1")
    ((None, 2), ('runs/h.h5', 1))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from landscape_probe.curvature.hessian import GradientGraph
    from landscape_probe.params import Params

FORMS = "hessian:K (computed) or hessian:FILE.h5:K (read from a probe hessian file)"
RESTART_SEEDS = 3_000_000
"""Seeds of Lanczos's restart vectors are ``seed + RESTART_SEEDS + i``, here and in ``probe hessian``."""


def parse_hessian_direction(text: str) -> tuple[str | None, int]:
    """``(file or None, K)`` of ``hessian:K`` / ``hessian:FILE.h5:K``; K counts from 1 (the largest eigenvalue).

    Raises:
        ProbeError: when the text has neither form or K is not a positive whole number.
    """
    kind, _, rest = text.partition(":")
    head, _, index = rest.rpartition(":")
    if kind != "hessian" or not index.strip().isdigit() or int(index) < 1:
        raise ProbeError(f"Cannot read the direction '{text}'; write {FORMS}, with K = 1 for the largest eigenvalue.")
    return (head or None), int(index)


def check_hessian_file(text: str, checkpoint_sha256: str) -> None:
    """Refuse a ``hessian:FILE.h5:K`` whose file is missing, not a Hessian file, too short, or of another checkpoint.

    ``checkpoint_sha256`` is the sliced checkpoint's hash ("" when the model was given in memory: not compared).
    """
    path, k = parse_hessian_direction(text)
    if path is None:
        return
    saved = _read(path, k)
    if saved["sha256"] and checkpoint_sha256 and saved["sha256"] != checkpoint_sha256:
        raise ProbeError(f"'{path}' was computed on another checkpoint ({saved['checkpoint']}), so its "
                         "eigenvectors are not this model's; run probe hessian on this checkpoint.")


def hessian_direction(text: str, graph: GradientGraph, *, seed: int, iterations: int, tolerance: float) -> Params:
    """The unit K-th eigenvector of the Hessian at W (the perturbed layers), turned so that gᵀv ≤ 0.

    Args:
        text: ``hessian:K`` or ``hessian:FILE.h5:K``.
        graph: the gradient graph of the probe-set loss at W, its leaves the perturbed layers (kept, not released).
        seed: of Lanczos's Rademacher start and restarts, drawn as ``probe hessian`` draws them.
        iterations: the most Hessian-vector products (raised to 2K + 10 when smaller).
        tolerance: Lanczos stops when every one of the K residuals is at most this times max|θ|.

    Raises:
        ProbeError: for a bad file (see :func:`check_hessian_file`) or layers the file does not cover.
    """
    from landscape_probe import params as P
    from landscape_probe.curvature.hessian import rademacher_like
    from landscape_probe.curvature.spectrum import top_eigenpairs

    path, k = parse_hessian_direction(text)
    params = graph.leaves
    if path is not None:
        flat = _row_from_file(path, k, params)
    else:
        if k > sum(v.numel() for v in params.values()):
            raise ProbeError(f"The perturbed layers have fewer than {k} weights, so there is no eigenvector {k}.")
        restarts = iter(range(10**6))
        top = top_eigenpairs(graph.flat_hessian_vector_product, P.flatten(rademacher_like(params, seed)), k=k,
                             iterations=max(iterations, 2 * k + 10), tolerance=tolerance,
                             restart=lambda: P.flatten(rademacher_like(params, seed + RESTART_SEEDS + next(restarts))))
        flat = top.eigenvectors[k - 1]
    if float(flat @ P.flatten(graph.gradient).to(flat.dtype)) > 0:
        flat = -flat
    return P.unflatten(flat.detach().contiguous(), params)


def _row_from_file(path: str, k: int, params: Params):
    """Row k−1 of the file's eigenvectors, on ``params``' device and dtype, after checking the layers match."""
    import torch

    saved = _read(path, k)
    if saved["names"] != list(params) or saved["sizes"] != [int(v.numel()) for v in params.values()]:
        shown = ", ".join(saved["names"][:4]) + (", ..." if len(saved["names"]) > 4 else "")
        raise ProbeError(f"'{path}' holds eigenvectors over other layers ({shown}); slice the layers it covers "
                         "(the same --select and --include-1d as probe hessian).")
    first = next(iter(params.values()))
    return torch.as_tensor(saved["row"], dtype=first.dtype, device=first.device)


def _read(path: str, k: int) -> dict:
    """Eigenvector k (row k−1), layer names and sizes, and the checkpoint's hash and path from a Hessian file."""
    from landscape_probe.hdf5 import open_results, plain_value

    if not Path(path).is_file():
        raise ProbeError(f"The Hessian file '{path}' does not exist; make it with probe hessian CHECKPOINT --output FILE.")
    with open_results(path) as h5:
        if plain_value(h5.attrs["kind"]) != "hessian" or "eigenvectors" not in h5:
            raise ProbeError(f"'{path}' holds {plain_value(h5.attrs['kind'])} results, not a Hessian spectrum.")
        vectors = h5["eigenvectors"]
        if k > vectors.shape[0]:
            raise ProbeError(f"'{path}' holds {vectors.shape[0]} eigenvectors, so there is no K = {k}; "
                             f"rerun probe hessian with --top-k {k}.")
        return {"row": vectors[k - 1], "names": [plain_value(name) for name in h5["layer_names"][()]],
                "sizes": [int(size) for size in h5["layer_sizes"][()]],
                "sha256": str(plain_value(h5.attrs.get("checkpoint_sha256", ""))),
                "checkpoint": str(plain_value(h5.attrs.get("checkpoint_path", "")))}
