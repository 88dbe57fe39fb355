"""Hugging Face ``save_pretrained`` folders: ``config.json`` and the weights, run through ``transformers``.

A folder is read entirely offline (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``,
``local_files_only=True``). The weights (``model.safetensors``, ``pytorch_model.bin``,
or the shards an ``*.index.json`` names) are read by this package's own readers,
so a ``.bin`` pickle follows the rule of every other file: ``torch.load(weights_only=True)``
unless the user trusts it. The model is then built from ``config.json`` by the
class its ``architectures`` entry names, with those weights, in eval mode,
float32, with the eager attention (whose second derivatives every Hessian
measurement needs). What a model is trained for sets its loss (:data:`OBJECTIVES`):
a causal LM predicts the next token, a masked LM the masked tokens, a
sequence classifier the label. ``transformers`` is an optional extra
(``pip install 'landscape_probe[hf]'``), imported only here, inside functions.

Example:
    >>> loaded = load_hf_folder(Path("tiny-gpt2"), trust=False)   # doctest: +SKIP
    >>> loaded.format, loaded.data["objective"]                   # doctest: +SKIP
    ('hugging_face', 'causal')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from landscape_probe.checkpoints.formats import (
    detect_format,
    file_sha256,
    first_line,
    quiet_loading,
    read_safetensors,
    read_torch_file,
)
from landscape_probe.checkpoints.load import LoadedCheckpoint
from landscape_probe.errors import ProbeError

FORMAT_NAME = "hugging_face"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
OBJECTIVES = {"ForCausalLM": "causal", "LMHeadModel": "causal", "ForMaskedLM": "masked",
              "ForSequenceClassification": "classes"}
"""How the class name ends → the objective whose loss is measured."""
INSTALL_HINT = "pip install 'landscape_probe[hf]'"
DEFAULT_SEQ_LEN = 64


def transformers_module(what: str) -> Any:
    """``transformers``, imported offline; a ProbeError naming ``what`` needed it when it is not installed."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError:
        raise ProbeError(f"{what} needs the transformers package, which is not installed ({INSTALL_HINT}).") from None
    return transformers


def hf_config(folder: Path) -> Any:
    """The folder's ``config.json`` as a ``transformers`` config.

    Raises:
        ProbeError: for a missing or unreadable ``config.json``, or transformers missing.
    """
    if not (folder / "config.json").is_file():
        raise ProbeError(f"'{folder}' is not a file and holds no config.json, so it is not a Hugging Face "
                         "model folder either.")
    transformers = transformers_module(f"Reading the Hugging Face folder '{folder}'")
    try:
        with quiet_hf():
            return transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # noqa: BLE001 - transformers reports bad configs with many exception types
        raise ProbeError(f"The config.json of '{folder}' cannot be read: {first_line(err)}") from None


def objective_of(config: Any, folder: Path) -> tuple[str, str]:
    """The model class named by ``config.architectures`` and its objective: causal, masked or classes.

    Raises:
        ProbeError: for a config naming no class, or a class of none of the supported kinds.
    """
    names = list(getattr(config, "architectures", None) or [])
    if not names:
        raise ProbeError(f"The config.json of '{folder}' names no model class under 'architectures'.")
    objective = next((kind for ending, kind in OBJECTIVES.items() if names[0].endswith(ending)), None)
    if objective is None:
        raise ProbeError(f"'{folder}' holds a {names[0]}, which has no loss to measure; this tool reads causal LMs, "
                         "masked LMs and sequence classifiers.")
    return names[0], objective


