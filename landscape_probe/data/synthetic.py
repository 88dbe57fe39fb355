"""Teacher–student data: a random teacher MLP labels Gaussian inputs.

With x ~ N(0, I_d) and a teacher network T (an MLP with tanh hidden units and
LeCun init, built from the seed):

- regression: y = T(x) + σ ε, ε ~ N(0, I);
- classification: y = argmax_k (T(x) + σ ε)_k, the teacher's logits made noisy.

Everything is drawn from the seed, so ``teacher`` rebuilds the exact network
that labelled a data set.

Example:
    >>> x_train, y_train, x_test, y_test = teacher_student(seed=0, task="regression", n_train=8, n_test=4)
    >>> tuple(x_train.shape), tuple(y_train.shape)
    ((8, 16), (8, 1))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from landscape_probe.errors import ProbeError
from landscape_probe.models.blocks import check_choice
from landscape_probe.models.zoo import MLP
from landscape_probe.seeding import seeded

if TYPE_CHECKING:
    from landscape_probe.data.datasets import Dataset

TASKS = ("regression", "classification")


def teacher(seed: int, in_features: int, num_outputs: int, depth: int = 3, width: int = 32) -> nn.Module:
    """The teacher MLP for ``seed``: ``depth`` Linear layers, tanh between them, biases N(0, 0.1²).

    The global torch RNGs (CUDA's too) are left as they were.
    """
    with seeded(seed):
        network = MLP(in_features, num_outputs, depth=depth, width=width, activation="tanh", init="lecun")
        for name, parameter in network.named_parameters():
            if name.endswith("bias"):
                nn.init.normal_(parameter, std=0.1)
    return network.eval()


def teacher_student(
    seed: int,
    task: str = "regression",
    n_train: int = 1024,
    n_test: int = 256,
    in_features: int = 16,
    num_outputs: int = 1,
    noise: float = 0.1,
    teacher_depth: int = 3,
    teacher_width: int = 32,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Draw a teacher–student train and test set.

    Args:
        seed: picks the teacher, the inputs and the noise.
        task: ``regression`` or ``classification``.
        n_train, n_test: number of examples in each split (drawn independently).
        in_features: input dimension d.
        num_outputs: regression targets per example, or number of classes.
        noise: σ, the standard deviation of the Gaussian noise on the teacher's outputs.
        teacher_depth, teacher_width: the teacher MLP's shape.

    Returns:
        x_train, y_train, x_test, y_test: inputs float32 (n, d); targets float32
        (n, num_outputs) for regression, int64 class indices (n,) for classification.

    Raises:
        ProbeError: for an unknown task or non-positive sizes.
    """
    check_choice(task, TASKS, "synthetic task")
    sizes = {"n_train": n_train, "n_test": n_test, "in_features": in_features, "teacher_depth": teacher_depth}
    sizes |= {"num_outputs": num_outputs, "teacher_width": teacher_width}
    for key, value in sizes.items():
        if int(value) < 1:
            raise ProbeError(f"The synthetic data option {key} must be at least 1, got {value}.")
    if task == "classification" and num_outputs < 2:
        raise ProbeError(f"Synthetic classification needs num_classes >= 2, got {num_outputs}.")
    if noise < 0:
        raise ProbeError(f"The synthetic data option noise must be >= 0, got {noise}.")
    network = teacher(seed, in_features, num_outputs, teacher_depth, teacher_width)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, in_features, generator=generator)
    with torch.no_grad():
        outputs = network(x) + noise * torch.randn(n_train + n_test, num_outputs, generator=generator)
    y = outputs.argmax(dim=1) if task == "classification" else outputs
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def load_synthetic(
    seed: int,
    task: str = "regression",
    n_train: int = 1024,
    n_test: int = 256,
    in_features: int | None = None,
    dim: int | None = None,
    num_outputs: int | None = None,
    outputs: int | None = None,
    num_classes: int | None = None,
    noise: float = 0.1,
    teacher_depth: int = 3,
    teacher_width: int = 32,
) -> Dataset:
    """The ``synthetic`` data set: ``teacher_student`` with these options, recorded in its spec."""
    from landscape_probe.data.datasets import _from_arrays

    in_features = in_features or dim or 16
    if task == "regression" and num_classes is not None:
        raise ProbeError("num_classes applies to synthetic classification; use num_outputs for regression.")
    default_outputs = 4 if task == "classification" else 1
    num_outputs = num_classes or num_outputs or outputs or default_outputs
    arrays = teacher_student(seed, task, n_train, n_test, in_features, num_outputs, noise, teacher_depth, teacher_width)
    size_key = "num_classes" if task == "classification" else "num_outputs"
    spec = {"name": "synthetic", "seed": seed, "task": task, "n_train": n_train, "n_test": n_test}
    spec |= {"in_features": in_features, size_key: num_outputs, "noise": noise}
    spec |= {"teacher_depth": teacher_depth, "teacher_width": teacher_width}
    return _from_arrays("synthetic", *arrays, spec, num_classes=num_outputs if task == "classification" else 0)
