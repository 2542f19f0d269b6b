"""``outputs/<profile>/REPORT.md``: every stored run of a result store, the paper beside ours (issue #3, item 8).

The report is generated, never written by hand: :func:`write_report` loads the store, writes its tables as CSV
(``report_<name>.csv``, one per table of :func:`report_tables`, e.g. ``report_table1.csv``, ``report_paired.csv``,
``report_seeds.csv``) and then renders REPORT.md from those frames. Runs are sorted by their variant, the settings
that differ from the paper's configuration (SPEC §4-§5), stored with each run
(:func:`dhclib.runs.store.variant_of`): none = a Table 1 run; only ``lam`` = the search of Appendix A; only
``eta_init`` = Table 4; anything else = a labelled variant (e.g. ``fisher_mode=batch``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dhclib import registry
from dhclib.paper import paper_results
from dhclib.method.metrics import per_run
from dhclib.runs.config import BENCHMARK_NAMES, resolve_config
from dhclib.errors import DhcError
from dhclib.runs.outputs import save_table
from dhclib.paper.report import (COLLAPSE_DROP, RUNAWAY_FACTOR, collapsed_tasks, eta_table, eta_trajectory, grid_best,
                                 grid_table, paired_tests, pairs_present, percent, table1_comparison, task_states,
                                 trace_runaway)
from dhclib.runs.store import (RunResult, label_parts, load_diverged, load_results, record_variant, write_atomic,
                               variant_label, variant_of)

__all__ = ["classify_runs", "report_tables", "render_report", "report_text", "write_report", "readme_tables",
           "with_readme_tables", "readme_text", "README_TABLES"]

def classify_runs(results: list[RunResult]) -> dict[str, pd.DataFrame]:
    """Tidy frames of the stored runs, by kind: ``table1`` (default configs), ``search`` (only ``lam`` differs;
    column ``lam``), ``eta`` (only ``eta_init``; column ``eta_init``), ``variants`` (anything else; the method
    column holds :func:`dhclib.variant_label`)."""
    kinds: dict[str, list[pd.DataFrame]] = {"table1": [], "search": [], "eta": [], "variants": []}
    for r in results:
        diff = variant_of(r)
        labelled = bool(diff) and set(diff) not in ({"lam"}, {"eta_init"})
        tidy = r.tidy(diff if labelled else None).assign(device_name=r.device_name, wall_time=r.wall_time)
        if not diff:
            kinds["table1"].append(tidy.assign(lam=r.config.get("lam")))
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
        same["eta_init"] = [resolve_config(b, m, 0, p).eta_init
                            for b, m, p in zip(same["benchmark"], same["method"], same["profile"])]
        out["eta"] = pd.concat([out["eta"], same], ignore_index=True)
    if len(out["table1"]):
        out["table1"] = out["table1"].drop(columns="lam")
    return out


def report_tables(store_dir) -> dict[str, pd.DataFrame]:
    """The report's tables from the runs stored under ``store_dir``: ``table1`` (per benchmark, ours beside the
    paper), ``paired`` (each DHP variant against its baseline, paired by seed), ``search`` (:func:`dhclib.paper.report.grid_best` of the lambda searches), ``eta`` (Table 4),
    ``variants``, ``diverged``, ``hardware`` (device, runs, summed and median wall time per benchmark), ``runaway``
    and ``collapsed`` (the plastic instability per DHP run and per forgotten task), ``settings`` (each labelled
    variant against its method in the paper's configuration, paired by seed: :func:`_setting_effects`),
    ``mechanism`` (per row, what
    happens to its tasks: :func:`_mechanism`) and ``seeds`` (every Table 1 and labelled run's average accuracy and
    BWT after the last task, one row per benchmark, row label and seed)."""
    results = load_results(store_dir)
    diverged = load_diverged(store_dir)
    if not results and not diverged:
        raise DhcError(f"no stored runs under {Path(store_dir) / 'runs'}: nothing to report")
    lost = [{"benchmark": d["benchmark"], "method": _diverged_label(d)} for d in diverged]
    kinds = classify_runs(results)
    benches = [b for b in BENCHMARK_NAMES if any(len(f) and b in set(f["benchmark"]) for f in kinds.values())]
    t1, paired, variants, settings = [], [], [], []
    for b in benches:
        main = kinds["table1"][kinds["table1"]["benchmark"] == b] if len(kinds["table1"]) else pd.DataFrame()
        var = kinds["variants"][kinds["variants"]["benchmark"] == b] if len(kinds["variants"]) else pd.DataFrame()
        if len(main):
            t1.append(table1_comparison(main, b, lost).assign(benchmark=b))
            paired.append(paired_tests(main).assign(benchmark=b))
        if len(var):
            base = {label: method for label, (method, _) in label_parts(var).items()}
            comparison = table1_comparison(var, b, lost).query("trials > 0")
            variants.append(comparison.assign(benchmark=b, base_method=comparison["method"].map(base)))
            # e.g. finetune [optimizer=adam] vs dhp [...], and a DHP-only remedy against the plain runs it changes
            both = pd.concat([main, var], ignore_index=True) if len(main) else var
            extra = [p for p in pairs_present(both["method"].unique(), parts=label_parts(both))
                     if p not in registry.pairs()]
            paired.append(paired_tests(both, extra).assign(benchmark=b))
            settings.append(_setting_effects(both, main).assign(benchmark=b))
    search = pd.DataFrame()
    if len(kinds["search"]):
        search = grid_best(grid_table(kinds["search"], "lam"), "lam")
    eta = eta_table(kinds["eta"]) if len(kinds["eta"]) else pd.DataFrame()
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
    runaway, collapsed = _instability(results)
    scored = [f for f in (kinds["table1"], kinds["variants"]) if len(f)]
    seeds = per_run(pd.concat(scored, ignore_index=True)) if scored else pd.DataFrame()
    return {"table1": cat(t1), "paired": cat(paired), "search": search, "eta": eta, "variants": cat(variants),
            "diverged": div, "hardware": hardware, "runaway": runaway, "collapsed": collapsed,
            "mechanism": _mechanism(results), "settings": cat(settings), "seeds": seeds}


def _setting_effects(both: pd.DataFrame, main: pd.DataFrame) -> pd.DataFrame:
    """What each labelled setting does to the method it changes: every labelled variant of one benchmark against
    the same method in the paper's configuration, paired by seed (:func:`dhclib.paper.report.paired_tests`), e.g.
    ``mas [mas_mode=batch]`` against ``mas``: the intervention's effect, where the DHP-against-baseline table
    compares two methods under one setting."""
    present = set(main["method"]) if len(main) else set()
    pairs = [(method, label) for label, (method, variant) in label_parts(both).items()
             if variant and method in present]
    if not pairs:
        return pd.DataFrame()
    return paired_tests(both, pairs).rename(columns={"baseline": "method", "dhp_variant": "variant"})


def _diverged_label(record: dict) -> str:
    """The label of a diverged run (:func:`dhclib.runs.store.variant_label`): its method, with the settings in which
    its config differs from the paper's."""
    return variant_label(record["method"], record_variant(record.get("purpose"), record.get("config")))


_COLLAPSED = ["benchmark", "method", "seed", "task", "acc_after_learning", "acc_after_last",
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
        eta = {k: round(v, 4) for k, v in eta_trajectory(r.traces).items()}
        runaway.append(dict(ident, **eta, task1_median=round(float(per["task1_median"].iloc[0]), 2),
                            hebb_norm_max=round(float(per["hebb_norm_max"].max()), 1),
                            ratio=round(float(per["ratio"].max()), 1),
                            runaway_tasks=", ".join(str(t) for t in per.loc[per["runaway"], "task"]) or "-",
                            eta_negative_share=round(float(per.loc[per["task"] > 1, "eta_negative_share"].mean()), 3)
                            if (per["task"] > 1).any() else np.nan))
        c = collapsed_tasks(r.R, r.traces, r.tasks)
        collapsed += [dict(ident, **row, base_method=method) for row in c.to_dict("records")]
    order = ["benchmark", "method", "seed"]
    run_df = pd.DataFrame(runaway).sort_values(order, ignore_index=True) if runaway else pd.DataFrame()
    col_df = pd.DataFrame(collapsed, columns=_COLLAPSED).sort_values(order + ["task"], ignore_index=True)
    return run_df, col_df


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


def _mechanism(results: list[RunResult]) -> pd.DataFrame:
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


def _md(df: pd.DataFrame) -> str:
    """A pipe table (no extra dependency): NaN shown as an em dash."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in df.itertuples(index=False):
        cells = ["—" if isinstance(v, float) and np.isnan(v) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pm(mean: float, sem: float, scale: float = 100.0, digits: int = 2) -> str:
    if np.isnan(mean):
        return "—"
    return f"{scale * mean:.{digits}f}" + ("" if np.isnan(sem) else f" ± {scale * sem:.{digits}f}")


def _column(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "method": t["method"], "trials": t["trials"],
        "avg acc % (ours)": [_pm(m, s) + (f" ({why})" if isinstance(why, str) and why else "")
                             for m, s, why in zip(t["avg_acc_mean"], t["avg_acc_sem"], t["rests_on"])],
        "paper": (100 * t["paper_avg_acc"]).round(2), "ours − paper": (100 * t["avg_acc_diff"]).round(2),
        "BWT (ours)": [_pm(m, s, 1.0, 3) for m, s in zip(t["bwt_mean"], t["bwt_sem"])],
        "BWT paper": t["paper_bwt"], "BWT ours − paper": t["bwt_diff"].round(3)})


def render_report(tables: dict[str, pd.DataFrame], profile: str) -> str:
    """REPORT.md's text from :func:`report_tables`."""
    out = [f"# dhc against the paper: every stored `{profile}`-profile run",
           "",
           "Generated by `python -m dhclib report --out outputs/" + profile + "` from the runs stored under "
           "`runs/` (do not edit by hand). Table 1 rows use the exact configuration of SPEC §4–§5; rows with any "
           "other setting are listed separately under their differences. Accuracy in %, mean ± SEM over the trials "
           "run (one trial: no SEM); the paper's Table 1 used 10 trials. Where runs of a row diverged, its mean is "
           "of the runs that finished and says so beside it, e.g. `86.15 ± 0.67 (4 of 10; 6 diverged)`. A method "
           "with 0 trials has not been run, or every trial diverged (listed below)."]
    hw = tables["hardware"]
    present = {b for k in ("table1", "variants") if len(tables[k]) for b in tables[k]["benchmark"]}
    for b in [b for b in BENCHMARK_NAMES if b in present]:
        t = tables["table1"][tables["table1"]["benchmark"] == b] if len(tables["table1"]) else pd.DataFrame()
        out += ["", f"## {registry.benchmark(b).title}", ""]
        if b == "split_cifar10_100":
            out += ["Not in Table 1: the paper column is Figure 8's average over the six tasks after the last one "
                    "(DHP Softmax its own; Finetune, SI and scratch quoted from von Oswald et al. 2019).", ""]
        out += [_md(_column(t)) if len(t) else "No run with the paper's exact configuration."]
        if not len(t):
            t = pd.DataFrame(columns=["benchmark"])
        w = tables["paired"][tables["paired"]["benchmark"] == b] if len(tables["paired"]) else pd.DataFrame(
            columns=["avg_acc_gain", "benchmark"])
        w = w[[not np.isnan(v) for v in w["avg_acc_gain"]]]
        if len(w):
            w = percent(w.drop(columns="benchmark"), 2)
            out += ["", "DHP Softmax against its baseline, paired by seed (a DHP run and its baseline's run of one "
                        "seed share initialisation, permutations and data order): mean gain = variant − baseline "
                        "over the seeds both have (accuracy in points), `better` = seeds on which DHP is higher, "
                        "paired t-test and Wilcoxon signed-rank p (two-sided), and Welch's unpaired p for "
                        "comparison; p is NaN with fewer than two pairs:", "",
                    _md(w[["baseline", "dhp_variant", "pairs", "avg_acc_gain", "avg_acc_better", "avg_acc_p",
                           "avg_acc_wilcoxon_p", "avg_acc_welch_p", "bwt_gain", "bwt_p"]])]
        v = tables["variants"]
        v = v[v["benchmark"] == b] if len(v) else v
        if len(v):
            out += ["", "Other settings (labelled by what differs from SPEC; the paper column is the paper's value "
                        "for the method):", "", _md(_column(v))]
    out += _render_instability(tables)
    if len(tables["search"]):
        s = tables["search"].copy()
        out += ["", "## Consolidation-strength search (Appendix A), seed 0", "",
                "Per benchmark and regulariser: the best λ of the grid declared beside the regulariser "
                "(`search_grid`, read by `dhclib.paper.search_grids`), the "
                "paper's λ and their average accuracies here (%).", "",
                _md(percent(s, 2))]
    if len(tables["eta"]):
        out += ["", "## Initial η (Table 4), DHP Softmax alone", "", _md(percent(tables["eta"], 2))]
    d = tables["diverged"]
    out += ["", "## Diverged runs (no result)", ""]
    if len(d):
        out += [_md(d.assign(message=d["message"].astype(str).str.replace("|", "/", regex=False)))]
    else:
        out += ["None."]
    if len(hw):
        h = hw.copy()
        h["wall_time_h"] = h["wall_time_h"].round(2)
        if "median_run_min" in h:
            h["median_run_min"] = h["median_run_min"].round(1)
        out += ["", "## Where the runs ran", "",
                "Wall time of the stored runs (diverged runs not counted) per benchmark and device: their sum in "
                "hours and the median run in minutes. A run's time includes whatever else shared its machine.", "",
                _md(h)]
    return "\n".join(out) + "\n"


def _instability_by_row(runaway: pd.DataFrame, collapsed: pd.DataFrame) -> pd.DataFrame:
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


def _render_instability(tables: dict[str, pd.DataFrame]) -> list[str]:
    """The plastic instability (issue #9): which DHP runs' traces ran away, and which tasks collapsed."""
    r, c = tables.get("runaway", pd.DataFrame()), tables.get("collapsed", pd.DataFrame())
    if not len(r):
        return []
    summary = _instability_by_row(r, c)[["benchmark", "method", "runs", "runaway_runs", "largest_ratio",
                                         "eta_negative_share"]]
    summary["eta_negative_share"] = summary["eta_negative_share"].round(3)
    out = ["", "## The plastic instability: runaway traces and collapsed tasks", "",
           f"A DHP run's trace *runs away* in a task when its largest ‖Hebb‖_F exceeds {RUNAWAY_FACTOR:g}× the median "
           "‖Hebb‖_F over task 1's traced steps (`dhclib.paper.report.RUNAWAY_FACTOR`). η < 0 on a step multiplies "
           "the trace by 1 + |η| (Eq. 2), so a run with many negative-η steps can grow it without bound. Per "
           "benchmark and method (`eta_negative_share`: mean share of traced steps with η < 0 after task 1):", "",
           _md(summary)]
    eta_cols = ["eta_task1_max", "eta_task1_end", "eta_later_max", "eta_later_min", "eta_end"]
    if set(eta_cols) <= set(r.columns):
        course = r.groupby(["benchmark", "method"], sort=False)[eta_cols].mean().round(4).reset_index()
        out += ["", "η's course, mean over each row's runs, to lay beside Figure 3 (the paper: η rises to about 0.024 "
                    "in task 1, then decays): its largest value in task 1 and at task 1's end, its largest and "
                    "smallest after task 1, and at the last traced step:", "", _md(course)]
    flagged = r[r["runaway_tasks"] != "-"].drop(columns=eta_cols, errors="ignore")
    if len(flagged):
        out += ["", f"The runs whose trace ran away (`runaway_tasks`; the other {len(r) - len(flagged)} DHP runs: in "
                    "no task):", "", _md(flagged)]
    if len(c):
        shown = c.drop(columns="base_method")
        for col in ("acc_after_learning", "acc_after_last"):
            shown[col] = (100 * shown[col]).round(1)
        shown["hebb_norm_at_restored_epoch"] = shown["hebb_norm_at_restored_epoch"].round(1)
        out += ["", f"Tasks forgotten by more than {100 * COLLAPSE_DROP:g} points (accuracy in % right after "
                    "learning the task and after the last task), with ‖Hebb‖_F at the epoch early stopping restored "
                    "for that task — the trace its consolidation anchored to — and whether that trace had run away:",
                "", _md(shown)]
        alone = np.array([registry.method(m).regulariser == "none" for m in c["base_method"]])
        for rows, who in ((c[~alone], "DHP runs with a regulariser"), (c[alone], "DHP Softmax alone")):
            if len(rows):
                k = int(rows["runaway_at_restore"].sum())
                out += ["", f"{who}: {k} of {len(rows)} collapsed tasks had a runaway trace at the restored epoch."]
        out += ["", "A collapse with a runaway trace at the restored epoch is consistent with the regulariser "
                    "anchoring the slow weights to a model that relied on an inflated trace; a collapse with a trace "
                    "of normal size is ordinary forgetting."]
    else:
        out += ["", f"No task of a DHP run was forgotten by more than {100 * COLLAPSE_DROP:g} points."]
    by_seed = _by_seed_table(tables)
    if by_seed:
        out += ["", f"DHP + MAS against MAS, seed by seed ({_BY_SEED_NOTE}):", "", by_seed]
    settings = _settings_table(tables)
    if settings:
        out += ["", "## What each labelled setting does, paired by seed", "",
                "Each labelled row against the same method in the paper's configuration, over the seeds both have "
                "(average accuracy after the last task; paired t-test and Wilcoxon signed-rank p, two-sided):", "",
                settings]
    mechanism = _mechanism_table(tables)
    if mechanism:
        out += ["", "## What happens to each task: the mechanism, per row", "", _MECHANISM_NOTE + ":", "",
                mechanism]
    return out


# ---------------------------------------------------------------------------------------------------------------
# The README's results tables: generated from the same tables, written between markers, checked by a test
# ---------------------------------------------------------------------------------------------------------------
README_TABLES = ("split_mnist", "permuted_and_imbalanced", "paired", "instability", "dhp_mas_by_seed", "mechanism",
                 "settings")


def _signed(value: float, digits: int, plus: bool = False) -> str:
    """A number as the README prints it: the minus sign typeset (U+2212), an explicit plus where asked."""
    text = f"{value:+.{digits}f}" if plus else f"{value:.{digits}f}"
    return text.replace("-", "\u2212")


def _split_table(t: pd.DataFrame) -> str:
    t = t[t["benchmark"] == "split_mnist"]
    rows = pd.DataFrame({
        "method": t["method"],
        "ours": [_pm(m, e) for m, e in zip(t["avg_acc_mean"], t["avg_acc_sem"])],
        "paper": [f"{100 * p:.2f}" for p in t["paper_avg_acc"]],
        "ours − paper": [_signed(100 * d, 2, plus=True) for d in t["avg_acc_diff"]],
        "BWT ours": [_signed(b, 3) for b in t["bwt_mean"]],
        "BWT paper": [_signed(b, 2) for b in t["paper_bwt"]]})
    return _md(rows)


def _permuted_and_imbalanced_table(tables: dict[str, pd.DataFrame]) -> str:
    benches = ("permuted_mnist", "imbalanced_permuted_mnist")
    diverged = tables["diverged"]
    failed = diverged.groupby(["benchmark", "label"]).size().to_dict() if len(diverged) else {}
    paper = {b: paper_results(b).set_index("method")["avg_acc"] for b in benches}
    rows: dict[str, dict[str, str]] = {}  # label -> {benchmark: our cell}, in Table 1's order, then the variants'
    bases: dict[str, str | None] = {}  # label -> its method (None: a Table 1 row)
    for kind in ("table1", "variants"):
        frame = tables[kind]
        for b in benches:
            part = frame[frame["benchmark"] == b] if len(frame) else frame
            for r in part.itertuples(index=False):
                bases[r.method] = None if kind == "table1" else r.base_method
                cells = rows.setdefault(r.method, {})
                if r.trials:
                    why = r.rests_on if isinstance(r.rests_on, str) and r.rests_on else r.trials
                    cells[b] = f"{_pm(r.avg_acc_mean, r.avg_acc_sem)} ({why})"
    for b, label, method in (diverged[["benchmark", "label", "method"]].itertuples(index=False)
                             if len(diverged) else ()):
        if b in benches and label not in rows:  # a variant whose every run diverged: shown, never dropped
            rows[label], bases[label] = {}, (None if label == method else method)
    out = []
    for label, ours in rows.items():
        line = [label]
        for b in benches:
            lost = failed.get((b, label), 0)
            cell = ours.get(b) or (f"diverged ({lost})" if lost else "not run")
            value = paper[b].get(bases[label] or label, np.nan)
            shown = "—" if np.isnan(value) else f"{100 * value:.2f}"
            line += [cell, shown if bases[label] is None else f"({shown})"]
        out.append(line)
    return _md(pd.DataFrame(out, columns=["method", "Permuted ours", "paper", "Imbalanced ours", "paper"]))


def _p(value: float) -> str:
    return "—" if np.isnan(value) else f"{value:.3f}"


def _row_order(tables: dict[str, pd.DataFrame], benchmark: str, label: str) -> tuple[int, int]:
    """Where a (benchmark, row label) goes in the README's tables: benchmarks in the registry's order; within one,
    Table 1's rows, then the labelled variants, as REPORT.md lists them."""
    labels = [m for k in ("table1", "variants") if len(tables[k])
              for m in tables[k].loc[tables[k]["benchmark"] == benchmark, "method"]]
    return (list(BENCHMARK_NAMES).index(benchmark), labels.index(label) if label in labels else len(labels))


def _paired_table(tables: dict[str, pd.DataFrame]) -> str:
    """Every DHP variant against its baseline, paired by seed, on every benchmark: the README quotes this table
    instead of copying its numbers into prose that the next stored seed would make stale."""
    rows = []
    paired = tables["paired"]
    for r in sorted(paired.itertuples(index=False) if len(paired) else (),
                    key=lambda r: (_row_order(tables, r.benchmark, r.dhp_variant),
                                   _row_order(tables, r.benchmark, r.baseline))):
        none = not r.pairs
        rows.append([registry.benchmark(r.benchmark).title, r.dhp_variant, r.baseline, int(r.pairs),
                     "—" if none else _signed(100 * r.avg_acc_gain, 2, plus=True),
                     "—" if none else f"{int(r.avg_acc_better)} of {int(r.pairs)}",
                     _p(r.avg_acc_p), _p(r.avg_acc_wilcoxon_p), _p(r.avg_acc_welch_p)])
    return _md(pd.DataFrame(rows, columns=["benchmark", "DHP variant", "baseline", "pairs",
                                           "DHP − baseline (points)", "DHP higher", "paired t p", "Wilcoxon p",
                                           "Welch p (unpaired)"]))


def _instability_table(tables: dict[str, pd.DataFrame]) -> str:
    """Per benchmark and DHP row: how many runs' traces ran away (largest ‖Hebb‖_F of a task over task 1's median,
    above ``RUNAWAY_FACTOR``), the range of that ratio, and the tasks forgotten by more than ``COLLAPSE_DROP`` with
    how many of them had a runaway trace at the epoch early stopping restored."""
    r, c = tables.get("runaway", pd.DataFrame()), tables.get("collapsed", pd.DataFrame())
    rows = []
    by_row = _instability_by_row(r, c).itertuples(index=False) if len(r) else ()
    for x in sorted(by_row, key=lambda x: _row_order(tables, x.benchmark, x.method)):
        low, high = f"{x.smallest_ratio:.1f}", f"{x.largest_ratio:.1f}"
        rows.append([registry.benchmark(x.benchmark).title, x.method, x.runs, x.runaway_runs,
                     low if low == high else f"{low}–{high}", x.collapsed, x.collapsed_runaway])
    return _md(pd.DataFrame(rows, columns=[
        "benchmark", "method", "DHP runs", f"runs whose trace ran away (> {RUNAWAY_FACTOR:g}×)",
        "largest ‖Hebb‖_F ÷ task 1's median", f"tasks forgotten by > {100 * COLLAPSE_DROP:g} points",
        "of them with a runaway trace"]))


def _mechanism_table(tables: dict[str, pd.DataFrame]) -> str:
    """Per benchmark and row (:func:`_mechanism`), in REPORT.md's order: what happened to the tasks before the last
    one, with the trace's columns for DHP rows and the recorded mechanism where runs record it ("" without runs)."""
    m = tables.get("mechanism", pd.DataFrame())
    if not len(m):
        return ""
    rows = []

    def count(v) -> str:
        return "—" if pd.isna(v) else str(int(v))

    for x in sorted(m.itertuples(index=False), key=lambda x: _row_order(tables, x.benchmark, x.method)):
        ratio = "—"
        if x.recorded:
            ratio = f"{x.plastic_ratio_median:.2f}; {x.plastic_ratio_max:.2f}" if not pd.isna(x.plastic_ratio_median) \
                else "—"
        seen = f" ({int(x.recorded)} of {int(x.runs)} runs)" if 0 < x.recorded < x.runs else ""
        rows.append([registry.benchmark(x.benchmark).title, x.method, int(x.runs), f"{100 * x.learned:.1f}",
                     count(x.runaway_restores), count(x.runaway_forgotten), count(x.forgotten_normal),
                     int(x.forgotten), "—" if pd.isna(x.alpha_after_last) else f"{x.alpha_after_last:.2f}",
                     ratio + (seen if ratio != "—" else ""),
                     "—" if pd.isna(x.stiffness_max) else f"{x.stiffness_max:.3g}" + seen])
    return _md(pd.DataFrame(rows, columns=[
        "benchmark", "method", "runs", "accuracy right after learning a task (%)",
        "restores at a runaway-trace epoch", f"of those, forgotten by > {100 * COLLAPSE_DROP:g} points",
        "forgotten with a normal trace", f"all forgotten by > {100 * COLLAPSE_DROP:g} points",
        "‖α‖_F after the last task", "‖α⊙Hebb‖_F / ‖θ‖_F at restore (median; max)", "largest lr·2λΩ"]))


def _settings_table(tables: dict[str, pd.DataFrame]) -> str:
    """Each labelled setting against the paper's configuration of its method, paired by seed ("" without any)."""
    s = tables.get("settings", pd.DataFrame())
    if not len(s):
        return ""
    rows = []
    for r in sorted(s.itertuples(index=False), key=lambda r: _row_order(tables, r.benchmark, r.variant)):
        none = not r.pairs
        rows.append([registry.benchmark(r.benchmark).title, r.variant, r.method, int(r.pairs),
                     "—" if none else _signed(100 * r.avg_acc_gain, 2, plus=True),
                     "—" if none else f"{int(r.avg_acc_better)} of {int(r.pairs)}",
                     _p(r.avg_acc_p), _p(r.avg_acc_wilcoxon_p)])
    return _md(pd.DataFrame(rows, columns=["benchmark", "labelled row", "against", "pairs",
                                           "labelled − paper's configuration (points)", "labelled higher",
                                           "paired t p", "Wilcoxon p"]))


_MECHANISM_NOTE = (
    "Per row, over tasks 1 to T−1 of every run (T the last task): the accuracy right after learning a task; for DHP "
    "rows, the tasks whose restored epoch had a runaway trace (largest ‖Hebb‖_F above "
    f"{RUNAWAY_FACTOR:g}× task 1's median), how many of those were forgotten by more than "
    f"{100 * COLLAPSE_DROP:g} points, and the tasks forgotten with a trace of normal size; every task forgotten; "
    "‖α‖_F at the restored epoch of the last task; and, from runs that record them (stored from 2026-12-06 on), "
    "the plastic term's size against the slow weights at the restored epochs and the penalty's largest lr·2λΩ "
    "(plain SGD on the penalty alone oscillates with a growing amplitude above 2)")


_BY_SEED_NOTE = ("average accuracy after the last task in %; the tasks DHP + MAS forgot by more than "
                 f"{100 * COLLAPSE_DROP:g} points, each with ‖Hebb‖_F at the epoch early stopping restored for it, "
                 "and how many of those traces had run away; — where a run is not stored yet")


def _by_seed_table(tables: dict[str, pd.DataFrame], dhp: str = "dhp+mas", baseline: str = "mas",
                   benchmarks: tuple[str, ...] = ("permuted_mnist", "imbalanced_permuted_mnist")) -> str:
    """``dhp`` against ``baseline`` seed by seed on ``benchmarks``, with the tasks ``dhp`` forgot by more than
    ``COLLAPSE_DROP``: the per-seed facts the README's DHP + MAS discussion rests on, regenerated as seeds land
    ("" when neither row has a run)."""
    s, c = tables.get("seeds", pd.DataFrame()), tables.get("collapsed", pd.DataFrame())
    rows = []
    for b in benchmarks:
        here = s[s["benchmark"] == b] if len(s) else pd.DataFrame(columns=["method", "seed", "avg_acc"])
        acc = {m: here[here["method"] == m].set_index("seed")["avg_acc"] for m in (baseline, dhp)}
        lost = c[(c["benchmark"] == b) & (c["method"] == dhp)] if len(c) else pd.DataFrame(columns=_COLLAPSED)
        for seed in sorted(set(acc[baseline].index) | set(acc[dhp].index)):
            a, d = acc[baseline].get(seed, np.nan), acc[dhp].get(seed, np.nan)
            tasks = lost[lost["seed"] == seed]
            forgot = ", ".join(f"{int(t)} ({h:,.0f})" for t, h in zip(tasks["task"],
                                                                      tasks["hebb_norm_at_restored_epoch"]))
            stored = not np.isnan(d)
            rows.append([registry.benchmark(b).title, int(seed), _pm(a, np.nan), _pm(d, np.nan),
                         "—" if np.isnan(d - a) else _signed(100 * (d - a), 2, plus=True),
                         (forgot or "none") if stored else "—",
                         int(tasks["runaway_at_restore"].sum()) if stored else "—"])
    if not rows:
        return ""
    return _md(pd.DataFrame(rows, columns=[
        "benchmark", "seed", baseline, dhp, f"{dhp} − {baseline} (points)",
        f"tasks {dhp} forgot by > {100 * COLLAPSE_DROP:g} points (‖Hebb‖_F at the restored epoch)",
        "of them with a runaway trace"]))


def readme_tables(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """The README's tables of paper-profile results (section "Paper-profile results"), from :func:`report_tables`:
    ``split_mnist`` (Table 1's Split MNIST column, ours beside the paper) and ``permuted_and_imbalanced`` (average
    accuracy on both permuted benchmarks, Table 1's rows then the labelled variants, each cell with its number of
    trials and of its diverged runs, if any; "diverged (k)" where all k runs of the row diverged, "not run" where
    none was stored; a variant's paper column is its method's value, in parentheses), ``paired`` (every DHP variant
    against its baseline, paired by seed), ``instability`` (runaway traces and collapsed tasks per DHP row),
    ``dhp_mas_by_seed`` (DHP + MAS against MAS seed by seed, with its collapsed tasks: :func:`_by_seed_table`) and
    ``mechanism`` (what happens to each row's tasks: :func:`_mechanism_table`) and ``settings`` (each labelled
    setting against its method's paper configuration: :func:`_settings_table`)."""
    return {"split_mnist": _split_table(tables["table1"]),
            "permuted_and_imbalanced": _permuted_and_imbalanced_table(tables),
            "paired": _paired_table(tables), "instability": _instability_table(tables),
            "dhp_mas_by_seed": _by_seed_table(tables), "mechanism": _mechanism_table(tables),
            "settings": _settings_table(tables)}


def _marks(name: str) -> tuple[str, str]:
    return (f"<!-- generated: {name} (python -m dhclib report --out outputs/paper --readme README.md) -->",
            f"<!-- end generated: {name} -->")


def with_readme_tables(text: str, blocks: dict[str, str], source: str = "README.md") -> str:
    """``text`` (a README) with the table between each block's markers replaced by ``blocks[name]``."""
    for name, table in blocks.items():
        start, end = _marks(name)
        if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
            raise DhcError(f"{source} has no place for the generated table {name!r}: it needs the line {start!r} "
                           f"and, below it, {end!r}, once each")
        head, rest = text.split(start, 1)
        text = head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1]
    return text


def _tables_as_read(store_dir, tables_dir=None) -> dict[str, pd.DataFrame]:
    """Write the report's CSV tables (``report_*.csv``) into ``tables_dir`` (default: the store) and return them as
    read back: what a reader of the CSV files sees, and what REPORT.md and the README's tables are rendered from."""
    tables_dir = Path(tables_dir or store_dir)
    tables = report_tables(store_dir)
    for name, frame in tables.items():
        save_table(frame, tables_dir, f"report_{name}")
    return {k: pd.read_csv(tables_dir / f"report_{k}.csv") if len(v) else v for k, v in tables.items()}


def report_text(store_dir, tables_dir=None, profile: str | None = None) -> str:
    """Write the report's CSV tables into ``tables_dir`` (default: the store) and return REPORT.md's text.
    ``profile`` (for the title) defaults to the store folder's name."""
    return render_report(_tables_as_read(store_dir, tables_dir), profile or Path(store_dir).resolve().name)


def readme_text(readme: str, store_dir, tables_dir=None, source: str = "README.md") -> str:
    """``readme`` with its generated tables (:func:`readme_tables`) rendered from the runs under ``store_dir``."""
    return with_readme_tables(readme, readme_tables(_tables_as_read(store_dir, tables_dir)), source)


def write_report(store_dir, profile: str | None = None, readme=None) -> Path:
    """Write the report's CSV tables and ``<store_dir>/REPORT.md`` (atomically); with ``readme`` (a path), also
    rewrite the README's generated tables (:func:`with_readme_tables`) in place. Returns the REPORT.md path."""
    tables = _tables_as_read(store_dir)
    path = Path(store_dir) / "REPORT.md"
    if readme is not None:
        readme = Path(readme)
        if not readme.is_file():
            raise DhcError(f"--readme {readme}: no such file (give the README whose tables to regenerate)")
        text = with_readme_tables(readme.read_text(), readme_tables(tables), str(readme))
    write_atomic(path, render_report(tables, profile or Path(store_dir).resolve().name))
    if readme is not None:
        write_atomic(readme, text)
    return path
