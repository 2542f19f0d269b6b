"""The steps the notebooks share, one function per notebook cell, so that each notebook reads as a short
document and holds no library logic: where its outputs go, training a benchmark's Table 1 and variant rows,
printing a table or a regression check, and the cells every benchmark notebook (01-04) repeats: the paper's claim
read from Table 1, the diverged runs, Table 1's column, the paired DHP-against-baseline tests and their verdicts,
and the figures."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from dhclib import registry
from dhclib.errors import ConfigError
from dhclib.runs.config import PROFILES
from dhclib.paper import final_averages, paper_results, plots, regression, report, report_data
from dhclib.paper.findings import eta_course_frame, mechanism_frame, table4_paired_frame
from dhclib.paper.report import percent
from dhclib.runs.engine import Engine
from dhclib.runs.executors import hold
from dhclib.runs.outputs import output_dirs, save_table
from dhclib.runs.runner import concat_runs, run_many, run_variants
from dhclib.runs.store import load_results

__all__ = ["setup", "VARIANTS", "variants_of", "train", "list_missing", "show", "display_table", "Rendered", "check", "paper_claim", "list_diverged", "check_diverged", "table1",
           "check_table1", "paired", "settings", "mechanism", "eta_effects", "verdicts", "check_verdicts", "accuracy_figure", "first_and_latest_figure",
           "r_matrices_figure"]


def setup(notebook: str, profile: str, engine: Engine | str | None = None) -> tuple[Path, Path, Callable[[str], Path]]:
    """``(out_dir, store_dir, reference)`` of a notebook (:func:`dhclib.runs.outputs.output_dirs`: by profile,
    under ``$DHC_OUTPUT_ROOT`` if set, else the committed store and an untracked folder for the artefacts, which
    the notebook names); ``reference("table1")`` is the committed table its checked cells compare
    with (docs/reproducibility.md). The notebook's ``engine`` is checked here, before anything trains, and its
    workers (if any) are started once and kept while the kernel lives (:func:`dhclib.runs.executors.hold`): every
    cell trains on them, a cell run again starts no second pool or cluster."""
    pd.set_option("display.width", 160)
    if profile not in PROFILES:  # before any folder is made: a typo leaves nothing behind
        raise ConfigError(f"unknown profile {profile!r}; accepted: {', '.join(map(repr, PROFILES))}")
    engine = Engine.of(engine)  # a bad engine string fails here, before anything is written
    out_dir, store = output_dirs(notebook, profile)
    if not os.environ.get("DHC_OUTPUT_ROOT"):  # said once, so that nobody looks for them under outputs/<profile>/
        print(f"tables and figures go to {_shown(out_dir)}/ (untracked); runs are read from and added to "
              f"{_shown(store)}/; DHC_OUTPUT_ROOT=<folder> writes both under <folder>/{profile}/ instead")
    hold(engine, store)
    return out_dir, store, partial(regression.reference_path, notebook, profile=profile)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory (``../outputs/...`` from notebooks/)."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


# The labelled rows a benchmark notebook shows beside Table 1's when its ``variants`` parameter is None, by profile:
# on the quick profile SI with the strength of our quick-profile search (notebook 07); on the paper profile the rows
# the findings rest on (README): Online EWC with the mini-batch Fisher, where the paper's diverges, the
# interventions on DHP Softmax + MAS's collapse, early stopping on the validation loss (Permuted MNIST), and Split
# MNIST with the loss over all output units. A row the store lacks runs for is listed as such, never hidden.
_FISHER_BATCH = {"methods": ["ewc", "dhp+ewc"], "overrides": {"fisher_mode": "batch"}}
_PAPER_PERMUTED = [  # each on the seeds it was run on (scripts/paper_runs.sh, scripts/collapse_runs.sh)
    _FISHER_BATCH,
    {"methods": ["dhp", "dhp+mas"], "overrides": {"eta_clamp": True}, "seeds": "0-2"},
    {"methods": ["dhp+mas"], "overrides": {"importance_logits": "slow"}, "seeds": "0-4"},
    {"methods": ["mas", "dhp+mas"], "overrides": {"mas_mode": "batch"}, "seeds": "0-4"},
]
# the other reading of A.1's early stopping (on the validation loss), against η's course and the DHP gains
_STOP_ON_LOSS = {"methods": ["finetune", "dhp", "mas", "dhp+mas"], "overrides": {"select_metric": "loss"},
                 "seeds": "0-2"}
VARIANTS: dict[str, dict[str, list[dict]]] = {
    "quick": {"permuted_mnist": [{"methods": ["si", "dhp+si"], "overrides": {"lam": 50.0}}],
              "imbalanced_permuted_mnist": [_FISHER_BATCH]},
    "paper": {"permuted_mnist": [*_PAPER_PERMUTED, _STOP_ON_LOSS], "imbalanced_permuted_mnist": _PAPER_PERMUTED,
              "split_mnist": [{"methods": ["finetune", "dhp", "si", "dhp+si"], "overrides": {"loss_units": "all"}}]},
}


def variants_of(benchmark: str, profile: str, variants: Sequence[dict] | None) -> list[dict]:
    """A notebook's ``variants`` parameter: as given, or with None the profile's labelled rows (:data:`VARIANTS`)."""
    return list(VARIANTS.get(profile, {}).get(benchmark, [])) if variants is None else list(variants)


def train(benchmark: str, methods, trials: int, profile: str, device: str, store_dir, out_dir,
          variants: Sequence[dict] | None = None, missing: str = "train", overrides: dict | None = None,
          engine: Engine | str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A benchmark notebook's training: Table 1's methods on seeds ``0 .. trials-1`` and the labelled ``variants``
    beside them, diverged runs recorded (never hidden), on ``engine`` (:func:`dhclib.run_many`), the data read
    from ``$DHC_DATA_DIR``; saves ``results_tidy`` and ``diverged`` and says how many runs there are. Returns the
    tidy frame and the diverged runs (method, seed, message)."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be a whole number >= 1 (seeds 0 .. trials-1), got {trials!r}")
    seeds, overrides = f"0-{trials - 1}", dict(overrides or {})
    df = run_many(benchmark, methods, seeds, profile, device, None, store_dir, progress="runs",
                  on_diverge="record", missing=missing, engine=engine, **overrides)
    extra = run_variants(benchmark, variants_of(benchmark, profile, variants), seeds, profile, device, None, store_dir, progress="runs",
                         missing=missing, engine=engine, **overrides)
    # concat_runs, not pd.concat: pandas drops attrs that differ, and Table 1 counts the diverged runs from them
    df = concat_runs([df, extra])
    failed, left_out = df.attrs["diverged"], df.attrs["missing"]
    save_table(df, out_dir, "results_tidy")
    diverged = pd.DataFrame(failed, columns=["method", "seed", "message"])
    save_table(diverged, out_dir, "diverged")
    print(f"{df.groupby(['method', 'seed']).ngroups} runs, {len(diverged)} diverged")
    list_missing(left_out)
    return df, diverged


def list_missing(left_out: list[dict]) -> None:
    """Say which runs the tables lack because they are not in the store (``missing="skip"``): per row label, with
    the benchmark where they span several and a grid's value (e.g. ``eta_init=0.1``) where they come from one."""
    if not left_out:
        return
    several = len({run["benchmark"] for run in left_out}) > 1
    by_label: dict[str, list[int]] = {}
    for run in left_out:
        grid = [f"{k}={v}" for k, v in run.items() if k not in _IDENTITY]
        label = (f"{run['benchmark']}: " if several else "") + ", ".join([run["method"], *grid])
        by_label.setdefault(label, []).append(int(run["seed"]))
    n = len(left_out)
    print(f"{n} run{' is' if n == 1 else 's are'} not in the store and {'was' if n == 1 else 'were'} not trained "
          "(missing='skip'); their rows lack them:")
    for label, seeds in by_label.items():
        print(f"  {label}: seed{'' if len(seeds) == 1 else 's'} {_seed_ranges(sorted(seeds))}")


