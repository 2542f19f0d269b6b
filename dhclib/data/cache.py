"""The one cache of decoded datasets, for the IDX files and the vision formats alike: a memo in this process, then
a ``.pt`` file under :func:`cache_dir` keyed by the source files' paths, sizes and modification times (a replaced
file is decoded again), then decoding. Downloads go under ``cache_dir()/"download"``; nothing is ever written into
the data root."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch

__all__ = ["cache_dir", "cached", "stamp", "save_atomic", "provenance", "recording", "MEMO"]

Arrays = dict[str, torch.Tensor]
MEMO: dict[tuple, object] = {}  # (tag, stamp, ...) -> arrays decoded in this process
PROVENANCE: dict[tuple, dict] = {}  # (tag, stamp) -> the files' names, sizes and SHA-256 (:func:`provenance`)
_RECORDERS: list[dict] = []  # the open :func:`recording` blocks


def cache_dir() -> Path:
    """Where derived tensors and downloads go: ``$DHC_CACHE_DIR``, else ``$XDG_CACHE_HOME/dhc``, else ``~/.cache/dhc``."""
    if os.environ.get("DHC_CACHE_DIR"):
        return Path(os.environ["DHC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dhc"


def stamp(files: dict[str, Path]) -> str:
    """The identity of a set of source files: path, size and modification time of each."""
    return "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files.values())


def cached(tag: str, files: dict[str, Path], decode: Callable[[], Arrays], check: Callable[[Arrays], Arrays]) -> Arrays:
    """``decode()``'s arrays of ``files``, remembered in this process and on disk as
    ``cache_dir()/<tag>-<hash of the stamp>.pt``; ``check`` validates them (a corrupt or foreign cache file is
    rebuilt, never trusted)."""
    key = (tag, stamp(files))
    path = cache_dir() / f"{tag}-{hashlib.sha256(key[1].encode()).hexdigest()[:16]}.pt"
    if _RECORDERS:
        for read in _RECORDERS:
            read[tag] = provenance(key, files, path.with_suffix(".sha256.json"))
    if key in MEMO:
        return MEMO[key]
    arrays = None
    if path.is_file():
        try:
            arrays = check(torch.load(path, weights_only=True))
        except Exception:
            arrays = None
    if arrays is None:
        arrays = check(decode())
        save_atomic(arrays, path)
    MEMO[key] = arrays
    return arrays


def provenance(key: tuple, files: dict[str, Path], sidecar: Path) -> dict:
    """``{role: {"file", "bytes", "sha256"}}`` of the source files: hashed once per version of the files (kept
    beside their cache file, keyed by the same stamp), then remembered in this process."""
    if key in PROVENANCE:
        return PROVENANCE[key]
    out = None
    try:
        stored = json.loads(sidecar.read_text())
        out = stored["files"] if stored.get("stamp") == key[1] else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        out = None
    if out is None:
        out = {role: {"file": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)}
               for role, p in sorted(files.items())}
        # an unwritable cache only costs the hashing next time
        save_atomic({"stamp": key[1], "files": out}, sidecar, lambda obj, f: Path(f).write_text(json.dumps(obj)))
    PROVENANCE[key] = out
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def recording() -> Iterator[dict]:
    """``{tag: provenance}`` of every dataset read through :func:`cached` inside the block."""
    read: dict = {}
    _RECORDERS.append(read)
    try:
        yield read
    finally:
        _RECORDERS.remove(read)


def save_atomic(obj, path: Path, write: Callable | None = None) -> None:
    """``write(obj, tmp)`` (default ``torch.save``) to a temporary file renamed over ``path``; an unwritable cache
    only costs speed, and a failed write (a full disk) leaves no temporary file. Temporary files of processes that
    died mid-write are removed."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(path.parent)
        (write or torch.save)(obj, tmp)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _remove_orphans(folder: Path) -> None:
    """Delete ``*.tmp<pid>`` files in ``folder`` whose process no longer runs (killed while writing)."""
    for leftover in folder.glob("*.tmp*"):
        pid = leftover.suffix[len(".tmp"):]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            leftover.unlink(missing_ok=True)
        except OSError:  # alive, but another user's
            pass
