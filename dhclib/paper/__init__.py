"""The paper's reported numbers, as data (docs/method.md (results)), for the notebooks to put beside ours.

The tables live as CSV files in ``dhclib/paper_data/`` (typed from the paper's Table 1, Figure 8 and Table 2); this module
only reads them. Accuracies are fractions in [0, 1] here, like dhclib's own, although the paper prints percent.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from dhclib import registry
from dhclib.registry import paper_lambdas, search_grid, search_grids  # noqa: F401  (the notebooks read them here)

__all__ = ["table1", "table4", "figure8", "paper_results", "final_averages", "PAPER_ETA_INITS", "search_grids", "search_grid",
           "paper_lambdas"]

# Table 4's initial eta values.
PAPER_ETA_INITS = (0.1, 0.01, 0.001, 0.0005, 0.0001)


def _read(name: str) -> pd.DataFrame:
    with resources.files("dhclib").joinpath(f"paper_data/{name}").open() as f:
        return pd.read_csv(f)


def table1(benchmark: str | None = None) -> pd.DataFrame:
    """Table 1 (10 trials): columns ``method, benchmark, avg_acc, bwt``; one benchmark's column when given."""
    df = _read("table1.csv")
    df["avg_acc"] = df["avg_acc"] / 100.0
    if benchmark is not None:
        if benchmark not in set(df["benchmark"]):
            raise ValueError(f"Table 1 has no {benchmark!r}; it has {', '.join(df['benchmark'].unique())}")
        df = df[df["benchmark"] == benchmark]
    order = {m: i for i, m in enumerate(registry.methods())}
    return df.sort_values(["benchmark", "method"], key=lambda s: s.map(order) if s.name == "method" else s,
                          ignore_index=True)


def table4() -> pd.DataFrame:
    """Table 4 (DHP Softmax alone, 5 trials): columns ``eta_init, benchmark, avg_acc``."""
    df = _read("table4.csv")
    df["avg_acc"] = df["avg_acc"] / 100.0
    return df


def figure8() -> pd.DataFrame:
    """Figure 8 (Split CIFAR-10/100, accuracy after the last task): ``method, avg_acc, source``."""
    df = _read("figure8.csv")
    df["avg_acc"] = df["avg_acc"] / 100.0
    return df


def paper_results(benchmark: str) -> pd.DataFrame:
    """The paper's result for each method on ``benchmark`` (``method, avg_acc, bwt``): the table the benchmark
    declares (``paper_table``: Table 1, or Figure 8's averages without BWT), empty where the paper has none."""
    table = registry.benchmark(benchmark).paper_table
    if table == "table1":
        return table1(benchmark)[["method", "avg_acc", "bwt"]]
    if table == "figure8":
        return figure8()[["method", "avg_acc"]].assign(bwt=float("nan"))
    return pd.DataFrame({"method": pd.Series(dtype=str), "avg_acc": pd.Series(dtype=float),
                         "bwt": pd.Series(dtype=float)})


def final_averages(benchmark: str) -> dict[str, float]:
    """The paper's average accuracy after the last task per method on ``benchmark`` (:func:`paper_results`), as
    the figures mark it beside our curves (``plots.accuracy_curves(paper=...)``)."""
    df = paper_results(benchmark)
    return dict(zip(df["method"], df["avg_acc"].astype(float)))
