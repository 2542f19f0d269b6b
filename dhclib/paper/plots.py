"""The figures the notebooks share, drawn like the paper's (seaborn on matplotlib), and saved as PNG and PDF.

Each function takes a frame of :mod:`dhclib.paper.report` (or a run's traces) and returns the matplotlib Figure.
Colours pair each baseline with its DHP variant (light: baseline, dark: + DHP Softmax), as Table 1 pairs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from dhclib import registry
from dhclib.paper.report import ordered_rows, traces_by_progress
from dhclib.runs.config import BENCHMARK_NAMES
from dhclib.runs.labels import label_of

__all__ = ["method_color", "method_label", "accuracy_curves", "first_and_latest", "r_heatmaps", "traces", "eta_sweep",
           "lambda_search", "class_counts", "final_task_bars", "dhp_gains", "save"]

_PALETTE = sns.color_palette("tab10", 10)
_SCRATCH = (0.45, 0.45, 0.45)


def method_color(method: str) -> tuple[float, float, float]:
    """One hue per regulariser (its registration slot: fine-tuning blue, SI orange, Online EWC green, MAS red,
    then the next colours for any regulariser added), shared by the baseline and its DHP variant; scratch grey.
    ``method``: a composed method (a labelled variant takes its method's colour: :func:`_style`)."""
    spec = registry.method(method)
    if spec.fresh_per_task:
        return _SCRATCH
    return _PALETTE[list(registry.REGULARISERS).index(spec.regulariser) % len(_PALETTE)]


def method_label(method: str, variant: str = "") -> str:
    """The paper's name of a method (rendered from its parts); a labelled variant keeps its setting:
    ``method_label("si", "lam=50.0")`` is "SI [lam=50.0]"."""
    return label_of(registry.method(method).label, variant)


def _name(label: str) -> str:
    """The legend name of a label given without its parts: the paper's name of a plain method, else the label as
    given (never split)."""
    return method_label(label) if label in registry.methods() else label


def _style(method: str, variant: str = "") -> dict:
    """Line style of a method: its regulariser's hue, solid with DHP Softmax and dashed without (circles and
    triangles); a labelled variant takes its method's colour, dotted, with square markers."""
    plastic = registry.method(method).plastic
    return dict(color=method_color(method), marker="s" if variant else ("o" if plastic else "^"), ms=3,
                ls=":" if variant else ("-" if plastic else "--"))


def accuracy_curves(curves: pd.DataFrame, title: str = "", ax=None, paper: Mapping[str, float] | None = None,
                    diverged: Sequence[str] = ()):
    """Average test accuracy against the number of tasks learned, mean ± SEM band over trials (Figures 2, 5, 6);
    the legend (beside the axes, so that it hides no curve) gives each method's final average accuracy, as the
    paper's does. ``paper``: method -> the paper's final average (Table 1), drawn as a hollow star in the method's
    colour just right of the last task; ``diverged``: methods whose runs all diverged, named on the figure
    instead of silently missing."""
    fig, ax = _axes(ax, (7.8, 4.4))
    if curves.empty and not diverged:
        return _nothing(fig, ax, title)
    rows = ordered_rows(curves)
    last_x = curves["tasks_learned"].max() if len(curves) else 1
    last = curves[curves["tasks_learned"] == last_x].groupby("method")["avg_acc"].mean() if len(curves) else {}
    for m, base, variant in rows.itertuples(index=False):
        sub = curves[curves["method"] == m]
        g = sub.groupby("tasks_learned")["avg_acc"]
        mean, sem = g.mean(), g.sem().fillna(0.0)
        style = _style(base, variant)
        ax.plot(mean.index, 100 * mean, label=f"{method_label(base, variant)} ({100 * last[m]:.2f}%)", **style)
        ax.fill_between(mean.index, 100 * (mean - sem), 100 * (mean + sem), color=style["color"], alpha=0.2, lw=0)
    marked = [r for r in rows.itertuples(index=False)
              if paper and r.method in paper and not np.isnan(paper[r.method])]
    for k, r in enumerate(marked):  # spread a little so that equal values stay visible
        ax.plot(last_x + 0.12 + 0.04 * (k % 4), 100 * paper[r.method], ls="none", marker="*", ms=9, mfc="none",
                mec=_style(r.base_method, r.variant)["color"], label="paper, final average (Table 1)" if k == 0 else None)
    if diverged:
        ax.text(0.99, 0.02, "diverged, not shown: " + ", ".join(_name(m) for m in diverged),
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="firebrick")
    ax.set(xlabel="Number of tasks learned", ylabel="Average test accuracy (%)", title=title)
    if len(curves):
        ax.set_xticks(sorted(curves["tasks_learned"].unique()))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def first_and_latest(frame: pd.DataFrame, title: str = "", task_names: Sequence[str] | None = None):
    """Test accuracy on the first task and on the task just learned, against tasks learned (mean ± SEM); one tick
    per task, named when ``task_names`` are given (e.g. the Vision Mixture's datasets)."""
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4), sharey=True)
    if frame.empty:
        return _nothing(fig, axes[0], title)
    rows = ordered_rows(frame)
    ticks = sorted(int(t) for t in frame["tasks_learned"].unique())
    for ax, col, name in zip(axes, ("first_task", "latest_task"), ("first task", "task just learned")):
        for m, base, variant in rows.itertuples(index=False):
            g = frame[frame["method"] == m].groupby("tasks_learned")[col]
            mean, sem = g.mean(), g.sem().fillna(0.0)
            style = _style(base, variant)
            ax.plot(mean.index, 100 * mean, label=method_label(base, variant), **style)
            ax.fill_between(mean.index, 100 * (mean - sem), 100 * (mean + sem), color=style["color"], alpha=0.2, lw=0)
        ax.set(xlabel="Number of tasks learned", title=f"Accuracy on the {name}")
        if task_names is not None:
            ax.set_xticks(ticks, [f"{t}\n{task_names[t - 1]}" if t <= len(task_names) else str(t) for t in ticks],
                          fontsize=7)
        else:
            ax.set_xticks(ticks)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Test accuracy (%)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def r_heatmaps(matrices: dict[str, np.ndarray], title: str = ""):
    """One heatmap per method of R[T, i] (test accuracy on task i after learning task T), in percent."""
    fig, axes = plt.subplots(1, max(len(matrices), 1), figsize=(5.2 * max(len(matrices), 1), 4.4), squeeze=False)
    if not matrices:
        return _nothing(fig, axes[0][0], title)
    for ax, (method, R) in zip(axes[0], matrices.items()):
        n = R.shape[0]
        labels = list(range(1, n + 1))
        sns.heatmap(pd.DataFrame(100 * R, index=labels, columns=labels), ax=ax, vmin=0, vmax=100, cmap="viridis",
                    annot=n <= 10, fmt=".0f", annot_kws={"size": 7}, cbar=ax is axes[0][-1],
                    mask=np.isnan(R))
        ax.set(xlabel="Task tested", ylabel="After learning task", title=_name(method))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def traces(frame: pd.DataFrame, title: str = ""):
    """Figure 3: eta, ||Hebb||_F and ||alpha||_F through the tasks, mean ± SEM over trials. ``frame`` has columns
    ``seed, task, step, eta, hebb_norm, alpha_norm`` (a run's traces); each task is drawn one unit wide, its
    traced steps placed by their progress through it (:func:`dhclib.paper.report.traces_by_progress`), so the
    trials' tasks line up although early stopping gives them different lengths."""
    aligned = traces_by_progress(frame)
    n_tasks = int(aligned["task"].max()) + 1
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for ax, col, name in zip(axes, ("eta", "hebb_norm", "alpha_norm"),
                             (r"plastic learning rate $\eta$", r"$\|\mathrm{Hebb}\|_F$", r"$\|\alpha\|_F$")):
        g = aligned.groupby("progress")[col]
        mean, sem = g.mean(), g.sem().fillna(0.0)
        ax.plot(mean.index, mean, lw=1)
        ax.fill_between(mean.index, mean - sem, mean + sem, alpha=0.3, lw=0)
        for b in range(1, n_tasks):
            ax.axvline(b, color="grey", lw=0.6, ls=":")
        ax.set_xticks([k + 0.5 for k in range(n_tasks)], [str(k + 1) for k in range(n_tasks)])
        ax.set(xlabel="Task (its training steps, each task drawn one unit wide)", title=name, xlim=(0, n_tasks))
        if col == "hebb_norm" and mean.max() > 10 * max(mean.median(), 1e-12):
            # a runaway trace spans orders of magnitude: on a linear axis the rest of the curve is a flat line
            ax.set_yscale("log")
            ax.set_title(name + " (log scale)")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def eta_sweep(table: pd.DataFrame, paper: pd.DataFrame | None = None, title: str = ""):
    """Table 4 / Figure 4: final average accuracy against the initial eta, one panel per benchmark; ours as mean
    ± SEM over trials, the paper's as crosses. ``table``: :func:`dhclib.paper.report.eta_table` (``benchmark,
    eta_init, trials, diverged, avg_acc_mean, avg_acc_sem``). A mean of fewer runs than were started is marked
    "k of n"; a value whose every run diverged is a red cross on the panel's floor."""
    benches = [b for b in BENCHMARK_NAMES if b in set(table["benchmark"])]  # the registry's order, as the notebooks'
    fig, axes = plt.subplots(1, len(benches), figsize=(4.6 * len(benches), 3.8), squeeze=False)
    for ax, bench in zip(axes[0], benches):
        sub = table[table["benchmark"] == bench].sort_values("eta_init")
        ok = sub[sub["trials"] > 0]
        ax.errorbar(ok["eta_init"], 100 * ok["avg_acc_mean"], yerr=100 * ok["avg_acc_sem"].fillna(0.0), marker="o",
                    capsize=3, label="dhc")
        for _, row in ok[ok["diverged"] > 0].iterrows():
            ax.annotate(f"{row['trials']} of {row['trials'] + row['diverged']}",
                        (row["eta_init"], 100 * row["avg_acc_mean"]), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=7, color="red")
        bad = sub[sub["trials"] == 0]
        if len(bad):
            floor = 100 * ok["avg_acc_mean"].min() if len(ok) else 0.0
            ax.plot(bad["eta_init"], [floor] * len(bad), "x", color="red", ms=8, label="diverged (no result)")
        if paper is not None:
            p = paper[paper["benchmark"] == bench]
            ax.plot(p["eta_init"], 100 * p["avg_acc"], "x", color="k", label="paper (Table 4)")
        ax.set_xscale("log")
        ax.set(xlabel=r"initial $\eta$", ylabel="Average test accuracy (%)", title=registry.benchmark(bench).title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def lambda_search(table: pd.DataFrame, title: str = "", param: str = "lam", grid_end: dict | None = None):
    """Appendix A's search: average accuracy after the last task against lambda (log axis), one panel per method
    of a :func:`dhclib.paper.report.grid_table`; the paper's choice is a dashed line with a ring, the best value a star,
    and values whose runs diverged are crosses on the panel's floor. ``grid_end``: per method, the largest value of
    the paper's grid, shaded beyond (values we added)."""
    rows = ordered_rows(table)
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.6), squeeze=False)
    for ax, (m, method, variant) in zip(axes[0], rows.itertuples(index=False)):
        sub = table[table["method"] == m].sort_values(param)
        ok = sub[~sub["diverged"]]
        color = method_color(method)
        ax.plot(ok[param], 100 * ok["avg_acc"], marker="o", ms=4, color=color, label="dhc, seed 0")
        ref = sub[sub["paper_choice"]]
        for _, row in ref.iterrows():
            ax.axvline(row[param], color="k", ls="--", lw=0.8, label=f"paper's choice ({row[param]:g})")
            if not row["diverged"]:
                ax.plot(row[param], 100 * row["avg_acc"], "o", ms=10, mfc="none", mec="k")
        if len(ok):
            best = ok.loc[ok["avg_acc"].idxmax()]
            ax.plot(best[param], 100 * best["avg_acc"], "*", ms=12, color="gold", mec="k",
                    label=f"best here ({best[param]:g}: {100 * best['avg_acc']:.2f}%)")
        bad = sub[sub["diverged"]]
        if len(bad):
            floor = 100 * ok["avg_acc"].min() if len(ok) else 0.0
            ax.plot(bad[param], [floor] * len(bad), "x", color="red", ms=8, label="diverged (no result)")
        if grid_end and m in grid_end:
            ax.axvspan(grid_end[m], sub[param].max() * 1.5, color="grey", alpha=0.15, lw=0,
                       label="beyond the paper's grid")
        ax.set_xscale("log")
        symbol = registry.regulariser(registry.method(method).regulariser).strength_symbol
        ax.set(xlabel=symbol if param == "lam" else param, ylabel="Average test accuracy (%)",
               title=method_label(method, variant))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_counts(counts: pd.DataFrame, title: str = ""):
    """Training samples per class (rows) and task (columns), as a heatmap (Table 2)."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    sns.heatmap(counts, annot=True, fmt="d", cmap="mako", ax=ax, annot_kws={"size": 7})
    ax.set(xlabel="Task", ylabel="Class", title=title)
    fig.tight_layout()
    return fig


def final_task_bars(acc: pd.DataFrame, task_names: Sequence[str], paper: pd.DataFrame | None = None,
                    title: str = ""):
    """Figure 8: test accuracy on every task after the last one, one bar per method and task (± SEM); the legend
    gives each method's average over the tasks, and the paper's (``paper``: method, avg_acc) beside it."""
    fig, ax = _axes(None, (8.4, 4.2))
    if acc.empty:
        return _nothing(fig, ax, title)
    rows = ordered_rows(acc)
    ref = {} if paper is None else dict(zip(paper["method"], paper["avg_acc"]))
    width = 0.8 / max(len(rows), 1)
    for k, (m, base, variant) in enumerate(rows.itertuples(index=False)):
        sub = acc[acc["method"] == m].sort_values("task")
        x = sub["task"].to_numpy() + (k - (len(rows) - 1) / 2) * width
        label = f"{method_label(base, variant)}: {100 * sub['acc_mean'].mean():.2f}%"
        if m in ref:
            label += f" (paper {100 * ref[m]:.2f}%)"
        ax.bar(x, 100 * sub["acc_mean"], width, yerr=100 * sub["acc_sem"].fillna(0.0), label=label,
               color=method_color(base), capsize=2)
    ax.set_xticks(range(len(task_names)), [f"T{i + 1}\n{n}" for i, n in enumerate(task_names)], fontsize=8)
    ax.set(ylabel="Test accuracy after the last task (%)", title=title, ylim=(0, 100))
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def dhp_gains(seeds: pd.DataFrame, benchmarks: Sequence[str], paper_gain=None, title: str = ""):
    """What adding DHP Softmax changes, seed by seed: for each of Table 1's pairs (rows) on each benchmark
    (panels), DHP variant minus baseline in points of average accuracy after the last task, one dot per seed both
    have (``seeds``: benchmark, method, seed, avg_acc), their mean as a bar, and the paper's difference of means
    as a cross (``paper_gain(benchmark, baseline, dhp)``)."""
    pairs = list(registry.pairs())
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(4.2 * len(benchmarks), 0.55 * len(pairs) + 1.4),
                             sharey=True, squeeze=False)
    for ax, b in zip(axes[0], benchmarks):
        runs = seeds[seeds["benchmark"] == b].pivot_table(index="seed", columns="method", values="avg_acc")
        for y, (baseline, dhp) in enumerate(pairs):
            if baseline in runs and dhp in runs:
                diff = 100 * (runs[dhp] - runs[baseline]).dropna()
                if len(diff):
                    ax.scatter(diff, np.full(len(diff), y), s=14, color=method_color(dhp), alpha=0.75, zorder=3)
                    ax.plot([diff.mean()] * 2, [y - 0.3, y + 0.3], color=method_color(dhp), lw=2.5)
            if paper_gain is not None:
                ax.scatter([paper_gain(b, baseline, dhp)], [y], marker="x", s=40, color="black", zorder=4)
        ax.axvline(0, color="0.6", lw=0.8)
        ax.set(title=registry.benchmark(b).title, xlabel="DHP − baseline (points)")
    axes[0][0].set_yticks(range(len(pairs)), [f"+ DHP on {registry.method(base).label}" for base, _ in pairs])
    axes[0][0].invert_yaxis()
    fig.suptitle(title or "Adding DHP Softmax, paired by seed: dots ours (bar: mean), × the paper", fontsize=10)
    fig.tight_layout()
    return fig


def save(fig, out_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write ``fig`` as ``<out_dir>/<name>.png`` and ``.pdf``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    return paths


def _nothing(fig, ax, title: str):
    """A figure that says there is nothing to plot (e.g. ``missing="skip"`` with no stored run), not an error."""
    ax.text(0.5, 0.5, "no stored runs to plot", ha="center", va="center", transform=ax.transAxes)
    ax.set(title=title, xticks=[], yticks=[])
    return fig


def _axes(ax, size):
    if ax is None:
        fig, ax = plt.subplots(figsize=size)
        return fig, ax
    return ax.figure, ax
