"""Reading the CNN benchmarks' datasets (docs/method.md (benchmarks): Vision Datasets Mixture, Split CIFAR-10/100) as uint8 CPU tensors.

docs/method.md (benchmarks): the Vision Datasets Mixture is MNIST, notMNIST, FashionMNIST, SVHN and
CIFAR-10; "MNIST / notMNIST / FashionMNIST zero-padded to 32×32 and replicated to 3 channels" (:func:`pad_to_rgb32`);
"notMNIST = letters A–J, 60,000 train / 10,000 test in MNIST's file format". Split CIFAR-10/100 (Appendix D) uses
CIFAR-10 and CIFAR-100.

Every loader reads its files from the read-only data root (``data_dir=`` or ``$DHC_DATA_DIR``) in torchvision's
on-disk layout (:func:`expected_files`) and returns ``{"x_train", "y_train", "x_test", "y_test"}``: images as uint8
tensors, (N, 28, 28) for the grayscale IDX sets and (N, 3, 32, 32) for SVHN and CIFAR; labels int64. Nothing is
written into the root: decoded tensors are cached by :mod:`dhclib.data.cache`. With no root given, the files are
downloaded (when ``download`` is true and the machine is online) into ``cache_dir()/"download"`` with the same
layout; a root given that lacks them is an error naming them, never completed by a download. Scaling to [0, 1] is left to the benchmark, as for MNIST in :mod:`dhclib.data.idx`.

The CIFAR files are Python pickles (torchvision reads them the same way): only point the root at trusted copies.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Callable
from urllib.request import urlopen

import numpy as np
import torch

from dhclib.data import idx as data
from dhclib.data.cache import MEMO, cache_dir, cached, stamp
from dhclib.data.idx import IDX_FILES, read_idx, resolve_data_dir
from dhclib.errors import ConfigError, DataNotFoundError

__all__ = [
    "VISION_DATASETS", "NOTMNIST_URL", "NOTMNIST_MD5", "NOTMNIST_RESPLIT_OPTION", "expected_files", "missing_files",
    "pad_to_rgb32", "load_mnist_uint8", "load_fashion_mnist", "load_notmnist", "load_svhn", "load_cifar10", "load_cifar100",
]

Arrays = dict[str, torch.Tensor]

# The public mirror the paper cites for notMNIST (letters A-J in MNIST's IDX format), and the md5s of its .gz files.
NOTMNIST_URL = "https://raw.githubusercontent.com/davidflanagan/notMNIST-to-MNIST/master/"
NOTMNIST_MD5 = {
    "train-images-idx3-ubyte": "d916d7283fce4d08db9867c640ec0042",
    "train-labels-idx1-ubyte": "eab59f88903339e01dac19deed3824c0",
    "t10k-images-idx3-ubyte": "2c87c839a4ef9b238846600eec8c35b7",
    "t10k-labels-idx1-ubyte": "7ea9118cbafd0f6e3ee2ad771d782a01",
}
# How the benchmark config exposes the resplit; named in the error when notMNIST's training images are missing.
NOTMNIST_RESPLIT_OPTION = 'notmnist_split="test_resplit"'

_CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]

# Per dataset: key -> path relative to the data root (torchvision's layouts). The IDX files may also be gzipped.
_LAYOUT: dict[str, dict[str, str]] = {
    "mnist": {k: f"MNIST/raw/{s}" for k, s in IDX_FILES.items()},
    "fashion_mnist": {k: f"FashionMNIST/raw/{s}" for k, s in IDX_FILES.items()},
    "notmnist": {k: f"notMNIST/raw/{s}" for k, s in IDX_FILES.items()},
    "svhn": {"train": "SVHN/train_32x32.mat", "test": "SVHN/test_32x32.mat"},
    "cifar10": {b: f"cifar-10-batches-py/{b}" for b in [*_CIFAR10_BATCHES, "test_batch"]},
    "cifar100": {"train": "cifar-100-python/train", "test": "cifar-100-python/test"},
}
_IDX_SETS = {"mnist", "fashion_mnist", "notmnist"}
_LABELS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "notmnist": "notMNIST", "svhn": "SVHN",
           "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


# ---------------------------------------------------------------------------------------------------------------
# where the files are
# ---------------------------------------------------------------------------------------------------------------
def _layout(name: str) -> dict[str, str]:
    if name not in _LAYOUT:
        raise ConfigError(f"unknown vision dataset {name!r}; known: {', '.join(_LAYOUT)}")
    return _LAYOUT[name]


def expected_files(name: str) -> list[str]:
    """The files dataset ``name`` needs, as paths relative to the data root (torchvision's layout).

    For the IDX sets (mnist, fashion_mnist, notmnist) each file may instead be gzipped (the path plus ``.gz``).
    """
    return list(_layout(name).values())


def _find(root: Path, rel: str, gz_ok: bool) -> Path | None:
    # Same order as dhclib.data.idx: the uncompressed file first, then the official .gz.
    for candidate in (root / rel, root / f"{rel}.gz") if gz_ok else (root / rel,):
        if candidate.is_file():
            return candidate
    return None


def _locate(name: str, root: Path | None, keys) -> dict[str, Path] | None:
    if root is None:
        return None
    found = {k: _find(root, _layout(name)[k], name in _IDX_SETS) for k in keys}
    return None if any(p is None for p in found.values()) else found


def missing_files(name: str, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Which of :func:`expected_files` are absent from the data root (a ``.gz`` counts for an IDX file); all of
    them when there is no root. Lets callers (and tests) skip cleanly when a dataset is not available."""
    root = resolve_data_dir(data_dir)
    gz_ok = name in _IDX_SETS
    return [rel for rel in expected_files(name) if root is None or _find(root, rel, gz_ok) is None]


def _resolve(
    name: str, data_dir, download: bool, fetch: Callable[[], None], keys=None, hint: str = ""
) -> dict[str, Path]:
    """Paths of the files ``keys`` of ``name``: all from the data root when one is given (else an error: a typo in
    the root never silently reads other data); with no root, all from the download cache (fetched there first when
    missing and ``download`` is true). Otherwise one DataNotFoundError saying what is missing."""
    keys = list(keys or _layout(name))
    root = resolve_data_dir(data_dir)
    found = _locate(name, root, keys)
    if found is not None:
        return found
    download_error: BaseException | None = None
    if download and root is None:  # a root given is never completed from the cache or a download
        found = _locate(name, cache_dir() / "download", keys)
        if found is None:
            try:
                fetch()
                found = _locate(name, cache_dir() / "download", keys)
            except Exception as exc:  # offline, refused, or a bad checksum: reported below with the expected files
                download_error = exc
        if found is not None:
            return found
    raise DataNotFoundError(_missing_message(name, root, keys, download, download_error, hint))


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {data._one_line(exc)}"


def _missing_message(name, root, keys, download, download_error, hint) -> str:
    rels = [_layout(name)[k] for k in keys]
    suffix = "[.gz]" if name in _IDX_SETS else ""
    folder = Path(rels[0]).parent  # every dataset keeps its files in one folder
    where = str(root / folder) if root is not None else "no data root (pass data_dir= or set DHC_DATA_DIR)"
    expected = ", ".join(Path(r).name + suffix for r in rels)
    msg = f"{_LABELS[name]} data not found in {where}: expected the files {expected}."
    if root is not None:
        missing = [Path(r).name + suffix for r in rels if _find(root, r, name in _IDX_SETS) is None]
        msg += f" Missing: {', '.join(missing)}."
    if root is not None:
        msg += (" A data root given (data_dir= or $DHC_DATA_DIR) is never completed by a download; copy the files "
                f"there, or leave both unset to download into {cache_dir() / 'download' / folder}.")
    elif download_error is not None:
        msg += (f" The download into {cache_dir() / 'download' / folder} failed too "
                f"({_why(download_error)}).")
    elif download:
        msg += f" The download into {cache_dir() / 'download' / folder} did not produce them."
    else:
        msg += " Downloading is off (download=False)."
    return msg + hint


# ---------------------------------------------------------------------------------------------------------------
# decoding, checks and caching
# ---------------------------------------------------------------------------------------------------------------
def _check(name: str, arrays: Arrays, n_classes: int = 10) -> Arrays:
    """Shapes, dtypes and label ranges as the formats promise; anything else is a damaged or foreign file."""
    image_shape = (28, 28) if name in _IDX_SETS else (3, 32, 32)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        problem = None
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != image_shape:
            problem = f"images {tuple(x.shape)} {x.dtype}, expected N x {' x '.join(map(str, image_shape))} uint8"
        elif y.dim() != 1 or y.shape[0] != x.shape[0]:
            problem = f"images {tuple(x.shape)} but labels {tuple(y.shape)}: the files disagree"
        elif y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
            problem = f"labels in [{int(y.min())}, {int(y.max())}], expected 0..{n_classes - 1}"
        if problem:
            raise DataNotFoundError(f"{_LABELS[name]} {split} split: {problem}")
    return arrays


def _tensors(x_train, y_train, x_test, y_test) -> Arrays:
    def as_x(a) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.uint8))

    def as_y(a) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a).astype(np.int64).reshape(-1))

    return {"x_train": as_x(x_train), "y_train": as_y(y_train), "x_test": as_x(x_test), "y_test": as_y(y_test)}


