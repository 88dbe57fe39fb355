"""landscape_probe: how far can a gradient step be trusted on a real PyTorch model?

Measures the relative change of a network's function and gradient along weight
perturbations and sets it beside deep relative trust (Bernstein et al., 2020)
and Euclidean (gradient-Lipschitz) trust. See ``probe --help``.

This module stays light (no torch import) so that ``probe --help`` is fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
