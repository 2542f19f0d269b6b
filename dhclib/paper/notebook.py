"""The steps the notebooks share, one function per notebook cell, so that each notebook reads as a short
document and holds no library logic: where its outputs go, training a benchmark's Table 1 and variant rows, and
printing a table or a regression check."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from dhclib.paper import regression
from dhclib.paper.report import percent
from dhclib.runs.engine import Engine
from dhclib.runs.executors import hold
from dhclib.runs.outputs import output_dirs, save_table
from dhclib.runs.runner import run_many, run_variants

__all__ = ["setup", "train", "show", "check"]


def setup(notebook: str, profile: str, engine: Engine | str | None = None) -> tuple[Path, Path, Callable[[str], Path]]:
    """``(out_dir, store_dir, reference)`` of a notebook (:func:`dhclib.runs.outputs.output_dirs`: by profile,
    under ``$DHC_OUTPUT_ROOT`` if set); ``reference("table1")`` is the committed table its checked cells compare
    with (README, "Reproducibility"). The notebook's ``engine`` is checked here, before anything trains, and its
    workers (if any) are started once and kept while the kernel lives (:func:`dhclib.runs.executors.hold`): every
    cell trains on them, a cell run again starts no second pool or cluster."""
    pd.set_option("display.width", 160)
    out_dir, store = output_dirs(notebook, profile)
    hold(engine, store)
    return out_dir, store, partial(regression.reference_path, notebook, profile=profile)


def train(benchmark: str, methods, trials: int, profile: str, device: str, store_dir, out_dir,
          variants: Sequence[dict] = (), missing: str = "train", overrides: dict | None = None,
          engine: Engine | str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A benchmark notebook's training: Table 1's methods on seeds ``0 .. trials-1`` and the labelled ``variants``
    beside them, diverged runs recorded (never hidden), on ``engine`` (:func:`dhclib.run_many`), the data read
    from ``$DHC_DATA_DIR``; saves ``results_tidy`` and ``diverged`` and says how many runs there are. Returns the
    tidy frame and the diverged runs (method, seed, message)."""
    seeds, overrides = f"0-{trials - 1}", dict(overrides or {})
    df = run_many(benchmark, methods, seeds, profile, device, None, store_dir, progress="runs",
                  on_diverge="record", missing=missing, engine=engine, **overrides)
    extra = run_variants(benchmark, list(variants), seeds, profile, device, None, store_dir, progress="runs",
                         missing=missing, engine=engine, **overrides)
    failed = df.attrs["diverged"] + extra.attrs["diverged"]
    df = pd.concat([df, extra], ignore_index=True)
    save_table(df, out_dir, "results_tidy")
    diverged = pd.DataFrame(failed, columns=["method", "seed", "message"])
    save_table(diverged, out_dir, "diverged")
    print(f"{df.groupby(['method', 'seed']).ngroups} runs, {len(diverged)} diverged")
    return df, diverged


def show(table: pd.DataFrame, out_dir, name: str, decimals: int = 2) -> pd.DataFrame:
    """Save ``table`` as ``<out_dir>/<name>.csv`` and print it with accuracies in percent
    (:func:`dhclib.paper.report.percent`); returns it."""
    save_table(table, out_dir, name)
    print(percent(table, decimals).to_string(index=False))
    return table


def check(table: pd.DataFrame, reference: Path, keys: Sequence[str], values: Sequence[str] = (),
          exact: Sequence[str] = ()) -> None:
    """Print the regression check of ``table`` against its committed reference (the cells nbval compares print
    only this: :func:`dhclib.paper.regression.check_table`)."""
    print(regression.format_check(regression.check_table(table, reference, keys=list(keys), values=list(values),
                                                         exact=list(exact))))
