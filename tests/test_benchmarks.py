"""dhclib.benchmarks: task sequences of docs/method.md (benchmarks) (Permuted, Imbalanced Permuted and Split MNIST)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import dhclib
from dhclib.benchmarks import imbalanced_permuted_mnist, permuted_mnist, split_mnist, table2_counts
from dhclib.data.idx import load_mnist

# The CSV beside the paper: ../shared/paper next to the clone (as in this workplace and its CI).
PAPER_CSV_CANDIDATES = [
    Path(__file__).resolve().parents[2] / "shared" / "paper" / "table2_imbalanced_counts.csv",
]


def _same_split(a, b) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("perm", "train_idx", "val_idx", "test_idx"))


# ---------------------------------------------------------------------------------------------------------------
# Permuted MNIST
# ---------------------------------------------------------------------------------------------------------------
def test_permutations_fixed_per_seed(idx_root):
    """Same seed -> identical permutations and train/val/test rows (docs/method.md (benchmarks): each trial's seed fixes them)."""
    a = permuted_mnist(3, n_tasks=3, data_dir=idx_root, download=False)
    b = permuted_mnist(3, n_tasks=3, data_dir=idx_root, download=False)
    assert [t.name for t in a] == ["permuted-1", "permuted-2", "permuted-3"]
    for ta, tb in zip(a, b):
        assert _same_split(ta, tb)


def test_permutations_distinct_per_task_and_seed(idx_root):
    """Every task has its own permutation, and another seed gives other permutations and other splits."""
    s0 = permuted_mnist(0, n_tasks=4, data_dir=idx_root, download=False)
    s1 = permuted_mnist(1, n_tasks=4, data_dir=idx_root, download=False)
    perms = [t.perm for t in s0 + s1]
    for i in range(len(perms)):
        for j in range(i + 1, len(perms)):
            assert not torch.equal(perms[i], perms[j]), (i, j)
    assert not torch.equal(s0[0].val_idx, s1[0].val_idx)
    assert not torch.equal(s0[0].val_idx, s0[1].val_idx)  # splits drawn per task too


def test_each_perm_is_a_permutation_of_the_pixels(idx_root):
    """Each Task.perm is a permutation of 0..783 (and not the identity)."""
    for t in permuted_mnist(5, n_tasks=3, data_dir=idx_root, download=False):
        assert t.perm.dtype == torch.int64 and t.perm.shape == (784,)
        assert torch.equal(t.perm.sort().values, torch.arange(784))
        assert (t.perm != torch.arange(784)).sum() > 700


def test_permutation_is_an_index_not_a_copied_dataset(clear_memo, idx_root):
    """The permutation is an index (Task.perm) applied per batch: all tasks share the same unpermuted x_train
    tensor object, and Task.inputs applies the task's permutation to the selected rows."""
    tasks = permuted_mnist(0, n_tasks=3, data_dir=idx_root, download=False)
    assert tasks[0].x_train is tasks[1].x_train is tasks[2].x_train
    assert tasks[0].x_test is tasks[2].x_test
    assert tasks[0].y_train is tasks[1].y_train
    plain = load_mnist(idx_root, download=False)["x_train"]
    torch.testing.assert_close(tasks[1].x_train, plain, rtol=0, atol=0)  # stored unpermuted
    rows = tasks[1].train_idx[:5]
    torch.testing.assert_close(tasks[1].inputs(tasks[1].x_train, rows), plain[rows][:, tasks[1].perm], rtol=0, atol=0)
    x, y = tasks[2].sample("train", 7, torch.Generator().manual_seed(0))
    assert x.shape == (7, 784) and y.shape == (7,)


@pytest.mark.parametrize("val_fraction", [0.1, 0.05, 0.25])
def test_validation_split_disjoint_with_the_right_share(idx_root, val_fraction):
    """Validation and training rows are disjoint, cover the training set, and val is val_fraction of it (docs/method.md (benchmarks))."""
    for t in permuted_mnist(0, n_tasks=2, data_dir=idx_root, val_fraction=val_fraction, download=False):
        train, val = set(t.train_idx.tolist()), set(t.val_idx.tolist())
        assert not train & val
        assert len(train) == t.n_train == t.train_idx.numel()  # no duplicates
        assert train | val == set(range(600))
        assert len(val) == round(val_fraction * 600)


def test_train_size_caps_training_rows_only(idx_root):
    """train_size keeps that many training rows; the validation split is still val_fraction of all rows."""
    for t in permuted_mnist(0, n_tasks=2, data_dir=idx_root, val_fraction=0.1, train_size=200, test_size=30,
                            download=False):
        assert t.n_train == 200
        assert t.val_idx.numel() == 60
        assert not set(t.train_idx.tolist()) & set(t.val_idx.tolist())
        assert t.test_idx.numel() == 30 and t.test_idx.unique().numel() == 30


def test_permuted_single_head(idx_root):
    """Permuted MNIST has one shared 10-way head (docs/method.md (benchmarks))."""
    for t in permuted_mnist(0, n_tasks=2, data_dir=idx_root, download=False):
        assert t.head == slice(0, 10) and t.classes == tuple(range(10))


# ---------------------------------------------------------------------------------------------------------------
# Imbalanced Permuted MNIST (A.2, Table 2)
# ---------------------------------------------------------------------------------------------------------------
def _kept_counts(task) -> list[int]:
    rows = torch.cat([task.train_idx, task.val_idx])
    assert rows.unique().numel() == rows.numel()
    return torch.bincount(task.y_train[rows], minlength=10).tolist()


def test_table2_counts_match_the_paper_csv():
    """table2_counts() is Table 2 as printed (the CSV beside the paper), incl. task 4 summing to 31,150."""
    counts = table2_counts()
    assert len(counts) == 10 and all(len(row) == 10 for row in counts)
    assert counts[3][1] == 6592 and counts[0][0] == 4459 and counts[9][9] == 2045
    assert sum(counts[3]) == 31150  # docs/method.md (benchmarks): per-class counts kept as printed (the 'Total' row says 31,120)
    csv_path = next((p for p in PAPER_CSV_CANDIDATES if p.is_file()), None)
    if csv_path is None:
        pytest.skip("the paper's table2_imbalanced_counts.csv is not beside this clone")
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    from_csv = [[int(r[f"task{t + 1}"]) for r in sorted(rows, key=lambda r: int(r["class"]))] for t in range(10)]
    assert counts == from_csv


@pytest.fixture(scope="module")
def table2_tasks(full_idx_root):
    """Imbalanced Permuted MNIST, Table 2 mode, seed 0, all 10 tasks, on the full-size generated root."""
    return imbalanced_permuted_mnist(0, n_tasks=10, data_dir=full_idx_root, imbalance="table2", download=False)


def test_table2_counts_reproduced_exactly(table2_tasks):
    """imbalance="table2" keeps exactly Table 2's count per task and class (train + val rows: the validation split
    is held out of the kept samples), with a balanced, full test set (A.2; docs/method.md (benchmarks))."""
    counts = table2_counts()
    tasks = table2_tasks
    assert len(tasks) == 10
    for t, task in enumerate(tasks):
        assert _kept_counts(task) == counts[t], f"task {t + 1}"
        n_kept = sum(counts[t])
        assert task.val_idx.numel() == round(0.1 * n_kept)
        assert task.test_idx.numel() == 10000
        assert torch.equal(task.perm.sort().values, torch.arange(784))


def test_table2_samples_are_drawn_with_the_seed(full_idx_root, table2_tasks):
    """Which samples are kept depends on the seed (same counts), and is reproducible for a seed."""
    a = table2_tasks[0]
    b = imbalanced_permuted_mnist(1, n_tasks=1, data_dir=full_idx_root, download=False)[0]
    c = imbalanced_permuted_mnist(0, n_tasks=1, data_dir=full_idx_root, download=False)[0]
    assert _kept_counts(a) == _kept_counts(b) == table2_counts()[0]
    assert not torch.equal(a.train_idx, b.train_idx)
    assert _same_split(a, c)


def test_random_imbalance_differs_from_table2_and_is_seeded(full_idx_root):
    """imbalance="random" draws fresh removal probabilities: not Table 2's counts, same for a seed, different for
    another seed, and never more than the class has."""
    counts = table2_counts()
    r0 = imbalanced_permuted_mnist(0, n_tasks=2, data_dir=full_idx_root, imbalance="random", download=False)
    r0b = imbalanced_permuted_mnist(0, n_tasks=2, data_dir=full_idx_root, imbalance="random", download=False)
    r1 = imbalanced_permuted_mnist(1, n_tasks=2, data_dir=full_idx_root, imbalance="random", download=False)
    available = torch.bincount(r0[0].y_train, minlength=10).tolist()
    for t in range(2):
        k0 = _kept_counts(r0[t])
        assert k0 != counts[t]
        assert k0 == _kept_counts(r0b[t])
        assert _same_split(r0[t], r0b[t])
        assert k0 != _kept_counts(r1[t])
        assert all(0 <= k <= n for k, n in zip(k0, available))
        assert len(set(k0)) > 3  # imbalanced: the classes keep different numbers


def test_imbalance_bad_mode_and_too_many_tasks(idx_root):
    """An unknown imbalance mode, or more than Table 2's 10 tasks, raises ConfigError naming what is accepted."""
    with pytest.raises(dhclib.ConfigError, match="table2.*random"):
        imbalanced_permuted_mnist(0, n_tasks=1, data_dir=idx_root, imbalance="paper", download=False)
    with pytest.raises(dhclib.ConfigError, match="n_tasks must be an integer from 1 to 10, got 11"):
        imbalanced_permuted_mnist(0, n_tasks=11, data_dir=idx_root, download=False)


def test_table2_needs_enough_samples(idx_root):
    """A root with too few samples per class for Table 2 raises ConfigError (not a silent shortfall)."""
    with pytest.raises(dhclib.ConfigError, match="Table 2 asks"):
        imbalanced_permuted_mnist(0, n_tasks=1, data_dir=idx_root, download=False)


# ---------------------------------------------------------------------------------------------------------------
# Split MNIST
# ---------------------------------------------------------------------------------------------------------------
def test_split_mnist_classes_and_heads(idx_root):
    """Split MNIST: tasks 0/1, 2/3, 4/5, 6/7, 8/9 with heads slice(2t, 2t+2); each task's train, val and test
    rows hold only its two classes; task.local(y) is in {0, 1} (docs/method.md (benchmarks), multi-head)."""
    tasks = split_mnist(0, data_dir=idx_root, val_fraction=0.1, download=False)
    assert len(tasks) == 5
    for t, task in enumerate(tasks):
        assert task.classes == (2 * t, 2 * t + 1)
        assert task.head == slice(2 * t, 2 * t + 2)
        assert task.perm is None
        for split in ("train", "val", "test"):
            x, y, rows = task.split(split)
            labels = y[rows]
            assert set(labels.unique().tolist()) == {2 * t, 2 * t + 1}, (t, split)
            assert set(task.local(labels).unique().tolist()) == {0, 1}
        assert task.n_train + task.val_idx.numel() == 120  # 60 per class in the small root
        assert task.test_idx.numel() == 20
        assert not set(task.train_idx.tolist()) & set(task.val_idx.tolist())


def test_split_mnist_default_has_no_validation(idx_root):
    """Split MNIST's default protocol (10 epochs, no early stopping) holds out no validation rows."""
    for task in split_mnist(0, n_tasks=2, data_dir=idx_root, download=False):
        assert task.val_idx.numel() == 0 and task.n_train == 120


def test_split_mnist_test_size(idx_root):
    """test_size subsamples the task's own test rows (still only its classes)."""
    task = split_mnist(0, n_tasks=3, data_dir=idx_root, test_size=8, download=False)[2]
    assert task.test_idx.numel() == 8
    assert set(task.y_test[task.test_idx].tolist()) <= {4, 5}


@pytest.mark.parametrize("builder, bad", [
    (permuted_mnist, 0), (permuted_mnist, -1), (permuted_mnist, 2.5),
    (split_mnist, 6), (split_mnist, 0), (imbalanced_permuted_mnist, 11),
])
def test_n_tasks_out_of_range(tmp_path, builder, bad):
    """n_tasks out of range raises ConfigError naming the accepted range, before any data is read."""
    with pytest.raises(dhclib.ConfigError, match=r"n_tasks must be an integer from 1 to \d+, got"):
        builder(0, n_tasks=bad, data_dir=tmp_path / "no-data-needed", download=False)


# ---------------------------------------------------------------------------------------------------------------
# real MNIST (skipped when absent)
# ---------------------------------------------------------------------------------------------------------------
def test_real_mnist_sizes(mnist_root):
    """Real MNIST: 60,000 training rows split 54,000 / 6,000 for Permuted MNIST (10% validation), 10,000 test."""
    (task,) = permuted_mnist(0, n_tasks=1, data_dir=mnist_root, download=False)
    assert task.x_train.shape == (60000, 784) and task.x_test.shape == (10000, 784)
    assert task.n_train == 54000 and task.val_idx.numel() == 6000 and task.test_idx.numel() == 10000
    assert torch.bincount(task.y_train, minlength=10).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                                   6265, 5851, 5949]
    split = split_mnist(0, n_tasks=1, data_dir=mnist_root, download=False)[0]
    assert split.n_train == 5923 + 6742 and split.test_idx.numel() == 980 + 1135


def test_real_mnist_table2(mnist_root):
    """Real MNIST has enough samples for Table 2 (class 1: 6,742 >= 6,592): counts reproduced for all tasks."""
    counts = table2_counts()
    tasks = imbalanced_permuted_mnist(0, n_tasks=10, data_dir=mnist_root, download=False)
    assert [_kept_counts(t) for t in tasks] == counts
