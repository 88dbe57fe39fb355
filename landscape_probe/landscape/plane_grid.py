"""The grid of a plane: its two directions and the evaluation of one cell (:class:`PlaneGrid`, used by ``lp.plane``).

The moved layers of the evaluator's own model are re-homed as views into one
flat buffer, so that writing W + a·d₁ + b·d₂ for a cell is two vector
operations on that buffer instead of two per layer (a TorchScript model, whose
tensors cannot be re-homed, is written layer by layer).

With the probe set divided among ``torchrun``'s ranks (``shard="data"``), each
rank evaluates every cell on its part and the parts' sums are added
(:class:`~landscape_probe.data_shard.ProbeShard`): the loss as Σ_r (n_r / N)·L_r,
the correct answers as a count, ||F − F₀||_F as sqrt(Σ_r ||F_r − F₀,r||_F²), the
gradient as Σ_r (n_r / N)·∇L_r and λ_max through the summed Hessian-vector products.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from landscape_probe.errors import ProbeError
from landscape_probe.landscape.plane_result import PlaneResult

if TYPE_CHECKING:
    from torch import Tensor

    from landscape_probe.data_shard import ProbeShard


class PlaneGrid:
    """The two directions and what every cell needs; :meth:`fill` evaluates one cell into a result."""

    def __init__(self, problem: Any, settings: dict[str, Any], power_iterations: int, probe: ProbeShard) -> None:
        from landscape_probe import params as P
        from landscape_probe.forward import ForwardEvaluator
        from landscape_probe.params import select_layers
        from landscape_probe.slicing.evaluator import ProbeEvaluator

        self.problem, self.settings, self.power_iterations = problem, settings, power_iterations
        self.probe = probe  # the examples this rank evaluates (a part of the probe set under --shard data)
        self.layers = select_layers(problem.model, settings["select"] or None, settings["include_1d"])
        if not self.layers:
            raise ProbeError("No parameter matches --select (and --include-1d), so nothing would move.")
        self.forward = ForwardEvaluator(problem.model, probe.x, probe.y, problem.loss_name)
        self.with_gradient = probe.evaluator(ProbeEvaluator(problem.model, probe.x, probe.y, problem.loss_name,
                                                            self.layers))
        self.base = {k: self.forward.base[k] for k in self.layers}
        at_zero = self.with_gradient.evaluate(self.base)
        self.reference, self.gradient = at_zero.outputs, at_zero.gradient
        self.reference_norm = probe.norm(self.reference.double())
        self.gradient_norm = float(P.norm(self.gradient))
        self.path, self.path_steps = None, []
        if settings["trajectory"]:
            from landscape_probe.landscape.trajectory_pca import trajectory_plane
            from landscape_probe.training.trajectory import read_trajectory

            self.path_steps, states = read_trajectory(settings["trajectory"])
            self.path = trajectory_plane(states, self.base, self.layers)
            self.d1, self.d2 = self.path.d1, self.path.d2
        else:
            self.d1 = self._direction(settings["direction_x"], settings["seed"])
            self.d2 = self._direction(settings["direction_y"], settings["seed"] + 1)
        self.lambda_max = float("nan")
        if settings["measure"] == "gradient":
            from landscape_probe.curvature.hessian import top_eigenpair

            graph = self.with_gradient.evaluate_with_hessian(self.base)[1]
            self.lambda_max = top_eigenpair(graph, iterations=power_iterations, seed=settings["seed"]).eigenvalue
            graph.release()
        self.flat = self.forward.pack(self.layers)  # W + a·d₁ + b·d₂ in one operation per cell when not None
        if self.flat is not None:
            self.flat_base, self.flat_d1, self.flat_d2 = (P.flatten({k: d[k] for k in self.layers})
                                                          for d in (self.base, self.d1, self.d2))
        self._layer_sums = {k: (float((self.d1[k].double() ** 2).sum()), float((self.d2[k].double() ** 2).sum()),
                                float((self.d1[k].double() * self.d2[k].double()).sum()),
                                float(self.base[k].double().norm())) for k in self.layers}

    def _direction(self, kind: str, seed: int) -> dict:
        from landscape_probe import params as P
        from landscape_probe.curvature.hessian import gaussian_like
        from landscape_probe.slicing.directions import filter_normalize

        if kind.startswith("hessian"):
            from landscape_probe.curvature.hessian_direction import check_hessian_file, hessian_direction

            check_hessian_file(kind, self.problem.loaded.sha256 if self.problem.loaded else "")
            graph = self.with_gradient.evaluate_with_hessian(self.base)[1]
            return hessian_direction(kind, graph, seed=self.settings["seed"], iterations=self.power_iterations,
                                     tolerance=1e-4)
        raw = P.scale(-1.0, self.gradient) if kind == "gradient" else gaussian_like(self.base, seed)
        direction = filter_normalize(raw, self.base)
        if float(P.norm(direction)) == 0.0:
            raise ProbeError(f"The {kind} direction is zero in every moved layer, so it spans no plane.")
        return direction

    def empty_result(self, xs: np.ndarray, ys: np.ndarray, settings: dict[str, Any], call: str,
                     seed: int) -> PlaneResult:
        from landscape_probe import params as P

        shape = (len(ys), len(xs))
        gradient = settings["measure"] == "gradient"
        nan = np.full(shape, np.nan)
        norms = np.array([float(P.norm(self.d1)), float(P.norm(self.d2))])
        return PlaneResult(
            x_coordinates=xs, y_coordinates=ys, loss=nan.copy(),
            accuracy=nan.copy() if self.forward.classification else None,
            relative_function_change=nan.copy(),
            relative_gradient_change=nan.copy() if gradient else None,
            drt_prediction=self._drt_grid(xs, ys) if gradient else None,
            euclidean_gradient_prediction=self._euclidean_grid(xs, ys) if gradient else None,
            done=np.zeros(shape, dtype=bool), layer_names=list(self.layers), direction_norms=norms,
            direction_cosine=float(P.dot(self.d1, self.d2)) / float(norms[0] * norms[1]),
            loss_at_zero=float(self.probe.combined({"loss": self.forward.evaluate(self.forward.base).loss},
                                                   means=("loss",))["loss"]),
            gradient_norm=self.gradient_norm,
            lambda_max=self.lambda_max if gradient else None,
            trajectory_steps=np.array(self.path_steps) if self.path else None,
            trajectory_coordinates=self.path.coordinates if self.path else None,
            trajectory_residual=self.path.residual if self.path else None,
            explained_variance_ratio=self.path.explained_variance_ratio if self.path else None,
            settings={**settings, "probe_size": len(self.problem.x)}, loss_name=self.problem.loss_name,
            classification=self.forward.classification, complete=False,
            provenance=self.problem.provenance(call, seed),
        )

    def _step_norms(self, a: float, b: float) -> dict[str, float]:
        """||a·d₁,l + b·d₂,l||_F per layer, from the directions' norms and dot product (no tensor built)."""
        return {k: float(np.sqrt(max(a * a * s1 + b * b * s2 + 2 * a * b * s12, 0.0)))
                for k, (s1, s2, s12, _) in self._layer_sums.items()}

    def _drt_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        def drt(a: float, b: float) -> float:
            norms = self._step_norms(a, b)
            return float(np.prod([1 + norms[k] / self._layer_sums[k][3] for k in self.layers]) - 1)

        return np.array([[drt(a, b) for a in xs] for b in ys])

    def _euclidean_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        scale = abs(self.lambda_max) / self.gradient_norm if self.gradient_norm > 0 else float("nan")
        return np.array([[scale * np.sqrt(sum(n * n for n in self._step_norms(a, b).values())) for a in xs]
                         for b in ys])

    def fill_row(self, result: PlaneResult, row: int, cols: np.ndarray) -> None:
        """Evaluate the cells ``cols`` of ``row``; forward-only rows take accuracy and function change in one go.

        Each cell is one forward pass whose outputs are kept; the row's accuracies and relative function
        changes are then a few operations on all of them, not a few per cell.
        """
        import torch

        if result.relative_gradient_change is not None or not len(cols):  # gradient cells one at a time
            for col in cols:
                self.fill(result, row, int(col))
            return
        b = float(result.y_coordinates[row])
        outputs = torch.empty((len(cols), *self.reference.shape), dtype=self.reference.dtype,
                              device=self.reference.device)
        losses = np.empty(len(cols))
        row_base = None if self.flat is None else torch.add(self.flat_base, self.flat_d2, alpha=b)  # W + b·d₂
        for i, col in enumerate(cols):  # nothing is written into result until the whole row is done
            self._write(float(result.x_coordinates[col]), b, row_base)
            forward = self.forward.run(with_accuracy=False)
            outputs[i].copy_(forward.outputs)
            losses[i] = forward.loss
        difference = torch.linalg.vector_norm((outputs - self.reference).flatten(1), dim=1, dtype=torch.float64)
        hits = torch.count_nonzero(outputs.argmax(dim=2) == self.probe.y, dim=1) if result.accuracy is not None else 0
        whole = self.probe.combined({"loss": losses, "difference": difference.cpu().numpy(),
                                     "hits": hits.cpu().numpy() if result.accuracy is not None else hits},
                                    means=("loss",), norms=("difference",), totals=("hits",))
        self._write_cells(result, row, cols, whole)

    def _write_cells(self, result: PlaneResult, row: int, cols: Any, whole: dict[str, Any]) -> None:
        """The cells' numbers over the whole probe set (``loss``, ``difference`` ||F − F₀||_F, ``hits``) into ``result``."""
        result.loss[row, cols] = whole["loss"]
        result.relative_function_change[row, cols] = (whole["difference"] / self.reference_norm
                                                      if self.reference_norm > 0 else np.nan)
        if result.accuracy is not None:
            result.accuracy[row, cols] = whole["hits"] / self.probe.count
        result.done[row, cols] = True

    def _write(self, a: float, b: float, row_base: Tensor | None) -> None:
        """W + a·d₁ + b·d₂ written into the model's own tensors: no new tensor per cell.

        ``row_base`` is the packed W + b·d₂ of the cell's row (one operation per cell), None when not packed.
        """
        import torch

        if row_base is not None:
            torch.add(row_base, self.flat_d1, alpha=a, out=self.flat)
            return
        for k in self.layers:
            torch.add(self.base[k], self.d1[k], alpha=a, out=self.forward.slots[k]).add_(self.d2[k], alpha=b)

    def fill(self, result: PlaneResult, row: int, col: int) -> None:
        """Evaluate the cell (row, col), that is b = y[row], a = x[col], with its gradient, into ``result``."""
        import torch

        from landscape_probe import params as P

        a, b = float(result.x_coordinates[col]), float(result.y_coordinates[row])
        moved = {k: self.base[k] + a * self.d1[k] + b * self.d2[k] for k in self.layers}
        with torch.enable_grad():
            at = self.with_gradient.evaluate(moved)  # the loss and gradient over the whole probe set
        change = float(P.norm(P.sub(at.gradient, self.gradient))) / self.gradient_norm
        result.relative_gradient_change[row, col] = change if self.gradient_norm > 0 else float("nan")
        hits = int(torch.count_nonzero(at.outputs.argmax(1) == self.probe.y)) if result.accuracy is not None else 0
        difference = float(torch.linalg.vector_norm(at.outputs - self.reference, dtype=torch.float64))
        whole = self.probe.combined({"difference": difference, "hits": hits}, norms=("difference",),
                                    totals=("hits",))
        self._write_cells(result, row, col, {**whole, "loss": float(at.loss)})
