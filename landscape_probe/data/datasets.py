"""Data sets for probing and training: built-in ones and user files.

Nothing is downloaded: ``digits`` ships with scikit-learn, ``mnist1d`` is
generated offline, ``synthetic`` is a seeded teacher–student set
(:mod:`landscape_probe.data.synthetic`), and users can pass ``.npz`` / ``.pt`` files
(:mod:`landscape_probe.data.files`). Integer targets mean classification, float
targets regression.

Example:
    >>> data = load_dataset("digits", seed=0)
    >>> data.x_train.shape[1], data.num_outputs, data.task
    (64, 10, 'classification')
    >>> parse_data_spec("synthetic:task=regression,n_train=512")
    ('synthetic', {'task': 'regression', 'n_train': 512})
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landscape_probe.errors import ProbeError
from landscape_probe.specs import parse_spec
from landscape_probe.data.synthetic import load_synthetic
from landscape_probe.data.files import SUFFIXES, read_arrays
from landscape_probe.data.images import load_image_folder
from landscape_probe.data.text import load_jsonl, load_text, load_tokens

__all__ = [
    "BUILTIN",
    "Dataset",
    "load_dataset",
    "load_dataset_spec",
    "parse_data_spec",
    "probe_set",
    "random_split",
]

BUILTIN = ("digits", "mnist1d", "synthetic")


@dataclass(frozen=True)
class Dataset:
    """A train/test split held as tensors.

    Attributes:
        name: the name or file path it was loaded from.
        x_train, y_train, x_test, y_test: inputs (float32, or int64 where the
            source holds integers, e.g. token ids) and targets (int64 class
            indices for classification, float32 for regression).
        task: ``classification``, ``regression`` or ``tokens`` (a target token per position, −100 for none:
            :mod:`landscape_probe.data.text`).
        num_classes: number of classes (the vocabulary for tokens), or None for regression.
        spec: the JSON-able recipe that reloads exactly this data set
            (stored in checkpoints as ``data``), e.g. ``{"name": "digits", "seed": 0}``.
        unsplit: for a user file without its own test split, all its examples
            ``(x, y)`` in file order; probe sets from the train split use them whole.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    task: str
    num_classes: int | None
    spec: dict[str, Any] = field(default_factory=dict)
    unsplit: tuple[Tensor, Tensor] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        """Network outputs needed: classes, or regression targets."""
        if self.task in ("classification", "tokens"):  # tokens: the vocabulary, logits at every position
            return int(self.num_classes)
        return 1 if self.y_train.ndim == 1 else int(self.y_train[0].numel())


def load_dataset(name: str, seed: int = 0, **options: Any) -> Dataset:
    """Load a built-in data set by name, or a user ``.npz`` / ``.pt`` file by path.

    Args:
        name: ``digits``, ``mnist1d``, ``synthetic``, ``images`` (class folders) or a file path.
        seed: picks the train/test split (and, for ``synthetic`` and
            ``mnist1d``, the data themselves).
        **options: the loader's options: ``test_fraction`` for digits and user
            files without a test split; ``task``, ``n_train``, ``n_test``,
            ``in_features`` (or ``dim``), ``num_outputs`` (or ``outputs``),
            ``num_classes``, ``noise``, ``teacher_depth``, ``teacher_width``
            for synthetic; ``path``, ``size``, ``mean``, ``std``, ``test_fraction`` for images;
            ``model``, ``path``, ``seq_len``, ... for tokens, text and jsonl (:mod:`landscape_probe.data.text`).

    Raises:
        ProbeError: for an unknown name, an option the loader does not take,
            or an unreadable file.
    """
    loaders: dict[str, Callable[..., Dataset]] = {"digits": _digits, "mnist1d": _mnist1d, "synthetic": load_synthetic,
                                                  "images": load_image_folder, "tokens": load_tokens,
                                                  "text": load_text, "jsonl": load_jsonl}
    if name in loaders:
        return _call_loader(loaders[name], name, seed, options)
    if Path(name).suffix in SUFFIXES or Path(name).exists():
        return _call_loader(functools.partial(_user_file, name), name, seed, options)
    raise ProbeError(f"Unknown data set '{name}'; use one of {', '.join(BUILTIN)}, images:FOLDER, text:FILE, "
                     "jsonl:FILE or a .npz/.pt file.")


