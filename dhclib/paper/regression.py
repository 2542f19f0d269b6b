"""Regression checks of the notebooks' tables against committed references, at the measured numeric spread.

The exact numbers of a run depend on its numeric path (torch build, CPU kernels, BLAS; :mod:`dhclib.numerics`):
on another machine the same seed gives other accuracies. So the cells nbval compares print what holds on any
machine at that spread — each value within a tolerance of the reference, each verdict the same — and the exact
tables sit in unchecked cells beside them. A real change (a regulariser switched off, a broken trace) moves a
method by more than the tolerance and fails the check (``tests/test_regression.py`` proves it).

References: ``tests/reference/<profile>/<notebook>/<table>.csv``, copied from a run on the reference numeric path
by ``make reference`` (docs/reproducibility.md). Tolerances: :data:`TOLERANCE`, justified there by the spread
that ``benchmarks/numeric_spread.py`` measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["TOLERANCE", "RELATIVE_TOLERANCE", "MEASURED_SPREAD", "reference_path", "check_table", "format_check"]

# The largest |deviation| of a quick-profile 3-trial mean (average accuracy, fraction) between the numeric paths
# that benchmarks/numeric_spread.py compared (docs/reproducibility.md, has the table).
MEASURED_SPREAD = 0.0139  # MAS on Permuted MNIST: committed outputs (AMD EPYC, unpinned) vs the pinned path here

# Largest allowed |ours - reference| per column family (accuracies and BWT as fractions, eta and norms as given).
# The quick profile's 3-trial means moved by at most MEASURED_SPREAD across the numeric paths measured (README,
# "Reproducibility"); the tolerance is about twice that, and below the smallest real change we guard against
# (MAS with its penalty switched off falls by 6.1 points on Permuted MNIST: tests/test_regression.py).
TOLERANCE: dict[str, float] = {
    "avg_acc": 0.025,
    "bwt": 0.03,
}
# Figure 3's traces (notebook 05) are checked relative to the reference's value: |ours - ref| <= tol * |ref|.
RELATIVE_TOLERANCE: dict[str, float] = {
    "eta": 0.25,
    "hebb_norm": 0.25,
    "alpha_norm": 0.25,
}


def claim_outcome(verdict) -> object:
    """What of a DHP verdict (:func:`dhclib.paper.report.dhp_verdicts`) the regression check holds exact: a
    significant gain (``"reproduced"``, ``"a gain the paper does not report"``), no significant gain, or untested.
    Which kind of "no gain" it is (DHP Softmax significantly worse, or no significant difference) rests on a paired
    t-test over 3 quick-profile pairs whose p moves across CPUs far more than the means do: measured for
    Imbalanced's ``[fisher_mode=batch]`` pair, p = 0.24 on the reference path (Intel Xeon) and below 0.05 on an AMD
    EPYC in CI, both means within tolerance."""
    if not isinstance(verdict, str) or verdict.startswith(("no result", "too few", "reproduced", "a gain")):
        return verdict
    return "no significant gain"


# Exact columns compared through what is stable of them (by column name, as the tolerance families are).
EXACT_AS: dict[str, Callable] = {"verdict": claim_outcome}

_REPO = Path(__file__).resolve().parents[2]  # dhclib/paper/regression.py -> the repository


def reference_path(notebook: str, table: str, profile: str = "quick", root: str | Path | None = None) -> Path:
    """Where the committed reference of ``table`` of ``notebook`` lies (it may not exist: e.g. the paper profile)."""
    return Path(root or _REPO / "tests" / "reference") / profile / notebook / f"{table}.csv"


def _family(column: str, families) -> str | None:
    for family in families:
        if column == family or column.startswith(f"{family}_") or column.endswith(f"_{family}"):
            return family
    return None


def _tolerance_for(column: str, tolerance: dict[str, float]) -> tuple[float, bool] | None:
    """``(tolerance, relative)`` of a column, from its family's name."""
    if (f := _family(column, tolerance)) is not None:
        return tolerance[f], False
    if (f := _family(column, RELATIVE_TOLERANCE)) is not None:
        return RELATIVE_TOLERANCE[f], True
    return None