_IDENTITY = {"benchmark", "method", "base_method", "variant", "seed", "config_key"}  # what every missing run names


def _seed_ranges(seeds: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``"0-2, 5"``."""
    spans: list[list[int]] = []
    for s in seeds:
        if spans and s == spans[-1][1] + 1:
            spans[-1][1] = s
        else:
            spans.append([s, s])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans)


class Rendered:
    """A table as a notebook shows it: an HTML table in JupyterLab and on the site, its plain text in papermill
    logs and terminals (both without the index; the HTML carries no random ids, so an execution is reproducible
    byte for byte)."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False, border=0, na_rep="—")

    def __repr__(self) -> str:
        return self.table.to_string(index=False)


def display_table(table: pd.DataFrame) -> None:
    """Show ``table`` rendered (:class:`Rendered`) in a notebook, printed elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # IPython is a dependency of the notebooks only
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Rendered(table))
    else:
        print(repr(Rendered(table)))


def show(table: pd.DataFrame, out_dir, name: str, decimals: int = 2) -> pd.DataFrame:
    """Save ``table`` as ``<out_dir>/<name>.csv`` and show it with accuracies in percent
    (:func:`dhclib.paper.report.percent`, :func:`display_table`); returns it."""
    save_table(table, out_dir, name)
    display_table(percent(table, decimals))
    return table


def check(table: pd.DataFrame, reference: Path, keys: Sequence[str], values: Sequence[str] = (),
          exact: Sequence[str] = ()) -> None:
    """Print the regression check of ``table`` against its committed reference (the cells nbval compares print
    only this: :func:`dhclib.paper.regression.check_table`). Where the profile has no reference, the first check of
    the notebook says so and the others print nothing; where the table counts other numbers of trials (or of
    paired seeds) than the reference, it says that the two are not comparable instead of listing every difference."""
    reference = Path(reference)
    if not reference.is_file():
        folder = reference.parent
        if folder not in _UNREFERENCED:
            _UNREFERENCED.add(folder)
            print(f"no reference for this profile ({regression.repo_relative(folder)}): nothing is compared")
        return
    ref = pd.read_csv(reference)
    for count in _COUNTS:  # a table of other trial counts than the reference's is another experiment
        ours, theirs = _counts(table, count), _counts(ref, count)
        if ours and theirs and ours != theirs:
            print(f"not comparable: {count}={_join(ours)} differs from the reference's {_join(theirs)}")
            return
    print(regression.format_check(regression.check_table(table, reference, keys=list(keys), values=list(values),
                                                         exact=list(exact))))


_UNREFERENCED: set[Path] = set()  # reference folders a notebook already said it lacks


_COUNTS = ("trials", "pairs")  # the columns that count a row's runs (Table 1's trials, the paired tests' pairs)


def _counts(table: pd.DataFrame, column: str) -> set[int]:
    """The positive run counts of ``column`` (a row without runs, e.g. a method not run, counts none)."""
    return {int(t) for t in table[column].dropna() if t > 0} if column in table else set()


def _join(values: set[int]) -> str:
    return "/".join(str(v) for v in sorted(values))


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
    """Show the runs whose loss became NaN/inf, with the reason (or say that none did)."""
    if len(diverged):
        display_table(diverged)
    else:
        print("no run diverged")


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


def settings(df: pd.DataFrame, out_dir) -> pd.DataFrame:
    """What each labelled setting does to the method it changes: every labelled row against the same method in the
    paper's configuration, paired by seed (:func:`dhclib.paper.report_data.setting_effects`, REPORT.md's table of
    the same name), saved as ``settings`` and printed; one line instead where no labelled row has a method with
    runs in the paper's configuration to pair with."""
    table = report_data.setting_effects(df, df[df["variant"] == ""])
    if not len(table):
        print("nothing to pair: no labelled row (parameter `variants`) whose method has runs in the paper's "
              "configuration here")
        return table
    return show(table, out_dir, "settings", 3)


