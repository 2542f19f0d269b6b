"""The finding tables the README quotes (section "Paper-profile results"), rendered from the report's tables
(:func:`dhclib.paper.report_data.report_tables`) so that no number of theirs is ever copied into prose by hand;
``scripts/readme_tables.py`` writes them into the README between their generated-table markers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dhclib import registry
from dhclib.errors import DhcError
from dhclib.paper import paper_results, table4
from dhclib.paper.markdown import md, pm, pval, signed
from dhclib.paper.report import COLLAPSE_DROP, RUNAWAY_FACTOR
from dhclib.paper.report_data import COLLAPSED_COLUMNS, instability_by_row
from dhclib.runs.config import BENCHMARK_NAMES

__all__ = ["README_TABLES", "HEADLINE_BENCHMARKS", "headline_table", "paper_gain", "readme_tables", "with_readme_tables", "by_seed_table", "by_seed_note", "by_seed_name",
           "BY_SEED_PAIRS", "short_label", "settings_table", "placed",
           "mechanism_table", "mechanism_frame", "MECHANISM_NOTE", "collapse_table", "COLLAPSE_NOTE", "course_table",
           "COURSE_NOTE", "table4_table", "table4_paired_table", "TABLE4_PAIRED_NOTE",
           "table4_paired_frame", "eta_course_table", "eta_course_frame", "ETA_COURSE_NOTE"]



def _mean_cell(mean: float, sem: float, trials: int, rests_on) -> str:
    """A mean ± SEM in % with what it rests on in brackets: the trials, or "k of n; m diverged" where some diverged
    (:func:`dhclib.paper.report.rests_on`; empty, or NaN as read back from CSV, where none did)."""
    why = rests_on if isinstance(rests_on, str) and rests_on else int(trials)
    return f"{pm(mean, sem)} ({why})"


def _split_table(t: pd.DataFrame) -> str:
    t = t[t["benchmark"] == "split_mnist"]
    rows = pd.DataFrame({
        "method": t["method"],
        "ours": [pm(m, e) for m, e in zip(t["avg_acc_mean"], t["avg_acc_sem"])],
        "paper": [f"{100 * p:.2f}" for p in t["paper_avg_acc"]],
        "ours − paper": [signed(100 * d, 2, plus=True) for d in t["avg_acc_diff"]],
        "BWT ours": [signed(b, 3) for b in t["bwt_mean"]],
        "BWT paper": [signed(b, 2) for b in t["paper_bwt"]]})
    return md(rows)


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
                    cells[b] = _mean_cell(r.avg_acc_mean, r.avg_acc_sem, r.trials, r.rests_on)
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
    return md(pd.DataFrame(out, columns=["method", "Permuted ours", "paper", "Imbalanced ours", "paper"]))


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
                     "—" if none else signed(100 * r.avg_acc_gain, 2, plus=True),
                     "—" if none else f"{int(r.avg_acc_better)} of {int(r.pairs)}",
                     pval(r.avg_acc_p), pval(r.avg_acc_wilcoxon_p), pval(r.avg_acc_welch_p)])
    return md(pd.DataFrame(rows, columns=["benchmark", "DHP variant", "baseline", "pairs",
                                           "DHP − baseline (points)", "DHP higher", "paired t p", "Wilcoxon p",
                                           "Welch p (unpaired)"]))


def _instability_table(tables: dict[str, pd.DataFrame]) -> str:
    """Per benchmark and DHP row: how many runs' traces ran away (largest ‖Hebb‖_F of a task over task 1's median,
    above ``RUNAWAY_FACTOR``), the range of that ratio, and the tasks forgotten by more than ``COLLAPSE_DROP`` with
    how many of them had a runaway trace at the epoch early stopping restored."""
    r, c = tables.get("runaway", pd.DataFrame()), tables.get("collapsed", pd.DataFrame())
    rows = []
    by_row = instability_by_row(r, c).itertuples(index=False) if len(r) else ()
    for x in sorted(by_row, key=lambda x: _row_order(tables, x.benchmark, x.method)):
        low, high = f"{x.smallest_ratio:.1f}", f"{x.largest_ratio:.1f}"
        rows.append([registry.benchmark(x.benchmark).title, x.method, x.runs, x.runaway_runs,
                     low if low == high else f"{low}–{high}", x.collapsed, x.collapsed_runaway])
    return md(pd.DataFrame(rows, columns=[
        "benchmark", "method", "DHP runs", f"runs whose trace ran away (> {RUNAWAY_FACTOR:g}×)",
        "largest ‖Hebb‖_F ÷ task 1's median", f"tasks forgotten by > {100 * COLLAPSE_DROP:g} points",
        "of them with a runaway trace"]))


def mechanism_table(tables: dict[str, pd.DataFrame]) -> str:
    """Per benchmark and row (:func:`dhclib.paper.report_data.mechanism`), in REPORT.md's order: what happened to
    the tasks before the last one ("" without runs)."""
    m = tables.get("mechanism", pd.DataFrame())
    if not len(m):
        return ""
    order = sorted(range(len(m)), key=lambda i: _row_order(tables, m["benchmark"].iat[i], m["method"].iat[i]))
    return md(mechanism_frame(m.iloc[order]))


def mechanism_frame(m: pd.DataFrame) -> pd.DataFrame:
    """The mechanism table (:func:`dhclib.paper.report_data.mechanism`) as a reader sees it, in ``m``'s order:
    accuracies in %, counts of tasks, the trace's columns "—" for rows without a trace, and the recorded mechanism
    "—" where no run of the row records it (with "k of n runs" where only some do)."""
    def count(v) -> str:
        return "—" if pd.isna(v) else str(int(v))

    rows = []
    for x in m.itertuples(index=False):
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
    return pd.DataFrame(rows, columns=[
        "benchmark", "method", "runs", "accuracy right after learning a task (%)",
        "restores at a runaway-trace epoch", f"of those, forgotten by > {100 * COLLAPSE_DROP:g} points",
        "forgotten with a normal trace", f"all forgotten by > {100 * COLLAPSE_DROP:g} points",
        "‖α‖_F after the last task", "‖α⊙Hebb‖_F / ‖θ‖_F at restore (median; max)", "largest lr·2λΩ"])


def settings_table(tables: dict[str, pd.DataFrame]) -> str:
    """Each labelled setting against the paper's configuration of its method, paired by seed ("" without any)."""
    s = tables.get("settings", pd.DataFrame())
    if not len(s):
        return ""
    rows = []
    for r in sorted(s.itertuples(index=False), key=lambda r: _row_order(tables, r.benchmark, r.variant)):
        none = not r.pairs
        rows.append([registry.benchmark(r.benchmark).title, r.variant, r.method, int(r.pairs),
                     "—" if none else signed(100 * r.avg_acc_gain, 2, plus=True),
                     "—" if none else f"{int(r.avg_acc_better)} of {int(r.pairs)}",
                     pval(r.avg_acc_p), pval(r.avg_acc_wilcoxon_p)])
    return md(pd.DataFrame(rows, columns=["benchmark", "labelled row", "against", "pairs",
                                           "labelled − paper's configuration (points)", "labelled higher",
                                           "paired t p", "Wilcoxon p"]))


