"""Per-layer sweeps that start where the perturbed layer does: the layers before it are run once.

When ``--layers`` perturbs one layer alone, everything the network computes
before that layer is the same at every point of the sweep. For a model that
``torch.fx`` can trace, the graph is cut in two: the *prefix* (every node that
does not depend on the perturbed parameters) is run once over the probe set and
its one output kept, the *boundary* activation; the *suffix* (every node that
does) is what each point, the gradient and every Hessian-vector product run.
The suffix calls the model's own modules, so its parameters are the model's,
under the same names. The numbers are those of the whole model: the suffix runs
the same operations on the same values.

A cut is used only when it is simple and cheap to hold: the suffix needs one
boundary value, which holds one row per probe example. A network with a skip
connection around the layer (two values cross the cut), or one FX cannot trace
(data-dependent control flow, TorchScript, most Hugging Face models), is
evaluated whole, as before.

Example:
    >>> import torch
    >>> from landscape_probe.models.zoo import MLP
    >>> model, x = MLP(4, 3, depth=3, width=5), torch.randn(6, 4)
    >>> cut = cut_before(model, ["output.weight"], x, chunk_size=1024)
    >>> cut.inputs.shape  # the last hidden activation
    torch.Size([6, 5])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch.fx
    from torch import Tensor, nn

    from landscape_probe.slicing.evaluator import ProbeEvaluator


@dataclass(frozen=True)
class Cut:
    """A model cut before some of its parameters.

    Attributes:
        suffix: a module computing the model's outputs from ``inputs``; its parameters are the model's own.
        inputs: the boundary activation over the whole probe set, one row per example (no gradient).
    """

    suffix: nn.Module
    inputs: Tensor


def cut_before(
    model: nn.Module, names: Sequence[str], x: Tensor, chunk_size: int, graph: torch.fx.Graph | None = None
) -> Cut | None:
    """Cut ``model`` before the parameters ``names`` and run the prefix on ``x``; None when no simple cut exists.

    Args:
        model: the network, in ``eval()`` mode.
        names: the parameters perturbed (the rest of the network stays at W).
        x: the probe inputs.
        chunk_size: most examples per prefix pass (as the evaluator chunks the probe set).
        graph: the model's :func:`traced` graph, when already at hand (one trace serves every layer).
    """
    import torch

    graph = traced(model) if graph is None else graph
    if graph is None:
        return None
    dependent = _dependent_nodes(graph, set(names))
    boundary = [node for node in graph.nodes
                if node.op not in ("get_attr", "output") and node not in dependent
                and any(user in dependent for user in node.users)]
    output = next(node for node in graph.nodes if node.op == "output")
    if len(boundary) != 1 or output.args[0] not in dependent or boundary[0].op == "placeholder":
        return None
    prefix = _prefix_module(model, graph, boundary[0])
    suffix = _suffix_module(model, graph, boundary[0], dependent)
    starts = range(0, len(x), chunk_size)
    with torch.no_grad():
        parts = [prefix(x[start : start + chunk_size]) for start in starts]
    if not all(isinstance(part, torch.Tensor) and part.dim() > 0 for part in parts):
        return None
    if any(len(part) != len(x[start : start + chunk_size]) for part, start in zip(parts, starts)):
        return None
    return Cut(suffix=suffix, inputs=parts[0] if len(parts) == 1 else torch.cat(parts))


def evaluator_alone(
    model: nn.Module, x: Tensor, y: Tensor, loss_name: str, members: Sequence[str], chunk_size: int,
    graph: torch.fx.Graph | None,
) -> ProbeEvaluator:
    """An evaluator of ``members`` perturbed alone, starting at their layer when ``graph`` can be cut there."""
    from landscape_probe.slicing.evaluator import ProbeEvaluator

    cut = None if graph is None else cut_before(model, members, x, chunk_size, graph)
    if cut is None:
        return ProbeEvaluator(model, x, y, loss_name, members, chunk_size)
    return ProbeEvaluator(cut.suffix, cut.inputs, y, loss_name, members, chunk_size)


def traced(model: nn.Module) -> torch.fx.Graph | None:
    """The model's ``torch.fx`` graph, or None when it cannot be cut (untraceable, TorchScript, tied weights)."""
    import torch
    import torch.fx

    from landscape_probe.params import has_tied_parameters

    if isinstance(model, torch.jit.ScriptModule) or has_tied_parameters(model):
        return None
    try:
        return torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure means: evaluate the whole model
        return None


def _owns(target: str, names: set[str]) -> bool:
    """Whether the module or attribute at ``target`` is, or holds, one of ``names``."""
    return target in names or any(name.startswith(f"{target}.") for name in names)


def _dependent_nodes(graph: torch.fx.Graph, names: set[str]) -> set[torch.fx.Node]:
    """The nodes whose value changes when the parameters ``names`` do (graph order is topological)."""
    dependent: set = set()
    for node in graph.nodes:
        if node.op in ("call_module", "get_attr") and _owns(str(node.target), names):
            dependent.add(node)
        elif any(parent in dependent for parent in node.all_input_nodes):
            dependent.add(node)
    return dependent


def _prefix_module(model: nn.Module, graph: torch.fx.Graph, boundary: torch.fx.Node) -> nn.Module:
    """The nodes up to ``boundary`` as a module returning its value."""
    import torch.fx

    prefix = torch.fx.Graph()
    copies: dict = {}
    for node in graph.nodes:
        copies[node] = prefix.node_copy(node, lambda parent: copies[parent])
        if node is boundary:
            break
    prefix.output(copies[boundary])
    return _without_dead_code(torch.fx.GraphModule(model, prefix))


def _suffix_module(
    model: nn.Module, graph: torch.fx.Graph, boundary: torch.fx.Node, dependent: set[torch.fx.Node]
) -> nn.Module:
    """The dependent nodes (and the parameters they read) as a module taking the boundary value."""
    import torch.fx

    suffix = torch.fx.Graph()
    copies: dict = {boundary: suffix.placeholder("boundary")}
    for node in graph.nodes:
        if node in dependent or node.op == "get_attr" or node.op == "output":
            copies[node] = suffix.node_copy(node, lambda parent: copies[parent])
    return _without_dead_code(torch.fx.GraphModule(model, suffix))


def _without_dead_code(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """``module`` with the nodes nothing uses removed (the other side's parameters it read)."""
    module.graph.eliminate_dead_code()
    module.recompile()
    return module
