"""``probe train --lr auto``: each optimiser's learning rate from the measured trust region of its starting weights.

For every depth of the grid, the model every run of that depth starts from
(the first seed's initial weights, or ``--init-from``'s) is sliced as
``probe advise`` slices it (:mod:`landscape_probe.slicing.advice`) on a probe
set of the training data, and the optimiser gets the advised rate of its rule
(:data:`~landscape_probe.slicing.advice.LR_RULES`: t* for Fromage and LARS,
the whole-network SGD rate for SGD, momentum and Nesterov, t*·min ‖W_l‖/√n_l
for Adam, AdamW and Lion, whose step is lr·sign(·) exactly), rounded to three
significant figures. The rates go into ``TrainConfig.auto_learning_rates``,
so they are recorded with the results and a resumed grid does not recompute
them; ``--lr-grid`` then centres its decades on them.
"""

from __future__ import annotations

from typing import Any

from landscape_probe.errors import ProbeError

AUTO_PROBE_SIZE = 512
"""Training examples the advice is measured on (all of them when fewer)."""


def auto_learning_rates(config: Any, dataset: Any, optimizers: tuple[str, ...], factory: Any = None,
                        initial_weights: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """``{optimizer: {str(depth): rate}}`` for the ``optimizers`` trained with ``--lr auto``.

    Raises:
        ProbeError: for an optimiser no rule covers, or a model whose gradient never changes by the
            threshold over the measured steps (then there is no rate to give).
    """
    from landscape_probe.data.datasets import probe_set
    from landscape_probe.slicing.advice import LR_RULES, advise
    from landscape_probe.training.loop import run_model
    from landscape_probe.training.user_model import start_from

    uncovered = [name for name in optimizers if name not in LR_RULES]
    if uncovered:
        raise ProbeError(f"--lr auto has no rule for {uncovered[0]}; it covers {', '.join(sorted(LR_RULES))}. "
                         f"Give {uncovered[0]} a number, e.g. --lr adam=auto,{uncovered[0]}=0.01.")
    x, y = probe_set(dataset, AUTO_PROBE_SIZE, seed=config.seeds[0], split="train")
    rates: dict[str, dict[str, float]] = {name: {} for name in optimizers}
    for depth in config.depths:
        _, model = run_model(config, dataset, depth, config.seeds[0], factory)
        if initial_weights is not None:
            start_from(model, initial_weights, config.init_from or "?")
        advice = advise(model, (x, y), threshold=config.auto_lr_threshold, loss=config.loss, device=config.device,
                        probe_size=len(x), output_key=config.output_key or None)
        for name in optimizers:
            rates[name][str(depth)] = float(f"{advice.lr_for(name):.3g}")
    return rates
