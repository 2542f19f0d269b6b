"""The steps the notebooks share, one function per notebook cell, so that each notebook reads as a short
document and holds no library logic: where its outputs go, training a benchmark's Table 1 and variant rows,
printing a table or a regression check, and the cells every benchmark notebook (01-04) repeats: the paper's claim
read from Table 1, the diverged runs, Table 1's column, the paired DHP-against-baseline tests and their verdicts,
and the figures."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from dhclib import registry
from dhclib.paper import final_averages, paper_results, plots, regression, report
from dhclib.paper.report import percent
from dhclib.runs.engine import Engine
from dhclib.runs.executors import hold
from dhclib.runs.outputs import output_dirs, save_table
from dhclib.runs.runner import run_many, run_variants

__all__ = ["setup", "train", "show", "check", "paper_claim", "list_diverged", "check_diverged", "table1",
           "check_table1", "paired", "verdicts", "check_verdicts", "accuracy_figure", "first_and_latest_figure",
           "r_matrices_figure"]


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


# ---------------------------------------------------------------------------------------------------------------
# The cells every benchmark notebook (01-04) repeats, one call each; the checked ones print what nbval compares.
# ---------------------------------------------------------------------------------------------------------------
def paper_claim(benchmark: str) -> None:
    """Print the numbers the paper's claim for ``benchmark`` rests on, read from its table
    (``dhclib/paper_data/table1.csv`` or Figure 8's, :func:`dhclib.paper.paper_results`): each baseline beside its
    DHP Softmax variant (Table 1's pairs, :func:`dhclib.registry.pairs`), the methods outside a pair, and the best
    method, average accuracy after the last task in %, so that no notebook retypes them."""
    paper = 100 * paper_results(benchmark).set_index("method")["avg_acc"].dropna()
    if not len(paper):
        print(f"the paper reports no result for {registry.benchmark(benchmark).title}")
        return
    named = {m: registry.method(m).label for m in paper.index}
    print(f"The paper ({registry.benchmark(benchmark).title}), average accuracy after the last task (%):")
    for baseline, dhp in registry.pairs():
        if baseline in paper and dhp in paper:
            gain = paper[dhp] - paper[baseline]
            print(f"  {named[baseline]} {paper[baseline]:.2f} → {named[dhp]} {paper[dhp]:.2f} ({gain:+.2f} points)")
    paired_up = {m for pair in registry.pairs() for m in pair if set(pair) <= set(paper.index)}
    for m in (m for m in paper.index if m not in paired_up):  # e.g. Figure 8's scratch, or SI without its pair
        print(f"  {named[m]} {paper[m]:.2f}")
    best = paper.idxmax()
    print(f"  best: {named[best]}, {paper[best]:.2f}")


def list_diverged(diverged: pd.DataFrame) -> None:
    """Print the runs whose loss became NaN/inf, with the reason (or that none did)."""
    print(diverged.to_string(index=False) if len(diverged) else "no run diverged")


def check_diverged(diverged: pd.DataFrame, reference: Callable[[str], Path]) -> None:
    """The checked cell of the diverged runs: which (method, seed) diverged, against the committed reference."""
    check(diverged[["method", "seed"]], reference("diverged"), keys=["method", "seed"])


def table1(df: pd.DataFrame, benchmark: str, out_dir, columns: dict | None = None) -> pd.DataFrame:
    """Table 1's column of ``benchmark``, ours beside the paper's (:func:`dhclib.paper.report.table1_comparison`),
    saved as ``table1`` and printed; ``columns`` (name -> value) are inserted after the method, e.g. the Vision
    Mixture's ``{"tasks": "3 of 5"}``."""
    table = report.table1_comparison(df, benchmark)
    for i, (name, value) in enumerate((columns or {}).items()):
        table.insert(1 + i, name, value)
    return show(table, out_dir, "table1", 1)


def check_table1(table: pd.DataFrame, reference: Callable[[str], Path]) -> None:
    """The checked cell of Table 1's column: each method's mean average accuracy and BWT within the tolerances of
    :mod:`dhclib.paper.regression`, its trial (and task) counts exactly."""
    check(table, reference("table1"), keys=["method"], values=["avg_acc_mean", "bwt_mean"],
          exact=[c for c in ("trials", "tasks") if c in table])


def paired(df: pd.DataFrame, out_dir) -> pd.DataFrame:
    """Each DHP variant against its baseline, paired by seed (:func:`dhclib.paper.report.paired_tests`), saved as
    ``paired_tests`` and printed."""
    return show(report.paired_tests(df), out_dir, "paired_tests", 3)


def verdicts(df: pd.DataFrame, benchmark: str, out_dir) -> pd.DataFrame:
    """Whether each pair's gain from DHP Softmax is reproduced (:func:`dhclib.paper.report.dhp_verdicts`), saved
    as ``verdicts`` and printed."""
    return show(report.dhp_verdicts(df, benchmark), out_dir, "verdicts", 2)


def check_verdicts(table: pd.DataFrame, reference: Callable[[str], Path]) -> None:
    """The checked cell of the verdicts: each pair's verdict and number of pairs, exactly."""
    check(table, reference("verdicts"), keys=["baseline"], exact=["verdict", "pairs"])


def accuracy_figure(df: pd.DataFrame, diverged: pd.DataFrame, benchmark: str, profile: str, out_dir) -> None:
    """Figures 2, 5 and 6: average accuracy against the number of tasks learned, the paper's final averages
    marked; the curves saved as ``curves``, the figure as ``average_accuracy``."""
    curves = report.curves(df)
    save_table(curves, out_dir, "curves")
    title = f"{registry.benchmark(benchmark).title} ({profile} profile, {report.trials_phrase(df)})"
    fig = plots.accuracy_curves(curves, title, paper=final_averages(benchmark), diverged=report.not_shown(df, diverged))
    plots.save(fig, out_dir, "average_accuracy")


def first_and_latest_figure(df: pd.DataFrame, benchmark: str, profile: str, out_dir,
                            task_names: Sequence[str] | None = None) -> None:
    """Accuracy on the first task and on the task just learned, saved as ``first_and_latest`` (table and figure)."""
    fl = report.first_and_latest(df)
    save_table(fl, out_dir, "first_and_latest")
    fig = plots.first_and_latest(fl, f"{registry.benchmark(benchmark).title} ({profile} profile)",
                                 task_names=task_names)
    plots.save(fig, out_dir, "first_and_latest")


def r_matrices_figure(df: pd.DataFrame, benchmark: str, out_dir) -> None:
    """R of seed 0 for Online EWC and its DHP variant (MAS's pair where EWC's is not there), saved as
    ``r_matrices``."""
    present = set(df["method"])
    pair = ("ewc", "dhp+ewc") if {"ewc", "dhp+ewc"} <= present else ("mas", "dhp+mas")
    shown = [m for m in pair if m in present] or sorted(present)[:2]
    fig = plots.r_heatmaps({m: report.run_matrix(df, m) for m in shown},
                           f"{registry.benchmark(benchmark).title}: R, seed 0")
    plots.save(fig, out_dir, "r_matrices")
