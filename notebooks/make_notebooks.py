"""Writes the notebooks of this folder (without outputs); `make notebooks` then executes them in place.

The three MNIST benchmark notebooks share their structure, so they are generated from one template here: edit this
file, not the .ipynb files, and run ``python notebooks/make_notebooks.py``. Cells marked ``# NBVAL_CHECK_OUTPUT``
are the ones nbval compares (run with ``--nbval-lax``): the final result tables, printed as plain text and rounded.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMETERS = '''profile = "quick"  # "quick" (CPU, minutes) | "paper" (SPEC §4-§5 exactly; a GPU is advised)
methods = "all"  # Table 1's eight, or a list such as ["finetune", "dhp"]
trials = 3  # seeds 0 .. trials-1 (the paper: 10)
device = "auto"  # "auto" | "cpu" | "cuda"
data_dir = None  # data root; None: $DHC_DATA_DIR (README, "Data")
output_dir = None  # tables, figures, executed notebook; None: outputs/<profile>/<notebook>/
store_dir = None  # the result store shared by the notebooks; None: outputs/<profile>/
overrides = {}  # config overrides passed to dhclib, e.g. {"max_epochs": 20}'''

SETUP = '''import pandas as pd

import dhclib
from dhclib import paper, plots, report
from dhclib.outputs import output_dirs, save_table

pd.set_option("display.width", 160)
out_dir, store_dir = output_dirs(NOTEBOOK, profile, output_dir, store_dir)'''

BENCHMARKS = {
    "01_permuted_mnist": dict(
        benchmark="permuted_mnist", title="Permuted MNIST", figure="Figure 2a",
        claim="DHP Softmax alone forgets less than finetuning (Table 1: 78.49% vs 76.73% average accuracy after 10 "
              "tasks), and adding it to Online EWC, SI or MAS improves each of them (best: DHP Softmax + MAS, "
              "89.53%).",
        extra=""),
    "02_imbalanced_permuted_mnist": dict(
        benchmark="imbalanced_permuted_mnist", title="Imbalanced Permuted MNIST", figure="Figure 5",
        claim="With class-imbalanced tasks (Table 2) DHP Softmax helps more than on balanced Permuted MNIST: 80.85% "
              "vs 76.44% for finetuning, and DHP Softmax + MAS is best (88.80%).",
        extra="imbalance"),
    "03_split_mnist": dict(
        benchmark="split_mnist", title="Split MNIST", figure="Figure 2b",
        claim="On the five two-class tasks (multi-head) DHP Softmax alone nearly removes forgetting (98.23% vs 90.43% "
              "for finetuning), and DHP Softmax + SI is best (99.15%).",
        extra=""),
}


def code(source: str, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def benchmark_notebook(name: str, spec: dict) -> nbformat.NotebookNode:
    b, title = spec["benchmark"], spec["title"]
    cells = [
        new_markdown_cell(
            f"# {title}: Table 1 and {spec['figure']}\n\n"
            f"Reproduces the {title} column of Table 1 (average test accuracy and BWT after the last task, all eight "
            f"methods) and {spec['figure']} (average accuracy against the number of tasks learned) of *Differentiable "
            "Hebbian Consolidation for Continual Learning*, next to the paper's numbers.\n\n"
            "The defaults (`profile=\"quick\"`) run on a CPU in minutes with a scaled-down protocol (README: "
            "\"Profiles\"), so their numbers are **not** comparable to the paper's one to one; `profile=\"paper\"` "
            "follows SPEC §4–§5 exactly. Runs are stored in a resumable result store: re-running trains only what "
            "is missing."),
        code(PARAMETERS, ("parameters",)),
        code(f'NOTEBOOK = "{name}"\nBENCHMARK = "{b}"\n' + SETUP),
    ]
    if spec["extra"] == "imbalance":
        cells += [
            new_markdown_cell(
                "## The class imbalance (Table 2)\n\nFor every task and class the paper removed each training "
                "sample with a probability drawn from U(0, 1). dhclib keeps exactly Table 2's counts (which samples: "
                "drawn with the trial's seed); `overrides={\"imbalance\": \"random\"}` draws afresh instead."),
            code('counts = pd.DataFrame(dhclib.benchmarks.table2_counts()).T\n'
                 'counts.index.name, counts.columns = "class", [f"task {t + 1}" for t in range(counts.shape[1])]\n'
                 'save_table(counts.reset_index(), out_dir, "table2_class_counts")\n'
                 'fig = plots.class_counts(counts, "Training samples per class and task (Table 2)")\n'
                 'plots.save(fig, out_dir, "table2_class_counts");\n'
                 'counts.loc["total"] = counts.sum()\n'
                 'counts'),
        ]
    cells += [
        new_markdown_cell(f"## Training\n\nThe paper's claim: {spec['claim']}"),
        code("# NBVAL_IGNORE_OUTPUT\n"
             "df = dhclib.run_many(BENCHMARK, methods, seeds=f\"0-{trials - 1}\", profile=profile, device=device,\n"
             "                     data_dir=data_dir, out_dir=store_dir, on_diverge=\"record\", progress=\"runs\",\n"
             "                     **overrides)\n"
             "save_table(df, out_dir, \"results_tidy\")\n"
             "diverged = pd.DataFrame(df.attrs[\"diverged\"], columns=[\"method\", \"seed\", \"message\"])\n"
             "save_table(diverged, out_dir, \"diverged\")\n"
             "print(f\"{df.groupby(['method', 'seed']).ngroups} runs, {len(diverged)} diverged\")"),
        new_markdown_cell(
            "Runs whose loss became NaN/inf are not results: they are listed here with the reason (none is "
            "hidden or re-run with other settings)."),
        code("# NBVAL_CHECK_OUTPUT\nprint(diverged.to_string(index=False) if len(diverged) else \"no run diverged\")"),
        new_markdown_cell(
            f"## Table 1, {title} column\n\nOurs: mean ± SEM over the trials run here; the paper's: 10 trials. "
            "Accuracy in %, BWT as a fraction; `diff` = ours − paper."),
        code("# NBVAL_CHECK_OUTPUT\n"
             "table = report.table1_comparison(df, BENCHMARK)\n"
             "save_table(table, out_dir, \"table1\")\n"
             "print(report.percent(table, 1).to_string(index=False))"),
        new_markdown_cell(
            "### Does DHP Softmax help each baseline?\n\nWelch's t-test (two-sided, unequal variances) of each DHP "
            "variant against its baseline over trials; `gain` = variant − baseline. With few trials (the quick "
            "profile) the p-values are weak evidence either way."),
        code("# NBVAL_CHECK_OUTPUT\n"
             "tests = report.welch_tests(df)\n"
             "save_table(tests, out_dir, \"welch_tests\")\n"
             "print(report.percent(tests, 3).to_string(index=False))"),
        new_markdown_cell(f"## {spec['figure']}: average accuracy against the number of tasks learned"),
        code("curves = report.curves(df)\n"
             "save_table(curves, out_dir, \"curves\")\n"
             f"fig = plots.accuracy_curves(curves, f\"{title} ({{profile}} profile, {{trials}} trials)\")\n"
             "plots.save(fig, out_dir, \"average_accuracy\");"),
        new_markdown_cell(
            "## Accuracy on the first task and on the task just learned\n\nForgetting shows on the left; the "
            "right panel shows whether consolidation costs the ability to learn the new task."),
        code("fl = report.first_and_latest(df)\n"
             "save_table(fl, out_dir, \"first_and_latest\")\n"
             "fig = plots.first_and_latest(fl, f\"{BENCHMARK} ({profile} profile)\")\n"
             "plots.save(fig, out_dir, \"first_and_latest\");"),
        new_markdown_cell(
            "## The accuracy matrix R of one trial\n\nR[T, i] is the test accuracy on task i after learning "
            "task T (seed 0): Online EWC and its DHP variant (MAS where EWC diverged)."),
        code("present = set(df[\"method\"])\n"
             "pair = (\"ewc\", \"dhp+ewc\") if {\"ewc\", \"dhp+ewc\"} <= present else (\"mas\", \"dhp+mas\")\n"
             "pair = [m for m in pair if m in present] or sorted(present)[:2]\n"
             "fig = plots.r_heatmaps({m: report.run_matrix(df, m) for m in pair}, f\"{BENCHMARK}: R, seed 0\")\n"
             "plots.save(fig, out_dir, \"r_matrices\");"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def ablation_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# Ablation: Figure 3 and Table 4 / Figure 4\n\n"
            "(a) Figure 3: the plastic learning rate η, ‖Hebb‖_F and ‖α‖_F of DHP Softmax over the training steps "
            "of the ten Permuted MNIST tasks. (b) Table 4 / Figure 4: sensitivity of DHP Softmax alone to the "
            "initial η on the three MNIST benchmarks.\n\nThe defaults run the quick profile on a CPU in minutes; "
            "its numbers are not comparable to the paper's one to one."),
        code(PARAMETERS.replace("trials = 3  # seeds 0 .. trials-1 (the paper: 10)",
                                "trials = 3  # Figure 3's trials (seeds 0 .. trials-1)\n"
                                "sweep_trials = 1  # Table 4's trials per eta (the paper: 5)\n"
                                "eta_inits = [0.1, 0.01, 0.001, 0.0005, 0.0001]  # Table 4's values")
                    .replace('methods = "all"  # Table 1\'s eight, or a list such as ["finetune", "dhp"]\n', ""),
             ("parameters",)),
        code('NOTEBOOK = "05_ablation"\n' + SETUP),
        new_markdown_cell(
            "## (a) Figure 3: η, ‖Hebb‖_F and ‖α‖_F while learning ten Permuted MNIST tasks\n\n"
            "The paper: η rises from 0.001 to about 0.024 during task 1 and decays after task 3, rising then "
            "decaying within each later task; ‖Hebb‖_F grows with each task without runaway; ‖α‖_F grows within "
            "each task."),
        code("# NBVAL_IGNORE_OUTPUT\n"
             "seeds = f\"0-{trials - 1}\"\n"
             "dhclib.run_many(\"permuted_mnist\", \"dhp\", seeds, profile, device, data_dir, store_dir, progress=\"runs\",\n"
             "                on_diverge=\"record\", **overrides)\n"
             "runs = dhclib.load_runs(store_dir, \"permuted_mnist\", \"dhp\", seeds, profile, device, **overrides)\n"
             "traces = pd.concat([r.traces.assign(seed=r.config[\"seed\"]) for r in runs], ignore_index=True)\n"
             "save_table(traces, out_dir, \"traces\")\n"
             "fig = plots.traces(traces, report.task_boundaries(runs[0].traces),\n"
             "                   f\"DHP Softmax on Permuted MNIST ({profile} profile, {trials} trials)\")\n"
             "plots.save(fig, out_dir, \"figure3_traces\");"),
        code("# NBVAL_CHECK_OUTPUT\n"
             "summary = report.trace_summary(traces)\n"
             "save_table(summary, out_dir, \"traces_by_task\")\n"
             "print(summary.round(4).to_string(index=False))"),
        new_markdown_cell(
            "## (b) Table 4 / Figure 4: the initial η\n\nThe paper: DHP Softmax alone is insensitive to the "
            "initial η between 0.1 and 0.0001 (within about 1.2 points on each benchmark)."),
        code("# NBVAL_IGNORE_OUTPUT\n"
             "sweep = pd.concat([\n"
             "    dhclib.run_grid(b, \"dhp\", \"eta_init\", eta_inits, f\"0-{sweep_trials - 1}\", profile, device,\n"
             "                    data_dir, store_dir, progress=\"runs\", **overrides)\n"
             "    for b in (\"permuted_mnist\", \"imbalanced_permuted_mnist\", \"split_mnist\")], ignore_index=True)\n"
             "save_table(sweep, out_dir, \"eta_sweep_tidy\");"),
        code("# NBVAL_CHECK_OUTPUT\n"
             "table4 = report.eta_table(sweep)\n"
             "save_table(table4, out_dir, \"table4\")\n"
             "print(report.percent(table4, 1).to_string(index=False))"),
        code("fig = plots.eta_sweep(report.eta_runs(sweep), paper.table4(), f\"Initial eta ({profile} profile)\")\n"
             "plots.save(fig, out_dir, \"figure4_eta_sweep\");"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def main() -> None:
    for name, spec in BENCHMARKS.items():
        nbformat.write(benchmark_notebook(name, spec), HERE / f"{name}.ipynb")
    nbformat.write(ablation_notebook(), HERE / "05_ablation.ipynb")


if __name__ == "__main__":
    main()
