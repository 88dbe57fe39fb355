"""Make the sample checkpoints with ``probe train``: 2- and 16-layer MLPs (width 64) on ``digits``.

Run from the repository root:

    python sample_checkpoints/make_samples.py

The training is one ``probe train`` command (printed before it runs), the
command a user would type; this script only runs it into a temporary folder
and copies what it wrote. Seeded and single-threaded (OMP_NUM_THREADS=1), so
the same torch version writes the same weights. Writes, beside this script:

- ``mlp2_digits.pt``, ``mlp16_digits.pt``: each run's ``checkpoint.pt`` as
  ``probe train`` wrote it (self-describing: model_args, state_dict, optimizer
  state, step, config, and the data set's spec);
- ``mlp16_digits_torchscript.pt``: the 16-layer net as TorchScript (``torch.jit.script``);
- ``mlp2_digits_state_dict.pt``: the 2-layer net's bare state_dict
  (load it with ``--arch mlp:depth=2,width=64``).

Recipe: ReLU MLPs, LeCun init, Adam at learning rate 1e-3, batch 250, seed 0,
67 epochs. ``probe train`` runs ceil(1437 / 250) = 6 steps per epoch over
digits' 1437 training images (the last batch has 187), so 67 epochs are 402
steps: the closest it allows to the 400 steps of batch 250 the earlier,
hand-written training loop ran.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.data.datasets import load_dataset_spec
from landscape_probe.losses import loss_function
from landscape_probe.training.loop import evaluate

OUT = Path(__file__).resolve().parent
DEPTHS = (2, 16)
ARGS = [
    "train",
    "--optimizer", "adam",
    "--lr", "1e-3",
    "--depths", ",".join(str(depth) for depth in DEPTHS),
    "--width", "64",
    "--activation", "relu",
    "--init", "lecun",
    "--dataset", "digits",
    "--seeds", "0",
    "--epochs", "67",
    "--batch-size", "250",
    "--diagnostics-every", "0",
    "--no-plots",
    "--device", "cpu",
]


def find_checkpoint(folder: Path, depth: int) -> Path:
    """The one ``checkpoint.pt`` under ``folder`` whose model has this depth."""
    found = [path for path in sorted(folder.glob("*/checkpoint.pt"))
             if load_checkpoint(path).model_args.get("depth") == depth]
    if len(found) != 1:
        raise SystemExit(f"expected one depth-{depth} checkpoint under {folder}, found {found}")
    return found[0]


def main() -> None:
    torch.set_num_threads(1)
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "samples"
        command = ["probe", *ARGS, "--output", str(output)]
        print("OMP_NUM_THREADS=1", shlex.join(command), flush=True)
        subprocess.run([sys.executable, "-m", "landscape_probe", *ARGS, "--output", str(output)],
                       env=env, check=True)
        for depth in DEPTHS:
            target = OUT / f"mlp{depth}_digits.pt"
            shutil.copyfile(find_checkpoint(output, depth), target)
            loaded = load_checkpoint(target)
            model = loaded.model.eval()
            dataset = load_dataset_spec(loaded.data)
            loss = loss_function("cross_entropy")
            _, train_acc = evaluate(model, loss, dataset.x_train, dataset.y_train)
            _, test_acc = evaluate(model, loss, dataset.x_test, dataset.y_test)
            print(f"{target.name}: step {loaded.step}, train accuracy {train_acc:.3f}, test accuracy {test_acc:.3f}")
            if depth == 2:
                torch.save(model.state_dict(), OUT / "mlp2_digits_state_dict.pt")
            else:
                torch.jit.save(torch.jit.script(model), str(OUT / "mlp16_digits_torchscript.pt"))


if __name__ == "__main__":
    main()
