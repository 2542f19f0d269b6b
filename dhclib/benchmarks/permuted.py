"""Permuted MNIST and Imbalanced Permuted MNIST (docs/method.md (benchmarks), A.1-A.2): MNIST under a fixed random pixel permutation
per task, one shared 10-way head; the imbalanced one keeps Table 2's class counts per task."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import torch

from dhclib.data.idx import load_mnist
from dhclib.errors import ConfigError
from dhclib.method.task import Task
from dhclib.registry import Benchmark, need, register_benchmark
from .tasks import TABLE1_METHODS, TaskSettings, _holdout, _task, _test_rows, rng, settings_of

# Imbalanced Permuted MNIST's class imbalance: Table 2's counts (ours), or the paper's random removal.
IMBALANCE = ("table2", "random")

__all__ = ["permuted_mnist", "imbalanced_permuted_mnist", "table2_counts", "PermutedSettings", "ImbalancedSettings",
           "IMBALANCE", "PERMUTED_MNIST", "IMBALANCED_PERMUTED_MNIST"]


@dataclass(frozen=True)
class PermutedSettings(TaskSettings):
    """Permuted MNIST's options and their defaults (docs/method.md (benchmarks)): 10 tasks, 10% of each task's training data held out."""

    n_tasks: int = 10
    val_fraction: float = 0.1

    max_tasks = 10


def permuted_mnist(seed: int, settings: PermutedSettings | None = None, data_dir=None, device="cpu",
                   download: bool = True, **options) -> list[Task]:
    """Permuted MNIST (docs/method.md (benchmarks)): each task a fixed random pixel permutation of MNIST, one shared 10-way head.
    ``settings``, or its fields as keyword ``options`` (:func:`~dhclib.benchmarks.tasks.settings_of`)."""
    s = settings_of(PermutedSettings, settings, options, "permuted_mnist")
    data = load_mnist(data_dir, device, download)
    tasks = []
    for t in range(s.n_tasks):
        perm = torch.randperm(data["x_train"].shape[1], generator=rng(seed, "perm", t))
        train, val = _holdout(torch.arange(data["y_train"].numel()), s.val_fraction, s.train_size,
                              rng(seed, "split", t))
        test = _test_rows(data["y_test"].numel(), s.test_size, rng(seed, "test", t))
        tasks.append(_task(f"permuted-{t + 1}", t, tuple(range(10)), slice(0, 10), data, train, val, test, perm, device))
    return tasks


def table2_counts() -> list[list[int]]:
    """The paper's Table 2: ``counts[task][class]`` training samples kept (A.2). Per-class counts as printed."""
    text = resources.files("dhclib").joinpath("paper_data/table2_imbalanced_counts.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    tasks = [k for k in rows[0] if k.startswith("task")]
    return [[int(r[t]) for r in sorted(rows, key=lambda r: int(r["class"]))] for t in tasks]


@dataclass(frozen=True)
class ImbalancedSettings(PermutedSettings):
    """Imbalanced Permuted MNIST's options: Permuted MNIST's, and ``imbalance``: "table2" (Table 2's counts, ours)
    or "random"."""

    imbalance: str = "table2"

    def validate(self) -> None:
        super().validate()
        need(self.imbalance in IMBALANCE, f"imbalance must be 'table2' or 'random', got {self.imbalance!r}")


def imbalanced_permuted_mnist(seed: int, settings: ImbalancedSettings | None = None, data_dir=None, device="cpu",
                              download: bool = True, **options) -> list[Task]:
    """Imbalanced Permuted MNIST (A.2; docs/method.md (benchmarks)): Permuted MNIST with class-imbalanced training sets.

    ``imbalance="table2"`` (default) keeps exactly Table 2's number of training samples per task and class (which
    samples: drawn with the trial's seed); ``"random"`` draws a fresh removal probability r ~ U(0, 1) per task and
    class and removes each sample with probability r, as the paper describes. The validation split is then held
    out of the kept samples; test sets stay balanced. ``settings``, or its fields as keyword ``options``.
    """
    s = settings_of(ImbalancedSettings, settings, options, "imbalanced_permuted_mnist")
    data = load_mnist(data_dir, device, download)
    y_cpu = data["y_train"].cpu()
    by_class = [torch.nonzero(y_cpu == c).squeeze(1) for c in range(10)]
    counts = table2_counts() if s.imbalance == "table2" else None
    tasks = []
    for t in range(s.n_tasks):
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
        train, val = _holdout(pool, s.val_fraction, s.train_size, rng(seed, "split", t))
        test = _test_rows(data["y_test"].numel(), s.test_size, rng(seed, "test", t))
        tasks.append(
            _task(f"imbalanced-{t + 1}", t, tuple(range(10)), slice(0, 10), data, train, val, test, perm, device)
        )
    return tasks


# docs/method.md (benchmarks) (the tasks: PermutedSettings): MLP 400-400, at least 10 epochs with early stopping (patience 5).
_PAPER = dict(hidden=(400, 400), min_epochs=10, max_epochs=100, patience=5, early_stopping=True)
# The quick profile scales the same protocol down (README: "Profiles").
_QUICK = dict(train_size=5000, test_size=2000, val_fraction=0.05, min_epochs=3, max_epochs=6, patience=2,
              importance_samples=1000)

PERMUTED_MNIST = register_benchmark(Benchmark(
    name="permuted_mnist", title="Permuted MNIST", build=permuted_mnist, settings=PermutedSettings,
    profiles={"paper": _PAPER, "quick": dict(_PAPER, **_QUICK)}, datasets=("mnist",), inputs="vector",
    methods=TABLE1_METHODS))
IMBALANCED_PERMUTED_MNIST = register_benchmark(Benchmark(
    name="imbalanced_permuted_mnist", title="Imbalanced Permuted MNIST", build=imbalanced_permuted_mnist,
    settings=ImbalancedSettings, profiles={"paper": _PAPER, "quick": dict(_PAPER, **_QUICK)},
    datasets=("mnist",), inputs="vector", methods=TABLE1_METHODS))