def load_hf_folder(folder: Path, trust: bool) -> LoadedCheckpoint:
    """Build the model a ``save_pretrained`` folder holds, with its weights; see the module docstring.

    ``data`` of the result is the default probe set, seeded random token ids
    (:mod:`landscape_probe.data.text`); ``sha256`` digests config.json and the weight files.

    Raises:
        ProbeError: for a missing config or weights file, transformers missing, an unsupported
            model class, a refused pickle, or weights that do not fit the config.
    """
    config = hf_config(folder)
    class_name, objective = objective_of(config, folder)
    files = weight_files(folder)
    state = _read_weights(files, trust)
    transformers = transformers_module(f"Reading the Hugging Face folder '{folder}'")
    model_class = getattr(transformers, class_name, None)
    if model_class is None:
        raise ProbeError(f"'{folder}' holds a {class_name}, a class this transformers {transformers.__version__} lacks.")
    config.use_cache = False  # the key/value cache only speeds up generation
    try:
        with quiet_hf(), quiet_loading():
            model, info = model_class.from_pretrained(
                None, config=config, state_dict=state, attn_implementation="eager", local_files_only=True,
                output_loading_info=True,
            )
    except Exception as err:  # noqa: BLE001
        raise ProbeError(f"The weights of '{folder}' do not fit its config.json: {first_line(err)}") from None
    missing = [*info.get("missing_keys", ()), *(str(m[0]) for m in info.get("mismatched_keys", ()))]
    if missing:
        raise ProbeError(f"The weights of '{folder}' lack or misshape {len(missing)} tensors of the model, "
                         f"e.g. {sorted(missing)[0]}.")
    attach_padding_mask(model, config.pad_token_id)
    data = {"name": "tokens", "model": str(folder.resolve()),
            "seq_len": min(DEFAULT_SEQ_LEN, getattr(config, "max_position_embeddings", None) or DEFAULT_SEQ_LEN)}
    return LoadedCheckpoint(model.eval(), FORMAT_NAME, folder, _digest([folder / "config.json", *files]),
                            _describe(config, class_name, objective), data=data)


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a folder: the first of :data:`WEIGHT_FILES` present, or the shards its index names.

    Raises:
        ProbeError: when there is none, or an index names a file outside the folder or missing.
    """
    found = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if found is None:
        raise ProbeError(f"The folder '{folder}' has a config.json but no weights (model.safetensors or pytorch_model.bin).")
    if not found.name.endswith(".index.json"):
        return [found]
    try:
        shards = sorted(set(json.loads(found.read_text())["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ProbeError(f"The shard index '{found}' is not a JSON object with a weight_map.") from None
    bad = [s for s in shards if not isinstance(s, str) or Path(s).name != s or not (folder / s).is_file()]
    if bad:
        raise ProbeError(f"The shard index '{found}' names {bad[0]!r}, which is not a file in that folder.")
    return [folder / shard for shard in shards]


def _read_weights(files: list[Path], trust: bool) -> dict[str, Tensor]:
    state: dict[str, Tensor] = {}
    for path in files:
        kind = detect_format(path)
        with quiet_loading():
            payload = read_safetensors(path) if kind == "safetensors" else read_torch_file(path, trust)
        if not (isinstance(payload, dict) and all(isinstance(v, Tensor) for v in payload.values())):
            raise ProbeError(f"The weights file '{path}' does not hold a state_dict of tensors.")
        state.update(payload)
    return state


def attach_padding_mask(model: nn.Module, pad_token_id: int | None) -> None:
    """Give the model ``attention_mask = ids ≠ pad`` whenever its input ids hold padding.

    Probe sets of records of different lengths are padded; the loss ignores the
    padded positions (their targets are −100), and this mask keeps the real
    tokens from attending to them, as a tokenizer's own mask would.
    """
    if pad_token_id is None:
        return

    def add_mask(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        ids = args[0] if args else kwargs.get("input_ids")
        if ids is not None and kwargs.get("attention_mask") is None and bool((ids == pad_token_id).any()):
            kwargs["attention_mask"] = (ids != pad_token_id).long()
        return args, kwargs

    model.register_forward_pre_hook(add_mask, with_kwargs=True)


@contextlib.contextmanager
def quiet_hf() -> Iterator[None]:
    """No progress bars or log lines from transformers while it reads a folder."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if shown:
            hf_logging.enable_progress_bar()


def _describe(config: Any, class_name: str, objective: str) -> str:
    sizes = [f"{key}={getattr(config, key)}" for key in ("num_hidden_layers", "hidden_size", "vocab_size")
             if getattr(config, key, None) is not None]
    return f"{class_name} ({config.model_type}, {objective}; {' '.join(sizes)})"


def _digest(paths: list[Path]) -> str:
    """SHA-256 over the files' own SHA-256 digests, in order: one fingerprint of the folder's model."""
    return hashlib.sha256("".join(file_sha256(path) for path in paths).encode()).hexdigest()