def eta_effects(sweep: pd.DataFrame, store_dir, out_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 4 read as REPORT.md reads it, over exactly the sweep's runs (``sweep``: the tidy frames of
    :func:`dhclib.run_grid` over ``eta_init``): each initial η against 0.001 on the same seeds
    (:func:`dhclib.paper.report_data.eta_effects`, saved as ``table4_paired``) and η's course per initial η, read
    back from the store for the runs' traces (:func:`dhclib.paper.report_data.eta_courses`, saved as
    ``eta_course``); each shown as the report shows it. Returns both frames."""
    paired = report_data.eta_effects(sweep)
    keys = set(sweep["config_key"])
    course = report_data.eta_courses([r for r in load_results(store_dir) if r.config["key"] in keys])
    save_table(paired, out_dir, "table4_paired")
    save_table(course, out_dir, "eta_course")
    if len(paired):
        display_table(table4_paired_frame(paired))
    else:
        print("nothing to pair: no initial η other than 0.001 with a seed that 0.001 has too")
    if len(course):
        display_table(eta_course_frame(course))
    return paired, course


def mechanism(df: pd.DataFrame, benchmark: str, store_dir, out_dir) -> pd.DataFrame:
    """What happened to each task before the last one, per row of this notebook's runs (exactly those of ``df``,
    read back from the store for their traces; :func:`dhclib.paper.report_data.mechanism`, REPORT.md's table "What
    happens to each task"), in Table 1's order; saved as ``mechanism`` and shown as REPORT.md shows it."""
    keys = set(df["config_key"])
    table = report_data.mechanism([r for r in load_results(store_dir, benchmark) if r.config["key"] in keys])
    if not len(table):
        print("no stored run to read")
        return table
    order = {m: i for i, m in enumerate(report.method_order(list(table["method"]), df))}
    table = table.sort_values("method", key=lambda c: c.map(order), ignore_index=True)
    save_table(table, out_dir, "mechanism")
    display_table(mechanism_frame(table).drop(columns="benchmark"))
    return table


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