COURSE_NOTE = ("Each labelled DHP row against the same method in the paper's configuration, over the seeds both have "
               "(each cell: labelled / paper's configuration, means over those seeds): the epochs task 1 ran; η at "
               "the epoch early stopping restored for task 1 (η is restored with the weights, so later tasks start "
               "from it; Figure 3: about 0.024 near its peak); η's smallest value after task 1; the share of traced "
               "steps after task 1 with η < 0 (each multiplies the trace by 1 + |η|, Eq. 2); and the runs whose "
               "trace ran away")


def course_table(tables: dict[str, pd.DataFrame]) -> str:
    """What each labelled setting does to η's course, paired by seed
    (:func:`dhclib.paper.report_data.course_effects`; "" without any labelled DHP row)."""
    c = tables.get("course", pd.DataFrame())
    if not len(c):
        return ""

    def both(r, col: str, decimals: int) -> str:
        values = (getattr(r, f"{col}_{who}", np.nan) for who in ("variant", "method"))  # older runs: no epochs
        return " / ".join("—" if pd.isna(v) else signed(v, decimals) for v in values)

    rows = []
    for r in sorted(c.itertuples(index=False), key=lambda r: _row_order(tables, r.benchmark, r.variant)):
        rows.append([registry.benchmark(r.benchmark).title, r.variant, r.method, str(r.seeds),
                     both(r, "task1_epochs", 1), both(r, "eta_task1_restored", 4), both(r, "eta_later_min", 4),
                     both(r, "eta_negative_share", 3),
                     f"{int(r.runaway_runs_variant)} / {int(r.runaway_runs_method)} of {int(r.pairs)}"])
    return md(pd.DataFrame(rows, columns=["benchmark", "labelled row", "against", "seeds", "task 1 epochs",
                                          "η restored after task 1", "η's smallest after task 1",
                                          "share of steps with η < 0 after task 1", "runs whose trace ran away"]))


