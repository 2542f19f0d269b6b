"""dhclib.method.metrics: average accuracy (curve and final), BWT, input validation, mean ± SEM, R from tidy rows and the
per-group summary over seeds (docs/method.md (metrics)), on small hand-written cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dhclib.method.metrics import R_from_tidy, average_accuracy, average_accuracy_curve, bwt, mean_sem, summarize

NAN = float("nan")

# R[T, i] = accuracy on task i after training task T; above the diagonal: not yet seen (NaN).
R3 = np.array([
    [0.90, NAN, NAN],
    [0.80, 0.95, NAN],
    [0.70, 0.85, 0.99],
])


def test_average_accuracy_curve_hand_values():
    """mean_{i<=n} R[n, i]: n=1: 0.90; n=2: (0.80 + 0.95)/2 = 0.875; n=3: (0.70 + 0.85 + 0.99)/3 = 2.54/3 =
    0.84666...; the final average accuracy is the last entry."""
    curve = average_accuracy_curve(R3)
    np.testing.assert_allclose(curve, [0.90, 0.875, 2.54 / 3], rtol=0, atol=1e-12)
    assert average_accuracy(R3) == pytest.approx(2.54 / 3, abs=1e-12)
    assert isinstance(average_accuracy(R3), float)


def test_bwt_hand_value():
    """BWT = 1/(T-1) sum_{i<T} (R[T, i] - R[i, i]) = ((0.70 - 0.90) + (0.85 - 0.95)) / 2 = -0.15 (forgetting is
    negative); a matrix with no forgetting has BWT 0, one that improves old tasks has positive BWT."""
    assert bwt(R3) == pytest.approx(-0.15, abs=1e-12)
    assert bwt([[0.5, NAN], [0.5, 0.7]]) == pytest.approx(0.0, abs=1e-12)
    assert bwt([[0.5, NAN], [0.8, 0.7]]) == pytest.approx(0.3, abs=1e-12)


def test_entries_above_the_diagonal_are_ignored():
    """Accuracies measured on tasks not yet trained (above the diagonal) enter neither metric."""
    R = R3.copy()
    R[np.triu_indices(3, 1)] = [0.1, 0.2, 0.3]
    np.testing.assert_allclose(average_accuracy_curve(R), average_accuracy_curve(R3), rtol=0, atol=0)
    assert bwt(R) == bwt(R3)


def test_single_task():
    """One task: average accuracy is R[0, 0], BWT is undefined (NaN)."""
    assert average_accuracy([[0.97]]) == pytest.approx(0.97)
    assert math.isnan(bwt([[0.97]]))
    assert math.isnan(bwt(np.array([[0.97]])))


@pytest.mark.parametrize(
    "R",
    [
        np.zeros((2, 3)),  # not square
        np.zeros(3),  # not a matrix
        np.zeros((0, 0)),  # empty
        np.zeros((2, 2, 2)),
        np.array([[0.9, NAN], [NAN, 0.8]]),  # NaN below the diagonal
        np.array([[NAN, NAN], [0.5, 0.8]]),  # NaN on the diagonal
    ],
    ids=["non-square", "1-d", "empty", "3-d", "nan-below-diagonal", "nan-on-diagonal"],
)
def test_invalid_R_raises(R):
    """Every metric rejects a non-square / non-2-D / empty R and an R with NaN on or below the diagonal."""
    for fn in (average_accuracy_curve, average_accuracy, bwt):
        with pytest.raises(ValueError, match="R "):
            fn(R)


def test_mean_sem_hand_values():
    """[1, 2, 3, 4]: mean 2.5, sample SD sqrt(5/3) = 1.29099..., SEM = SD / sqrt(4) = 0.645497...; one value:
    SEM NaN; no values: both NaN."""
    m, s = mean_sem([1, 2, 3, 4])
    assert m == pytest.approx(2.5)
    assert s == pytest.approx(math.sqrt(5 / 3) / 2, rel=1e-12)
    assert s == pytest.approx(0.6454972243679028, rel=1e-12)
    m1, s1 = mean_sem([0.7])
    assert m1 == pytest.approx(0.7) and math.isnan(s1)
    assert all(math.isnan(v) for v in mean_sem([]))
    m2, s2 = mean_sem(pd.Series([0.875, 0.7]))
    assert m2 == pytest.approx(0.7875) and s2 == pytest.approx(0.0875)


def _tidy(R, **cols) -> pd.DataFrame:
    """Tidy rows (after_task, task, accuracy) of the lower triangle of R, in shuffled order, plus constant columns."""
    rows = [dict(after_task=T, task=i, accuracy=R[T][i], **cols) for T in range(len(R)) for i in range(T + 1)]
    rows = [rows[k] for k in np.random.default_rng(0).permutation(len(rows))]
    return pd.DataFrame(rows)


def test_R_from_tidy_round_trip():
    """R -> tidy rows (any order) -> R gives back the lower triangle exactly, NaN above the diagonal."""
    df = _tidy(R3)
    assert len(df) == 6
    R = R_from_tidy(df)
    assert R.shape == (3, 3)
    np.testing.assert_array_equal(np.isnan(R), np.isnan(R3))
    np.testing.assert_array_equal(np.nan_to_num(R), np.nan_to_num(R3))
    assert bwt(R) == pytest.approx(-0.15)


def test_summarize_two_seeds_hand_values():
    """Per (benchmark, method): seed 0 R = [[0.9, -], [0.8, 0.95]] -> avg 0.875, BWT -0.1; seed 1 R = [[0.7, -],
    [0.5, 0.9]] -> avg 0.7, BWT -0.2. So avg_acc 0.7875 ± SEM 0.0875 (|0.875-0.7|/2), BWT -0.15 ± 0.05, 2 trials,
    seeds '0,1' (sorted, though seed 1's rows come first). A second method with one seed: 1 trial, SEM NaN."""
    df = pd.concat([
        _tidy([[0.7, NAN], [0.5, 0.9]], benchmark="pm", method="dhp", seed=1),
        _tidy([[0.9, NAN], [0.8, 0.95]], benchmark="pm", method="dhp", seed=0),
        _tidy([[0.6, NAN], [0.6, 0.8]], benchmark="pm", method="finetune", seed=4),
    ], ignore_index=True)
    out = summarize(df).set_index("method")
    assert set(out.index) == {"dhp", "finetune"}
    dhp = out.loc["dhp"]
    assert dhp["benchmark"] == "pm"
    assert dhp["trials"] == 2
    assert dhp["avg_acc_mean"] == pytest.approx(0.7875, abs=1e-12)
    assert dhp["avg_acc_sem"] == pytest.approx(0.0875, abs=1e-12)
    assert dhp["bwt_mean"] == pytest.approx(-0.15, abs=1e-12)
    assert dhp["bwt_sem"] == pytest.approx(0.05, abs=1e-12)
    assert dhp["seeds"] == "0,1"
    ft = out.loc["finetune"]
    assert ft["trials"] == 1 and ft["seeds"] == "4"
    assert ft["avg_acc_mean"] == pytest.approx(0.7) and ft["bwt_mean"] == pytest.approx(0.0)
    assert math.isnan(ft["avg_acc_sem"]) and math.isnan(ft["bwt_sem"])


def test_summarize_groups_by_benchmark_too():
    """The same method on two benchmarks gives two rows (grouping by ('benchmark', 'method'))."""
    df = pd.concat([
        _tidy([[0.9]], benchmark="pm", method="dhp", seed=0),
        _tidy([[0.5]], benchmark="split", method="dhp", seed=0),
    ], ignore_index=True)
    out = summarize(df).set_index("benchmark")
    assert len(out) == 2
    assert out.loc["pm", "avg_acc_mean"] == pytest.approx(0.9)
    assert out.loc["split", "avg_acc_mean"] == pytest.approx(0.5)
    assert math.isnan(out.loc["pm", "bwt_mean"])  # single task: BWT undefined
