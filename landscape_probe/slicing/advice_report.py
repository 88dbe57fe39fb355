"""The advice as printed: by ``probe advise``, and as a section of a ``--layers`` slice's summary."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from landscape_probe.tables import print_whole

if TYPE_CHECKING:
    from rich.console import Console

    from landscape_probe.slicing.advice import Advice


def advice_text(advice: Advice, width: int = 100) -> str:
    """What :func:`print_advice` prints on a terminal ``width`` characters wide, as plain text."""
    from rich.console import Console

    buffer = io.StringIO()
    print_advice(advice, Console(file=buffer, width=width, color_system=None, highlight=False, emoji=False))
    return buffer.getvalue()


def print_advice(advice: Advice, console: Console) -> None:
    """The three learning rates with their caveats, then the per-layer table (κ_l, η_l, η_l*)."""
    from rich import box
    from rich.table import Table

    from landscape_probe.slicing.advice import CAVEATS

    reached = math.isfinite(advice.together)
    console.print(f"Learning rates that keep the relative gradient change under {advice.threshold:g} "
                  "(measured along the gradient, relative steps):", highlight=False)
    if not reached:
        console.print(f"  all layers together: not reached up to a relative step of {advice.largest_scale:g}, "
                      "so no rate is advised; measure further with a larger --max-scale.", highlight=False)
    else:
        console.print(f"  all layers together: relative step t* = {advice.together:.3g}", highlight=False)
        console.print(f"  (a) Fromage / LARS: lr = {advice.fromage_lr:.3g}. {CAVEATS['fromage']}", highlight=False)
        console.print(f"  (b) SGD: lr = {advice.sgd_lr:.3g} for the whole network (the smallest per-layer rate "
                      f"below). {CAVEATS['sgd']}", highlight=False)
        if advice.sizes is not None:
            console.print(f"  (c) Adam: lr = {advice.adam_lr:.3g}. {CAVEATS['adam']}", highlight=False)
    console.print(f"  {CAVEATS['local']}", highlight=False)
    table = Table(box=box.SIMPLE_HEAD, title="per layer: relative step κ_l and SGD rate η_l = κ_l·‖W_l‖/‖g_l‖")
    for column in ("layer", "κ_l alone", "η_l alone", "η_l together", "‖W_l‖", "‖g_l‖"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for i, name in enumerate(advice.layer_names):
        table.add_row(name, _number(advice.alone[i]), _number(advice.sgd_rates_alone[i]),
                      _number(advice.sgd_rates_together[i]), f"{advice.weight_norms[i]:.3g}",
                      f"{advice.gradient_norms[i]:.3g}")
    print_whole(console, table)


def _number(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "not reached"