def _per_eta(frame: pd.DataFrame, values, benches: list[str], cells) -> list[list[str]]:
    """One row per initial η in ``values`` (largest first): η, then ``cells(benchmark, η, row)`` for each benchmark,
    ``row`` being ``frame``'s row of that benchmark and η (None where it has none)."""
    rows = []
    for value in sorted(values, reverse=True):
        row = [f"{value:g}"]
        for b in benches:
            hit = frame[(frame["benchmark"] == b) & np.isclose(frame["eta_init"], value)]
            row += cells(b, value, hit.iloc[0] if len(hit) else None)
        rows.append(row)
    return rows


def table4_table(tables: dict[str, pd.DataFrame]) -> str:
    """Table 4 (DHP Softmax alone, per initial η) on the benchmarks the paper reports it for: per η, ours (mean ±
    SEM over the trials stored, with their number, and the runs that diverged, if any) beside the paper's 5-trial
    mean; "not run" where no run of a value is stored, "diverged (k)" where all k did ("" without any sweep run)."""
    eta = tables.get("eta", pd.DataFrame())
    if not len(eta):
        return ""
    paper = table4()
    benches = [b for b in BENCHMARK_NAMES if (paper["benchmark"] == b).any()]

    def cells(b: str, value: float, r) -> list[str]:
        theirs = paper[(paper["benchmark"] == b) & np.isclose(paper["eta_init"], value)]["avg_acc"]
        if r is None:
            ours = "not run"
        elif r["trials"]:
            ours = _mean_cell(r["avg_acc_mean"], r["avg_acc_sem"], r["trials"], r["rests_on"])
        else:
            ours = f"diverged ({int(r['diverged'])})"
        return [ours, f"{100 * theirs.iloc[0]:.2f}" if len(theirs) else "—"]

    rows = _per_eta(eta, paper["eta_init"].unique(), benches, cells)
    columns = ["initial η"] + [f"{registry.benchmark(b).title}: {who}" for b in benches for who in ("ours", "paper")]
    return md(pd.DataFrame(rows, columns=columns))


TABLE4_PAIRED_NOTE = ("Each initial η against η = 0.001 (DHP Softmax's, Table 1's run of the same seed), paired by "
                      "seed: the mean difference in points of average accuracy after the last task, the seeds on "
                      "which the η is higher, and the paired t-test's and Wilcoxon's p (two-sided; with 5 pairs "
                      "Wilcoxon's cannot fall below 0.0625)")


