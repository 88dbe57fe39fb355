"""The groups of parameters that ``--layers`` perturbs one at a time.

For a model of ``transformers`` a group is a part of the network, not one tensor:
the embeddings; each transformer block's attention and its MLP (a block's
normalisation goes with the part it feeds or closes: GPT-2's ``ln_1`` with the
attention, BERT's ``output.LayerNorm`` with the MLP); and the head (the final
norm, a pooler, the output layer). A block is a numbered child of a list named
``h``, ``layer``, ``layers``, ``block`` or ``blocks``. Any other model: every
layer is its own group. The names come from ``named_parameters``, which lists a
tied tensor (GPT-2's ``lm_head.weight`` is ``transformer.wte.weight``) once, so
it is perturbed once.

Example:
    >>> block_groups(["transformer.wte.weight", "transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.weight",
    ...               "transformer.h.0.mlp.c_fc.weight", "transformer.ln_f.weight"])
    {'embeddings': ['transformer.wte.weight'], 'transformer.h.0 attention': ['transformer.h.0.ln_1.weight', \
'transformer.h.0.attn.c_attn.weight'], 'transformer.h.0 mlp': ['transformer.h.0.mlp.c_fc.weight'], \
'head': ['transformer.ln_f.weight']}
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

BLOCK = re.compile(r"^(?P<block>(?:.*?\.)?(?:h|layer|layers|block|blocks)\.\d+)\.(?P<rest>.+)$")
ATTENTION = ("attn", "attention", "ln_1", "input_layernorm")
EMBEDDINGS = ("embed", "wte", "wpe")


def layer_groups(model: nn.Module, names: Sequence[str]) -> dict[str, list[str]]:
    """The groups of ``names`` (see the module docstring), in the order their first member comes."""
    if not type(model).__module__.startswith("transformers."):
        return {name: [name] for name in names}
    return block_groups(names)


def block_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """``names`` grouped into embeddings, each block's attention and MLP, and the head."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(group_of(name), []).append(name)
    return groups


def group_of(name: str) -> str:
    """``embeddings``, ``<block> attention``, ``<block> mlp`` or ``head``."""
    match = BLOCK.match(name)
    if match:
        part = "attention" if any(word in match["rest"] for word in ATTENTION) else "mlp"
        return f"{match['block']} {part}"
    return "embeddings" if any(word in name for word in EMBEDDINGS) else "head"
