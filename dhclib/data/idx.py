"""Reading the image datasets from a read-only data root in torchvision's on-disk layout.

The root is an argument or ``$DHC_DATA_DIR``; under it ``<root>/MNIST/raw/`` holds the four IDX files, gzipped or
not. Nothing is ever written into the root: decoded tensors are cached under :func:`dhclib.data.cache.cache_dir`, and files that are
missing are downloaded by torchvision into that cache directory when the machine is online.
"""

from __future__ import annotations

import gzip
import os
import weakref
from pathlib import Path

import numpy as np
import torch

from dhclib.data.cache import cache_dir, cached
from dhclib.errors import DataNotFoundError

__all__ = ["IDX_FILES", "cache_dir", "resolve_data_dir", "read_idx", "load_idx_dataset", "load_mnist"]

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4")}


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The data root: the argument if given, else ``$DHC_DATA_DIR``, else None."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("DHC_DATA_DIR")
    return Path(env).expanduser() if env else None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw): magic ``0 0 <type> <ndim>``, big-endian dims, then the data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, OSError, gzip.BadGzipFile) as exc:  # an interrupted copy or a corrupt archive
        raise DataNotFoundError(f"{path} cannot be read ({type(exc).__name__}: {exc}); copy it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataNotFoundError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataNotFoundError(f"{path} is truncated inside its header ({len(raw)} bytes, {ndim} dimensions)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataNotFoundError(f"{path} is truncated: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def _find(raw_dir: Path, stem: str) -> Path | None:
    for candidate in (raw_dir / stem, raw_dir / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _locate(raw_dir: Path) -> dict[str, Path] | None:
    found = {key: _find(raw_dir, stem) for key, stem in IDX_FILES.items()}
    return None if any(p is None for p in found.values()) else found


def _download(name: str) -> Path:
    """Let torchvision download ``name`` into the cache (never the data root); returns its raw directory."""
    import torchvision.datasets as tvd

    root = cache_dir() / "download"
    cls = getattr(tvd, name)
    cls(str(root), train=True, download=True)
    cls(str(root), train=False, download=True)
    return root / name / "raw"


def load_idx_dataset(
    name: str = "MNIST", data_dir: str | os.PathLike | None = None, download: bool = True
) -> dict[str, torch.Tensor]:
    """The four IDX arrays of a torchvision MNIST-layout dataset as uint8 tensors, on the CPU.

    Looks in ``<root>/<name>/raw/`` for the files of :data:`IDX_FILES` (each gzipped or not); a root given that
    lacks any of them is an error naming them (a typo in the root never silently reads other data). With no root
    and ``download`` true, torchvision downloads them into the cache directory. Otherwise (or when the download
    fails, e.g. offline) raises :class:`DataNotFoundError` naming the directory and the files expected.
    Decoded arrays are cached under :func:`cache_dir`, keyed by the files' paths, sizes and modification times.
    """
    root = resolve_data_dir(data_dir)
    raw_dir = root / name / "raw" if root is not None else None
    files = _locate(raw_dir) if raw_dir is not None else None
    if files is None:
        download_error = None
        if root is not None:  # a root given is the data asked for: never completed from the cache or a download
            missing = [f"{stem}[.gz]" for stem in IDX_FILES.values() if _find(raw_dir, stem) is None]
            expected = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
            raise DataNotFoundError(f"{name} data not found in {raw_dir}: expected the four IDX files {expected}; "
                                    f"missing {', '.join(missing)}. A data root "
                                    f"given (data_dir= or $DHC_DATA_DIR) is never completed by a download; copy the "
                                    f"files there, or leave both unset to download into {cache_dir() / 'download'}.")
        if download:
            try:
                files = _locate(_download(name))
            except Exception as exc:  # offline, or the host refused: report below with the expected files
                download_error = exc
        if files is None:
            where = str(raw_dir) if raw_dir is not None else "no data root (pass data_dir= or set DHC_DATA_DIR)"
            expected = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
            msg = f"{name} data not found in {where}: expected the four IDX files {expected}."
            if download_error is not None:
                msg += f" The download into {cache_dir() / 'download'} failed too ({type(download_error).__name__}: {_one_line(download_error)})."
            elif not download:
                msg += " Downloading is off (download=False)."
            raise DataNotFoundError(msg)
    def decode() -> dict[str, torch.Tensor]:
        return {
            "x_train": torch.from_numpy(read_idx(files["train_images"]).copy()),
            "y_train": torch.from_numpy(read_idx(files["train_labels"]).astype(np.int64)),
            "x_test": torch.from_numpy(read_idx(files["test_images"]).copy()),
            "y_test": torch.from_numpy(read_idx(files["test_labels"]).astype(np.int64)),
        }

    return cached(name.lower(), files, decode, lambda arrays: _check_shapes(name, arrays))


def _one_line(exc: BaseException) -> str:
    """torchvision's download errors span several lines (one per mirror); an error message here is one line."""
    return " ".join(str(exc).split())


def _check_shapes(name: str, arrays: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0]:
            raise DataNotFoundError(
                f"{name} {split} files disagree: images {tuple(x.shape)}, labels {tuple(y.shape)} "
                "(expected N x H x W images and N labels)"
            )
    return arrays


# id of the decoded images (alive while the decoded-data memo holds them; the entry goes with them) -> device ->
# float tensors. By id, not a WeakKeyDictionary: a tensor's == is elementwise.
_ON_DEVICE: dict[int, dict[str, dict[str, torch.Tensor]]] = {}


def load_mnist(
    data_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu", download: bool = True
) -> dict[str, torch.Tensor]:
    """MNIST as float tensors on ``device``: images flattened to (N, 784) and scaled to [0, 1] (docs/method.md (benchmarks)), labels int64.

    Made once per decoded dataset and device in a process and shared by every run there (read-only): the trials of
    a stack gather their batches from one tensor, and 80 trials on a GPU hold MNIST once, not 80 times."""
    arrays = load_idx_dataset("MNIST", data_dir, download)
    images = arrays["x_train"]
    if id(images) not in _ON_DEVICE:
        _ON_DEVICE[id(images)] = {}
        weakref.finalize(images, _ON_DEVICE.pop, id(images), None)
    per_device = _ON_DEVICE[id(images)]
    key = str(torch.device(device))
    if key not in per_device:
        per_device[key] = {
            "x_train": arrays["x_train"].to(device).flatten(1).float().div_(255.0),
            "y_train": arrays["y_train"].to(device),
            "x_test": arrays["x_test"].to(device).flatten(1).float().div_(255.0),
            "y_test": arrays["y_test"].to(device),
        }
    return per_device[key]
