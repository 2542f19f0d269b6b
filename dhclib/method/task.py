"""What the trainer learns from: a :class:`Task`, the interface every benchmark's builder returns (docs/method.md (benchmarks)).

A Task is plain data: row indices into dataset tensors that live once on the training device and are shared by
all tasks, an optional input permutation (an index, applied per batch, never a copied dataset), the task's classes
and its head (the slice of output units that its prediction uses, and its loss unless ``loss_head`` widens it).
Labels are global output-unit indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Task", "stacked_inputs"]


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
    loss_head: slice | None = None  # the output units the training loss spans, when not the head (Split MNIST's
    # loss_units="all")

    @property
    def loss_units(self) -> slice:
        """The output units the training loss (and the validation loss of early stopping) is computed over."""
        return self.head if self.loss_head is None else self.loss_head

    @property
    def n_train(self) -> int:
        return int(self.train_idx.numel())

    def inputs(self, x: Tensor, rows: Tensor) -> Tensor:
        """Rows of ``x`` with this task's input permutation applied, as float in [0, 1].

        Image datasets of the CNN benchmarks stay uint8 on the device (4x less memory than float: the five
        Vision Mixture datasets are about 1.1 GB as uint8); they are scaled per batch (docs/method.md (benchmarks): pixels in [0, 1]).
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


def stacked_inputs(tasks: list[Task], x: Tensor, rows: Tensor) -> Tensor:
    """``torch.stack([t.inputs(x, r) for t, r in zip(tasks, rows)])`` in a fixed number of operations, whatever the
    number of tasks (the stacked engine's batches, one per trial: ``rows`` is ``[trial, batch]``); the same values,
    since gathering moves data and the uint8 scaling is elementwise."""
    n, b = rows.shape
    xb = x.index_select(0, rows.reshape(-1))
    if xb.dtype == torch.uint8:
        xb = xb.float().div_(255.0)
    xb = xb.view(n, b, *x.shape[1:])
    perms = [t.perm for t in tasks]
    if all(p is None for p in perms):
        return xb
    if any(p is None for p in perms) or xb.dim() != 3:
        return torch.stack([t.inputs(x, r) for t, r in zip(tasks, rows)])
    index = torch.stack(perms).unsqueeze(1).expand(n, b, -1)
    return xb.gather(2, index)