def load_dataset_spec(spec: dict[str, Any]) -> Dataset:
    """Reload a data set from the ``spec`` recorded in a checkpoint."""
    options = dict(spec)
    if "name" not in options:
        raise ProbeError(f"The recorded data spec {spec} has no 'name'.")
    name = options.pop("name")
    return load_dataset(name, **options)


def parse_data_spec(text: str) -> tuple[str, dict[str, Any]]:
    """Parse ``synthetic:task=regression,n_train=512`` into a name and typed options.

    An existing file path is taken whole, even if it contains ``:``; ``images:FOLDER,size=64``
    reads the folder as the ``path`` option, as ``text:FILE,seq_len=128`` and ``jsonl:FILE`` read the file.
    """
    if Path(text).is_file():
        return text, {}
    kind = text.partition(":")[0]
    if kind in ("images", "text", "jsonl"):  # images:FOLDER[,key=value...]: the folder or file is the first item
        where, _, rest = text[len(kind) + 1:].partition(",")
        if "=" not in where:
            return kind, {"path": where, **parse_spec(f"{kind}:{rest}", "data spec")[1]}
    return parse_spec(text, "data spec")


def probe_set(dataset: Dataset, size: int | None, seed: int, split: str = "train") -> tuple[Tensor, Tensor]:
    """A fixed subset of ``size`` examples, the same for the same seed.

    The subset is the first ``size`` entries of a seeded permutation, returned
    in their original order; all examples (in order) when ``size`` is None or
    at least the split's length, so callers should record ``len(x)``, the
    number used. A user file without its own test split is used whole for
    ``split="train"``; ``split="test"`` asks for the held-out part drawn from it.

    Raises:
        ProbeError: for a split other than train/test, or ``size < 1``.
    """
    if split not in ("train", "test"):
        raise ProbeError(f"Unknown split '{split}'; use train or test.")
    if split == "train" and dataset.unsplit is not None:
        x, y = dataset.unsplit
    else:
        x, y = (dataset.x_train, dataset.y_train) if split == "train" else (dataset.x_test, dataset.y_test)
    if size is not None and size < 1:
        raise ProbeError(f"The probe set needs at least one example, got size {size}.")
    if size is None or size >= len(x):
        return x, y
    chosen = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return x[chosen], y[chosen]


def random_split(x: Tensor, y: Tensor, test_fraction: float, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split (x, y) into disjoint train and test parts by a seeded permutation.

    Returns:
        x_train, y_train, x_test, y_test with round(test_fraction · n) test examples.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ProbeError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}.")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(x)))
    if n_test == 0 or n_test == len(x):
        raise ProbeError(f"Splitting {len(x)} examples with test_fraction={test_fraction} leaves one side empty.")
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def _call_loader(loader: Callable[..., Dataset], name: str, seed: int, options: dict[str, Any]) -> Dataset:
    try:
        inspect.signature(loader).bind(seed, **options)
    except TypeError:
        accepted = [p for p in inspect.signature(loader).parameters if p != "seed"]
        unknown = ", ".join(sorted(set(options) - set(accepted))) or "?"
        takes = ", ".join(accepted) if accepted else "no options"
        raise ProbeError(f"The data set '{name}' does not take the option {unknown}; it takes {takes}.") from None
    return loader(seed, **options)


