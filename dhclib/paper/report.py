"""Tables the notebooks show: ours beside the paper's, Welch t-tests, curves, first/latest-task accuracy.

Every function takes the tidy frame of :func:`dhclib.run_many` (one row per tested entry of R) and returns a pandas
frame; accuracies stay fractions in [0, 1] (the notebooks format them as percent).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from dhclib import registry
from dhclib.method.metrics import R_from_tidy, average_accuracy_curve, per_run, summarize
from dhclib.paper import paper_lambdas, paper_results, table4
from dhclib.runs.labels import LABEL_COLUMNS, label_of, label_rows

__all__ = ["trials_phrase", "rests_on", "task_states", "MECHANISM", "eta_trajectory", "table1_comparison", "paired_tests", "pairs_present", "curves", "first_and_latest", "method_order", "ordered_rows",
           "run_matrix", "traces_by_progress", "percent", "trace_summary", "eta_table", "grid_table",
           "grid_best", "dhp_verdicts", "not_shown", "figure3_checks", "final_task_accuracy", "figure8_comparison",
           "vision_tasks_run", "RUNAWAY_FACTOR", "COLLAPSE_DROP", "trace_runaway", "collapsed_tasks"]


def method_order(methods: Sequence[str], rows: pd.DataFrame | None = None) -> list[str]:
    """``methods`` (row labels) in Table 1's order; a labelled variant (``"ewc [fisher_mode=batch]"``) right after
    Table 1's rows, by its overrides and then in the order of its method; unknown names last, as given. ``rows``:
    a frame whose ``base_method`` and ``variant`` columns name each label's parts (:func:`dhclib.runs.labels.
    label_rows`, e.g. the tidy frame itself); without them every name is a plain method."""
    return list(ordered_rows(label_rows(rows), methods)["method"])


def ordered_rows(rows: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`dhclib.runs.labels.label_rows` of ``rows`` (or of the labels ``methods``, with their parts from
    ``rows`` where it names them) sorted as :func:`method_order` says: the frame a figure or a table walks."""
    rows = label_rows(rows)
    if methods is not None:
        given = pd.DataFrame({"method": pd.Series(list(dict.fromkeys(methods)), dtype=object)})
        rows = given.merge(rows, on="method", how="left")
        rows["base_method"] = rows["base_method"].fillna(rows["method"])
        rows["variant"] = rows["variant"].fillna("")
    rank = {m: i for i, m in enumerate(registry.methods())}  # Table 1's compositions, then scratch (Figure 8)
    plain = rows["method"].isin(rank)
    labelled = ~plain & (rows["variant"] != "") & rows["base_method"].isin(rank)
    key = pd.DataFrame({
        "group": np.select([plain, labelled], [0, 1], 2),
        "variant": rows["variant"].where(labelled, ""),
        "rank": np.where(plain | labelled, rows["base_method"].map(rank).fillna(0), np.arange(len(rows))),
    })
    order = key.sort_values(["group", "variant", "rank"], kind="stable").index
    return rows.loc[order, LABEL_COLUMNS].reset_index(drop=True)


def pairs_present(methods: Sequence[str], pairs: Sequence[tuple[str, str]] | None = None,
                  rows: pd.DataFrame | None = None) -> list[tuple[str, str]]:
    """Table 1's (baseline, DHP variant) pairs (default: every registered regulariser's, ``registry.pairs``),
    plus the same pairs of every labelled variant present in ``methods``
    (``("ewc [fisher_mode=batch]", "dhp+ewc [fisher_mode=batch]")``); ``rows`` as for :func:`method_order`.

    A DHP variant whose baseline was not run with its setting (a setting of DHP Softmax only, such as
    ``eta_clamp``: the baseline has no η to clamp) is paired with the plain baseline and with the plain DHP method
    it remedies (``("dhp", "dhp [eta_clamp=True]")``), each row named by its two labels."""
    present = set(methods)
    pairs = registry.pairs() if pairs is None else pairs
    out = list(pairs)
    parts = label_rows(rows)
    for variant in sorted(set(parts.loc[parts["method"].isin(present) & (parts["variant"] != ""), "variant"])):
        for b, d in pairs:
            vb, vd = label_of(b, variant), label_of(d, variant)
            if vb in present:
                out.append((vb, vd))
            elif vd in present:
                out += [(b, vd), (d, vd)] if b in present or d in present else [(vb, vd)]
    return out


def _base_methods(labels: pd.Series, rows: pd.DataFrame) -> pd.Series:
    """The composed method of each label in ``labels``, from the ``base_method`` column of ``rows`` (a label it
    does not name is a plain method)."""
    base = label_rows(rows).set_index("method")["base_method"]
    return labels.map(base).fillna(labels)


def _with_parts(out: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``out`` with its labels' parts (``base_method``, ``variant``, from ``rows``' columns) beside ``method``, for
    the figures."""
    parts = label_rows(rows).set_index("method")
    at = list(out.columns).index("method") + 1
    out.insert(at, "base_method", out["method"].map(parts["base_method"]).fillna(out["method"]))
    out.insert(at + 1, "variant", out["method"].map(parts["variant"]).fillna(""))
    return out


def rests_on(trials: int, diverged: int) -> str:
    """What a mean rests on when some of its runs diverged, e.g. ``"4 of 10; 6 diverged"`` ("" when none did): a
    mean of the survivors is never shown beside the paper's all-trial value without it."""
    return f"{trials} of {trials + diverged}; {diverged} diverged" if diverged else ""


def table1_comparison(df: pd.DataFrame, benchmark: str, diverged=None) -> pd.DataFrame:
    """Table 1's column for ``benchmark``: our average accuracy and BWT (mean, SEM, trials) beside the paper's,
    with the differences (ours − paper); for Split CIFAR-10/100, Figure 8's average accuracies. Methods absent from ``df`` have NaN for ours. A labelled variant
    (:func:`dhclib.run_variants`) is its own row, beside the paper's value for its method.

    ``diverged``: the records of runs that diverged (dicts or a frame with ``benchmark`` and ``method``, the row's
    label; default ``df.attrs["diverged"]``, as the drivers return it): counted per row in ``diverged``, and
    ``rests_on`` says what a mean of fewer runs than were started rests on (:func:`rests_on`)."""
    ours = summarize(df[df["benchmark"] == benchmark], by=("method",))
    if ours.empty:
        ours = pd.DataFrame(columns=["method", "trials", "avg_acc_mean", "avg_acc_sem", "bwt_mean", "bwt_sem"])
    paper = paper_results(benchmark).rename(columns={"avg_acc": "paper_avg_acc", "bwt": "paper_bwt"})
    out = paper.merge(ours, on="method", how="outer")
    by_method, base = paper.set_index("method"), _base_methods(out["method"], df)
    for col in ("paper_avg_acc", "paper_bwt"):  # a labelled variant's paper value is its method's
        out[col] = out[col].fillna(base.map(by_method[col]))
    out["trials"] = out["trials"].fillna(0).astype(int)
    lost = pd.DataFrame(df.attrs.get("diverged", []) if diverged is None else diverged,
                        columns=["benchmark", "method"])
    counts = lost[lost["benchmark"] == benchmark].groupby("method").size()
    out["diverged"] = out["method"].map(counts).fillna(0).astype(int)
    out["rests_on"] = [rests_on(t, d) for t, d in zip(out["trials"], out["diverged"])]
    out["avg_acc_diff"] = out["avg_acc_mean"] - out["paper_avg_acc"]
    out["bwt_diff"] = out["bwt_mean"] - out["paper_bwt"]
    cols = ["method", "trials", "diverged", "avg_acc_mean", "avg_acc_sem", "paper_avg_acc", "avg_acc_diff",
            "bwt_mean", "bwt_sem", "paper_bwt", "bwt_diff", "rests_on"]
    order = {m: i for i, m in enumerate(method_order(list(out["method"]), df))}
    return out[cols].sort_values("method", key=lambda s: s.map(order), ignore_index=True)


def _runs_of_one_benchmark(df: pd.DataFrame, pairs, who: str):
    """Per-run accuracies of ``df`` and the (baseline, DHP variant) pairs to test: Table 1's four plus those of any
    labelled variant present, unless ``pairs`` is given."""
    if df["benchmark"].nunique() > 1:
        raise ValueError(f"{who} compares runs of one benchmark; got {', '.join(df['benchmark'].unique())}: "
                         "filter the frame first, e.g. df[df.benchmark == 'split_mnist']")
    return per_run(df, by=("method",)), pairs_present(df["method"].unique(), rows=df) if pairs is None else pairs


def paired_tests(df: pd.DataFrame, pairs: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Each DHP variant against its baseline, paired by seed, for the average accuracy and the BWT after the last
    task, on one benchmark's runs: a DHP run and its baseline's run of the same seed share the initialisation of
    the slow weights, the permutations and the data order (docs/method.md (strengths)'s seeding), so they are pairs, and the test of
    their differences is far more sensitive than Welch's test, which treats them as independent.

    Over the seeds both have: ``pairs`` (their number), ``<metric>_gain`` (mean of variant − baseline),
    ``<metric>_p`` (paired t-test, two-sided), ``<metric>_wilcoxon_p`` (Wilcoxon signed-rank test, two-sided, exact
    for small samples; with 5 pairs or fewer it cannot go below 0.0625), ``<metric>_better`` (seeds on which the
    variant is higher) and, labelled, ``<metric>_welch_p`` (Welch's test over the same runs, for comparison).
    NaN where fewer than two pairs exist or every difference is zero."""
    runs, pairs = _runs_of_one_benchmark(df, pairs, "paired_tests")
    rows = []
    for base, dhp in pairs:
        a = runs[runs["method"] == base].set_index("seed")
        b = runs[runs["method"] == dhp].set_index("seed")
        seeds = sorted(set(a.index) & set(b.index))
        row = {"baseline": base, "dhp_variant": dhp, "pairs": len(seeds)}
        for metric in ("avg_acc", "bwt"):
            d = (b.loc[seeds, metric] - a.loc[seeds, metric]).to_numpy(dtype=float)
            row[f"{metric}_gain"] = float(d.mean()) if len(d) else np.nan
            row[f"{metric}_better"] = int((d > 0).sum())
            if len(d) >= 2 and np.any(d != 0):
                row[f"{metric}_p"] = float(stats.ttest_rel(b.loc[seeds, metric], a.loc[seeds, metric]).pvalue)
                row[f"{metric}_wilcoxon_p"] = float(stats.wilcoxon(d).pvalue)
                row[f"{metric}_welch_p"] = float(stats.ttest_ind(b.loc[seeds, metric], a.loc[seeds, metric],
                                                                 equal_var=False).pvalue)
            else:
                row[f"{metric}_p"] = row[f"{metric}_wilcoxon_p"] = row[f"{metric}_welch_p"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def not_shown(df: pd.DataFrame, diverged: pd.DataFrame) -> list[str]:
    """The methods of ``diverged`` (a frame with a ``method`` column: the notebooks' diverged runs) that have no
    run in ``df`` at all, in Table 1's order: a figure names them instead of leaving them silently out."""
    gone = set(diverged["method"]) - set(df["method"]) if len(diverged) else set()
    return method_order(sorted(gone))


def trials_phrase(df: pd.DataFrame) -> str:
    """How many trials a figure of ``df``'s methods averages, for its title: ``"10 trials"``, or, where the
    methods have different numbers of stored runs, ``"3–4 trials per method"`` (never the count of seeds seen by
    any method, which overstates the others)."""
    counts = df.groupby("method")["seed"].nunique()
    lo, hi = int(counts.min()), int(counts.max())
    return f"{hi} trials" if lo == hi else f"{lo}–{hi} trials per method"


def curves(df: pd.DataFrame) -> pd.DataFrame:
    """Average test accuracy after n tasks, per run (Figures 2, 5, 6): ``method, seed, tasks_learned, avg_acc``
    (plus ``benchmark`` and the label's parts, ``base_method`` and ``variant``)."""
    rows = []
    for (bench, method, seed, _), run in df.groupby(["benchmark", "method", "seed", "config_key"], sort=False):
        for n, acc in enumerate(average_accuracy_curve(R_from_tidy(run)), start=1):
            rows.append({"benchmark": bench, "method": method, "seed": seed, "tasks_learned": n, "avg_acc": acc})
    out = pd.DataFrame(rows, columns=["benchmark", "method", "seed", "tasks_learned", "avg_acc"])
    return _with_parts(out, df)


def first_and_latest(df: pd.DataFrame) -> pd.DataFrame:
    """Per run and number of tasks learned: test accuracy on the first task and on the task just learned (with the
    label's parts, ``base_method`` and ``variant``)."""
    rows = []
    for (bench, method, seed, _), run in df.groupby(["benchmark", "method", "seed", "config_key"], sort=False):
        R = R_from_tidy(run)
        for T in range(R.shape[0]):
            rows.append({"benchmark": bench, "method": method, "seed": seed, "tasks_learned": T + 1,
                         "first_task": R[T, 0], "latest_task": R[T, T]})
    out = pd.DataFrame(rows, columns=["benchmark", "method", "seed", "tasks_learned", "first_task", "latest_task"])
    return _with_parts(out, df)


def final_task_accuracy(df: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy on each task after the last task (Figure 8's bars): ``method, task, trials, acc_mean,
    acc_sem``, one row per method and task, mean and SEM over the runs (seeds)."""
    if df.empty:
        return pd.DataFrame(columns=["method", "task", "trials", "acc_mean", "acc_sem"])
    last = df[df["after_task"] == df.groupby(["method", "seed", "config_key"])["after_task"].transform("max")]
    g = last.groupby(["method", "task"], sort=False)["accuracy"]
    out = pd.DataFrame({"trials": g.size(), "acc_mean": g.mean(), "acc_sem": g.sem()}).reset_index()
    order = {m: i for i, m in enumerate(method_order(list(out["method"].unique()), df))}
    return out.sort_values(["method", "task"], key=lambda s: s.map(order) if s.name == "method" else s,
                           ignore_index=True)


def figure8_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Figure 8's legend: each method's accuracy after the last task averaged over the tasks (mean ± SEM over
    trials) beside the paper's value and its source; ``avg_acc_diff`` = ours − paper."""
    from dhclib.paper import figure8

    cols = ["method", "trials", "avg_acc_mean", "avg_acc_sem"]
    ours = summarize(df, by=("method",))[cols] if len(df) else pd.DataFrame(columns=cols)
    ref = figure8().rename(columns={"avg_acc": "paper_avg_acc", "source": "paper_source"})
    out = ref.merge(ours, on="method", how="outer")
    out["trials"] = out["trials"].fillna(0).astype(int)
    out["avg_acc_diff"] = out["avg_acc_mean"] - out["paper_avg_acc"]
    order = {m: i for i, m in enumerate(method_order(list(out["method"]), df))}
    cols = ["method", "trials", "avg_acc_mean", "avg_acc_sem", "paper_avg_acc", "avg_acc_diff", "paper_source"]
    return out[cols].sort_values("method", key=lambda s: s.map(order), ignore_index=True)


def vision_tasks_run(vision_tasks: Sequence[str], data_dir=None) -> pd.DataFrame:
    """The Vision Mixture's five tasks (A.4): which ones a run learns, and the files the data root lacks for each
    (the first two named, then how many more)."""
    from dhclib.benchmarks import PAPER_VISION_TASKS
    from dhclib.data.vision import missing_files

    rows = []
    for t in PAPER_VISION_TASKS:
        files = missing_files(t, data_dir)
        shown = ", ".join(files[:2]) + (f" (+{len(files) - 2} more)" if len(files) > 2 else "")
        rows.append({"task": t, "in_this_run": t in vision_tasks, "missing_files": shown or "-"})
    return pd.DataFrame(rows)


def traces_by_progress(traces: pd.DataFrame, points_per_task: int = 100) -> pd.DataFrame:
    """Figure 3's traces on a task axis that every trial shares: each traced step is placed at ``task`` plus its
    progress through that task (0 at the task's first traced step, just below 1 at its last), and the steps of one
    trial that fall in one of ``points_per_task`` equal slices of a task are averaged. Early stopping gives each
    trial's tasks their own lengths, so averaging trials step by step (the training-step axis of the paper's one
    run) would mix task 3 of one trial with task 4 of another. Columns: ``seed, task, progress`` (the slice's
    centre, in tasks from 0) and each trace's mean."""
    t = traces.sort_values(["seed", "step"]).copy()
    g = t.groupby(["seed", "task"])["step"]
    first, last = g.transform("min"), g.transform("max")
    share = ((t["step"] - first) / (last - first).where(last > first, 1)).clip(upper=1 - 1e-9)
    t["progress"] = t["task"] + (np.floor(share * points_per_task) + 0.5) / points_per_task
    values = [c for c in ("eta", "hebb_norm", "alpha_norm") if c in t]
    return t.groupby(["seed", "task", "progress"], as_index=False)[values].mean()


def run_matrix(df: pd.DataFrame, method: str, seed: int | None = None) -> np.ndarray:
    """R of one run of ``method`` (the lowest seed unless given), for a heatmap."""
    sub = df[df["method"] == method]
    if sub.empty:
        raise ValueError(f"no runs of {method!r}; methods present: {', '.join(sorted(df['method'].unique()))}")
    seed = int(sub["seed"].min()) if seed is None else seed
    return R_from_tidy(sub[sub["seed"] == seed])


def percent(df: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """A copy for display: accuracy columns (``avg_acc``, ``*_avg_acc``, ``avg_acc_{mean,sem,diff,gain}``,
    ``first_task``, ``latest_task``) in percent rounded to ``decimals``; BWT, t and p columns rounded to 3
    decimals; anything else (e.g. ``eta_init``) left as it is."""
    out = df.copy()
    for c in out.columns:
        if not pd.api.types.is_float_dtype(out[c]):
            continue
        if re.fullmatch(r"(\w+_)?avg_acc(_mean|_sem|_diff|_gain|_gap)?|acc_(mean|sem)|first_task|latest_task", c):
            out[c] = (100 * out[c]).round(decimals)
        elif re.search(r"bwt|_t$|_p$", c):
            out[c] = out[c].round(3)
    return out


def trace_summary(traces: pd.DataFrame) -> pd.DataFrame:
    """Figure 3 in numbers: per task, eta at the task's last traced step, its range within the task and the share
    of traced steps with eta < 0 (each such step grows the trace by a factor 1 + |eta|: Eq. 2), ||Hebb||_F at the
    task's last traced step and its largest value within the task (an end-of-task value alone hides a runaway
    trace that collapses again before the task ends), and ||alpha||_F at the last step; means over the trials
    (column ``seed``)."""
    t = traces.sort_values("step")
    per_seed = t.groupby(["seed", "task"]).agg(eta_end=("eta", "last"), eta_max=("eta", "max"),
                                               eta_min=("eta", "min"),
                                               eta_negative_share=("eta", lambda e: float((e < 0).mean())),
                                               hebb_norm_end=("hebb_norm", "last"),
                                               hebb_norm_max=("hebb_norm", "max"),
                                               alpha_norm_end=("alpha_norm", "last"))
    out = per_seed.groupby("task").mean().reset_index()
    out["task"] = out["task"] + 1
    return out


def eta_table(sweep: pd.DataFrame, diverged=None) -> pd.DataFrame:
    """Table 4: average accuracy per benchmark and initial eta, mean ± SEM over trials, beside the paper's (5 trials).

    ``diverged``: the records of the sweep's runs that diverged (dicts or a frame with ``benchmark`` and
    ``eta_init``; default ``sweep.attrs["diverged"]``, as :func:`dhclib.run_grid` returns them): counted per row in
    ``diverged``, and ``rests_on`` says what a mean of fewer runs than were started rests on (:func:`rests_on`); a
    value whose every run diverged is a row with 0 trials, never dropped."""
    cols = ["benchmark", "eta_init", "trials", "avg_acc_mean", "avg_acc_sem"]
    ours = summarize(sweep, by=("benchmark", "eta_init")) if len(sweep) else pd.DataFrame(columns=cols)
    lost = pd.DataFrame(sweep.attrs.get("diverged", []) if diverged is None else diverged,
                        columns=["benchmark", "eta_init"])
    counts = lost.groupby(["benchmark", "eta_init"]).size().rename("diverged").reset_index()
    out = ours[cols].merge(counts, on=["benchmark", "eta_init"], how="outer")
    out["trials"] = out["trials"].fillna(0).astype(int)
    out["diverged"] = out["diverged"].fillna(0).astype(int)
    out = out.merge(table4().rename(columns={"avg_acc": "paper_avg_acc"}), on=["benchmark", "eta_init"], how="left")
    out["avg_acc_diff"] = out["avg_acc_mean"] - out["paper_avg_acc"]
    out["rests_on"] = [rests_on(t, d) for t, d in zip(out["trials"], out["diverged"])]
    out = out[["benchmark", "eta_init", "trials", "diverged", "avg_acc_mean", "avg_acc_sem", "paper_avg_acc",
               "avg_acc_diff", "rests_on"]]
    return out.sort_values(["benchmark", "eta_init"], ascending=[True, False], ignore_index=True)


def grid_table(grid: pd.DataFrame, param: str = "lam") -> pd.DataFrame:
    """The search of Appendix A in numbers: per benchmark, method and value of ``param`` (a :func:`dhclib.run_grid`
    frame), average accuracy and BWT after the last task (mean over the seeds run), and whether the value is the
    paper's choice (docs/method.md (strengths)). Values whose runs diverged (``grid.attrs["diverged"]``) are rows with
    ``diverged=True`` and NaN results, never dropped."""
    runs = per_run(grid, by=("benchmark", "method", param)) if len(grid) else pd.DataFrame(
        columns=["benchmark", "method", param, "seed", "avg_acc", "bwt"])
    out = runs.groupby(["benchmark", "method", param], as_index=False).agg(
        trials=("seed", "size"), avg_acc=("avg_acc", "mean"), bwt=("bwt", "mean"))
    out["diverged"] = False
    failed = [dict(benchmark=d["benchmark"], method=d["method"], **{param: d[param]}, trials=0, avg_acc=np.nan,
                   bwt=np.nan, diverged=True) for d in grid.attrs.get("diverged", [])]
    if failed:
        out = pd.concat([out, pd.DataFrame(failed)], ignore_index=True)
    out["trials"] = out["trials"].astype(int)
    out["diverged"] = out["diverged"].astype(bool)

    base = dict(zip(out["method"], _base_methods(out["method"], grid)))

    def chosen(row) -> bool:
        if param == "lam":
            reg = registry.method(base[row["method"]]).regulariser
            ref = paper_lambdas().get(row["benchmark"], {}).get(reg)
        else:
            ref = None
        return ref is not None and np.isclose(float(row[param]), ref)

    out["paper_choice"] = out.apply(chosen, axis=1) if len(out) else pd.Series(dtype=bool)
    order = {m: i for i, m in enumerate(method_order(list(out["method"].unique()), grid))}
    return out.sort_values(["benchmark", "method", param], ignore_index=True,
                           key=lambda c: c.map(order) if c.name == "method" else c)


def grid_best(table: pd.DataFrame, param: str = "lam") -> pd.DataFrame:
    """Per benchmark and method of a :func:`grid_table`: the best value found, its accuracy, the paper's choice
    and its accuracy here, and the gap (best − paper's choice)."""
    rows = []
    for (bench, method), g in table.groupby(["benchmark", "method"], sort=False):
        ok = g[~g["diverged"]]
        best = ok.loc[ok["avg_acc"].idxmax()] if len(ok) else None
        ref = g[g["paper_choice"]]
        ref_acc = float(ref["avg_acc"].iloc[0]) if len(ref) else np.nan
        rows.append({"benchmark": bench, "method": method,
                     f"best_{param}": best[param] if best is not None else np.nan,
                     "best_avg_acc": float(best["avg_acc"]) if best is not None else np.nan,
                     f"paper_{param}": float(ref[param].iloc[0]) if len(ref) else np.nan,
                     "paper_choice_avg_acc": ref_acc,
                     "avg_acc_gap": (float(best["avg_acc"]) - ref_acc) if best is not None else np.nan,
                     "values": len(g), "diverged": int(g["diverged"].sum())})
    return pd.DataFrame(rows)


def dhp_verdicts(df: pd.DataFrame, benchmark: str, alpha: float = 0.05) -> pd.DataFrame:
    """The paper's central claim, pair by pair, in words: does adding DHP Softmax to each baseline raise the average
    accuracy after the last task? Ours (mean paired gain over the seeds both have, the paired t-test's p, and
    Welch's p beside it, labelled) beside the paper's gain (Table 1), and a verdict from the paired test:
    "reproduced" only for a positive gain with p < ``alpha`` where the paper reports a gain."""
    tests = paired_tests(df[df["benchmark"] == benchmark])
    paper = paper_results(benchmark).set_index("method")["avg_acc"]
    labels = label_rows(df)
    # a pair's side with no runs (its label rendered by pairs_present) is still its method's
    sides = [(label_of(m, v), m, v) for v in set(labels["variant"]) - {""} for pair in registry.pairs() for m in pair]
    labels = pd.concat([labels, pd.DataFrame(sides, columns=LABEL_COLUMNS)], ignore_index=True)
    base = dict(zip(labels["method"], labels["base_method"]))
    rows = []
    for t in tests.itertuples(index=False):
        paper_gain = (paper.get(base.get(t.dhp_variant, t.dhp_variant), np.nan)
                      - paper.get(base.get(t.baseline, t.baseline), np.nan))
        gain, p = t.avg_acc_gain, t.avg_acc_p
        if np.isnan(gain):
            verdict = "no result (not run, or every trial diverged)"
        elif np.isnan(p):
            verdict = "too few trials to test"
        elif gain > 0 and p < alpha:
            verdict = "reproduced" if paper_gain > 0 else "a gain the paper does not report"
        elif gain < 0 and p < alpha:
            verdict = "not reproduced: DHP Softmax is worse"
        else:
            verdict = "not reproduced: no significant difference" if paper_gain > 0 else "no significant difference"
        rows.append({"baseline": t.baseline, "dhp_variant": t.dhp_variant, "pairs": t.pairs, "avg_acc_gain": gain,
                     "avg_acc_p": p, "avg_acc_welch_p": t.avg_acc_welch_p, "paper_avg_acc_gain": paper_gain,
                     "verdict": verdict})
    return pd.DataFrame(rows)


def figure3_checks(summary: pd.DataFrame) -> pd.DataFrame:
    """Figure 3's claims (docs/method.md (results)) tested on a :func:`trace_summary`: the largest eta during task 1 (paper: about
    0.024), the share of traced steps with eta < 0 after task 1, the largest ||Hebb||_F within any task and
    ||Hebb||_F after the last task, each relative to after task 1 (paper: grows without runaway), whether eta is
    lower after the last task than its peak over tasks 1-3 (paper: it decays after task 3), and the share of tasks
    that end with a larger ||alpha||_F than the previous one (paper: it grows within each task)."""
    s = summary.sort_values("task")
    peak_early = s.loc[s["task"] <= 3, "eta_max"].max()
    last = s.iloc[-1]
    alpha_up = (s["alpha_norm_end"].diff().dropna() > 0).mean() if len(s) > 1 else np.nan
    later = s[s["task"] > 1]
    rows = [
        ("eta's largest value during task 1", "about 0.024", f"{s.iloc[0]['eta_max']:.4f}"),
        ("share of traced steps with eta < 0 after task 1 (mean over tasks)", "not reported (eta decays)",
         "n/a" if later.empty else f"{later['eta_negative_share'].mean():.2f}"),
        ("largest ||Hebb||_F within a task / ||Hebb||_F after task 1", "grows, no runaway",
         f"{s['hebb_norm_max'].max() / s.iloc[0]['hebb_norm_end']:.2f}"),
        ("eta after the last task below its peak over tasks 1-3", "yes (decays after task 3)",
         "yes" if last["eta_end"] < peak_early else "no"),
        ("||Hebb||_F after the last task / after task 1", "grows, no runaway",
         f"{last['hebb_norm_end'] / s.iloc[0]['hebb_norm_end']:.2f}"),
        ("share of tasks ending with a larger ||alpha||_F", "grows within each task",
         "n/a" if np.isnan(alpha_up) else f"{alpha_up:.2f}"),
    ]
    return pd.DataFrame(rows, columns=["claim", "paper", "ours"])


# A trace "runs away" in a task when its largest ||Hebb||_F exceeds this many times the median ||Hebb||_F over the
# traced steps of task 1 (the trace's scale before any later task interferes). Measured on the paper store
# (REPORT.md): Split MNIST's 40 DHP runs with SGD stay below 5x (largest 4.4); every Permuted and Imbalanced DHP run
# reaches 46-116x in some task.
RUNAWAY_FACTOR = 10.0
# A task "collapsed" when its test accuracy after the last task is this much (a fraction) below its accuracy
# right after it was learned.
COLLAPSE_DROP = 0.30


def _task1_median(traces: pd.DataFrame) -> float:
    """The median ||Hebb||_F over the traced steps of a run's first task: the scale RUNAWAY_FACTOR multiplies."""
    return float(traces.loc[traces["task"] == traces["task"].min(), "hebb_norm"].median())


def trace_runaway(traces: pd.DataFrame, factor: float = RUNAWAY_FACTOR) -> pd.DataFrame:
    """Per task of one DHP run's traces (Eq. 2-3): the largest ||Hebb||_F, its ratio to the median over task 1,
    whether it ran away (ratio > ``factor``), eta's smallest value and the share of traced steps with eta < 0
    (each such step grows the trace by 1 + |eta|). Tasks are numbered from 1."""
    t = traces.sort_values("step")
    base = _task1_median(t)
    per = t.groupby("task").agg(hebb_norm_max=("hebb_norm", "max"), eta_min=("eta", "min"),
                                eta_negative_share=("eta", lambda e: float((e < 0).mean()))).reset_index()
    per["task"] += 1
    per["task1_median"] = base
    per["ratio"] = per["hebb_norm_max"] / base if base > 0 else np.nan
    per["runaway"] = per["ratio"] > factor
    return per[["task", "hebb_norm_max", "task1_median", "ratio", "runaway", "eta_min", "eta_negative_share"]]


def eta_trajectory(traces: pd.DataFrame, tasks: pd.DataFrame | None = None) -> dict[str, float]:
    """η's course over one DHP run's traced steps, to lay beside Figure 3 (the paper: η rises to about 0.024 in
    task 1, then decays): its largest value in task 1 and its value at task 1's last traced step, its largest and
    smallest value after task 1, and its value at the run's last traced step. With the run's ``tasks`` also the
    epochs task 1 ran and η at the end of the epoch early stopping restored for it (η is restored with the
    weights, so later tasks start from that value: what reading "validation error" as accuracy or as loss
    changes, A.1)."""
    t = traces.sort_values("step")
    first = t["task"] == t["task"].min()
    later = t.loc[~first, "eta"]
    out = {"eta_task1_max": float(t.loc[first, "eta"].max()), "eta_task1_end": float(t.loc[first, "eta"].iloc[-1]),
           "eta_later_max": float(later.max()) if len(later) else np.nan,
           "eta_later_min": float(later.min()) if len(later) else np.nan, "eta_end": float(t["eta"].iloc[-1])}
    if tasks is not None and len(tasks) and {"task", "epochs", "best_epoch"} <= set(tasks.columns):
        one = tasks.sort_values("task").iloc[0]
        at = t[(t["task"] == one["task"]) & (t["epoch"] == one["best_epoch"])]
        out["task1_epochs"] = float(one["epochs"])
        out["eta_task1_restored"] = float(at["eta"].iloc[-1]) if len(at) else np.nan
    return out


# What each run records per task at its restored epoch (dhclib.method.train.mechanism); NaN for older runs.
MECHANISM = ("plastic_ratio", "alpha_norm", "penalty_stiffness")


def task_states(R: np.ndarray, traces: pd.DataFrame, tasks: pd.DataFrame, drop: float = COLLAPSE_DROP,
                factor: float = RUNAWAY_FACTOR) -> pd.DataFrame:
    """Every task but the last of one run: its accuracy right after learning it and after the last task, whether
    it was forgotten by more than ``drop``; for a DHP run, ||Hebb||_F at the epoch early stopping restored (the
    trace the task was consolidated with) and whether that trace had run away (> ``factor`` × task 1's median;
    False without a trace); and what the run recorded of the mechanism at that epoch (:data:`MECHANISM`, NaN where
    it did not). Tasks are numbered from 1."""
    n = R.shape[0]
    plastic = "hebb_norm" in traces
    base = _task1_median(traces) if plastic else np.nan
    best = dict(zip(tasks["task"], tasks["best_epoch"])) if "task" in tasks else {}
    recorded = tasks.set_index("task") if "task" in tasks else pd.DataFrame()
    rows = []
    for i in range(n - 1):
        learned, final = R[i, i], R[n - 1, i]
        hebb = np.nan
        if plastic:
            at = traces[(traces["task"] == i) & (traces["epoch"] == best.get(i))]
            hebb = float(at["hebb_norm"].iloc[-1]) if len(at) else np.nan
        row = {"task": i + 1, "acc_after_learning": learned, "acc_after_last": final,
               "forgotten": bool(learned - final > drop), "hebb_norm_at_restored_epoch": hebb,
               "runaway_at_restore": bool(hebb > factor * base)}
        for k in MECHANISM:
            row[k] = float(recorded.at[i, k]) if k in recorded and i in recorded.index else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["task", "acc_after_learning", "acc_after_last", "forgotten",
                                       "hebb_norm_at_restored_epoch", "runaway_at_restore", *MECHANISM])


def collapsed_tasks(R: np.ndarray, traces: pd.DataFrame, tasks: pd.DataFrame, drop: float = COLLAPSE_DROP,
                    factor: float = RUNAWAY_FACTOR) -> pd.DataFrame:
    """The tasks of one DHP run forgotten by more than ``drop`` (accuracy right after learning − after the last
    task), each with ||Hebb||_F at the epoch early stopping restored (the trace the task was consolidated with)
    and whether that trace had run away (> ``factor`` × task 1's median). Tasks are numbered from 1."""
    states = task_states(R, traces, tasks, drop, factor)
    return states[states["forgotten"]][["task", "acc_after_learning", "acc_after_last", "hebb_norm_at_restored_epoch",
                                        "runaway_at_restore"]].reset_index(drop=True)