def table4_paired_frame(e: pd.DataFrame) -> pd.DataFrame:
    """Table 4 paired by seed as the report shows it (:func:`dhclib.paper.report_data.eta_effects`' frame): per η
    other than 0.001, one cell per benchmark with paired runs, e.g. "+0.30 (higher on 3 of 5; p 0.620, Wilcoxon
    0.812)"."""
    benches = [b for b in BENCHMARK_NAMES if (e["benchmark"] == b).any()]

    def cells(b: str, value: float, r) -> list[str]:
        if r is None or not r["pairs"]:
            return ["—"]
        return [f"{signed(100 * r['avg_acc_gain'], 2, plus=True)} (higher on {int(r['avg_acc_better'])} of "
                f"{int(r['pairs'])}; p {pval(r['avg_acc_p'])}, Wilcoxon {pval(r['avg_acc_wilcoxon_p'])})"]

    rows = _per_eta(e, e["eta_init"].unique(), benches, cells)
    columns = ["initial η"] + [f"{registry.benchmark(b).title}: η − 0.001 (points)" for b in benches]
    return pd.DataFrame(rows, columns=columns)


def table4_paired_table(tables: dict[str, pd.DataFrame]) -> str:
    """Table 4 paired by seed (:func:`table4_paired_frame`) in Markdown ("" without any pair)."""
    e = tables.get("eta_paired", pd.DataFrame())
    return md(table4_paired_frame(e)) if len(e) else ""


ETA_COURSE_NOTE = ("η's course per initial η (DHP Softmax alone, the runs of Table 4; η = 0.001: Table 1's runs of "
                   "the same seeds), means over the runs: η's largest value in task 1 (Figure 3: about 0.024), η at "
                   "the epoch early stopping restored for task 1 (later tasks start from it), η's smallest value and "
                   "the share of traced steps with η < 0 after task 1, and the runs whose trace ran away")


def eta_course_frame(c: pd.DataFrame) -> pd.DataFrame:
    """η's course per initial η as the report shows it (:func:`dhclib.paper.report_data.eta_courses`' frame)."""
    cell = (lambda r, col, decimals: "—" if pd.isna(getattr(r, col, np.nan)) else signed(getattr(r, col), decimals))
    rows = [[registry.benchmark(r.benchmark).title, f"{r.eta_init:g}", int(r.runs), cell(r, "eta_task1_max", 4),
             cell(r, "eta_task1_restored", 4), cell(r, "eta_later_min", 4), cell(r, "eta_negative_share", 3),
             f"{int(r.runaway_runs)} of {int(r.runs)}"]
            for r in sorted(c.itertuples(index=False), key=lambda r: (list(BENCHMARK_NAMES).index(r.benchmark),
                                                                       -r.eta_init))]
    return pd.DataFrame(rows, columns=["benchmark", "initial η", "runs", "η's largest in task 1",
                                       "η restored after task 1", "η's smallest after task 1",
                                       "share of steps with η < 0 after task 1", "runs whose trace ran away"])


def eta_course_table(tables: dict[str, pd.DataFrame]) -> str:
    """η's course per initial η (:func:`eta_course_frame`) in Markdown ("" without any sweep run)."""
    c = tables.get("eta_course", pd.DataFrame())
    return md(eta_course_frame(c)) if len(c) else ""


