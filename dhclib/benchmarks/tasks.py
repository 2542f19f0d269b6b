"""What the benchmark builders share (docs/method.md (benchmarks)): the settings every builder takes and the helpers that hold out a
validation split, subsample the test set and assemble a :class:`~dhclib.method.task.Task`. Everything random
(permutations, class-count sampling, validation split, subsets) is drawn from streams derived from the trial's
seed (:func:`dhclib.seeds.rng`), so a task sequence is fully determined by its seed and options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from dhclib.method.task import Task  # re-exported: dhclib.benchmarks.Task
from dhclib.registry import Settings, is_int, need
from dhclib.seeds import rng  # re-exported: dhclib.benchmarks.rng

__all__ = ["Task", "TaskSettings", "TABLE1_METHODS", "settings_of", "rng"]


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


# The methods of the paper's Table 1, in its order: what "all" means on a benchmark of the paper, whatever
# regularisers a plugin adds (a benchmark of a user's, declaring none, runs every composition that can run there).
TABLE1_METHODS = ("finetune", "dhp", "si", "dhp+si", "ewc", "dhp+ewc", "mas", "dhp+mas")


@dataclass(frozen=True)
class TaskSettings(Settings):
    """The options every benchmark builder takes: how many tasks, the validation fraction held out of each task's
    training data, and optional sizes of the training and test sets per task (the quick profile's).

    A benchmark's subclass declares its defaults here, the one place they live (its profiles give only what differs
    from them, its builder none), and ``max_tasks``, the most tasks it has."""

    n_tasks: int
    val_fraction: float = 0.0
    train_size: int | None = None
    test_size: int | None = None

    max_tasks: ClassVar[int | None] = None  # the most tasks the benchmark has (None: no bound)

    def validate(self) -> None:
        top = self.max_tasks
        need(is_int(self.n_tasks) and self.n_tasks >= 1 and (top is None or self.n_tasks <= top),
             f"n_tasks must be an integer from 1 to {top}, got {self.n_tasks!r}" if top is not None else
             f"n_tasks must be an integer >= 1, got {self.n_tasks!r}")
        need(isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1,
             f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        for name in ("train_size", "test_size"):
            v = getattr(self, name)
            need(v is None or (is_int(v) and v >= 1), f"{name} must be a positive integer or None, got {v!r}")


S = TypeVar("S", bound=TaskSettings)


def settings_of(cls: type[S], settings: S | None, options: dict[str, Any], builder: str) -> S:
    """A builder's settings: ``settings`` as given (how the runner calls it), or ``cls`` built from the keyword
    ``options`` of a direct call (``permuted_mnist(0, n_tasks=2)``), each default the settings class's own."""
    if settings is not None:
        need(not options, f"{builder}: give its settings or keyword options, not both (got {sorted(options)})")
        need(isinstance(settings, cls), f"{builder}: settings must be a {cls.__name__}, got {type(settings).__name__}")
        return settings
    unknown = sorted(set(options) - set(cls.field_names()))
    need(not unknown, f"{builder}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(cls.field_names())}")
    return cls(**options)


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
