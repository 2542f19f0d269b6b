"""Continual-learning benchmarks: a data root and a seed in, a list of tasks out (docs/method.md (benchmarks)).

One module per benchmark family declares its builder, settings, profiles and paper facts and registers them
(:func:`dhclib.registry.register_benchmark`): ``permuted`` (Permuted and Imbalanced Permuted MNIST),
``split_mnist``, ``vision_mixture`` and ``split_cifar``; ``tasks`` holds what they share (:class:`Task`, ``rng``).
"""

from __future__ import annotations

# Registration order is the paper's order (Table 1's columns, then Figure 8): listings, "all" and REPORT.md
# follow it, so these imports are kept in that order rather than sorted.
from .permuted import IMBALANCED_PERMUTED_MNIST, PERMUTED_MNIST, imbalanced_permuted_mnist, permuted_mnist, table2_counts
from .split_mnist import SPLIT_MNIST, split_mnist
from .vision_mixture import NOTMNIST_SPLITS, PAPER_VISION_TASKS, VISION_MIXTURE, VISION_TASKS, vision_mixture
from .split_cifar import SPLIT_CIFAR_TASK_NAMES, SPLIT_CIFAR10_100, split_cifar10_100  # noqa: I001
from .tasks import Task, TaskSettings, rng

__all__ = ["Task", "TaskSettings", "permuted_mnist", "imbalanced_permuted_mnist",
           "split_mnist", "vision_mixture", "split_cifar10_100", "VISION_TASKS", "PAPER_VISION_TASKS",
           "NOTMNIST_SPLITS", "SPLIT_CIFAR_TASK_NAMES", "table2_counts", "rng",
           # the registered declarations (dhclib.registry.BENCHMARKS holds them by name)
           "PERMUTED_MNIST", "IMBALANCED_PERMUTED_MNIST", "SPLIT_MNIST", "VISION_MIXTURE", "SPLIT_CIFAR10_100"]
