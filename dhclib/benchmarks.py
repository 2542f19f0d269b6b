"""Continual-learning benchmarks: a data root and a seed in, a list of tasks out (SPEC §4).

A :class:`Task` is plain data: row indices into dataset tensors that live once on the training device and are
shared by all tasks, an optional input permutation (an index, applied per batch, never a copied dataset), the
task's classes and its head (the slice of output units that its loss and prediction use). Labels are global
output-unit indices. Everything random (permutations, class-count sampling, validation split, subsets) is drawn
from streams derived from the trial's seed, so a task sequence is fully determined by its seed and options.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Callable

import torch
from torch import Tensor

from .data import load_mnist
from .errors import ConfigError

__all__ = [
    "Task",
    "BENCHMARKS",
    "permuted_mnist",
    "imbalanced_permuted_mnist",
    "split_mnist",
    "table2_counts",
    "rng",
]


def rng(seed: int, *purpose: object) -> torch.Generator:
    """An independent CPU random stream for (seed, purpose...), so that one option never shifts another's draws."""
    digest = hashlib.sha256("/".join(map(str, (seed, *purpose))).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


@dataclass(frozen=True, eq=False)
class Task:
    """One task of a sequence. ``x_*``/``y_*`` are shared dataset tensors; ``*_idx`` select this task's rows."""

    name: str
    index: int
    classes: tuple[int, ...]
    head: slice
    x_train: Tensor
    y_train: Tensor
    train_idx: Tensor
    val_idx: Tensor
    x_test: Tensor
    y_test: Tensor
    test_idx: Tensor
    perm: Tensor | None = None

    @property
    def n_train(self) -> int:
        return int(self.train_idx.numel())

    def inputs(self, x: Tensor, rows: Tensor) -> Tensor:
        """Rows of ``x`` with this task's input permutation applied."""
        xb = x.index_select(0, rows)
        return xb if self.perm is None else xb.index_select(1, self.perm)

    def split(self, split: str) -> tuple[Tensor, Tensor, Tensor]:
        """(x, y, rows) of ``"train"``, ``"val"`` or ``"test"``."""
        if split == "train":
            return self.x_train, self.y_train, self.train_idx
        if split == "val":
            return self.x_train, self.y_train, self.val_idx
        if split == "test":
            return self.x_test, self.y_test, self.test_idx
        raise ValueError(f"unknown split {split!r}; accepted: train, val, test")

    def sample(self, split: str, n: int | None, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A seeded random subset of ``n`` samples of a split (all of it if ``n`` is None or larger)."""
        x, y, rows = self.split(split)
        if n is not None and n < rows.numel():
            pick = torch.randperm(rows.numel(), generator=generator)[:n].to(rows.device)
            rows = rows.index_select(0, pick)
        return self.inputs(x, rows), y.index_select(0, rows)

    def local(self, y: Tensor) -> Tensor:
        """Global labels to indices within this task's head."""
        return y - self.head.start


def _holdout(rows: Tensor, val_fraction: float, train_size: int | None, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Shuffle ``rows``; the first ``val_fraction`` become validation, then keep ``train_size`` for training."""
    rows = rows[torch.randperm(rows.numel(), generator=g)]
    n_val = int(round(val_fraction * rows.numel()))
    val, train = rows[:n_val], rows[n_val:]
    if train_size is not None:
        train = train[:train_size]
    return train.sort().values, val.sort().values


def _test_rows(n_test: int, test_size: int | None, g: torch.Generator) -> Tensor:
    rows = torch.arange(n_test)
    if test_size is not None and test_size < n_test:
        rows = torch.randperm(n_test, generator=g)[:test_size].sort().values
    return rows


def _check_tasks(n_tasks: int, most: int, name: str) -> None:
    if not isinstance(n_tasks, int) or not 1 <= n_tasks <= most:
        raise ConfigError(f"{name}: n_tasks must be an integer in 1..{most}, got {n_tasks!r}")


def permuted_mnist(
    seed: int,
    n_tasks: int = 10,
    data_dir=None,
    device="cpu",
    val_fraction: float = 0.1,
    train_size: int | None = None,
    test_size: int | None = None,
    download: bool = True,
) -> list[Task]:
    """Permuted MNIST (SPEC §4): each task a fixed random pixel permutation of MNIST, one shared 10-way head."""
    _check_tasks(n_tasks, 1000, "permuted_mnist")
    data = load_mnist(data_dir, device, download)
    tasks = []
    for t in range(n_tasks):
        perm = torch.randperm(data["x_train"].shape[1], generator=rng(seed, "perm", t))
        train, val = _holdout(torch.arange(data["y_train"].numel()), val_fraction, train_size, rng(seed, "split", t))
        test = _test_rows(data["y_test"].numel(), test_size, rng(seed, "test", t))
        tasks.append(_task(f"permuted-{t + 1}", t, tuple(range(10)), slice(0, 10), data, train, val, test, perm, device))
    return tasks


def table2_counts() -> list[list[int]]:
    """The paper's Table 2: ``counts[task][class]`` training samples kept (A.2). Per-class counts as printed."""
    text = resources.files("dhclib").joinpath("paper_data/table2_imbalanced_counts.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    tasks = [k for k in rows[0] if k.startswith("task")]
    return [[int(r[t]) for r in sorted(rows, key=lambda r: int(r["class"]))] for t in tasks]


def imbalanced_permuted_mnist(
    seed: int,
    n_tasks: int = 10,
    data_dir=None,
    device="cpu",
    val_fraction: float = 0.1,
    train_size: int | None = None,
    test_size: int | None = None,
    imbalance: str = "table2",
    download: bool = True,
) -> list[Task]:
    """Imbalanced Permuted MNIST (A.2; SPEC §4): Permuted MNIST with class-imbalanced training sets.

    ``imbalance="table2"`` (default) keeps exactly Table 2's number of training samples per task and class (which
    samples: drawn with the trial's seed); ``"random"`` draws a fresh removal probability r ~ U(0, 1) per task and
    class and removes each sample with probability r, as the paper describes. The validation split is then held
    out of the kept samples; test sets stay balanced.
    """
    if imbalance not in ("table2", "random"):
        raise ConfigError(f"imbalance must be 'table2' or 'random', got {imbalance!r}")
    _check_tasks(n_tasks, 10 if imbalance == "table2" else 1000, "imbalanced_permuted_mnist")
    data = load_mnist(data_dir, device, download)
    y_cpu = data["y_train"].cpu()
    by_class = [torch.nonzero(y_cpu == c).squeeze(1) for c in range(10)]
    counts = table2_counts() if imbalance == "table2" else None
    tasks = []
    for t in range(n_tasks):
        g = rng(seed, "imbalance", t)
        kept = []
        for c, rows in enumerate(by_class):
            if counts is not None:
                n_keep = counts[t][c]
                if n_keep > rows.numel():
                    raise ConfigError(f"Table 2 asks {n_keep} samples of class {c}; MNIST has {rows.numel()}")
                kept.append(rows[torch.randperm(rows.numel(), generator=g)[:n_keep]])
            else:
                r = torch.rand((), generator=g)
                kept.append(rows[torch.rand(rows.numel(), generator=g) >= r])
        pool = torch.cat(kept).sort().values
        perm = torch.randperm(data["x_train"].shape[1], generator=rng(seed, "perm", t))
        train, val = _holdout(pool, val_fraction, train_size, rng(seed, "split", t))
        test = _test_rows(data["y_test"].numel(), test_size, rng(seed, "test", t))
        tasks.append(
            _task(f"imbalanced-{t + 1}", t, tuple(range(10)), slice(0, 10), data, train, val, test, perm, device)
        )
    return tasks


def split_mnist(
    seed: int,
    n_tasks: int = 5,
    data_dir=None,
    device="cpu",
    val_fraction: float = 0.0,
    train_size: int | None = None,
    test_size: int | None = None,
    download: bool = True,
) -> list[Task]:
    """Split MNIST (SPEC §4): tasks 0/1, 2/3, 4/5, 6/7, 8/9, one 2-unit head each (task-incremental)."""
    _check_tasks(n_tasks, 5, "split_mnist")
    data = load_mnist(data_dir, device, download)
    y_train, y_test = data["y_train"].cpu(), data["y_test"].cpu()
    tasks = []
    for t in range(n_tasks):
        classes = (2 * t, 2 * t + 1)
        pool = torch.nonzero((y_train == classes[0]) | (y_train == classes[1])).squeeze(1)
        train, val = _holdout(pool, val_fraction, train_size, rng(seed, "split", t))
        test_pool = torch.nonzero((y_test == classes[0]) | (y_test == classes[1])).squeeze(1)
        test = test_pool[_test_rows(test_pool.numel(), test_size, rng(seed, "test", t))]
        name = f"split-{classes[0]}/{classes[1]}"
        tasks.append(_task(name, t, classes, slice(2 * t, 2 * t + 2), data, train, val, test, None, device))
    return tasks


def _task(name, index, classes, head, data, train, val, test, perm, device) -> Task:
    return Task(
        name=name,
        index=index,
        classes=classes,
        head=head,
        x_train=data["x_train"],
        y_train=data["y_train"],
        train_idx=train.to(device),
        val_idx=val.to(device),
        x_test=data["x_test"],
        y_test=data["y_test"],
        test_idx=test.to(device),
        perm=None if perm is None else perm.to(device),
    )


BENCHMARKS: dict[str, Callable[..., list[Task]]] = {
    "permuted_mnist": permuted_mnist,
    "imbalanced_permuted_mnist": imbalanced_permuted_mnist,
    "split_mnist": split_mnist,
}