def _from_arrays(
    name: str, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, spec: dict, num_classes: int = 0,
    unsplit: tuple[Tensor, Tensor] | None = None,
) -> Dataset:
    """Check the arrays and infer the task: integer (or bool) targets classify, float targets regress.

    Floating and bool inputs become float32; integer inputs (token ids for an
    embedding) stay integers, as int64. The number of classes is the largest
    class index + 1, or ``num_classes`` if that is larger.
    """
    for x, y, split in ((x_train, y_train, "training"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise ProbeError(f"The {split} inputs of '{name}' have {len(x)} examples but the targets have {len(y)}.")
        if len(x) == 0:
            raise ProbeError(f"The {split} split of '{name}' is empty.")
    if x_train.shape[1:] != x_test.shape[1:]:
        shapes = f"{tuple(x_train.shape[1:])} vs {tuple(x_test.shape[1:])}"
        raise ProbeError(f"Train and test examples of '{name}' differ in shape: {shapes}.")
    if x_train.is_complex() or x_test.is_complex():
        raise ProbeError(f"The inputs of '{name}' must be integers or floats, not complex numbers.")
    if y_train.is_complex() or y_test.is_complex():
        raise ProbeError(f"The targets of '{name}' must be integers or floats, not complex numbers.")
    for what, tensors in (("inputs", (x_train, x_test)), ("targets", (y_train, y_test))):
        bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors if t.is_floating_point())
        if bad:
            raise ProbeError(f"The {what} of '{name}' hold {bad} NaN or infinite values; nothing measured on them would mean anything.")
    if y_train.is_floating_point() != y_test.is_floating_point():
        raise ProbeError(f"Train and test targets of '{name}' must both be integers or both be floats.")
    if y_train.is_floating_point():
        task, num_classes = "regression", None
        y_train, y_test = y_train.float(), y_test.float()
    else:
        y_train, y_test = y_train.long(), y_test.long()
        if y_train.ndim != 1 or y_test.ndim != 1:
            raise ProbeError(f"Integer targets of '{name}' must be one class index per example (a 1-D array).")
        if min(int(y_train.min()), int(y_test.min())) < 0:
            raise ProbeError(f"Class indices in '{name}' must be >= 0.")
        task, num_classes = "classification", max(int(y_train.max()) + 1, int(y_test.max()) + 1, num_classes)
    if unsplit is not None:
        unsplit = (_inputs(unsplit[0]), unsplit[1].float() if task == "regression" else unsplit[1].long())
    return Dataset(name, _inputs(x_train), y_train, _inputs(x_test), y_test, task, num_classes, spec, unsplit)


def _inputs(x: Tensor) -> Tensor:
    """Floating and bool inputs as float32; integer inputs (token ids) as int64."""
    return x.float() if x.is_floating_point() or x.dtype == torch.bool else x.long()


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits: 1797 images of 8×8 pixels (0–16) and their labels.

    Read straight from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``),
    because importing ``sklearn.datasets`` costs about 2.5 s, more than a small
    slice; ``sklearn.datasets.load_digits`` is the fallback should the file move.
    """
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / "datasets" / "data" / "digits.csv.gz" if locations else None
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target


def _digits(seed: int, test_fraction: float = 0.2) -> Dataset:
    pixels, labels = digits_arrays()
    x = torch.tensor(pixels, dtype=torch.float32) / 16.0
    y = torch.tensor(labels, dtype=torch.int64)
    spec = {"name": "digits", "seed": seed, "test_fraction": test_fraction}
    return _from_arrays("digits", *random_split(x, y, test_fraction, seed), spec)


def _mnist1d(seed: int) -> Dataset:
    x_train, y_train, x_test, y_test = (torch.from_numpy(a.copy()) for a in _mnist1d_arrays(seed))
    return _from_arrays("mnist1d", x_train, y_train, x_test, y_test, {"name": "mnist1d", "seed": seed})


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(seed: int) -> tuple[np.ndarray, ...]:
    """MNIST-1D (Greydanus 2020) with the package's default arguments and this seed: 4000/1000 × 40, 10 classes.

    Generation reseeds Python's and NumPy's global RNGs; their states are restored.
    """
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        generated = make_dataset(args)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return generated["x"], generated["y"], generated["x_test"], generated["y_test"]


def _user_file(path: str, seed: int, test_fraction: float = 0.2) -> Dataset:
    arrays = read_arrays(path)
    spec: dict[str, Any] = {"name": str(path), "seed": seed}
    if "x_test" in arrays:
        return _from_arrays(str(path), arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"], spec)
    if len(arrays["x"]) != len(arrays["y"]):
        raise ProbeError(f"Data file {path} has {len(arrays['x'])} inputs but {len(arrays['y'])} targets.")
    spec["test_fraction"] = test_fraction
    parts = random_split(arrays["x"], arrays["y"], test_fraction, seed)
    return _from_arrays(str(path), *parts, spec, unsplit=(arrays["x"], arrays["y"]))