# ---------------------------------------------------------------------------------------------------------------
# MNIST, FashionMNIST, notMNIST (IDX)
# ---------------------------------------------------------------------------------------------------------------
def load_mnist_uint8(data_dir: str | os.PathLike | None = None, download: bool = True) -> Arrays:
    """MNIST as uint8 (N, 28, 28) images and int64 labels (dhclib.data.idx.load_idx_dataset; docs/method.md (benchmarks) Vision Mixture)."""
    return _check("mnist", data.load_idx_dataset("MNIST", data_dir, download))


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, download: bool = True) -> Arrays:
    """FashionMNIST from ``<root>/FashionMNIST/raw/`` (IDX, as MNIST), uint8 (N, 28, 28); docs/method.md (benchmarks) Vision Mixture."""
    return _check("fashion_mnist", data.load_idx_dataset("FashionMNIST", data_dir, download))


def _download_notmnist(keys) -> None:
    """Fetch the missing ``.gz`` files of ``keys`` from :data:`NOTMNIST_URL` into the download cache, md5-checked."""
    dest = cache_dir() / "download" / "notMNIST" / "raw"
    for key in keys:
        stem = IDX_FILES[key]
        if _find(dest, stem, gz_ok=True) is None:
            _fetch_checked(NOTMNIST_URL + f"{stem}.gz", dest / f"{stem}.gz", NOTMNIST_MD5[stem])


