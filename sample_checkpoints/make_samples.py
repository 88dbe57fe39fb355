"""Make the sample checkpoints: 2- and 16-layer MLPs (width 64) trained on ``digits``.

Run from the repository root:

    python sample_checkpoints/make_samples.py

Seeded and single-threaded, so the same torch version writes the same weights.
Writes, beside this script:

- ``mlp2_digits.pt``, ``mlp16_digits.pt``: self-describing checkpoints (model_args,
  state_dict, optimizer state, step, config, and the data set's spec);
- ``mlp16_digits_torchscript.pt``: the 16-layer net as TorchScript;
- ``mlp2_digits_state_dict.pt``: the 2-layer net's bare state_dict
  (load it with ``--arch mlp:depth=2,width=64``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from landscape_probe.checkpoint import save_checkpoint
from landscape_probe.data import Dataset, load_dataset
from landscape_probe.models import build_model

OUT = Path(__file__).resolve().parent
SEED = 0
STEPS = 400
BATCH_SIZE = 250
LEARNING_RATE = 1e-3


def train(dataset: Dataset, depth: int) -> tuple[nn.Module, dict, torch.optim.Optimizer, dict]:
    """Train a width-64 ReLU MLP with Adam on minibatches of 250; returns model, args, optimizer, config."""
    torch.manual_seed(SEED)
    model_args = {
        "name": "mlp",
        "in_features": dataset.input_shape[0],
        "num_outputs": dataset.num_outputs,
        "depth": depth,
        "width": 64,
        "activation": "relu",
        "init": "lecun",
    }
    model = build_model(model_args)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(SEED)
    n = dataset.x_train.shape[0]
    order = torch.randperm(n, generator=generator)
    for step in range(STEPS):
        start = (step * BATCH_SIZE) % n
        if start + BATCH_SIZE > n:
            order = torch.randperm(n, generator=generator)
            start = 0
        batch = order[start : start + BATCH_SIZE]
        loss = nn.functional.cross_entropy(model(dataset.x_train[batch]), dataset.y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    config = {"optimizer": "adam", "lr": LEARNING_RATE, "batch_size": BATCH_SIZE, "steps": STEPS, "seed": SEED}
    return model.eval(), model_args, optimizer, config


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of examples whose largest logit is the true class."""
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def main() -> None:
    torch.set_num_threads(1)
    dataset = load_dataset("digits", seed=SEED)
    for depth in (2, 16):
        model, model_args, optimizer, config = train(dataset, depth)
        save_checkpoint(
            OUT / f"mlp{depth}_digits.pt",
            model,
            model_args,
            optimizer=optimizer,
            step=STEPS,
            config=config,
            data=dataset.spec,
        )
        train_acc = accuracy(model, dataset.x_train, dataset.y_train)
        test_acc = accuracy(model, dataset.x_test, dataset.y_test)
        print(f"mlp{depth}_digits.pt: train accuracy {train_acc:.3f}, test accuracy {test_acc:.3f}")
        if depth == 2:
            torch.save(model.state_dict(), OUT / "mlp2_digits_state_dict.pt")
        else:
            torch.jit.save(torch.jit.script(model), str(OUT / "mlp16_digits_torchscript.pt"))


if __name__ == "__main__":
    main()
