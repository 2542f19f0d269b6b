"""The Vision Datasets Mixture (Sec. 4.4, A.4; docs/method.md (benchmarks)): MNIST, notMNIST, FashionMNIST, SVHN and CIFAR-10 in turn,
one 10-way head each, learned by Table 3's CNN."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from dhclib.method.task import Task
from dhclib.registry import Benchmark, need, register_benchmark
from .tasks import TABLE1_METHODS, TaskSettings, _dataset_task, rng, settings_of

__all__ = ["vision_mixture", "VISION_TASKS", "PAPER_VISION_TASKS", "NOTMNIST_SPLITS", "VisionMixtureSettings",
           "VISION_MIXTURE"]

PAPER_VISION_TASKS = ("mnist", "notmnist", "fashion_mnist", "svhn", "cifar10")
# The Vision Datasets Mixture (A.4): dataset name -> (display name, loader attribute in dhclib.data.vision).
VISION_TASKS = {
    "mnist": "MNIST",
    "notmnist": "notMNIST",
    "fashion_mnist": "FashionMNIST",
    "svhn": "SVHN",
    "cifar10": "CIFAR-10",
}
NOTMNIST_SPLITS = ("official", "test_resplit")


def _read(name: str, seed: int, data_dir, download: bool, notmnist_split: str) -> dict[str, Tensor]:
    """One dataset's arrays as its loader returns them (notMNIST from the split asked for)."""
    from dhclib.data import vision as vision_data

    if name == "notmnist":
        resplit = int(rng(seed, "notmnist-resplit").initial_seed()) if notmnist_split == "test_resplit" else None
        return vision_data.load_notmnist(data_dir, download, resplit_seed=resplit)
    return vision_data.VISION_DATASETS[name](data_dir, download)


def _vision_arrays(name: str, seed: int, data_dir, download: bool, notmnist_split: str) -> dict[str, Tensor]:
    """uint8 images (N, 3, 32, 32) and int64 labels of one dataset (grayscale sets padded and replicated)."""
    from dhclib.data import vision as vision_data

    arrays = _read(name, seed, data_dir, download, notmnist_split)
    if arrays["x_train"].dim() == 3:  # 28x28 grayscale: zero-padded to 32x32, replicated to 3 channels (A.4)
        arrays = dict(arrays, x_train=vision_data.pad_to_rgb32(arrays["x_train"]),
                      x_test=vision_data.pad_to_rgb32(arrays["x_test"]))
    return arrays


@dataclass(frozen=True)
class VisionMixtureSettings(TaskSettings):
    """The Vision Mixture's options and defaults: the datasets learned, in order (``vision_tasks``; ``"paper"`` is
    the paper's five), one task each (``n_tasks``: the length of ``vision_tasks`` unless given), and notMNIST's
    split."""

    n_tasks: int = len(PAPER_VISION_TASKS)
    vision_tasks: tuple[str, ...] = PAPER_VISION_TASKS
    notmnist_split: str = "official"

    max_tasks = len(VISION_TASKS)

    @classmethod
    def prepare(cls, values: dict, overridden: set[str]) -> dict:
        values = dict(values)
        if values.get("vision_tasks") == "paper":  # a shorthand for the command line and papermill's -p
            values["vision_tasks"] = PAPER_VISION_TASKS
        if isinstance(values.get("vision_tasks"), (list, tuple)) and "n_tasks" not in overridden:
            values["n_tasks"] = len(values["vision_tasks"])  # a shorter task list is a shorter sequence
        return values

    def validate(self) -> None:
        need(isinstance(self.vision_tasks, tuple) and len(self.vision_tasks) >= 1
             and all(t in VISION_TASKS for t in self.vision_tasks),
             f"vision_tasks must be a non-empty list of {', '.join(VISION_TASKS)}, got {self.vision_tasks!r}")
        super().validate()
        need(self.n_tasks <= len(self.vision_tasks),
             f"n_tasks ({self.n_tasks}) is larger than the task list vision_tasks ({len(self.vision_tasks)} datasets)")
        need(self.notmnist_split in NOTMNIST_SPLITS,
             f"notmnist_split must be one of {', '.join(NOTMNIST_SPLITS)}, got {self.notmnist_split!r}")


def vision_mixture(seed: int, settings: VisionMixtureSettings | None = None, data_dir=None, device="cpu",
                   download: bool = True, **options) -> list[Task]:
    """The Vision Datasets Mixture (Sec. 4.4, A.4; docs/method.md (benchmarks)): one dataset per task, one 10-way head each.

    The paper's order is MNIST, notMNIST, FashionMNIST, SVHN, CIFAR-10 (``vision_tasks``, a parameter: e.g. the
    tasks whose data exist on a machine). Images are 3x32x32 (the grayscale sets zero-padded and replicated),
    stored once as uint8 on the device and scaled to [0, 1] per batch. ``notmnist_split="test_resplit"`` builds
    notMNIST's task from its official test split alone (a stratified re-split seeded by the trial), for when the
    training images are absent; it is never chosen silently. ``settings``, or its fields as keyword ``options``
    (resolved as a config resolves them: a shorter ``vision_tasks`` is a shorter sequence).
    """
    if settings is None:
        options = VisionMixtureSettings.prepare(options, set(options))
    s = settings_of(VisionMixtureSettings, settings, options, "vision_mixture")
    tasks = []
    for t, name in enumerate(s.vision_tasks[:s.n_tasks]):
        arrays = _vision_arrays(name, seed, data_dir, download, s.notmnist_split)
        head = slice(10 * t, 10 * t + 10)
        tasks.append(_dataset_task(VISION_TASKS[name], t, arrays, None, head, seed, s.val_fraction, s.train_size,
                                   s.test_size, device))
    return tasks


# A.4 / Sec. 4.4: Table 3's CNN, batch 32, plain SGD 0.01, 50 epochs per task (no early stopping is mentioned
# for this benchmark), a per-connection eta initialised to 1e-4.
_PAPER = dict(network="table3_cnn", hidden=(500,), batch_size=32, lr=0.01, min_epochs=50, max_epochs=50, patience=5,
              early_stopping=False, eta_init=1e-4, eta_per_connection=True)

def _read_data(settings: VisionMixtureSettings, data_dir, download: bool) -> None:
    """Read the datasets of the tasks these settings learn, with notMNIST's split, as :func:`vision_mixture` does."""
    for name in settings.vision_tasks[:settings.n_tasks]:
        _read(name, 0, data_dir, download, settings.notmnist_split)


VISION_MIXTURE = register_benchmark(Benchmark(
    name="vision_mixture", title="Vision Datasets Mixture (5-Vision)", build=vision_mixture,
    settings=VisionMixtureSettings,
    profiles={"paper": _PAPER, "quick": dict(_PAPER, train_size=2000, test_size=1000, min_epochs=3, max_epochs=3,
                                             importance_samples=500)},
    datasets=PAPER_VISION_TASKS, inputs="image", methods=TABLE1_METHODS, read_data=_read_data))
