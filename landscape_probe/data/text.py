"""Token probe sets for Hugging Face models: seeded random ids, a text file, or one field of a JSON-lines file.

- ``tokens:n=64,seq_len=64``: ``n`` sequences of ids drawn uniformly (seeded) from
  the vocabulary, special tokens left out; the default probe set of a Hugging
  Face folder given no ``--data``, so that ``probe slice DIR`` runs with no other
  input (the summary says so). A sequence classifier gets seeded random labels.
- ``text:FILE,seq_len=128``: the file tokenised as one text by the model's own
  tokenizer (no special tokens), cut into blocks that, with the tokenizer's
  special tokens added (BERT's [CLS] … [SEP]), are ``seq_len`` long; the
  remainder is dropped (a file shorter than one block gives one shorter block).
- ``jsonl:FILE,field=text,label=label,seq_len=128``: one example per record, its
  ``field`` tokenised with special tokens, truncated to ``seq_len`` and padded
  to the longest record; ``label`` (an integer, or a name in the config's
  ``label2id``) is read for sequence classifiers.

Each takes ``model=FOLDER``, the ``save_pretrained`` folder whose config and
tokenizer are used; a command filling it in from the checkpoint it probes.
Targets follow the model's objective (:data:`~landscape_probe.checkpoints.hf.OBJECTIVES`),
with −100 marking positions without one, as in ``transformers``:

- causal: the next token, y[:, i] = x[:, i + 1];
- masked: ``mask_fraction`` (15 %) of the real, non-special tokens, drawn by a
  generator seeded with ``seed`` (at least one per sequence), are replaced by the
  mask token, and their original ids are the targets;
- classes: the sequence's label.

Example:
    >>> load_text(0, "notes.txt", model="tiny-gpt2", seq_len=16).x_train.shape  # doctest: +SKIP
    torch.Size([12, 16])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from landscape_probe.data.datasets import Dataset

SPECS = ("tokens", "text", "jsonl")
IGNORED = -100
"""The target of a position without one (the default ``ignore_index`` of cross-entropy)."""


def load_tokens(seed: int, model: str | None = None, n: int = 64, seq_len: int = 64,
                mask_fraction: float = 0.15) -> Dataset:
    """``n`` seeded random sequences of ``seq_len`` ids (see the module docstring)."""
    folder, config, objective = _model(model, "tokens:")
    tokenizer = _tokenizer(folder, "the masked-LM probe set tokens:") if objective == "masked" else None
    if n < 1 or seq_len < 1:
        raise ProbeError(f"tokens: needs n ≥ 1 sequences of seq_len ≥ 1 ids, got n={n}, seq_len={seq_len}.")
    special = _special_ids(config, tokenizer)
    allowed = torch.tensor([i for i in range(config.vocab_size) if i not in special], dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    ids = allowed[torch.randint(len(allowed), (n, seq_len), generator=generator)]
    labels = torch.randint(config.num_labels, (n,), generator=generator) if objective == "classes" else None
    spec = {"name": "tokens", "model": str(folder), "seed": seed, "n": n, "seq_len": seq_len}
    name = f"tokens ({n} seeded random sequences of {seq_len} ids; no --data given)"
    return _dataset(name, ids, torch.ones_like(ids, dtype=torch.bool), labels, spec, config, objective, tokenizer,
                    mask_fraction)


def load_text(seed: int, path: str, model: str | None = None, seq_len: int = 128,
              mask_fraction: float = 0.15) -> Dataset:
    """A text file in blocks of ``seq_len`` tokens of the model's own tokenizer (see the module docstring)."""
    folder, config, objective = _model(model, "text:FILE")
    tokenizer = _tokenizer(folder, "text:FILE")
    text = _read(path)
    with _quiet():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    prefix, suffix = _special_around(tokenizer)
    width = seq_len - len(prefix) - len(suffix)
    if width < 1:
        raise ProbeError(f"seq_len={seq_len} leaves no room for text beside the tokenizer's special tokens.")
    if not ids:
        raise ProbeError(f"The text file '{path}' holds no tokens.")
    blocks = [ids[start:start + width] for start in range(0, len(ids) - width + 1, width)] or [ids]
    x = torch.tensor([prefix + block + suffix for block in blocks], dtype=torch.int64)
    if objective == "classes":
        raise ProbeError("A sequence classifier needs labels, which a text file lacks; use jsonl:FILE,label=KEY.")
    spec = {"name": "text", "path": str(Path(path).resolve()), "model": str(folder), "seed": seed, "seq_len": seq_len}
    return _dataset(f"text:{path}", x, torch.ones_like(x, dtype=torch.bool), None, spec, config, objective,
                    tokenizer, mask_fraction)


