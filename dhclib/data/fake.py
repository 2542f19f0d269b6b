"""Small generated data roots in the real on-disk formats of the docs/method.md (benchmarks) image datasets, for pipeline checks only.

The files have the exact formats and layout :mod:`dhclib.data.vision` and :mod:`dhclib.data.idx` read (IDX ``.gz``,
SVHN ``.mat``, CIFAR pickles), but the pixels are random: each class is a fixed random pattern plus uniform noise,
so a model can learn them well above chance in a few epochs. They say nothing about the paper's results.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np

__all__ = ["FAKE_DATASETS", "write_fake_data_root"]

FAKE_DATASETS = ("MNIST", "FashionMNIST", "notMNIST", "SVHN", "CIFAR10", "CIFAR100")
_CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_fake_data_root(
    root: str | os.PathLike,
    datasets: tuple[str, ...] | list[str] = FAKE_DATASETS,
    n_train: int = 1000,
    n_test: int = 200,
    seed: int = 0,
) -> Path:
    """Write ``n_train`` / ``n_test`` random samples of each of ``datasets`` under ``root``; returns ``root``.

    For pipeline checks only (not real data). Layout (torchvision's): ``MNIST/raw``, ``FashionMNIST/raw``,
    ``notMNIST/raw`` (the four IDX ``.gz`` files each), ``SVHN/{train,test}_32x32.mat``,
    ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``, ``cifar-100-python/{train,test,meta}``.
    Every class is present in every split (labels cycle through the classes, then are shuffled); each dataset's
    content depends only on ``seed`` and the dataset's name, not on which others are written.
    """
    root = Path(root)
    unknown = [d for d in datasets if d not in FAKE_DATASETS]
    if unknown:
        raise ValueError(f"unknown fake datasets {unknown}; known: {', '.join(FAKE_DATASETS)}")
    for name in datasets:
        n_classes = 100 if name == "CIFAR100" else 10
        if min(n_train, n_test) < n_classes:
            raise ValueError(f"{name} needs n_train and n_test >= {n_classes} so every class is present")
        rng = np.random.default_rng([seed, FAKE_DATASETS.index(name)])
        if name in ("MNIST", "FashionMNIST", "notMNIST"):
            _write_idx_set(root / name / "raw", rng, n_train, n_test)
        elif name == "SVHN":
            _write_svhn(root / "SVHN", rng, n_train, n_test)
        elif name == "CIFAR10":
            _write_cifar10(root / "cifar-10-batches-py", rng, n_train, n_test)
        else:
            _write_cifar100(root / "cifar-100-python", rng, n_train, n_test)
    return root


def _prototypes(rng: np.random.Generator, n_classes: int, shape: tuple[int, ...]) -> np.ndarray:
    """One fixed random binary pattern (0 or 80) per class, shared by a dataset's train and test splits."""
    return (rng.random((n_classes, *shape)) < 0.3).astype(np.uint8) * 80


def _samples(rng: np.random.Generator, protos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels covering every class (cycled, then shuffled); uint8 images = the class's pattern + noise in [0, 175]."""
    y = np.arange(n) % len(protos)
    rng.shuffle(y)
    x = protos[y] + rng.integers(0, 176, size=(n, *protos.shape[1:]), dtype=np.uint8)  # at most 255: no overflow
    return x, y


def _idx_gz(path: Path, array: np.ndarray) -> None:
    """IDX: magic 0 0 0x08 (uint8) ndim, big-endian uint32 dims, then the bytes; gzipped like the originals."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:  # level 1: fast, still a standard gzip stream
        f.write(header + array.tobytes())


def _write_idx_set(raw: Path, rng, n_train: int, n_test: int) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    protos = _prototypes(rng, 10, (28, 28))
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x, y = _samples(rng, protos, n)
        _idx_gz(raw / f"{prefix}-images-idx3-ubyte.gz", x)
        _idx_gz(raw / f"{prefix}-labels-idx1-ubyte.gz", y)


def _write_svhn(folder: Path, rng, n_train: int, n_test: int) -> None:
    import scipy.io

    folder.mkdir(parents=True, exist_ok=True)
    protos = _prototypes(rng, 10, (3, 32, 32))
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = _samples(rng, protos, n)
        # As in the original .mat: X is (row, col, channel, N) uint8, y is (N, 1) with 10 standing for the digit 0.
        svhn_y = np.where(y == 0, 10, y).astype(np.uint8).reshape(-1, 1)
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": np.transpose(x, (2, 3, 1, 0)), "y": svhn_y})


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the originals are Python 2 pickles with byte-string keys


def _cifar_entry(x: np.ndarray, batch_label: str, labels: dict[bytes, list[int]], start: int) -> dict:
    return {
        b"batch_label": batch_label.encode(),
        **labels,
        b"data": x.reshape(len(x), 3072),  # one row: 1024 red, 1024 green, 1024 blue, each row-major 32 x 32
        b"filenames": [f"fake_{start + i:06d}.png".encode() for i in range(len(x))],
    }


def _write_cifar10(folder: Path, rng, n_train: int, n_test: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    protos = _prototypes(rng, 10, (3, 32, 32))
    x, y = _samples(rng, protos, n_train)
    bounds = np.linspace(0, n_train, 6).astype(int)  # five training batches, as in the original
    for i in range(5):
        lo, hi = bounds[i], bounds[i + 1]
        entry = _cifar_entry(x[lo:hi], f"training batch {i + 1} of 5", {b"labels": y[lo:hi].tolist()}, lo)
        _pickle(folder / f"data_batch_{i + 1}", entry)
    x, y = _samples(rng, protos, n_test)
    _pickle(folder / "test_batch", _cifar_entry(x, "testing batch 1 of 1", {b"labels": y.tolist()}, n_train))
    _pickle(folder / "batches.meta", {b"num_cases_per_batch": int(bounds[1]), b"num_vis": 3072,
                                      b"label_names": [n.encode() for n in _CIFAR10_NAMES]})


def _write_cifar100(folder: Path, rng, n_train: int, n_test: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    protos = _prototypes(rng, 100, (3, 32, 32))
    for split, n, start in (("train", n_train, 0), ("test", n_test, n_train)):
        x, y = _samples(rng, protos, n)
        # Fake superclasses (fine // 5): the real coarse mapping is not needed by any loader.
        labels = {b"fine_labels": y.tolist(), b"coarse_labels": (y // 5).tolist()}
        batch_label = f"{'training' if split == 'train' else 'testing'} batch 1 of 1"
        _pickle(folder / split, _cifar_entry(x, batch_label, labels, start))
    _pickle(folder / "meta", {b"fine_label_names": [f"fine_{i:02d}".encode() for i in range(100)],
                              b"coarse_label_names": [f"coarse_{i:02d}".encode() for i in range(20)]})