def collapse_table(tables: dict[str, pd.DataFrame]) -> str:
    """DHP + MAS's collapse, one change at a time (:func:`dhclib.paper.report_data.collapse_tests`): per labelled
    DHP + MAS row, the gap to its MAS and the tasks forgotten, with the change and without it on the same seeds
    ("" without any such row)."""
    c = tables.get("collapse", pd.DataFrame())
    if not len(c):
        return ""

    def gap(points: float, lower: int, pairs: int, p: float) -> str:
        if not pairs:
            return "—"
        return f"{signed(100 * points, 2, plus=True)} (lower on {int(lower)} of {int(pairs)}; p {pval(p)})"

    def reading(changed: int, without: int, lost: int) -> str:  # a collapse is a task forgotten by > COLLAPSE_DROP
        text = "stays" if changed else ("removed" if without else "none on these seeds either way")
        return text + (f" (and {lost} run{'s' if lost > 1 else ''} diverged)" if lost else "")

    rows = []
    for r in sorted(c.itertuples(index=False), key=lambda r: _row_order(tables, r.benchmark, r.variant)):
        seeds = "; ".join(x for x in (r.seeds if isinstance(r.seeds, str) else "",
                                      f"{r.diverged} diverged" if isinstance(r.diverged, str) and r.diverged else "")
                          if x)
        rows.append([registry.benchmark(r.benchmark).title, r.variant, r.against, seeds,
                     gap(r.gap_with, r.lower_with, r.pairs, r.p_with),
                     gap(r.gap_without, r.lower_without, r.pairs, r.p_without),
                     f"{int(r.forgotten_with)} / {int(r.forgotten_without)}" if r.pairs else "—",
                     reading(r.forgotten_with, r.forgotten_without, int(r.diverged_runs)) if r.pairs
                     else "every run diverged" if r.diverged_runs else "no seed shared with DHP + MAS and MAS"])
    drop = f"{100 * COLLAPSE_DROP:g}"
    return md(pd.DataFrame(rows, columns=[
        "benchmark", "DHP + MAS changed", "against", "seeds", "changed row − against (points)",
        "without the change: dhp+mas − mas, same seeds", f"tasks forgotten by > {drop} points: changed / without",
        "the collapse"]))


COLLAPSE_NOTE = (
    "Each labelled DHP + MAS row, over the seeds it shares with its MAS, DHP + MAS and MAS: the row against MAS with "
    "the same setting (`mas [setting]` where that row is stored, else `mas`), and, on the same seeds, DHP + MAS "
    "against MAS without the change (average accuracy after the last task; mean difference, the seeds on which the "
    "DHP + MAS row is lower, paired t-test p); then the tasks each DHP + MAS row forgot by more than "
    f"{100 * COLLAPSE_DROP:g} points over those seeds. The collapse is such a forgotten task: a change removes it "
    "where the changed row forgets none and DHP + MAS without the change did")


MECHANISM_NOTE = (
    "Per row, over tasks 1 to T−1 of every run (T the last task): the accuracy right after learning a task; for DHP "
    "rows, the tasks whose restored epoch had a runaway trace (largest ‖Hebb‖_F above "
    f"{RUNAWAY_FACTOR:g}× task 1's median), how many of those were forgotten by more than "
    f"{100 * COLLAPSE_DROP:g} points, and the tasks forgotten with a trace of normal size; every task forgotten; "
    "‖α‖_F at the restored epoch of the last task; and, from runs that record them (stored from 2026-12-06 on), "
    "the plastic term's size against the slow weights at the restored epochs and the penalty's largest lr·2λΩ "
    "(plain SGD on the penalty alone oscillates with a growing amplitude above 2)")


# The (baseline, DHP variant) pairs whose seed-by-seed table REPORT.md and the README show: the README's DHP + MAS
# discussion rests on it (any pair of registry.pairs() renders alike).
BY_SEED_PAIRS: tuple[tuple[str, str], ...] = (("mas", "dhp+mas"),)


def short_label(method: str) -> str:
    """A method's paper name as the README's prose shortens it: ``"DHP + MAS"`` for DHP Softmax + MAS."""
    return registry.method(method).label.replace("DHP Softmax", "DHP")


def by_seed_note(pair: tuple[str, str]) -> str:
    """What the columns of :func:`by_seed_table` of ``pair`` (baseline, DHP variant) hold."""
    return ("average accuracy after the last task in %; the tasks " + short_label(pair[1]) + " forgot by more than "
            f"{100 * COLLAPSE_DROP:g} points, each with ‖Hebb‖_F at the epoch early stopping restored for it, "
            "and how many of those traces had run away; — where a run is not stored yet")


