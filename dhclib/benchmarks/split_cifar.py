"""Split CIFAR-10/100 (Appendix D, after Zenke et al. 2017): CIFAR-10, then five ten-class tasks of CIFAR-100."""

from __future__ import annotations

from dataclasses import dataclass

from dhclib.method.task import Task
from dhclib.registry import Benchmark, register_benchmark
from .tasks import TaskSettings, _dataset_task, settings_of

__all__ = ["split_cifar10_100", "SPLIT_CIFAR_TASK_NAMES", "SplitCifarSettings", "SPLIT_CIFAR10_100"]

SPLIT_CIFAR_TASK_NAMES = ("CIFAR-10",) + tuple(f"CIFAR-100 {10 * k}-{10 * k + 9}" for k in range(5))


@dataclass(frozen=True)
class SplitCifarSettings(TaskSettings):
    """Split CIFAR-10/100's options and defaults: six tasks, no validation split."""

    n_tasks: int = 6

    max_tasks = 6


def split_cifar10_100(seed: int, settings: SplitCifarSettings | None = None, data_dir=None, device="cpu",
                      download: bool = True, **options) -> list[Task]:
    """Split CIFAR-10/100 (Appendix D, after Zenke et al. 2017): CIFAR-10, then five tasks of ten consecutive
    CIFAR-100 classes (0-9, ..., 40-49), one 10-way head per task (task-incremental). ``settings``, or its fields
    as keyword ``options`` (:func:`~dhclib.benchmarks.tasks.settings_of`)."""
    from dhclib.data import vision as vision_data

    s = settings_of(SplitCifarSettings, settings, options, "split_cifar10_100")
    tasks = []
    for t in range(s.n_tasks):
        if t == 0:
            arrays, classes = vision_data.load_cifar10(data_dir, download), None
        else:
            arrays, classes = vision_data.load_cifar100(data_dir, download), range(10 * (t - 1), 10 * t)
        name = SPLIT_CIFAR_TASK_NAMES[t]
        tasks.append(_dataset_task(name, t, arrays, classes, slice(10 * t, 10 * t + 10), seed, s.val_fraction,
                                   s.train_size, s.test_size, device))
    return tasks


# Appendix D names only the benchmark and the network (Zenke et al. 2017); the protocol is theirs: Adam (lr 0.001),
# batch 256, 60 epochs per task, no early stopping. The paper is silent on eta here: we take the other CNN
# benchmark's per-connection eta, initialised to 1e-4 (docs/choices.md).
_PAPER = dict(network="zenke_cnn", hidden=(512,), batch_size=256, lr=0.001,
              optimizer="adam", min_epochs=60, max_epochs=60, patience=5, early_stopping=False, eta_init=1e-4,
              eta_per_connection=True)

SPLIT_CIFAR10_100 = register_benchmark(Benchmark(
    name="split_cifar10_100", title="Split CIFAR-10/100 (Figure 8)", build=split_cifar10_100, settings=SplitCifarSettings,
    profiles={"paper": _PAPER, "quick": dict(_PAPER, train_size=1000, test_size=500, min_epochs=3, max_epochs=3,
                                             batch_size=64, importance_samples=500)},
    datasets=("cifar10", "cifar100"), inputs="image", paper_table="figure8",
    methods=("finetune", "dhp", "si", "dhp+si", "scratch")))