def load_jsonl(seed: int, path: str, model: str | None = None, field: str = "text", label: str = "label",
               seq_len: int = 128, mask_fraction: float = 0.15) -> Dataset:
    """One example per record of a JSON-lines file: its ``field``, tokenised, and for classifiers its ``label``."""
    folder, config, objective = _model(model, "jsonl:FILE")
    tokenizer = _tokenizer(folder, "jsonl:FILE")
    records = _records(path)
    texts = [record.get(field) if isinstance(record, dict) else None for record in records]
    if not all(isinstance(text, str) for text in texts):
        line = next(i for i, text in enumerate(texts, 1) if not isinstance(text, str))
        raise ProbeError(f"Record {line} of '{path}' has no text under '{field}' (choose the key with field=KEY).")
    with _quiet():
        encoded = tokenizer(texts, truncation=True, max_length=seq_len)["input_ids"]
    longest = max(len(ids) for ids in encoded)
    pad = next((i for i in (config.pad_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
    if objective != "causal" and config.pad_token_id is None and any(len(ids) < longest for ids in encoded):
        raise ProbeError(f"The records of '{path}' differ in length, but the model's config.json names no "
                         "pad_token_id to mask the padding with.")
    x = torch.tensor([ids + [pad] * (longest - len(ids)) for ids in encoded], dtype=torch.int64)
    real = torch.tensor([[True] * len(ids) + [False] * (longest - len(ids)) for ids in encoded])
    labels = _labels(records, label, config, path) if objective == "classes" else None
    spec = {"name": "jsonl", "path": str(Path(path).resolve()), "model": str(folder), "seed": seed, "field": field,
            "label": label, "seq_len": seq_len}
    return _dataset(f"jsonl:{path}", x, real, labels, spec, config, objective, tokenizer, mask_fraction)


def _dataset(name: str, ids: Tensor, real: Tensor, labels: Tensor | None, spec: dict[str, Any], config: Any,
             objective: str, tokenizer: Any, mask_fraction: float) -> Dataset:
    """The inputs and targets of ``objective`` (module docstring) as a data set whose test split is the same."""
    from landscape_probe.data.datasets import Dataset, _from_arrays

    if objective == "classes":
        return _from_arrays(name, ids, labels, ids, labels, spec, num_classes=config.num_labels)
    if objective == "causal":
        x, y = ids, torch.full_like(ids, IGNORED)
        y[:, :-1] = torch.where(real[:, 1:], ids[:, 1:], IGNORED)
    else:
        if not 0.0 < mask_fraction <= 1.0:
            raise ProbeError(f"mask_fraction must lie in (0, 1], got {mask_fraction}.")
        if tokenizer.mask_token_id is None:
            raise ProbeError(f"The tokenizer of '{spec['model']}' has no mask token, which a masked LM's probe set needs.")
        masked = _mask(real & ~torch.isin(ids, torch.tensor(sorted(_special_ids(config, tokenizer)))),
                       mask_fraction, spec["seed"])
        x, y = torch.where(masked, tokenizer.mask_token_id, ids), torch.where(masked, ids, IGNORED)
        spec = {**spec, "mask_fraction": mask_fraction}
    if not bool((y != IGNORED).any()):
        raise ProbeError(f"The probe set '{name}' leaves no token to predict; give longer sequences.")
    return Dataset(name, x, y, x, y, "tokens", int(config.vocab_size), spec)


def _mask(candidates: Tensor, fraction: float, seed: int) -> Tensor:
    """Each candidate position with probability ``fraction`` (seeded), and one at random in a row left with none."""
    generator = torch.Generator().manual_seed(seed)
    draws = torch.rand(candidates.shape, generator=generator)
    masked = candidates & (draws < fraction)
    empty = ~masked.any(dim=1) & candidates.any(dim=1)
    first = (draws * candidates).argmax(dim=1)
    masked[empty, first[empty]] = True
    return masked


def _model(model: str | None, what: str) -> tuple[Path, Any, str]:
    from landscape_probe.checkpoints.hf import hf_config, objective_of

    if model is None:
        raise ProbeError(f"The probe set {what} is tokenised for a Hugging Face model folder; probe one, "
                         "or name it with model=FOLDER.")
    folder = Path(model).expanduser()
    config = hf_config(folder)
    return folder, config, objective_of(config, folder)[1]


def _tokenizer(folder: Path, what: str) -> Any:
    from landscape_probe.checkpoints.hf import transformers_module

    transformers = transformers_module(f"The probe set {what}")
    try:
        with _quiet():
            return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception:  # noqa: BLE001 - a missing or broken tokenizer surfaces as many exception types
        raise ProbeError(f"'{folder}' holds no tokenizer that transformers can read (tokenizer.json and "
                         f"tokenizer_config.json), which {what} needs.") from None


def _special_around(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special ids the tokenizer puts before and after a text (BERT: [CLS] and [SEP]; GPT-2: none)."""
    with _quiet():
        plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a", add_special_tokens=True)["input_ids"]
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), len(full))
    return full[:start], full[start + len(plain):]


def _special_ids(config: Any, tokenizer: Any) -> set[int]:
    if tokenizer is not None:
        return set(tokenizer.all_special_ids)
    names = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id")
    found = (getattr(config, name, None) for name in names)
    return {int(i) for i in found if isinstance(i, int)}


def _labels(records: list[Any], key: str, config: Any, path: str) -> Tensor:
    """Each record's label as a class index below ``config.num_labels``; names through ``config.label2id``."""
    names = dict(getattr(config, "label2id", None) or {})
    labels = []
    for line, record in enumerate(records, 1):
        value = record.get(key)
        value = names.get(value, value) if isinstance(value, str) else value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < config.num_labels:
            raise ProbeError(f"Record {line} of '{path}' has no label under '{key}' that is a class index below "
                             f"{config.num_labels} or one of the config's label names (choose the key with label=KEY).")
        labels.append(value)
    return torch.tensor(labels, dtype=torch.int64)


def _read(path: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ProbeError(f"The text file '{path}' cannot be read ({type(err).__name__}).") from None


def _records(path: str) -> list[Any]:
    records = []
    for line, text in enumerate(_read(path).splitlines(), 1):
        if text.strip():
            try:
                records.append(json.loads(text))
            except ValueError:
                raise ProbeError(f"Line {line} of '{path}' is not JSON.") from None
    if not records:
        raise ProbeError(f"The JSON-lines file '{path}' holds no records.")
    return records


def _quiet() -> Any:
    from landscape_probe.checkpoints.hf import quiet_hf

    return quiet_hf()
