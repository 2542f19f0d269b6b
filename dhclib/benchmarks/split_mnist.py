"""Split MNIST (docs/method.md (benchmarks), A.3): five two-class tasks, one 2-unit head each (task-incremental).

Where the paper is silent: its training loss spans the task's head (ours, the default), or all ten output units
(``loss_units="all"``, a labelled reading); either way a task is predicted within its head.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from dhclib.data.idx import load_mnist
from dhclib.method.task import Task
from dhclib.registry import Benchmark, added, need, register_benchmark
from .tasks import TABLE1_METHODS, TaskSettings, _holdout, _task, _test_rows, rng, settings_of

__all__ = ["split_mnist", "SPLIT_MNIST", "SplitMNISTSettings", "LOSS_UNITS"]

# The output units Split MNIST's training loss spans: the task's 2-unit head, or all 10 units.
LOSS_UNITS = ("head", "all")


@dataclass(frozen=True)
class SplitMNISTSettings(TaskSettings):
    """Split MNIST's options and defaults (docs/method.md (benchmarks): five tasks, no validation split) and ``loss_units`` (the
    module docstring)."""

    n_tasks: int = 5
    loss_units: str = added("head")

    max_tasks = 5

    def validate(self) -> None:
        super().validate()
        need(self.loss_units in LOSS_UNITS, f"loss_units must be 'head' or 'all', got {self.loss_units!r}")


def split_mnist(seed: int, settings: SplitMNISTSettings | None = None, data_dir=None, device="cpu",
                download: bool = True, **options) -> list[Task]:
    """Split MNIST (docs/method.md (benchmarks)): tasks 0/1, 2/3, 4/5, 6/7, 8/9, one 2-unit head each (task-incremental); with
    ``loss_units="all"`` each task's training loss spans all ten output units. ``settings``, or its fields as
    keyword ``options`` (:func:`~dhclib.benchmarks.tasks.settings_of`)."""
    s = settings_of(SplitMNISTSettings, settings, options, "split_mnist")
    data = load_mnist(data_dir, device, download)
    y_train, y_test = data["y_train"].cpu(), data["y_test"].cpu()
    tasks = []
    for t in range(s.n_tasks):
        classes = (2 * t, 2 * t + 1)
        pool = torch.nonzero((y_train == classes[0]) | (y_train == classes[1])).squeeze(1)
        train, val = _holdout(pool, s.val_fraction, s.train_size, rng(seed, "split", t))
        test_pool = torch.nonzero((y_test == classes[0]) | (y_test == classes[1])).squeeze(1)
        test = test_pool[_test_rows(test_pool.numel(), s.test_size, rng(seed, "test", t))]
        name = f"split-{classes[0]}/{classes[1]}"
        task = _task(name, t, classes, slice(2 * t, 2 * t + 2), data, train, val, test, None, device)
        tasks.append(dataclasses.replace(task, loss_head=slice(0, 10)) if s.loss_units == "all" else task)
    return tasks


# docs/method.md (benchmarks) (the tasks: SplitMNISTSettings): MLP 256-256, exactly 10 epochs per task, no early stopping.
_PAPER = dict(hidden=(256, 256), min_epochs=10, max_epochs=10, patience=5,
              early_stopping=False)

SPLIT_MNIST = register_benchmark(Benchmark(
    name="split_mnist", title="Split MNIST", build=split_mnist, settings=SplitMNISTSettings,
    profiles={"paper": _PAPER, "quick": dict(_PAPER, train_size=2000, test_size=1000, min_epochs=3, max_epochs=3,
                                             importance_samples=1000)},
    datasets=("mnist",), inputs="vector", methods=TABLE1_METHODS))
