"""What a file would run: archives are inspected before any loader that may unpickle sees them.

``torch.load(weights_only=True)`` is safe by construction, but two loaders are
not: ``torch.export.load`` falls back to ``weights_only=False`` (and unpickles
``use_pickle`` weights, custom and opaque objects, and loads AOTInductor
shared libraries), and ``torch.jit.load`` runs whatever class names an archive's
pickles hold through its own unpickler. So before either runs, every member of
the archive is checked here, statically, without building any object:

- the archive's declared unpacked size (at most the machine's memory, so a
  compressed "zip bomb" is refused unread) and each zip member's CRC-32
  (``zipfile.ZipFile.testzip``), so a corrupt file is
  refused instead of loading silently altered weights;
- in a ``torch.export`` archive: no member is a shared library or under
  ``aotinductor/``, no weight or constant is stored ``use_pickle``, no
  constant is a custom or opaque object, and every nested torch file (sample
  inputs, legacy weights) loads with ``weights_only=True``;
- in a TorchScript archive: every pickle names only TorchScript classes
  (``__torch__.*``) and torch's tensor-rebuilding functions.

Example:
    >>> pickle_globals(b"\\x80\\x02cposix\\nsystem\\nq\\x00.")
    ['posix.system']
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import zipfile
import zlib
from pathlib import Path

from landscape_probe.errors import ProbeError

TRUST_HINT = "unpickling such objects can run arbitrary code, so pass --trust-checkpoint only if you trust the file"
UNKNOWN_GLOBAL = "an object whose name is computed at load time"

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_NO_PUSH_OPS = {"PROTO", "FRAME", "MARK"}
_TORCHSCRIPT_GLOBALS = {"collections.OrderedDict", "torch.device", "builtins.set", "builtins.complex"}
_TORCHSCRIPT_MODULES = ("__torch__.", "torch.jit._pickle.")


def check_zip_integrity(path: Path, what: str = "Checkpoint") -> None:
    """Refuse a zip archive that would unpack to more than the machine's memory, has a truncated directory, or
    holds a member whose CRC-32 does not match.

    Raises:
        ProbeError: naming the size, or the first corrupt member.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            if unpacked > physical_memory():
                raise ProbeError(
                    f"{what} '{path}' would unpack to {unpacked / 2**30:.1f} GiB, "
                    f"more than this machine's {physical_memory() / 2**30:.1f} GiB of memory."
                )
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError):
        raise ProbeError(f"{what} '{path}' is a truncated or corrupt archive.") from None
    if bad is not None:
        raise ProbeError(f"{what} '{path}' is corrupt: the checksum of its member {bad} does not match its content.")


def physical_memory() -> int:
    """Bytes of physical memory (a very large number where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def pickle_globals(data: bytes) -> list[str]:
    """Every ``module.name`` a pickle would import, read from its opcodes without running any.

    ``STACK_GLOBAL`` takes its two names from the stack; when they are not two
    strings pushed (or fetched from the memo) just before, the name cannot be
    known statically and :data:`UNKNOWN_GLOBAL` stands for it.

    Raises:
        ValueError: for bytes that are not a well-formed pickle.
    """
    found: list[str] = []
    memo: dict[int, str | None] = {}
    pushed: list[str | None] = []
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            found.append(str(arg).replace(" ", "."))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = pushed[-2:] if len(pushed) >= 2 else (None, None)
            found.append(f"{module}.{attr}" if module is not None and attr is not None else UNKNOWN_GLOBAL)
            pushed.append(None)
        elif name in _STRING_OPS:
            pushed.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = pushed[-1] if pushed else None
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(int(arg)))
        elif name not in _NO_PUSH_OPS:
            pushed.append(None)
    return found


def audit_torchscript(path: Path) -> None:
    """Refuse a TorchScript archive whose pickles name anything but TorchScript classes and tensor rebuilding.

    Raises:
        ProbeError: naming the member and the object it would build.
    """
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith((".pkl", ".debug_pkl")):
                continue
            try:
                names = pickle_globals(archive.read(member))
            except Exception:  # noqa: BLE001 - pickletools raises several kinds for garbage
                raise ProbeError(f"TorchScript archive '{path}' is corrupt: its member {member} is not a valid pickle.") from None
            unsafe = next((name for name in names if not _torchscript_allows(name)), None)
            if unsafe is not None:
                raise ProbeError(f"Refused to load '{path}': its member {member} holds the Python object {unsafe}; {TRUST_HINT}.")


def audit_export(path: Path) -> None:
    """Refuse a ``torch.export`` archive that ``torch.export.load`` could only read by full unpickling or native code.

    Raises:
        ProbeError: naming the offending member.
    """
    import torch

    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            inner = member.split("/", 1)[1] if "/" in member else member
            if "aotinductor/" in member or member.endswith((".so", ".dll", ".dylib")):
                raise ProbeError(f"Refused to load '{path}': its member {member} is compiled native code, which would run on loading; pass --trust-checkpoint only if you trust the file.")
            if inner.endswith("_config.json") and inner.startswith("data/"):
                _audit_payload_config(path, member, archive.read(member))
                continue
            if member.endswith(".pt") or "/sample_inputs/" in member:
                try:
                    torch.load(io.BytesIO(archive.read(member)), map_location="cpu", weights_only=True)
                except Exception:  # noqa: BLE001 - any refusal or damage means torch would fall back to full unpickling
                    raise ProbeError(
                        f"Refused to load '{path}': its member {member} cannot be read as plain tensors "
                        f"(torch.export.load would unpickle it in full); {TRUST_HINT}."
                    ) from None


def _audit_payload_config(path: Path, member: str, data: bytes) -> None:
    try:
        entries = json.loads(data)["config"]
        items = list(entries.items())
    except Exception:  # noqa: BLE001
        raise ProbeError(f"torch.export program '{path}' is corrupt: its member {member} is not a valid payload table.") from None
    for name, entry in items:
        entry = entry if isinstance(entry, dict) else {}
        file_name = str(entry.get("path_name", ""))
        if entry.get("use_pickle") or file_name.startswith(("custom_obj", "opaque_obj")):
            raise ProbeError(
                f"Refused to load '{path}': its member {member} stores '{name}' as a pickled object, "
                f"which torch.export.load unpickles in full; {TRUST_HINT}."
            )


def _torchscript_allows(name: str) -> bool:
    if name.startswith(_TORCHSCRIPT_MODULES) or name in _TORCHSCRIPT_GLOBALS:
        return True
    module, _, attr = name.rpartition(".")
    return (module == "torch" and attr.endswith("Storage")) or (module == "torch._utils" and attr.startswith("_rebuild_"))