def _fetch_checked(url: str, dest: Path, md5: str) -> None:
    """Download ``url`` to ``dest`` through a temporary file; only a file with the published md5 is kept."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.tmp{os.getpid()}")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise DataNotFoundError(f"md5 mismatch for {url}: got {digest.hexdigest()}, expected {md5}; "
                                    "the file was discarded, not used")
        os.replace(tmp, dest)  # atomic: a reader never sees a partial file under the final name
    finally:
        tmp.unlink(missing_ok=True)


def load_notmnist(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    resplit_seed: int | None = None,
    resplit_test_fraction: float = 0.2,
) -> Arrays:
    """notMNIST (letters A–J = labels 0–9) from ``<root>/notMNIST/raw/`` as uint8 (N, 28, 28) images.

    Default: the official 60,000 / 10,000 split of the ``davidflanagan/notMNIST-to-MNIST`` files (docs/method.md (benchmarks)), the four
    IDX files of MNIST's names (``.gz`` or not). Missing files are downloaded (``download=True``) from
    :data:`NOTMNIST_URL` into the cache and kept only if their md5 matches :data:`NOTMNIST_MD5`.

    ``resplit_seed=<int>`` is the explicit option (benchmark config ``notmnist_split="test_resplit"``) for roots
    without the training images: train and test are both built from the official test split alone (only the two
    ``t10k`` files are needed), stratified per letter and seeded: ``round(resplit_test_fraction * count)`` samples
    of each letter go to test, the rest to train (8,000 / 2,000 for the real files). It is never used silently.
    """
    if resplit_seed is None:
        hint = (f" If only the official test split is available, build train/test from it with "
                f"{NOTMNIST_RESPLIT_OPTION} (load_notmnist(resplit_seed=<int>)): a stratified split of the "
                "10,000 test images, not the paper's 60,000 / 10,000.")
        files = _resolve("notmnist", data_dir, download, lambda: _download_notmnist(IDX_FILES), hint=hint)
        root = files["train_images"].parents[2]  # <root>/notMNIST/raw/<file>: the data root or the download cache
        return _check("notmnist", data.load_idx_dataset("notMNIST", root, download=False))
    if isinstance(resplit_seed, bool) or not isinstance(resplit_seed, (int, np.integer)) or resplit_seed < 0:
        raise ConfigError(f"resplit_seed must be a non-negative int or None, got {resplit_seed!r}")
    if not 0.0 < float(resplit_test_fraction) < 1.0:
        raise ConfigError(f"resplit_test_fraction must be in (0, 1), got {resplit_test_fraction!r}")
    keys = ("test_images", "test_labels")
    files = _resolve("notmnist", data_dir, download, lambda: _download_notmnist(keys), keys=keys)
    memo_key = ("notMNIST-resplit", stamp(files), int(resplit_seed), float(resplit_test_fraction))
    if memo_key not in MEMO:
        test = cached("notmnist-t10k", files, lambda: _decode_idx_pair(files), _check_images_labels)
        MEMO[memo_key] = _check("notmnist", _resplit(test, int(resplit_seed), float(resplit_test_fraction)))
    return MEMO[memo_key]


def _decode_idx_pair(files: dict[str, Path]) -> Arrays:
    return {"x": torch.from_numpy(read_idx(files["test_images"]).copy()),
            "y": torch.from_numpy(read_idx(files["test_labels"]).astype(np.int64))}


def _check_images_labels(pair: Arrays) -> Arrays:
    x, y = pair["x"], pair["y"]
    if x.dim() != 3 or tuple(x.shape[1:]) != (28, 28) or y.dim() != 1 or len(y) != len(x):
        raise DataNotFoundError(f"notMNIST test files disagree: images {tuple(x.shape)}, labels {tuple(y.shape)}")
    return pair


def _resplit(test: Arrays, seed: int, fraction: float) -> Arrays:
    """Stratified split of one labelled set: per letter, a seeded ``round(fraction * count)`` go to the new test."""
    x, y = test["x"], test["y"].numpy()
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for label in np.unique(y):  # ascending, so one seed always draws the same permutations
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(fraction * idx.size))
        if not 0 < n_test < idx.size:  # a letter missing from one side would make that split's accuracy misleading
            raise ConfigError(f"resplit_test_fraction={fraction} puts {n_test} of letter {int(label)}'s {idx.size} "
                              "samples into test: each letter needs samples on both sides")
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    # Sorted: rows keep the file's order (classes interleaved); the benchmark shuffles with its own seed.
    tr, te = (torch.from_numpy(np.sort(np.concatenate(parts))) for parts in (train_idx, test_idx))
    return {"x_train": x[tr], "y_train": test["y"][tr], "x_test": x[te], "y_test": test["y"][te]}


# ---------------------------------------------------------------------------------------------------------------
# SVHN (.mat) and CIFAR (pickles)
# ---------------------------------------------------------------------------------------------------------------
def _read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # truncated or not a MATLAB file
        raise DataNotFoundError(f"{path} cannot be read as SVHN .mat ({_why(exc)})") from None
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DataNotFoundError(f"{path}: expected X of shape (32, 32, 3, N) uint8, found "
                                f"{getattr(x, 'shape', None)} {getattr(x, 'dtype', None)}")
    if not isinstance(y, np.ndarray) or y.size != x.shape[3]:
        raise DataNotFoundError(f"{path}: expected y with {x.shape[3]} labels, found {getattr(y, 'shape', None)}")
    y = y.reshape(-1).astype(np.int64)
    if y.size and (y.min() < 1 or y.max() > 10):
        raise DataNotFoundError(f"{path}: SVHN labels must be 1..10 (10 = digit 0), found [{y.min()}, {y.max()}]")
    # MATLAB order X[row, col, channel, n] -> (n, channel, row, col); label 10 is the digit 0.
    return np.transpose(x, (3, 2, 0, 1)), y % 10


def load_svhn(data_dir: str | os.PathLike | None = None, download: bool = True) -> Arrays:
    """SVHN (cropped digits) from ``<root>/SVHN/{train,test}_32x32.mat`` as uint8 (N, 3, 32, 32); label 10 -> 0.

    docs/method.md (benchmarks) Vision Mixture, task 4. Online, torchvision's SVHN downloads the files into the cache.
    """
    def fetch() -> None:
        import torchvision.datasets as tvd

        for split in ("train", "test"):
            tvd.SVHN(str(cache_dir() / "download" / "SVHN"), split=split, download=True)

    files = _resolve("svhn", data_dir, download, fetch)

    def decode() -> Arrays:
        return _tensors(*_read_svhn_mat(files["train"]), *_read_svhn_mat(files["test"]))

    return cached("svhn", files, decode, lambda a: _check("svhn", a))


def _read_cifar_pickle(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")  # written by Python 2: byte-string keys
    except Exception as exc:  # truncated or not a pickle
        raise DataNotFoundError(f"{path} cannot be read as a CIFAR pickle ({_why(exc)})") from None
    if not isinstance(entry, dict):
        raise DataNotFoundError(f"{path}: expected a pickled dict, found {type(entry).__name__}")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    x = entry.get("data")
    well_formed = isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == 3072
    if not well_formed or label_key not in entry:
        raise DataNotFoundError(f"{path}: expected b'data' (N, 3072) uint8 and b'{label_key}', found keys "
                                f"{sorted(entry)} and data {getattr(x, 'shape', None)}")
    y = np.asarray(entry[label_key], dtype=np.int64).reshape(-1)
    # Each row is 1024 red, 1024 green, 1024 blue values, each plane row-major 32 x 32.
    return x.reshape(-1, 3, 32, 32), y


def _cifar_fetch(cls_name: str) -> Callable[[], None]:
    def fetch() -> None:
        import torchvision.datasets as tvd

        # train=False: download() fetches and extracts the whole archive; only the test batch is then loaded.
        getattr(tvd, cls_name)(str(cache_dir() / "download"), train=False, download=True)

    return fetch


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True) -> Arrays:
    """CIFAR-10 from ``<root>/cifar-10-batches-py/`` (data_batch_1..5, test_batch) as uint8 (N, 3, 32, 32).

    docs/method.md (benchmarks): Vision Mixture task 5 and the first task of Split CIFAR-10/100. Read here (not through torchvision, whose
    md5 checks would reject generated test roots); online, torchvision's CIFAR10 downloads into the cache.
    """
    files = _resolve("cifar10", data_dir, download, _cifar_fetch("CIFAR10"))

    def decode() -> Arrays:
        train = [_read_cifar_pickle(files[b], "labels") for b in _CIFAR10_BATCHES]
        x_test, y_test = _read_cifar_pickle(files["test_batch"], "labels")
        return _tensors(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test)

    return cached("cifar10", files, decode, lambda a: _check("cifar10", a))


def load_cifar100(data_dir: str | os.PathLike | None = None, download: bool = True) -> Arrays:
    """CIFAR-100 from ``<root>/cifar-100-python/{train,test}`` as uint8 (N, 3, 32, 32) with the 100 fine labels.

    docs/method.md (benchmarks) Split CIFAR-10/100 (Appendix D): tasks 2-6 are 10 consecutive fine classes each.
    """
    files = _resolve("cifar100", data_dir, download, _cifar_fetch("CIFAR100"))

    def decode() -> Arrays:
        train, test = (_read_cifar_pickle(files[split], "fine_labels") for split in ("train", "test"))
        return _tensors(*train, *test)

    return cached("cifar100", files, decode, lambda a: _check("cifar100", a, n_classes=100))


# ---------------------------------------------------------------------------------------------------------------
# shared input format of the Vision Mixture
# ---------------------------------------------------------------------------------------------------------------
def pad_to_rgb32(x: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) -> (N, 3, 32, 32), same dtype: zero-padded 2 pixels on each side and replicated to 3 channels.

    docs/method.md (benchmarks): "MNIST / notMNIST / FashionMNIST zero-padded to 32×32 and replicated to 3 channels", so all five tasks
    of the Vision Datasets Mixture share the CNN's 3 x 32 x 32 input.
    """
    if x.dim() != 3 or tuple(x.shape[1:]) != (28, 28):
        raise ValueError(f"pad_to_rgb32 expects (N, 28, 28) images, got {tuple(x.shape)}")
    out = x.new_zeros((x.shape[0], 3, 32, 32))
    out[:, :, 2:30, 2:30] = x.unsqueeze(1)  # broadcast over the 3 channels: a real copy, safe to modify in place
    return out


VISION_DATASETS: dict[str, Callable[..., Arrays]] = {
    "mnist": load_mnist_uint8,
    "notmnist": load_notmnist,
    "fashion_mnist": load_fashion_mnist,
    "svhn": load_svhn,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
}
