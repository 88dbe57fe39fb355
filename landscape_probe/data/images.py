"""A folder of images, one sub-folder per class, as a data set: ``--data images:DIR``.

``DIR/cat/001.png``, ``DIR/dog/002.jpg``, ...: the classes are the sub-folders
in sorted order (class i is the i-th name), the examples every PNG, JPEG, BMP,
GIF, TIFF or WebP file in them (read with Pillow; sub-sub-folders are not
read). Each image is resized to ``size`` × ``size`` (bilinear), scaled to
[0, 1], and normalised per channel, x ← (x − mean_c) / std_c. The images are
grey (one channel) when every file is, else RGB (three). ``mean`` and ``std``
are the training split's own per-channel statistics unless given: one number
for every channel in the spec (``images:DIR,size=64,mean=0.5,std=0.25``), or
one per channel from Python (``mean=[0.49, 0.48, 0.45]``). The statistics used
are recorded in the spec, so a checkpoint trained on the folder reloads the
same numbers.

Example:
    >>> load_image_folder(0, "photos", size=32).x_train.shape  # doctest: +SKIP
    torch.Size([80, 3, 32, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from landscape_probe.data.datasets import Dataset

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def load_image_folder(
    seed: int,
    path: str,
    size: int = 32,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    test_fraction: float = 0.2,
) -> Dataset:
    """Read ``path``'s class sub-folders into a classification data set (see the module docstring).

    A channel that is constant over the training split (and no ``std`` given) is shifted, not scaled.

    Raises:
        ProbeError: for a missing folder, no class sub-folders or no images, an unreadable or
            oversized image, a size below 1, or a given std that is not positive.
    """
    from landscape_probe.data.datasets import _from_arrays, random_split

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ProbeError(f"The image folder '{path}' does not exist or is not a folder.")
    if int(size) != size or size < 1:
        raise ProbeError(f"The image size must be a whole number of pixels ≥ 1, got {size}.")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(f, label) for label, name in enumerate(classes) for f in sorted((folder / name).iterdir())
             if f.is_file() and f.suffix.lower() in SUFFIXES]
    if not classes or not files:
        raise ProbeError(f"'{path}' holds no images in class sub-folders; put them as {path}/CLASS/IMAGE.png.")
    images, grey = _read(files, int(size))
    x = torch.from_numpy(np.stack(images)).float() / 255.0
    x = x.unsqueeze(1) if grey else x.permute(0, 3, 1, 2)
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    x_train, y_train, x_test, y_test = random_split(x, y, test_fraction, seed)
    channels = x.shape[1]
    mean_c = _per_channel(mean, channels, "mean") if mean is not None else x_train.mean(dim=(0, 2, 3))
    if std is not None:
        std_c = _per_channel(std, channels, "std")
        if not bool((std_c > 0).all()):
            raise ProbeError(f"The std of every channel must be positive, got {std_c.tolist()}.")
    else:  # a channel constant over the training split is only shifted
        std_c = x_train.std(dim=(0, 2, 3))
        std_c = torch.where(std_c > 0, std_c, torch.ones_like(std_c))
    shift, scale = mean_c.reshape(1, -1, 1, 1), std_c.reshape(1, -1, 1, 1)
    spec: dict[str, Any] = {"name": "images", "path": str(folder.resolve()), "seed": seed, "size": int(size),
                            "mean": [float(v) for v in mean_c], "std": [float(v) for v in std_c],
                            "test_fraction": test_fraction}
    return _from_arrays(f"images:{path}", (x_train - shift) / scale, y_train, (x_test - shift) / scale, y_test,
                        spec, num_classes=len(classes))


def _read(files: list[tuple[Path, int]], size: int) -> tuple[list[np.ndarray], bool]:
    """Every image resized to size × size as uint8 arrays, and whether all of them are grey."""
    from PIL import Image, UnidentifiedImageError

    opened = []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                image.load()
                opened.append(image.copy())
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as err:
            raise ProbeError(f"Cannot read the image '{path}' ({type(err).__name__}: {err}).") from None
    grey = all(image.mode in GREY_MODES for image in opened)
    mode = "L" if grey else "RGB"
    resized = [np.asarray(image.convert(mode).resize((size, size), Image.BILINEAR), dtype=np.uint8)
               for image in opened]
    return resized, grey


def _per_channel(value: float | Sequence[float], channels: int, what: str) -> torch.Tensor:
    values = [float(value)] * channels if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != channels:
        raise ProbeError(f"The images have {channels} channels but {what} gives {len(values)} values.")
    return torch.tensor(values, dtype=torch.float32)