def by_seed_name(pair: tuple[str, str]) -> str:
    """The README block of ``pair``'s seed-by-seed table, e.g. ``dhp_mas_by_seed``."""
    return f"{pair[1].replace('+', '_')}_by_seed"


# The README's generated blocks, in the order readme_tables renders them.
README_TABLES = ("headline", "split_mnist", "permuted_and_imbalanced", "paired", "instability",
                 *(by_seed_name(pair) for pair in BY_SEED_PAIRS), "mechanism", "settings", "collapse", "table4",
                 "table4_paired", "eta_course")


def by_seed_table(tables: dict[str, pd.DataFrame], pair: tuple[str, str],
                  benchmarks: tuple[str, ...] = ("permuted_mnist", "imbalanced_permuted_mnist")) -> str:
    """``pair``'s DHP variant against its baseline (a pair of :func:`dhclib.registry.pairs`) seed by seed on
    ``benchmarks``, with the tasks the DHP variant forgot by more than ``COLLAPSE_DROP``: per-seed facts, regenerated
    as seeds land ("" when neither row has a run)."""
    baseline, dhp = pair
    s, c = tables.get("seeds", pd.DataFrame()), tables.get("collapsed", pd.DataFrame())
    rows = []
    for b in benchmarks:
        here = s[s["benchmark"] == b] if len(s) else pd.DataFrame(columns=["method", "seed", "avg_acc"])
        acc = {m: here[here["method"] == m].set_index("seed")["avg_acc"] for m in (baseline, dhp)}
        lost = c[(c["benchmark"] == b) & (c["method"] == dhp)] if len(c) else pd.DataFrame(columns=COLLAPSED_COLUMNS)
        for seed in sorted(set(acc[baseline].index) | set(acc[dhp].index)):
            a, d = acc[baseline].get(seed, np.nan), acc[dhp].get(seed, np.nan)
            tasks = lost[lost["seed"] == seed]
            forgot = ", ".join(f"{int(t)} ({h:,.0f})" for t, h in zip(tasks["task"],
                                                                      tasks["hebb_norm_at_restored_epoch"]))
            stored = not np.isnan(d)
            rows.append([registry.benchmark(b).title, int(seed), pm(a, np.nan), pm(d, np.nan),
                         "—" if np.isnan(d - a) else signed(100 * (d - a), 2, plus=True),
                         (forgot or "none") if stored else "—",
                         int(tasks["runaway_at_restore"].sum()) if stored else "—"])
    if not rows:
        return ""
    return md(pd.DataFrame(rows, columns=[
        "benchmark", "seed", baseline, dhp, f"{dhp} − {baseline} (points)",
        f"tasks {dhp} forgot by > {100 * COLLAPSE_DROP:g} points (‖Hebb‖_F at the restored epoch)",
        "of them with a runaway trace"]))


HEADLINE_BENCHMARKS = ("permuted_mnist", "imbalanced_permuted_mnist", "split_mnist")


def paper_gain(benchmark: str, baseline: str, dhp: str) -> float:
    """What adding DHP Softmax gains in the paper's Table 1 (points of average accuracy), NaN where it has none."""
    paper = paper_results(benchmark).set_index("method")["avg_acc"]
    return 100 * (paper.get(dhp, np.nan) - paper.get(baseline, np.nan))