def check_table(ours: pd.DataFrame, reference: pd.DataFrame | str | Path | None, keys: Sequence[str],
                values: Sequence[str] = (), exact: Sequence[str] = (),
                tolerance: dict[str, float] | None = None) -> pd.DataFrame:
    """Compare ``ours`` with ``reference`` row by row (rows matched on ``keys``).

    ``values``: numeric columns that must lie within their family's tolerance (:data:`TOLERANCE`: a column named
    ``avg_acc_mean`` belongs to ``avg_acc``); ``exact``: columns that must be equal (trial counts; a verdict as its claim's outcome, :data:`EXACT_AS`). NaN
    equals NaN (a row with no result in both). Returns ``keys`` + ``check``: ``"ok"`` or what differs, plus
    ``max_dev`` (the largest deviation in units of its tolerance, for the unchecked cells).
    """
    tolerance = TOLERANCE if tolerance is None else tolerance
    if reference is None or (isinstance(reference, (str, Path)) and not Path(reference).is_file()):
        # named relative to the repository, so that the printed check is the same on every machine
        where = "" if reference is None else f" {repo_relative(Path(reference))}"
        return pd.DataFrame({"check": [f"no committed reference{where}: nothing to compare"]})
    ref = pd.read_csv(reference) if isinstance(reference, (str, Path)) else reference
    keys = list(keys)
    for col in values:
        if _tolerance_for(col, tolerance) is None:
            raise ValueError(f"no tolerance for column {col!r}; families: "
                             f"{', '.join([*tolerance, *RELATIVE_TOLERANCE])}")
    a = ours.set_index(keys)
    b = ref.set_index(keys)
    rows = []
    for key in list(dict.fromkeys([*a.index, *b.index])):
        if key not in b.index:
            rows.append((key, "not in the reference", np.nan))
            continue
        if key not in a.index:
            rows.append((key, "missing here", np.nan))
            continue
        x, y = a.loc[key], b.loc[key]
        problems, worst = [], 0.0
        for col in values:
            tol, relative = _tolerance_for(col, tolerance)
            u, v = float(x[col]), float(y[col])
            if np.isnan(u) and np.isnan(v):
                continue
            scale = tol * abs(v) if relative else tol
            dev = abs(u - v) / scale if not (np.isnan(u) or np.isnan(v) or scale == 0) else np.inf
            if scale == 0 and u == v:
                dev = 0.0
            worst = max(worst, dev)
            if dev > 1:
                what = f"{tol:g} x reference" if relative else f"{tol}"
                problems.append(f"{col} {u:.4g} vs {v:.4g} (tolerance {what})")
        for col in exact:
            u, v = a.loc[key, col], b.loc[key, col]
            same = EXACT_AS.get(col, lambda z: z)
            if not (same(u) == same(v) or (pd.isna(u) and pd.isna(v))):
                problems.append(f"{col} {_show(u)} vs {_show(v)}")
        rows.append((key, "ok" if not problems else "DIFFERS: " + "; ".join(problems), worst))
    out = pd.DataFrame([(*(k if isinstance(k, tuple) else (k,)), c, d) for k, c, d in rows],
                       columns=[*keys, "check", "max_dev"])
    return out


def _show(value) -> str:
    return f"{float(value):g}" if isinstance(value, (int, float, np.number)) else repr(value)


def repo_relative(path: Path) -> str:
    """``path`` named relative to the repository where it lies in it (the same printed text on every machine)."""
    try:
        return str(path.resolve().relative_to(_REPO))
    except ValueError:
        return path.name


def format_check(check: pd.DataFrame) -> str:
    """The printed form nbval compares: keys and the verdict of each row, never the machine-dependent numbers."""
    if check.empty:
        return "no rows here or in the reference: ok"
    return check.drop(columns=["max_dev"], errors="ignore").to_string(index=False)
