"""Li, Lyu & Arora (NeurIPS 2020), "the intrinsic learning rate", on a batch-normalised MLP.

For a scale-invariant network (every hidden Linear followed by batch norm),
SGD with learning rate η and weight decay λ is claimed to depend, after about
1/(η·λ) steps, only on the product η·λ: runs with equal η·λ reach the same
equilibrium of the effective learning rate η/‖W_l‖² of each normalised layer,
whatever η and λ are apart. (Their weight norms then differ: at equilibrium
‖W_l‖² ∝ √(η/λ).) This script trains such an MLP on ``digits`` with SGD at
three (η, λ) pairs of one product and one pair of a 10× smaller product, from
the same initial weights and batches, and prints per pair the effective
learning rate and weight norm averaged over the last quarter of training, and
draws both against the step.

Run: ``python experiments/intrinsic_learning_rate.py [--steps 3000] [--output runs/intrinsic]``
(about a CPU-minute for 3000 steps); figures go to ``OUTPUT/figures``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

import landscape_probe as lp

PAIRS = ((0.4, 2.5e-3), (0.1, 1e-2), (0.025, 4e-2), (0.1, 1e-3))
"""(η, λ): three of product 1e-3, then one of product 1e-4."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--output", type=Path, default=Path("runs/intrinsic"))
    args = parser.parse_args()
    steps_per_epoch = math.ceil(1437 / 64)  # digits' training split, batch 64
    epochs = math.ceil(args.steps / steps_per_epoch)
    results = []
    for lr, decay in PAIRS:
        folder = args.output / f"lr{lr}_wd{decay}"
        trained = (lp.load(folder / "results.h5") if (folder / "results.h5").exists() else
                   lp.train("mlp", "digits", optimizers="sgd", lr=lr, weight_decay=decay, momentum=0.0, depth=4,
                            width=64, norm="batch", epochs=epochs, batch_size=64, diagnostics_every=25,
                            sharpness_iterations=5, device="cpu", output=folder))
        results.append((lr, decay, trained.runs[0]))
    print(f"{'η':>7} {'λ':>8} {'η·λ':>8} {'effective lr η/‖W‖² (last quarter)':>36} {'‖W‖ (last quarter)':>20}"
          f" {'test accuracy':>14}")
    for lr, decay, run in results:
        effective, norms = _last_quarter(run)
        print(f"{lr:7.3g} {decay:8.3g} {lr * decay:8.1e} {effective:36.4g} {norms:20.4g}"
              f" {run.epoch_test_accuracy[-1]:14.3f}")
    _draw(results, args.output / "figures")


def _last_quarter(run) -> tuple[float, float]:
    """Mean effective learning rate over the normalised layers, and their mean norm, over the last quarter."""
    effective = np.asarray(run.effective_learning_rate)
    tail = effective[len(effective) * 3 // 4:]
    columns = [run.layer_names.index(name) for name in run.normalised_layer_names]
    norms = np.asarray(run.weight_norm)[:, columns]
    return float(tail.mean()), float(norms[len(norms) * 3 // 4:].mean())


def _draw(results, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for lr, decay, run in results:
        label = f"η={lr:g}, λ={decay:g} (ηλ={lr * decay:.0e})"
        style = "-" if math.isclose(lr * decay, 1e-3) else "--"
        left.semilogy(run.diagnostic_steps, np.asarray(run.effective_learning_rate).mean(axis=1), style, label=label)
        columns = [run.layer_names.index(name) for name in run.normalised_layer_names]
        norms = np.asarray(run.weight_norm)[:, columns].mean(axis=1)
        right.plot(np.arange(len(norms)), norms, style, label=label)
    for axes, ylabel in ((left, "effective learning rate η/‖W_l‖² (mean over BN layers)"),
                         (right, "‖W_l‖_F (mean over BN layers)")):
        axes.set_xlabel("step")
        axes.set_ylabel(ylabel, fontsize=8)
        axes.axvline(1 / 1e-3, color="grey", linewidth=0.6)
        axes.legend(fontsize=7)
    figure.suptitle("SGD + weight decay on a batch-normalised MLP (digits): only η·λ matters at equilibrium?",
                    fontsize=10)
    figure.savefig(folder / "intrinsic_learning_rate.png", dpi=110, bbox_inches="tight")
    print(f"wrote {folder / 'intrinsic_learning_rate.png'}")


if __name__ == "__main__":
    main()