def headline_table(tables: dict[str, pd.DataFrame]) -> str:
    """The finding in one table: for each of Table 1's pairs, what adding DHP Softmax to the baseline changes in
    average accuracy after the last task, ours paired by seed (mean difference in points, paired t-test p, pairs)
    beside the paper's difference of means, on each benchmark with stored paper-profile runs."""
    paired = tables["paired"]
    present = [b for b in HEADLINE_BENCHMARKS if len(paired) and (paired["benchmark"] == b).any()]
    rows = []
    for baseline, dhp in registry.pairs():
        row = [f"{registry.method(baseline).label} → + DHP Softmax"]
        for b in present:
            hit = paired[(paired["benchmark"] == b) & (paired["baseline"] == baseline) & (paired["dhp_variant"] == dhp)]
            r = hit.iloc[0] if len(hit) else None
            if r is None or not r["pairs"]:
                ours = "no pair (diverged)" if r is not None else "not run"
            else:
                ours = f"{signed(100 * r['avg_acc_gain'], 2, plus=True)} (p {pval(r['avg_acc_p'])}, n={int(r['pairs'])})"
            row += [ours, signed(paper_gain(b, baseline, dhp), 2, plus=True)]
        rows.append(row)
    columns = ["DHP Softmax added to"]
    for b in present:
        columns += [f"{registry.benchmark(b).title}: ours", "paper"]
    return md(pd.DataFrame(rows, columns=columns))


def readme_tables(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """The README's tables of paper-profile results (section "Paper-profile results"), from :func:`report_tables`:
    ``split_mnist`` (Table 1's Split MNIST column, ours beside the paper) and ``permuted_and_imbalanced`` (average
    accuracy on both permuted benchmarks, Table 1's rows then the labelled variants, each cell with its number of
    trials and of its diverged runs, if any; "diverged (k)" where all k runs of the row diverged, "not run" where
    none was stored; a variant's paper column is its method's value, in parentheses), ``paired`` (every DHP variant
    against its baseline, paired by seed), ``instability`` (runaway traces and collapsed tasks per DHP row),
    ``<dhp>_by_seed`` (each pair of :data:`BY_SEED_PAIRS` seed by seed, with its collapsed tasks:
    :func:`by_seed_table`, e.g. ``dhp_mas_by_seed``) and
    ``mechanism`` (what happens to each row's tasks: :func:`mechanism_table`) and ``settings`` (each labelled
    setting against its method's paper configuration: :func:`settings_table`) and ``collapse`` (DHP + MAS's
    collapse, one change at a time: :func:`collapse_table`) and ``table4`` (the initial η: :func:`table4_table`) and
    ``table4_paired`` (each η against 0.001, paired by seed: :func:`table4_paired_table`) and ``eta_course`` (η's
    course per initial η: :func:`eta_course_table`)."""
    return {"headline": headline_table(tables), "split_mnist": _split_table(tables["table1"]),
            "permuted_and_imbalanced": _permuted_and_imbalanced_table(tables),
            "paired": _paired_table(tables), "instability": _instability_table(tables),
            **{by_seed_name(pair): by_seed_table(tables, pair) for pair in BY_SEED_PAIRS},
            "mechanism": mechanism_table(tables), "settings": settings_table(tables),
            "collapse": collapse_table(tables), "table4": table4_table(tables),
            "table4_paired": table4_paired_table(tables), "eta_course": eta_course_table(tables)}


def _marks(name: str) -> tuple[str, str]:
    return (f"<!-- generated: {name} (make report PROFILE=paper) -->",
            f"<!-- end generated: {name} -->")


def with_readme_tables(text: str, blocks: dict[str, str], source: str = "README.md", partial: bool = False) -> str:
    """``text`` (a README) with the table between each block's markers replaced by ``blocks[name]``. With
    ``partial``, a block whose markers are absent is left out (the tables are spread over several pages:
    :func:`placed` says which a text holds); markers that are there must be well-formed either way."""
    for name, table in blocks.items():
        start, end = _marks(name)
        if partial and start not in text and end not in text:
            continue
        if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
            raise DhcError(f"{source} has no place for the generated table {name!r}: it needs the line {start!r} "
                           f"and, below it, {end!r}, once each")
        head, rest = text.split(start, 1)
        text = head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1]
    return text


def placed(text: str) -> set[str]:
    """The generated tables whose opening marker ``text`` holds."""
    return {name for name in README_TABLES if _marks(name)[0] in text}
