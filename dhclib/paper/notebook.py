"""The steps the notebooks share, one function per notebook cell, so that each notebook reads as a short
document and holds no library logic: where its outputs go, training a benchmark's Table 1 and variant rows, and
printing a table or a regression check."""

from __future__ import annotations

import atexit
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from dhclib.errors import DhcError
from dhclib.paper import regression
from dhclib.paper.report import percent
from dhclib.runs.executors import SlurmOptions, open_executor
from dhclib.runs.outputs import output_dirs, save_table
from dhclib.runs.runner import run_many, run_variants

__all__ = ["setup", "executor", "train", "show", "check"]

# Executors a notebook opened, by what opened them: held while its kernel lives (re-running a cell reuses its
# executor rather than starting another cluster), shut down when the kernel exits.
_OPENED = ExitStack()
_BY_SPEC: dict[tuple, object] = {}
atexit.register(_OPENED.close)


def setup(notebook: str, profile: str, output_dir=None, store_dir=None) -> tuple[Path, Path, Callable[[str], Path]]:
    """``(out_dir, store_dir, reference)`` of a notebook (:func:`dhclib.runs.outputs.output_dirs`);
    ``reference("table1")`` is the committed table its checked cells compare with (README, "Reproducibility")."""
    pd.set_option("display.width", 160)
    out_dir, store = output_dirs(notebook, profile, output_dir, store_dir)
    return out_dir, store, partial(regression.reference_path, notebook, profile=profile)


def executor(spec: str | None, store_dir, slurm: dict | None = None):
    """A notebook's ``executor`` parameter as an executor for the drivers (:func:`dhclib.runs.executors.
    open_executor`: ``None`` trains in the kernel; ``"local:N"``, ``"dask:local:N"``, ``"dask:tcp://HOST:PORT"``,
    ``"slurm"`` with the ``slurm`` parameter's options, README "Running the paper on a cluster"). It stays open
    while the kernel lives, so every cell trains on it, and is shut down when the kernel exits."""
    options = SlurmOptions.of(slurm)
    if spec != "slurm" and options != SlurmOptions():
        raise DhcError(f"the slurm parameter ({slurm!r}) needs executor='slurm', got executor={spec!r}")
    if spec is None:
        return None
    key = (spec, str(store_dir), options)
    if key not in _BY_SPEC:
        _BY_SPEC[key] = _OPENED.enter_context(open_executor(spec, store_dir, options))
    return _BY_SPEC[key]


def train(benchmark: str, methods, trials: int, profile: str, device: str, data_dir, store_dir, out_dir,
          variants: Sequence[dict] = (), missing: str = "train", overrides: dict | None = None,
          stack: int | str = 1, executor=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A benchmark notebook's training: Table 1's methods on seeds ``0 .. trials-1`` and the labelled ``variants``
    beside them, diverged runs recorded (never hidden), up to ``stack`` runs of one configuration at once
    (:func:`dhclib.run_many`), on ``executor`` if given (:func:`executor`); saves ``results_tidy`` and
    ``diverged`` and says how many runs there are. Returns the tidy frame and the diverged runs (method, seed,
    message)."""
    seeds, overrides = f"0-{trials - 1}", dict(overrides or {})
    df = run_many(benchmark, methods, seeds, profile, device, data_dir, store_dir, progress="runs",
                  on_diverge="record", missing=missing, stack=stack, executor=executor, **overrides)
    extra = run_variants(benchmark, list(variants), seeds, profile, device, data_dir, store_dir, progress="runs",
                         missing=missing, stack=stack, executor=executor, **overrides)
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
