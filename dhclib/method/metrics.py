"""Continual-learning metrics: pure functions of the accuracy matrix R (docs/method.md (metrics)), and mean ± SEM over trials."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["average_accuracy_curve", "average_accuracy", "bwt", "mean_sem", "per_run", "summarize", "R_from_tidy"]


def _check(R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"R must be a non-empty square matrix (tasks x tasks), got shape {R.shape}")
    if np.isnan(np.tril(R)).any():
        raise ValueError("R has NaN on or below the diagonal: every task seen must have been tested")
    return R


def average_accuracy_curve(R) -> np.ndarray:
    """Average test accuracy after n tasks, ``mean_{i<=n} R[n, i]``, for n = 1..T (Figures 2, 5, 6)."""
    R = _check(R)
    return np.array([R[n, : n + 1].mean() for n in range(R.shape[0])])


def average_accuracy(R) -> float:
    """Average test accuracy over all tasks after the last one (Table 1)."""
    return float(average_accuracy_curve(R)[-1])


def bwt(R) -> float:
    """Backward transfer ``1/(T-1) sum_{i<T} (R[T, i] - R[i, i])`` (Lopez-Paz & Ranzato 2017; docs/method.md (metrics)).

    Negative values mean forgetting. Undefined (NaN) for a single task.
    """
    R = _check(R)
    T = R.shape[0]
    if T < 2:
        return float("nan")
    return float(np.mean(R[-1, :-1] - np.diag(R)[:-1]))


def mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n)); SEM is NaN for one value."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    sem = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(v.mean()), sem


def R_from_tidy(df: pd.DataFrame) -> np.ndarray:
    """One run's R from tidy rows with columns ``after_task``, ``task``, ``accuracy``."""
    n = int(max(df["after_task"].max(), df["task"].max())) + 1
    R = np.full((n, n), np.nan)
    R[df["after_task"].to_numpy(int), df["task"].to_numpy(int)] = df["accuracy"].to_numpy(float)
    return R


def per_run(df: pd.DataFrame, by: Sequence[str] = ("benchmark", "method")) -> pd.DataFrame:
    """One row per run of the tidy frame: ``by`` columns, seed, average accuracy and BWT after the last task."""
    rows = []
    keys = list(by) + ["seed"]
    for key, run in df.groupby(keys + (["config_key"] if "config_key" in df else []), sort=False):
        R = R_from_tidy(run)
        rows.append(dict(zip(keys, key[: len(keys)]), avg_acc=average_accuracy(R), bwt=bwt(R)))
    return pd.DataFrame(rows, columns=keys + ["avg_acc", "bwt"])


def summarize(df: pd.DataFrame, by: Sequence[str] = ("benchmark", "method")) -> pd.DataFrame:
    """Per group: number of trials, average accuracy and BWT after the last task as mean and SEM over seeds.

    ``df`` is the tidy frame of :func:`dhclib.run_many` (one row per R entry).
    """
    runs = per_run(df, by)
    out = []
    for key, g in runs.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        acc_m, acc_s = mean_sem(g["avg_acc"])
        bwt_m, bwt_s = mean_sem(g["bwt"])
        out.append(dict(zip(by, key), trials=len(g), avg_acc_mean=acc_m, avg_acc_sem=acc_s, bwt_mean=bwt_m,
                        bwt_sem=bwt_s, seeds=",".join(str(s) for s in sorted(g["seed"]))))
    return pd.DataFrame(out)
