"""What every benchmark is made of: a :class:`Task`, seeded random streams, and the settings they share (SPEC §4).

A :class:`Task` is plain data: row indices into dataset tensors that live once on the training device and are
shared by all tasks, an optional input permutation (an index, applied per batch, never a copied dataset), the
task's classes and its head (the slice of output units that its loss and prediction use). Labels are global
output-unit indices. Everything random (permutations, class-count sampling, validation split, subsets) is drawn
from streams derived from the trial's seed, so a task sequence is fully determined by its seed and options.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import Settings, is_int, need

__all__ = ["Task", "TaskSettings", "rng"]


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
        """Rows of ``x`` with this task's input permutation applied, as float in [0, 1].

        Image datasets of the CNN benchmarks stay uint8 on the device (4x less memory than float: the five
        Vision Mixture datasets are about 1.1 GB as uint8); they are scaled per batch (SPEC §4: pixels in [0, 1]).
        """
        xb = x.index_select(0, rows)
        if xb.dtype == torch.uint8:
            xb = xb.float().div_(255.0)
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


@dataclass(frozen=True)
class TaskSettings(Settings):
    """The options every benchmark builder takes: how many tasks, the validation fraction held out of each task's
    training data, and optional sizes of the training and test sets per task (the quick profile's)."""

    n_tasks: int
    val_fraction: float
    train_size: int | None = None
    test_size: int | None = None

    def validate(self) -> None:
        need(is_int(self.n_tasks), f"n_tasks must be an integer, got {self.n_tasks!r}")
        need(isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1,
             f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        for name in ("train_size", "test_size"):
            v = getattr(self, name)
            need(v is None or (is_int(v) and v >= 1), f"{name} must be a positive integer or None, got {v!r}")


def _dataset_task(name: str, index: int, arrays: dict[str, Tensor], classes, head: slice, seed: int,
                  val_fraction: float, train_size: int | None, test_size: int | None, device) -> Task:
    """A task of one dataset: rows of ``classes`` (all if None), labels shifted onto the task's head."""
    x_tr, y_tr, x_te, y_te = arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
    if classes is not None:  # keep only the task's classes, as local labels 0..9
        lo = min(classes)
        keep_tr = (y_tr >= lo) & (y_tr <= max(classes))
        keep_te = (y_te >= lo) & (y_te <= max(classes))
        x_tr, y_tr, x_te, y_te = x_tr[keep_tr], y_tr[keep_tr] - lo, x_te[keep_te], y_te[keep_te] - lo
    train, val = _holdout(torch.arange(y_tr.numel()), val_fraction, train_size, rng(seed, "split", index))
    test = _test_rows(y_te.numel(), test_size, rng(seed, "test", index))
    data = {"x_train": x_tr.to(device), "y_train": (y_tr + head.start).to(device),
            "x_test": x_te.to(device), "y_test": (y_te + head.start).to(device)}
    units = tuple(range(head.start, head.stop))
    return _task(name, index, units, head, data, train, val, test, None, device)


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
