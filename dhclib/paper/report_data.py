"""The report's tables: every stored run of a result store, classified and compared with the paper (issue #3,
item 8), as frames (written as ``report_<name>.csv`` by :mod:`dhclib.paper.report_md`).

Runs are sorted by their variant, the settings that differ from the paper's configuration (docs/method.md (benchmarks, strengths)), as each
stored record describes itself (:func:`dhclib.runs.store.variant_of`): none = a Table 1 run; only ``lam`` = the
search of Appendix A; only ``eta_init`` = Table 4; anything else = a labelled variant (e.g. ``fisher_mode=batch``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dhclib import registry
from dhclib.method.metrics import per_run
from dhclib.runs.config import BENCHMARK_NAMES
from dhclib.errors import DhcError
from dhclib.method.layers import DHPSettings
from dhclib.paper.report import (collapsed_tasks, eta_table, eta_trajectory, grid_best, grid_table, paired_tests,
                                 pairs_present, table1_comparison, task_states, trace_runaway)
from dhclib.runs.labels import LABEL_COLUMNS, label_rows, render_variant, variant_label
from dhclib.runs.store import (RunResult, load_diverged, load_results, record_identity, record_variant,
                               variant_of)

__all__ = ["classify_runs", "report_tables", "instability_by_row", "mechanism", "setting_effects", "collapse_tests",
           "COLLAPSE_PAIR", "code_made", "course_effects", "COURSE", "eta_effects", "eta_courses", "COURSE_BY_INIT",
           "UNKNOWN_CODE", "COLLAPSED_COLUMNS"]


def classify_runs(results: list[RunResult]) -> dict[str, pd.DataFrame]:
    """Tidy frames of the stored runs, by kind: ``table1`` (default configs), ``search`` (only ``lam`` differs;
    column ``lam``), ``eta`` (only ``eta_init``; column ``eta_init``), ``variants`` (anything else; the method
    column holds :func:`dhclib.variant_label`)."""
    kinds: dict[str, list[pd.DataFrame]] = {"table1": [], "search": [], "eta": [], "variants": []}
    eta_of: dict[tuple, float] = {}  # the eta_init each Table 1 run was trained with, from its stored config
    for r in results:
        diff = variant_of(r)
        labelled = bool(diff) and set(diff) not in ({"lam"}, {"eta_init"})
        tidy = r.tidy(diff if labelled else None).assign(device_name=r.device_name, wall_time=r.wall_time)
        if not diff:
            kinds["table1"].append(tidy.assign(lam=r.config.get("lam")))
            eta_of[(r.config["benchmark"], r.config["method"], r.config["seed"])] = r.config.get("eta_init")
        elif set(diff) == {"lam"}:
            kinds["search"].append(tidy.assign(lam=diff["lam"]))
        elif set(diff) == {"eta_init"}:
            kinds["eta"].append(tidy.assign(eta_init=diff["eta_init"]))
        else:
            kinds["variants"].append(tidy)
    out = {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in kinds.items()}
    if len(out["search"]):
        # The paper's own lambda is a point of its grid: the Table 1 run of the same seed is that point.
        searched = out["search"][["benchmark", "method", "seed"]].drop_duplicates()
        same = out["table1"].merge(searched, on=["benchmark", "method", "seed"])
        out["search"] = pd.concat([out["search"], same], ignore_index=True)
    if len(out["eta"]) and len(out["table1"]):
        # Likewise the default eta_init (0.001) of Table 4 is the Table 1 run of DHP Softmax alone, same seeds.
        swept = out["eta"][["benchmark", "method", "seed"]].drop_duplicates()
        same = out["table1"].merge(swept, on=["benchmark", "method", "seed"]).drop(columns="lam")
        same["eta_init"] = [eta_of[k] for k in zip(same["benchmark"], same["method"], same["seed"])]
        out["eta"] = pd.concat([out["eta"], same], ignore_index=True)
    if len(out["table1"]):
        out["table1"] = out["table1"].drop(columns="lam")
    return out


def report_tables(store_dir) -> dict[str, pd.DataFrame]:
    """The report's tables from the runs stored under ``store_dir``: ``table1`` (per benchmark, ours beside the
    paper), ``paired`` (each DHP variant against its baseline, paired by seed), ``search`` (:func:`dhclib.paper.report.grid_best` of the lambda searches), ``eta`` (Table 4),
    ``variants``, ``diverged``, ``hardware`` (device, runs, summed and median wall time per benchmark), ``runaway``
    and ``collapsed`` (the plastic instability per DHP run and per forgotten task), ``settings`` (each labelled
    variant against its method in the paper's configuration, paired by seed: :func:`setting_effects`),
    ``mechanism`` (per row, what
    happens to its tasks: :func:`mechanism`), ``course`` (what each labelled setting does to η's course:
    :func:`course_effects`), ``collapse`` (DHP + MAS's collapse, one change at a time:
    :func:`collapse_tests`), ``seeds`` (every Table 1 and labelled run's average accuracy and
    BWT after the last task, one row per benchmark, row label and seed) and ``code`` (which code made the runs:
    :func:`code_made`)."""
    results = load_results(store_dir)
    diverged = load_diverged(store_dir)
    if not results and not diverged:
        raise DhcError(f"no stored runs under {Path(store_dir) / 'runs'}: nothing to report")
    lost = [{"benchmark": d["benchmark"], "method": _diverged_label(d)} for d in diverged]
    kinds = classify_runs(results)
    benches = [b for b in BENCHMARK_NAMES if any(len(f) and b in set(f["benchmark"]) for f in kinds.values())]
    runaway, collapsed = _instability(results)
    t1, paired, variants, settings, collapse = [], [], [], [], []
    for b in benches:
        main = kinds["table1"][kinds["table1"]["benchmark"] == b] if len(kinds["table1"]) else pd.DataFrame()
        var = kinds["variants"][kinds["variants"]["benchmark"] == b] if len(kinds["variants"]) else pd.DataFrame()
        if len(main):
            t1.append(table1_comparison(main, b, lost).assign(benchmark=b))
            paired.append(paired_tests(main).assign(benchmark=b))
        if len(var):
            base = label_rows(var).set_index("method")["base_method"]
            comparison = table1_comparison(var, b, lost).query("trials > 0")
            variants.append(comparison.assign(benchmark=b, base_method=comparison["method"].map(base)))
            # e.g. finetune [optimizer=adam] vs dhp [...], and a DHP-only remedy against the plain runs it changes
            both = pd.concat([main, var], ignore_index=True) if len(main) else var
            extra = [p for p in pairs_present(both["method"].unique(), rows=both)
                     if p not in registry.pairs()]
            paired.append(paired_tests(both, extra).assign(benchmark=b))
            settings.append(setting_effects(both, main).assign(benchmark=b))
            here = collapsed[collapsed["benchmark"] == b] if len(collapsed) else collapsed
            failed = [dict(record_identity(d), seed=d["seed"]) for d in diverged if d["benchmark"] == b]
            collapse.append(collapse_tests(both, here, failed).assign(benchmark=b))
    search = pd.DataFrame()
    if len(kinds["search"]):
        search = grid_best(grid_table(kinds["search"], "lam"), "lam")
    eta_lost = [dict(benchmark=d["benchmark"], eta_init=v["eta_init"]) for d in diverged
                if set(v := record_variant(d.get("purpose"), d.get("config"))) == {"eta_init"}]
    eta = eta_table(kinds["eta"], eta_lost) if len(kinds["eta"]) or eta_lost else pd.DataFrame()
    eta_paired = eta_effects(kinds["eta"])
    eta_course = eta_courses([r for r in results if r.config["benchmark"] in set(kinds["eta"].get("benchmark", []))])
    runs = pd.concat([f for f in kinds.values() if len(f)], ignore_index=True) if results else pd.DataFrame()
    hardware = pd.DataFrame()
    if len(runs):
        one = runs.drop_duplicates(["benchmark", "method", "seed", "config_key"])
        hardware = one.groupby(["benchmark", "device_name"], as_index=False).agg(
            runs=("seed", "size"), wall_time_h=("wall_time", lambda w: w.sum() / 3600),
            median_run_min=("wall_time", lambda w: w.median() / 60))
    cols = ["benchmark", "method", "label", "seed", "config_key", "message"]
    div = pd.DataFrame([dict({k: d[k] for k in cols if k != "label"}, label=_diverged_label(d)) for d in diverged],
                       columns=cols)
    cat = (lambda fs: pd.concat(fs, ignore_index=True) if fs else pd.DataFrame())
    scored = [f for f in (kinds["table1"], kinds["variants"]) if len(f)]
    seeds = per_run(pd.concat(scored, ignore_index=True)) if scored else pd.DataFrame()
    return {"table1": cat(t1), "paired": cat(paired), "search": search, "eta": eta, "variants": cat(variants),
            "diverged": div, "hardware": hardware, "runaway": runaway, "collapsed": collapsed,
            "mechanism": mechanism(results), "settings": cat(settings), "collapse": cat(collapse), "seeds": seeds,
            "code": code_made(results), "course": course_effects(runaway), "eta_paired": eta_paired,
            "eta_course": eta_course}


def eta_effects(eta: pd.DataFrame) -> pd.DataFrame:
    """Table 4 paired by seed (App. A.5): per benchmark, each initial η against DHP Softmax's own
    (:class:`~dhclib.method.layers.DHPSettings`' ``eta_init``, 0.001: Table 1's run of the same seed), over the seeds
    both have (:func:`dhclib.paper.report.paired_tests`: ``pairs``, ``avg_acc_gain`` = η's − 0.001's,
    ``avg_acc_better``, ``avg_acc_p``, ``avg_acc_wilcoxon_p``). The paper reads its 5-trial means as "low values led
    to the best performance"; the runs of one seed share initialisation, permutations and data order, so a
    difference between two η is tested on the pairs, not on the means' overlap."""
    cols = ["benchmark", "eta_init", "against", "pairs"]
    if not len(eta):
        return pd.DataFrame(columns=cols)
    own = DHPSettings().eta_init
    rows = []
    for bench, runs in eta.groupby("benchmark", sort=False):
        # paired_tests pairs rows by their "method"; here the rows of one benchmark differ only in eta_init
        runs = runs.assign(method=runs["eta_init"])
        others = sorted((v for v in runs["eta_init"].unique() if v != own), reverse=True)
        if own not in set(runs["eta_init"]) or not others:
            continue
        tests = paired_tests(runs, [(own, v) for v in others])
        rows.append(tests.rename(columns={"baseline": "against", "dhp_variant": "eta_init"}).assign(benchmark=bench))
    if not rows:
        return pd.DataFrame(columns=cols)
    out = pd.concat(rows, ignore_index=True)
    return out[cols + [c for c in out.columns if c not in cols]]


UNKNOWN_CODE = "unknown"  # stored before runs recorded their code


def code_made(results: list[RunResult]) -> pd.DataFrame:
    """Which code made the stored runs, per benchmark: the commit each run recorded (the HEAD of the checkout dhclib
    was imported from, :func:`dhclib.runs.build.code_version`), "with local changes" where its tree had any, and
    :data:`UNKNOWN_CODE` for a run stored before runs recorded it; with the number of runs of each. Benchmarks in
    the registry's order; within one the commits in alphabetical order, the unknown last."""
    def label(code: dict) -> str:
        if not code or not code.get("commit"):
            return UNKNOWN_CODE
        return code["commit"][:12] + (" with local changes" if code.get("dirty") else "")

    rows = pd.DataFrame([dict(benchmark=r.config["benchmark"], code=label(r.code)) for r in results],
                        columns=["benchmark", "code"])
    out = rows.groupby(["benchmark", "code"]).size().reset_index(name="runs")
    place = out["benchmark"].map({b: i for i, b in enumerate(BENCHMARK_NAMES)})
    keys = pd.DataFrame({"place": place, "unknown": out["code"].eq(UNKNOWN_CODE), "code": out["code"]})
    return out.loc[keys.sort_values(["place", "unknown", "code"]).index].reset_index(drop=True)


def setting_effects(both: pd.DataFrame, main: pd.DataFrame) -> pd.DataFrame:
    """What each labelled setting does to the method it changes: every labelled variant of one benchmark against
    the same method in the paper's configuration, paired by seed (:func:`dhclib.paper.report.paired_tests`), e.g.
    ``mas [mas_mode=batch]`` against ``mas``: the intervention's effect, where the DHP-against-baseline table
    compares two methods under one setting."""
    present = set(main["method"]) if len(main) else set()
    pairs = [(r.base_method, r.method) for r in label_rows(both).itertuples(index=False)
             if r.variant and r.base_method in present]
    if not pairs:
        return pd.DataFrame()
    return paired_tests(both, pairs).rename(columns={"baseline": "method", "dhp_variant": "variant"})


# The collapse these tests are about: DHP Softmax + MAS against MAS (Table 1's pair).
COLLAPSE_PAIR = ("mas", "dhp+mas")


def collapse_tests(both: pd.DataFrame, collapsed: pd.DataFrame, diverged: list[dict] = ()) -> pd.DataFrame:
    """DHP + MAS's collapse, one change at a time (issue #27), on one benchmark's runs (``both``: Table 1's and the
    labelled rows' tidy frames; ``collapsed``: :func:`_instability`'s forgotten tasks; ``diverged``: the identities
    of its diverged runs, :func:`dhclib.runs.store.record_identity` with ``seed``). For every labelled ``dhp+mas``
    row, over the seeds it shares with its MAS, ``dhp+mas`` and ``mas``: the row against MAS with the same setting
    (``mas [setting]`` where stored, else ``mas``), and ``dhp+mas`` against ``mas`` without it, paired by seed
    (:func:`dhclib.paper.report.paired_tests`), with the tasks each forgot by more than ``COLLAPSE_DROP`` and the
    row's seeds that diverged (a row whose every run diverged stays, with no pairs). A change that removes the
    collapse closes the gap and leaves no task forgotten; one that does not, leaves them."""
    mas, dhp_mas = COLLAPSE_PAIR
    failed = pd.DataFrame(list(diverged), columns=[*LABEL_COLUMNS, "seed"])
    parts = pd.concat([label_rows(both), failed[LABEL_COLUMNS]], ignore_index=True).drop_duplicates("method")
    runs = per_run(both)
    seeds_of = {m: set(runs.loc[runs["method"] == m, "seed"]) for m in parts["method"]}
    rows = []
    for label, base, variant in parts[LABEL_COLUMNS].itertuples(index=False):
        if base != dhp_mas or not variant or not seeds_of.get(mas) or not seeds_of.get(dhp_mas):
            continue
        same = parts[(parts["base_method"] == mas) & (parts["variant"] == variant)]["method"]
        against = same.iloc[0] if len(same) else mas
        seeds = sorted(seeds_of[label] & seeds_of[against] & seeds_of[mas] & seeds_of[dhp_mas])
        lost_seeds = sorted(set(failed.loc[failed["method"] == label, "seed"]) & seeds_of[mas] & seeds_of[dhp_mas])
        row = dict(variant=label, setting=variant, against=against, pairs=len(seeds),
                   seeds=", ".join(str(int(s)) for s in seeds), diverged=", ".join(str(int(s)) for s in lost_seeds),
                   diverged_runs=len(lost_seeds))
        tests = paired_tests(both[both["seed"].isin(seeds)], [(against, label), (mas, dhp_mas)]) if seeds else None
        lost = (collapsed[collapsed["seed"].isin(seeds)].groupby("method").size() if len(collapsed)
                else pd.Series(dtype=int))
        for i, (name, method) in enumerate((("with", label), ("without", dhp_mas))):
            t = tests.iloc[i] if tests is not None else None
            row.update({f"gap_{name}": t["avg_acc_gain"] if t is not None else np.nan,
                        f"lower_{name}": int(t["pairs"] - t["avg_acc_better"]) if t is not None else 0,
                        f"p_{name}": t["avg_acc_p"] if t is not None else np.nan,
                        f"forgotten_{name}": int(lost.get(method, 0))})
        rows.append(row)
    return pd.DataFrame(rows)


def _diverged_label(record: dict) -> str:
    """The label of a diverged run (:func:`dhclib.runs.store.record_identity`): its method, with the settings in
    which its config differs from the paper's."""
    return record_identity(record)["method"]


COLLAPSED_COLUMNS = ["benchmark", "method", "seed", "task", "acc_after_learning", "acc_after_last",
              "hebb_norm_at_restored_epoch", "runaway_at_restore", "base_method"]


def _instability(results: list[RunResult]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per DHP run of Table 1 or a labelled variant (not the search or Table 4's sweep): whether its trace ran away
    in any task, and the tasks it forgot by more than COLLAPSE_DROP (report.trace_runaway, report.collapsed_tasks)."""
    runaway, collapsed = [], []
    for r in results:
        diff = variant_of(r)
        if "hebb_norm" not in r.traces or set(diff) in ({"lam"}, {"eta_init"}):
            continue
        ident = dict(benchmark=r.config["benchmark"], method=variant_label(r.config["method"], diff),
                     seed=r.config["seed"])
        method = r.config["method"]
        per = trace_runaway(r.traces)
        parts = dict(base_method=method, variant=render_variant(diff))
        eta = {k: round(v, 4) for k, v in eta_trajectory(r.traces, r.tasks).items()}
        runaway.append(dict(ident, **eta, task1_median=round(float(per["task1_median"].iloc[0]), 2),
                            hebb_norm_max=round(float(per["hebb_norm_max"].max()), 1),
                            ratio=round(float(per["ratio"].max()), 1),
                            runaway_tasks=", ".join(str(t) for t in per.loc[per["runaway"], "task"]) or "-",
                            eta_negative_share=_negative_share(per), **parts))
        c = collapsed_tasks(r.R, r.traces, r.tasks)
        collapsed += [dict(ident, **row, base_method=method) for row in c.to_dict("records")]
    order = ["benchmark", "method", "seed"]
    run_df = pd.DataFrame(runaway).sort_values(order, ignore_index=True) if runaway else pd.DataFrame()
    col_df = pd.DataFrame(collapsed, columns=COLLAPSED_COLUMNS).sort_values(order + ["task"], ignore_index=True)
    return run_df, col_df


def _negative_share(per: pd.DataFrame) -> float:
    """The mean over the tasks after the first of each task's share of traced steps with η < 0
    (:func:`dhclib.paper.report.trace_runaway`'s rows), NaN for a run of one task."""
    later = per.loc[per["task"] > 1, "eta_negative_share"]
    return round(float(later.mean()), 3) if len(later) else np.nan


def eta_courses(results: list[RunResult]) -> pd.DataFrame:
    """η's course (Figure 3) per initial η of Table 4 (App. A.5): for every benchmark with a sweep run, the mean
    over its DHP Softmax runs of each η (0.001: Table 1's runs of the seeds the sweep has, as in Table 4) of η's
    largest value in task 1, η at the epoch early stopping restored for task 1, η's smallest value after task 1 and
    the share of steps after task 1 with η < 0, with the runs whose trace ran away. η is learned (Eq. 3): this says
    how much of its initial value is left once task 1 has been learned."""
    own, rows = DHPSettings().eta_init, []
    for r in results:
        diff = variant_of(r)
        if r.config["method"] != "dhp" or set(diff) - {"eta_init"} or "hebb_norm" not in r.traces:
            continue
        per = trace_runaway(r.traces)
        rows.append(dict(benchmark=r.config["benchmark"], eta_init=diff.get("eta_init", own), seed=r.config["seed"],
                         **eta_trajectory(r.traces, r.tasks), eta_negative_share=_negative_share(per),
                         runaway=bool(per["runaway"].any())))
    cols = ["benchmark", "eta_init", "runs", *COURSE_BY_INIT, "runaway_runs"]
    if not rows:
        return pd.DataFrame(columns=cols)
    runs = pd.DataFrame(rows)
    swept = runs[runs["eta_init"] != own][["benchmark", "seed"]].drop_duplicates()
    runs = pd.concat([runs[runs["eta_init"] != own], runs[runs["eta_init"] == own].merge(swept)], ignore_index=True)
    if not len(runs):
        return pd.DataFrame(columns=cols)
    out = runs.groupby(["benchmark", "eta_init"], as_index=False).agg(
        runs=("seed", "size"), **{c: (c, "mean") for c in COURSE_BY_INIT if c in runs},
        runaway_runs=("runaway", "sum"))
    return out.sort_values(["benchmark", "eta_init"], ascending=[True, False], ignore_index=True)[
        [c for c in cols if c in out]]


def _alpha_after_last(r: RunResult) -> float:
    """||alpha||_F after the last task, at the epoch early stopping restored: as recorded, or read off the traces
    of a run stored before it was recorded (NaN without DHP Softmax)."""
    if "alpha_norm" in r.tasks and len(r.tasks):
        return float(r.tasks["alpha_norm"].iloc[-1])
    if "alpha_norm" not in r.traces or not len(r.tasks):
        return np.nan
    last = r.tasks.iloc[-1]
    at = r.traces[(r.traces["task"] == last["task"]) & (r.traces["epoch"] == last["best_epoch"])]
    return float(at["alpha_norm"].iloc[-1]) if len(at) else np.nan


def mechanism(results: list[RunResult]) -> pd.DataFrame:
    """Per benchmark and row (Table 1's and the labelled variants', not the grids), over every task but the last
    of every run (:func:`dhclib.paper.report.task_states`): the mean accuracy right after learning a task; for DHP
    rows the tasks restored at an epoch whose trace had run away, how many of those were forgotten by more than
    ``COLLAPSE_DROP``, and the tasks forgotten with a trace of normal size; for every row the tasks forgotten;
    the mean ||alpha||_F after the last task; and, from the runs that record them (:data:`report.MECHANISM`), the
    median and largest ||alpha (.) Hebb||_F / ||theta||_F at the restored epochs and the largest lr 2 lam Omega."""
    rows = []
    for r in results:
        diff = variant_of(r)
        if set(diff) in ({"lam"}, {"eta_init"}):
            continue
        s = task_states(r.R, r.traces, r.tasks)
        plastic = registry.method(r.config["method"]).plastic
        recorded = s["penalty_stiffness"].notna().any()
        rows.append(dict(benchmark=r.config["benchmark"], method=variant_label(r.config["method"], diff),
                         plastic=plastic, learned=s["acc_after_learning"].mean(), tasks=len(s),
                         runaway_restores=int(s["runaway_at_restore"].sum()),
                         runaway_forgotten=int((s["runaway_at_restore"] & s["forgotten"]).sum()),
                         forgotten=int(s["forgotten"].sum()),
                         forgotten_normal=int((~s["runaway_at_restore"] & s["forgotten"]).sum()),
                         alpha_after_last=_alpha_after_last(r), recorded=int(recorded),
                         ratios=list(s["plastic_ratio"].dropna()), stiffness=s["penalty_stiffness"].max()))
    if not rows:
        return pd.DataFrame()
    per_run = pd.DataFrame(rows)
    out = per_run.groupby(["benchmark", "method"], sort=False).agg(
        runs=("tasks", "size"), plastic=("plastic", "first"), learned=("learned", "mean"), tasks=("tasks", "sum"),
        runaway_restores=("runaway_restores", "sum"), runaway_forgotten=("runaway_forgotten", "sum"),
        forgotten_normal=("forgotten_normal", "sum"), forgotten=("forgotten", "sum"),
        alpha_after_last=("alpha_after_last", "mean"), recorded=("recorded", "sum"),
        ratios=("ratios", "sum"), stiffness_max=("stiffness", "max")).reset_index()
    out["plastic_ratio_median"] = [np.median(v) if len(v) else np.nan for v in out["ratios"]]
    out["plastic_ratio_max"] = [max(v) if len(v) else np.nan for v in out["ratios"]]
    for col in ("runaway_restores", "runaway_forgotten", "forgotten_normal"):  # no trace, no runaway to count
        out[col] = out[col].where(out["plastic"])
    return out.drop(columns="ratios")


# η's course as :func:`course_effects` compares it: the epochs task 1 ran, η at the epoch early stopping restored
# for task 1 (later tasks start from it), η's smallest value after task 1, and the share of steps after task 1
# with η < 0 (each multiplies the trace by 1 + |η|, Eq. 2).
COURSE = ("task1_epochs", "eta_task1_restored", "eta_later_min", "eta_negative_share")
# and per initial η of Table 4 (:func:`eta_courses`), with η's largest value in task 1: how far η climbs from its start
COURSE_BY_INIT = ("eta_task1_max", "eta_task1_restored", "eta_later_min", "eta_negative_share")


def course_effects(runaway: pd.DataFrame) -> pd.DataFrame:
    """What each labelled setting does to η's course (Figure 3), paired by seed: every labelled DHP row of the
    runaway table (:func:`_instability`, one row per DHP run) against the same method in the paper's configuration,
    over the seeds both have, with the mean of each :data:`COURSE` column for the labelled row (``<col>_variant``)
    and for the method (``<col>_method``) and the runs of each whose trace ran away, e.g. ``dhp
    [select_metric=loss]`` against ``dhp`` (early stopping on the validation loss: issue #27's E2). A labelled row
    without a seed in common with its method is left out."""
    cols = ["benchmark", "variant", "method", "pairs", "seeds"]
    if not len(runaway) or "base_method" not in runaway:
        return pd.DataFrame(columns=cols)
    setting = runaway["variant"].fillna("").astype(str)  # read back from CSV, no setting is NaN
    rows = []
    for (bench, label), runs in runaway[setting != ""].groupby(["benchmark", "method"], sort=False):
        base = runs["base_method"].iloc[0]
        ref = runaway[(runaway["benchmark"] == bench) & (runaway["method"] == base)]
        seeds = sorted(set(runs["seed"]) & set(ref["seed"]))
        if not seeds:
            continue
        row = dict(benchmark=bench, variant=label, method=base, pairs=len(seeds),
                   seeds=", ".join(str(int(s)) for s in seeds))
        for who, frame in (("variant", runs), ("method", ref)):
            same = frame[frame["seed"].isin(seeds)]
            row.update({f"{c}_{who}": float(same[c].mean()) for c in COURSE if c in same})
            row[f"runaway_runs_{who}"] = int((same["runaway_tasks"] != "-").sum())
        rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)


def instability_by_row(runaway: pd.DataFrame, collapsed: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark and DHP row, in the runaway table's order: its runs, those whose trace ran away in some task,
    the smallest and largest ratio of a run's largest ‖Hebb‖_F to its task 1 median, the mean share of steps with
    η < 0 after task 1, and the tasks forgotten by more than ``COLLAPSE_DROP`` with how many of them had a runaway
    trace at the restored epoch (REPORT.md's and the README's instability tables)."""
    out = runaway.groupby(["benchmark", "method"], sort=False).agg(
        runs=("seed", "size"), runaway_runs=("runaway_tasks", lambda t: int((t != "-").sum())),
        smallest_ratio=("ratio", "min"), largest_ratio=("ratio", "max"),
        eta_negative_share=("eta_negative_share", "mean")).reset_index()
    lost = (collapsed.groupby(["benchmark", "method"])["runaway_at_restore"].agg(["size", "sum"])
            if len(collapsed) else pd.DataFrame(columns=["size", "sum"]))
    keys = list(zip(out["benchmark"], out["method"]))
    out["collapsed"] = [int(lost["size"].get(k, 0)) for k in keys]
    out["collapsed_runaway"] = [int(lost["sum"].get(k, 0)) for k in keys]
    return out
