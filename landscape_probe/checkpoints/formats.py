"""Reading checkpoint files: telling the format from the bytes, and each format's reader.

Every reader turns a failure into a ``ProbeError`` of one sentence. Pickles are
read with ``torch.load(weights_only=True)`` unless the user trusts the file:
that unpickler accepts only tensors and plain containers, so a hostile file is
refused before any of its objects is built. TorchScript and ``torch.export``
archives go through loaders that may unpickle more, so they are inspected
first (:mod:`landscape_probe.checkpoints.audit`); every zip archive's CRCs are
checked before any reader sees it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape_probe.checkpoints.audit import TRUST_HINT, audit_export, audit_torchscript, check_zip_integrity
from landscape_probe.errors import ProbeError


def detect_format(path: Path) -> str:
    """Tell the format from the bytes: ``torchscript``, ``export``, ``torch_save``, ``safetensors`` or ``pickle``.

    Raises:
        ProbeError: for an empty, corrupt or unrecognised file.
    """
    with path.open("rb") as handle:
        head = handle.read(9)
    if not head:
        raise ProbeError(f"Checkpoint '{path}' is empty.")
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            raise ProbeError(f"Checkpoint '{path}' is a truncated or corrupt archive.") from None
        check_zip_integrity(path)
        if any(name.endswith("/constants.pkl") for name in names):
            return "torchscript"
        if any(name.endswith(("/archive_format", "/serialized_exported_program.json")) for name in names):
            return "export"
        if any(name.endswith("/data.pkl") for name in names):
            return "torch_save"
        raise ProbeError(f"Checkpoint '{path}' is a zip archive but not one PyTorch wrote.")
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    if head[0] == 0x80:
        return "pickle"
    raise ProbeError(f"'{path}' is not a PyTorch checkpoint (its content matches no supported format).")


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence the warnings and log records torch emits while reading a file (protocol notes, deserialisation
    tracebacks), so that a refused file gives one sentence and nothing else."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_torch_file(path: Path, trust: bool) -> Any:
    """``torch.load`` onto the CPU, with ``weights_only`` unless ``trust``.

    Raises:
        ProbeError: naming the first Python object a refused file holds, and the
            flag that allows it; or saying the file is corrupt.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if "Weights only load failed" in str(err):
            what = f"the Python object {found.group(1)}" if found else "Python objects other than tensors"
            raise ProbeError(f"Refused to load '{path}': it contains {what}; {TRUST_HINT}.") from None
        raise ProbeError(f"Checkpoint '{path}' is corrupt: {first_line(err)}") from None
    except Exception as err:  # noqa: BLE001 - torch reports corrupt files with many exception types
        raise ProbeError(f"Checkpoint '{path}' cannot be read (truncated or corrupt): {first_line(err)}") from None


def read_torchscript(path: Path, trust: bool = False) -> nn.Module:
    """Load a ``torch.jit.save`` archive onto the CPU, after auditing its pickles unless ``trust``."""
    if not trust:
        audit_torchscript(path)
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # noqa: BLE001
        raise ProbeError(f"TorchScript archive '{path}' cannot be loaded: {first_line(err)}") from None


def read_export(path: Path, trust: bool = False) -> nn.Module:
    """Load a ``torch.export`` program and return its callable module, after auditing its members unless ``trust``.

    A program exported with a fixed batch size B (no dynamic batch dimension)
    accepts only batches of exactly B; its module is made to take any batch
    by running it on chunks of B (the last one padded with copies of its first
    example, whose outputs are dropped), so every example is still evaluated
    on its own.
    """
    if not trust:
        audit_export(path)
    try:
        program = torch.export.load(str(path))
        module = program.module()
    except Exception as err:  # noqa: BLE001
        raise ProbeError(f"torch.export program '{path}' cannot be loaded: {first_line(err)}") from None
    batch = exported_batch_size(program)
    if batch is not None:
        run_in_chunks(module, batch)
    return module


def exported_batch_size(program: torch.export.ExportedProgram) -> int | None:
    """The batch size a program was exported with, when its first input's leading dimension is fixed; else None."""
    inputs = program.graph_signature.user_inputs
    for node in program.graph.nodes:
        if node.op == "placeholder" and inputs and node.name == inputs[0]:
            value = node.meta.get("val")
            shape = getattr(value, "shape", None)
            if shape and isinstance(shape[0], int):
                return int(shape[0])
    return None


def run_in_chunks(module: nn.Module, batch: int) -> None:
    """Make ``module(x)`` run its own forward on chunks of exactly ``batch`` examples and concatenate the outputs."""

    def forward(*args: Any) -> Tensor:  # the class's forward when called, so a recompiled graph is the one run
        return type(module).forward(module, *args)

    def chunked(x: Tensor, *rest: Any) -> Tensor:
        if len(x) == batch:
            return forward(x, *rest)
        outputs = []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            short = batch - len(chunk)
            if short:
                chunk = torch.cat([chunk, chunk[:1].expand(short, *chunk.shape[1:])])
            outputs.append(forward(chunk, *rest)[: batch - short])
        return torch.cat(outputs)

    module.forward = chunked


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """Read every tensor of a safetensors file onto the CPU."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # noqa: BLE001
        raise ProbeError(f"Safetensors file '{path}' cannot be read: {first_line(err)}") from None


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__).rstrip(".") + "."
