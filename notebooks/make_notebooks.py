"""Writes the notebooks of this folder (without outputs); `make notebooks` then executes them in place.

The three MNIST benchmark notebooks share their structure, so they are generated from one template here: edit this
file, not the .ipynb files, and run ``python notebooks/make_notebooks.py [NAME ...]``. Cells marked ``# NBVAL_CHECK_OUTPUT``
are the ones nbval compares (run with ``--nbval-lax``): the final result tables, printed as plain text and rounded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dhclib.regression import MEASURED_SPREAD, RELATIVE_TOLERANCE, TOLERANCE

HERE = Path(__file__).resolve().parent

PARAMETERS = '''profile = "quick"  # "quick" (CPU, minutes) | "paper" (SPEC §4-§5 exactly; a GPU is advised)
methods = "all"  # Table 1's eight, or a list such as ["finetune", "dhp"]
trials = 3  # seeds 0 .. trials-1 (the paper: 10)
device = "auto"  # "auto" | "cpu" | "cuda"
data_dir = None  # data root; None: $DHC_DATA_DIR (README, "Data")
output_dir = None  # tables, figures, executed notebook; None: outputs/<profile>/<notebook>/
store_dir = None  # the result store shared by the notebooks; None: outputs/<profile>/
overrides = {}  # config overrides passed to dhclib, e.g. {"max_epochs": 20}
missing = "train"  # runs not in the store: "train" them, or "skip" (tabulate only what is stored)'''

SETUP = '''from functools import partial

import pandas as pd

import dhclib
from dhclib import paper, plots, regression, report
from dhclib.outputs import output_dirs, save_table

pd.set_option("display.width", 160)
out_dir, store_dir = output_dirs(NOTEBOOK, profile, output_dir, store_dir)
# reference("table1"): the committed table the checked cells compare with (README, "Reproducibility")
reference = partial(regression.reference_path, NOTEBOOK, profile=profile)'''

REGRESSION_NOTE = (
    "**Regression check.** The exact numbers above depend on the machine's numeric path (torch build, CPU "
    "kernels, BLAS: README, \"Reproducibility\"); the same seed on another machine gives somewhat different "
    "accuracies. The cell below is the one the tests compare: each method's mean average accuracy and BWT must lie "
    f"within {TOLERANCE['avg_acc'] * 100:g} and {TOLERANCE['bwt'] * 100:g} points of the committed reference "
    "(`tests/reference/`), and the trial counts and verdicts must be the same. The largest change measured across "
    f"numeric paths on the quick profile was {MEASURED_SPREAD * 100:.2f} points; a method broken on purpose "
    "(MAS with its penalty switched off) falls by 6.1 points and fails it (`tests/test_regression.py`).")

TRACE_CHECK_NOTE = (
    "**Regression check.** The traces' exact values depend on the machine's numeric path (README, "
    "\"Reproducibility\"). The cell below, the one the tests compare, requires each task's η, ‖Hebb‖_F and ‖α‖_F "
    f"within {RELATIVE_TOLERANCE['eta']:.0%} of the committed reference (`tests/reference/`), and Table 4's means "
    f"within {TOLERANCE['avg_acc'] * 100:g} points.")

SEARCH_CHECK_NOTE = (
    "**Regression check.** The cells the tests compare require every grid point's average accuracy and BWT within "
    f"{TOLERANCE['avg_acc'] * 100:g} and {TOLERANCE['bwt'] * 100:g} points of the committed reference "
    "(`tests/reference/`; the exact numbers depend on the machine's numeric path, README \"Reproducibility\"), and "
    "the same trials and divergences. The best λ of a grid is not checked where grid points lie within the "
    "tolerance of each other; its accuracy is.")

# Extra rows beside Table 1's, each clearly labelled by what differs from the paper's configuration.
VARIANTS = {
    "01_permuted_mnist": '[{"methods": ["si", "dhp+si"], "overrides": {"lam": 50.0}}]',
    "02_imbalanced_permuted_mnist": '[{"methods": ["ewc", "dhp+ewc"], "overrides": {"fisher_mode": "batch"}}]',
}

BENCHMARKS = {
    "01_permuted_mnist": dict(
        benchmark="permuted_mnist", title="Permuted MNIST", figure="Figure 2a",
        claim="DHP Softmax alone forgets less than finetuning (Table 1: 78.49% vs 76.73% average accuracy after 10 "
              "tasks), and adding it to Online EWC, SI or MAS improves each of them (best: DHP Softmax + MAS, "
              "89.53%).",
        extra="",
        variant_note="\n\nThe rows `si [lam=50.0]` and `dhp+si [lam=50.0]` use the SI strength c = 50 that our "
                     "search found on the quick profile (notebook 07: accuracy rises with c far past the paper's "
                     "grid, which ends at 1.0). At the paper's c = 0.1, SI's penalty is so weak with plain SGD that "
                     "SI behaves like finetuning. This is our tuning, on seed 0, not the paper's configuration; "
                     "the Online EWC search also found λ = 20 better than 100 on the quick profile (not shown here "
                     "to keep the notebook's test time down)."),
    "02_imbalanced_permuted_mnist": dict(
        benchmark="imbalanced_permuted_mnist", title="Imbalanced Permuted MNIST", figure="Figure 5",
        claim="With class-imbalanced tasks (Table 2) DHP Softmax helps more than on balanced Permuted MNIST: 80.85% "
              "vs 76.44% for finetuning, and DHP Softmax + MAS is best (88.80%).",
        extra="imbalance",
        variant_note="\n\nWith the paper's λ = 400 and SPEC §3's per-sample Fisher, Online EWC diverges on this "
                     "benchmark (the penalty's stiffness `lr · 2λ · Ω` exceeds 2, where plain SGD diverges; README, "
                     "\"Known issue\"). Its Table 1 rows therefore stay empty, and the rows "
                     "`ewc [fisher_mode=batch]` and `dhp+ewc [fisher_mode=batch]` show Online EWC with the "
                     "squared mini-batch gradients, a Fisher estimate about 64 times smaller, at the same λ."),
    "04_vision_mixture": dict(
        benchmark="vision_mixture", title="Vision Datasets Mixture", figure="Figure 6",
        claim="On five different datasets learned in turn with Table 3's CNN, DHP Softmax alone forgets less than "
              "finetuning (62.94% vs 60.02% after five tasks), DHP Softmax + SI is best (81.75%), and DHP Softmax "
              "improves MAS by 2.14 points (80.66% vs 78.51%).",
        extra="vision"),
    "03_split_mnist": dict(
        benchmark="split_mnist", title="Split MNIST", figure="Figure 2b",
        claim="On the five two-class tasks (multi-head) DHP Softmax alone nearly removes forgetting (98.23% vs 90.43% "
              "for finetuning), and DHP Softmax + SI is best (99.15%).",
        extra=""),
}


def _notebook(cells: list) -> nbformat.NotebookNode:
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"  # stable ids, as scripts/normalize_notebook.py writes them after execution
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def code(source: str, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def benchmark_notebook(name: str, spec: dict) -> nbformat.NotebookNode:
    b, title = spec["benchmark"], spec["title"]
    params = PARAMETERS + (
        f"\nvariants = {VARIANTS.get(name, '[]')}  # extra labelled rows: "
        '[{"methods": [...], "overrides": {...}}]')
    if spec["extra"] == "vision":  # a CNN run costs ~10x an MLP run on a CPU: two trials keep make test short
        params = params.replace("trials = 3  # seeds 0 .. trials-1 (the paper: 10)",
                                "trials = 2  # seeds 0 .. trials-1 (the paper: 10)") + VISION_PARAMETERS
    cells = [
        new_markdown_cell(
            f"# {title}: Table 1 and {spec['figure']}\n\n" + (VISION_INTRO if spec["extra"] == "vision" else "") +
            f"Reproduces the {title} column of Table 1 (average test accuracy and BWT after the last task, all eight "
            f"methods) and {spec['figure']} (average accuracy against the number of tasks learned) of *Differentiable "
            "Hebbian Consolidation for Continual Learning*, next to the paper's numbers.\n\n"
            "The defaults (`profile=\"quick\"`) run on a CPU in minutes with a scaled-down protocol (README: "
            "\"Profiles\"), so their numbers are **not** comparable to the paper's one to one; `profile=\"paper\"` "
            "follows SPEC §4–§5 exactly. Runs are stored in a resumable result store: re-running trains only what "
            "is missing."),
        code(params, ("parameters",)),
        code(f'NOTEBOOK = "{name}"\nBENCHMARK = "{b}"\n' + SETUP),
    ]
    if spec["extra"] == "vision":
        cells += [
            new_markdown_cell(
                "## The tasks of this run\n\nThe paper's sequence is MNIST → notMNIST → FashionMNIST → SVHN → "
                "CIFAR-10. Which of them this run learns, and what the data root lacks for the others:"),
            code("overrides = dict(overrides, vision_tasks=vision_tasks, notmnist_split=notmnist_split)\n"
                 "tasks_run = report.vision_tasks_run(vision_tasks, data_dir)\n"
                 "save_table(tasks_run, out_dir, \"tasks_run\")\n"
                 "print(f\"notMNIST split: {notmnist_split}\")\n"
                 "print(tasks_run.to_string(index=False))"),
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
             "seeds = f\"0-{trials - 1}\"\n"
             "df = dhclib.run_many(BENCHMARK, methods, seeds, profile, device, data_dir, store_dir, progress=\"runs\",\n"
             "                     on_diverge=\"record\", missing=missing, **overrides)\n"
             "extra = dhclib.run_variants(BENCHMARK, variants, seeds, profile, device, data_dir, store_dir,\n"
             "                            progress=\"runs\", missing=missing, **overrides)\n"
             "failed = df.attrs[\"diverged\"] + extra.attrs[\"diverged\"]\n"
             "df = pd.concat([df, extra], ignore_index=True)\n"
             "save_table(df, out_dir, \"results_tidy\")\n"
             "diverged = pd.DataFrame(failed, columns=[\"method\", \"seed\", \"message\"])\n"
             "save_table(diverged, out_dir, \"diverged\")\n"
             "print(f\"{df.groupby(['method', 'seed']).ngroups} runs, {len(diverged)} diverged\")"),
        new_markdown_cell(
            "Runs whose loss became NaN/inf are not results: they are listed here with the reason. None is hidden "
            "or replaced: an extra row with another setting is labelled as such in the table below."),
        code("print(diverged.to_string(index=False) if len(diverged) else \"no run diverged\")"),
        code("# NBVAL_CHECK_OUTPUT\n"
             "print(regression.format_check(regression.check_table(\n"
             "    diverged[[\"method\", \"seed\"]], reference(\"diverged\"), keys=[\"method\", \"seed\"])))"),
        new_markdown_cell(
            f"## Table 1, {title} column\n\nOurs: mean ± SEM over the trials run here; the paper's: 10 trials. "
            "Accuracy in %, BWT as a fraction; `diff` = ours − paper. A row named `method [setting=value]` is an "
            "extra row (parameter `variants`) run with a setting that differs from the paper's; its paper column "
            f"is the paper's value for the method.{spec.get('variant_note', '')}"),
        code("table = report.table1_comparison(df, BENCHMARK)\n"
             + ("table.insert(1, \"tasks\", f\"{len(vision_tasks)} of 5\")  # the paper's column: all five\n"
                if spec["extra"] == "vision" else "") +
             "save_table(table, out_dir, \"table1\")\n"
             "print(report.percent(table, 1).to_string(index=False))"),
        new_markdown_cell(REGRESSION_NOTE),
        code("# NBVAL_CHECK_OUTPUT\n"
             "print(regression.format_check(regression.check_table(\n"
             "    table, reference(\"table1\"), keys=[\"method\"], values=[\"avg_acc_mean\", \"bwt_mean\"],\n"
             "    exact=[c for c in (\"trials\", \"tasks\") if c in table])))"),
        new_markdown_cell(
            "### Does DHP Softmax help each baseline?\n\nA DHP run and its baseline's run of the same seed share "
            "the initialisation of the slow weights, the permutations and the data order, so the two are compared "
            "pair by pair: the paired t-test and the Wilcoxon signed-rank test (two-sided) of the per-seed "
            "differences over the seeds both have, with Welch's unpaired test beside them for comparison "
            "(`welch_p`); `gain` = variant − baseline, `better` = seeds on which DHP Softmax is higher. With few "
            "trials (the quick profile) the p-values are weak evidence either way; with 5 pairs or fewer "
            "Wilcoxon's p cannot fall below 0.0625."),
        code("tests = report.paired_tests(df)\n"
             "save_table(tests, out_dir, \"paired_tests\")\n"
             "print(report.percent(tests, 3).to_string(index=False))"),
        new_markdown_cell(
            "### The verdict, pair by pair\n\n`paper_avg_acc_gain` is the gain from adding DHP Softmax that Table 1 "
            "reports for each pair. A gain counts as reproduced here only if it is positive with the paired "
            "t-test's p < 0.05 (`avg_acc_p`; Welch's beside it); accuracy gains in points."),
        code("verdicts = report.dhp_verdicts(df, BENCHMARK)\n"
             "save_table(verdicts, out_dir, \"verdicts\")\n"
             "print(report.percent(verdicts, 2).to_string(index=False))"),
        code("# NBVAL_CHECK_OUTPUT\n"
             "print(regression.format_check(regression.check_table(\n"
             "    verdicts, reference(\"verdicts\"), keys=[\"baseline\"], exact=[\"verdict\", \"pairs\"])))"),
        new_markdown_cell(f"## {spec['figure']}: average accuracy against the number of tasks learned"),
        code("curves = report.curves(df)\n"
             "save_table(curves, out_dir, \"curves\")\n"
             f"fig = plots.accuracy_curves(curves, f\"{title} ({{profile}} profile, {{df.seed.nunique()}} trials)\")\n"
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
    return _notebook(cells)


VISION_PARAMETERS = '''
vision_tasks = ["mnist", "notmnist", "fashion_mnist"]  # this workplace's data; the paper: + "svhn", "cifar10"
notmnist_split = "test_resplit"  # here only notMNIST's test split exists; the paper: "official" (60,000 / 10,000)'''

VISION_INTRO = (
    "**What the committed outputs are.** The data root of the workplace where this notebook was committed has "
    "MNIST, FashionMNIST and only the test split of notMNIST, and no SVHN or CIFAR-10. Its outputs are therefore a "
    "quick-profile run over **three of the paper's five tasks** — MNIST, notMNIST built from its test split alone "
    "(`notmnist_split=\"test_resplit\"`: a stratified, seeded 80/20 re-split) and FashionMNIST — and the table "
    "says so in its `tasks` column: these numbers are not the paper's 5-Vision column. With all the data, run "
    "`vision_tasks=[\"mnist\", \"notmnist\", \"fashion_mnist\", \"svhn\", \"cifar10\"]` and "
    "`notmnist_split=\"official\"` (`make reproduce PROFILE=paper` does).\n\n")


def split_cifar_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# Split CIFAR-10/100: Figure 8\n\n"
            "Appendix D replicates the Split CIFAR-10/100 experiment of Zenke et al. (2017): the network first "
            "learns all of CIFAR-10, then five tasks of ten consecutive CIFAR-100 classes (0–9, …, 40–49), one "
            "10-way head per task. Figure 8 shows the test accuracy on every task after the last one for DHP "
            "Softmax, and quotes Finetune, SI and training from scratch (a new network per task) from von Oswald "
            "et al. (2019). The network and protocol are Zenke et al.'s (README, \"Choices\": Adam, batch 256, "
            "60 epochs per task; our decisions where the paper is silent are there too).\n\n"
            "**What the committed notebook holds.** The workplace where it was committed has no CIFAR data, so "
            "it is committed without outputs and `make test` skips it with the reason; a pipeline check runs it "
            "on generated files. `make reproduce` runs it where `cifar-10-batches-py/` and `cifar-100-python/` "
            "are under the data root (README, \"Data\")."),
        code(PARAMETERS.replace('methods = "all"  # Table 1\'s eight, or a list such as ["finetune", "dhp"]',
                                'methods = "all"  # Figure 8\'s: finetune, dhp, si, dhp+si, scratch'),
             ("parameters",)),
        code('NOTEBOOK = "06_split_cifar"\nBENCHMARK = "split_cifar10_100"\n' + SETUP + "\n"
             "from dhclib.benchmarks import SPLIT_CIFAR_TASK_NAMES"),
        new_markdown_cell(
            "## Training\n\nThe paper's claim: DHP Softmax alone (61.28% averaged over the six tasks) "
            "significantly outperforms finetuning (47.5%) and on some tasks matches or beats training from "
            "scratch (64.83%); SI reaches 73.33%."),
        code("# NBVAL_IGNORE_OUTPUT\n"
             "seeds = f\"0-{trials - 1}\"\n"
             "df = dhclib.run_many(BENCHMARK, methods, seeds, profile, device, data_dir, store_dir, progress=\"runs\",\n"
             "                     on_diverge=\"record\", missing=missing, **overrides)\n"
             "save_table(df, out_dir, \"results_tidy\")\n"
             "diverged = pd.DataFrame(df.attrs[\"diverged\"], columns=[\"method\", \"seed\", \"message\"])\n"
             "save_table(diverged, out_dir, \"diverged\")\n"
             "print(f\"{df.groupby(['method', 'seed']).ngroups} runs, {len(diverged)} diverged\")"),
        code("# NBVAL_CHECK_OUTPUT\nprint(diverged.to_string(index=False) if len(diverged) else \"no run diverged\")"),
        new_markdown_cell(
            "## Figure 8's numbers: accuracy after the last task, averaged over the six tasks\n\n"
            "Ours: mean ± SEM over trials; the paper's: as printed in Figure 8 (DHP Softmax its own; the others "
            "quoted from von Oswald et al. 2019, who trained the same network). `diff` = ours − paper."),
        code("# NBVAL_CHECK_OUTPUT\n"
             "table = report.figure8_comparison(df)\n"
             "save_table(table, out_dir, \"figure8\")\n"
             "print(report.percent(table, 2).to_string(index=False))"),
        new_markdown_cell("## Figure 8: accuracy on each task after the last one"),
        code("# NBVAL_CHECK_OUTPUT\n"
             "per_task = report.final_task_accuracy(df)\n"
             "per_task[\"task_name\"] = per_task[\"task\"].map(dict(enumerate(SPLIT_CIFAR_TASK_NAMES)))\n"
             "save_table(per_task, out_dir, \"per_task_accuracy\")\n"
             "print(report.percent(per_task, 1).to_string(index=False))"),
        code("fig = plots.final_task_bars(per_task, SPLIT_CIFAR_TASK_NAMES, paper.figure8(),\n"
             "                           f\"Split CIFAR-10/100 ({profile} profile, {df.seed.nunique()} trials)\")\n"
             "plots.save(fig, out_dir, \"figure8_per_task\");"),
        new_markdown_cell("## Average accuracy against the number of tasks learned"),
        code("curves = report.curves(df)\n"
             "save_table(curves, out_dir, \"curves\")\n"
             "fig = plots.accuracy_curves(curves, f\"Split CIFAR-10/100 ({profile} profile)\")\n"
             "plots.save(fig, out_dir, \"average_accuracy\");"),
    ]
    return _notebook(cells)


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
             "                on_diverge=\"record\", missing=missing, **overrides)\n"
             "runs = dhclib.load_runs(store_dir, \"permuted_mnist\", \"dhp\", seeds, profile, device,\n"
             "                        missing=\"skip\" if missing == \"skip\" else \"raise\", **overrides)\n"
             "traces = pd.concat([r.traces.assign(seed=r.config[\"seed\"]) for r in runs], ignore_index=True)\n"
             "save_table(traces, out_dir, \"traces\")\n"
             "fig = plots.traces(traces, report.task_boundaries(runs[0].traces),\n"
             "                   f\"DHP Softmax on Permuted MNIST ({profile} profile, {len(runs)} trials)\")\n"
             "plots.save(fig, out_dir, \"figure3_traces\");"),
        code("summary = report.trace_summary(traces)\n"
             "save_table(summary, out_dir, \"traces_by_task\")\n"
             "print(summary.round(4).to_string(index=False))"),
        new_markdown_cell(TRACE_CHECK_NOTE),
        code("# NBVAL_CHECK_OUTPUT\n"
             "print(regression.format_check(regression.check_table(\n"
             "    summary, reference(\"traces_by_task\"), keys=[\"task\"], values=[\"eta_end\", \"eta_max\", \"hebb_norm_end\", \"hebb_norm_max\", \"alpha_norm_end\"])))"),
        new_markdown_cell("Figure 3's claims against our traces (eta with its gradient truncated to one step, as in "
                          "Listing 1: `eta_grad_horizon=1`; SPEC §1):"),
        code("checks = report.figure3_checks(summary)\n"
             "save_table(checks, out_dir, \"figure3_checks\")\n"
             "print(checks.to_string(index=False))"),
        new_markdown_cell(
            "## (b) Table 4 / Figure 4: the initial η\n\nThe paper: DHP Softmax alone is insensitive to the "
            "initial η between 0.1 and 0.0001 (within about 1.2 points on each benchmark)."),
        code("# NBVAL_IGNORE_OUTPUT\n"
             "sweep = pd.concat([\n"
             "    dhclib.run_grid(b, \"dhp\", \"eta_init\", eta_inits, f\"0-{sweep_trials - 1}\", profile, device,\n"
             "                    data_dir, store_dir, progress=\"runs\", missing=missing, **overrides)\n"
             "    for b in (\"permuted_mnist\", \"imbalanced_permuted_mnist\", \"split_mnist\")], ignore_index=True)\n"
             "save_table(sweep, out_dir, \"eta_sweep_tidy\");"),
        code("table4 = report.eta_table(sweep)\n"
             "save_table(table4, out_dir, \"table4\")\n"
             "print(report.percent(table4, 1).to_string(index=False))"),
        code("# NBVAL_CHECK_OUTPUT\n"
             "print(regression.format_check(regression.check_table(\n"
             "    table4, reference(\"table4\"), keys=[\"benchmark\", \"eta_init\"], values=[\"avg_acc_mean\"], exact=[\"trials\"])))"),
        code("fig = plots.eta_sweep(report.eta_runs(sweep), paper.table4(), f\"Initial eta ({profile} profile)\")\n"
             "plots.save(fig, out_dir, \"figure4_eta_sweep\");"),
    ]
    return _notebook(cells)


LAMBDA_PARAMETERS = '''profile = "quick"  # Split MNIST's search: "quick" (CPU, a minute) | "paper" (SPEC §4, as the paper searched)
permuted_profile = "quick"  # Permuted MNIST's search (the paper profile costs about 10 min a run on a CPU)
seed = 0  # the paper searched on one task sequence, i.e. one seed
regularisers = ["ewc", "si", "mas"]  # the baselines whose lambda the paper searched
device = "auto"  # "auto" | "cpu" | "cuda"
data_dir = None  # data root; None: $DHC_DATA_DIR (README, "Data")
output_dir = None  # tables and figures; None: outputs/<profile>/07_lambda_search/
store_dir = None  # Split MNIST's result store; None: outputs/<profile>/ (Permuted: outputs/<permuted_profile>/)
overrides = {}  # config overrides passed to dhclib for both searches
missing = "train"  # runs not in the store: "train" them, or "skip" (tabulate only what is stored)
beyond = {"si": [2.0, 5.0, 10.0, 50.0, 100.0]}  # Permuted MNIST: values past the paper's grid (ours, labelled)
clear_gain = 0.01  # a lambda counts as clearly better than the paper's when it beats it by this much (1 point)'''


def lambda_search_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# The consolidation-strength search of Appendix A\n\n"
            "The paper chose λ for Online EWC, SI (λ is SI's c) and MAS by a grid search on one task sequence "
            "(one seed), and used the same λ with and without DHP Softmax (SPEC §5). Its grids are printed with "
            "ellipses; `dhclib.paper.SEARCH_GRIDS` holds our expansion of each (the printed values, the evident "
            "step, and always the paper's choice). This notebook runs those grids for Split MNIST (A.3) and, on "
            "the quick profile, Permuted MNIST (A.1), and asks: is the paper's λ the best of its grid here?\n\n"
            "The defaults run the quick profile on a CPU in minutes: the best λ of the quick profile need not be "
            "the best of the paper's protocol (`profile=\"paper\"` runs Split MNIST's search as the paper did)."),
        code(LAMBDA_PARAMETERS, ("parameters",)),
        code('NOTEBOOK = "07_lambda_search"\n' + SETUP + "\n"
             "from dhclib.outputs import store_root\n\n"
             "search = dict(seed=seed, device=device, data_dir=data_dir, progress=\"runs\", missing=missing, **overrides)"),
        new_markdown_cell(
            "## Split MNIST (A.3)\n\nPrinted grids: Online EWC λ ∈ {1, 25, 50, 100, …, 1×10³, 2×10³}, SI "
            "λ ∈ {0.1, 0.5, 1.0, …, 5.0}, MAS λ ∈ {0.01, 0.05, 1.0, …, 4.5, 5.0}; chosen: 400, 1.0 and 1.5 "
            "(SI's ξ = 0.001)."),
        code("# NBVAL_IGNORE_OUTPUT\n"
             "split = dhclib.run_search(\"split_mnist\", regularisers, profile=profile, out_dir=store_dir, **search)\n"
             "save_table(split, out_dir, \"split_mnist_grid_tidy\")\n"
             "split_table = report.grid_table(split)\n"
             "save_table(split_table, out_dir, \"split_mnist_grid\");"),
        code("print(report.percent(split_table, 2).to_string(index=False))"),
        new_markdown_cell(SEARCH_CHECK_NOTE),
        code("# NBVAL_CHECK_OUTPUT\n"
             "print(regression.format_check(regression.check_table(\n"
             "    split_table, reference(\"split_mnist_grid\"), keys=[\"benchmark\", \"method\", \"lam\"], values=[\"avg_acc\", \"bwt\"], exact=[\"trials\", \"diverged\"])))"),
        code("fig = plots.lambda_search(split_table, f\"Split MNIST, seed {seed} ({profile} profile)\")\n"
             "plots.save(fig, out_dir, \"split_mnist_lambda\");"),
        new_markdown_cell(
            "## Permuted MNIST (A.1), quick profile\n\nPrinted grids: Online EWC λ ∈ {10, 20, 50, …, 400}, SI "
            "λ ∈ {0.01, 0.05, …, 0.5, 1.0}, MAS λ ∈ {0.01, 0.5, …, 1.5, 2.0} (which, as printed, does not contain "
            "the chosen 0.1: we add 0.05 and 0.1); chosen: 100, 0.1 and 0.1 (SI's ξ = 0.1)."),
        code("# NBVAL_IGNORE_OUTPUT\n"
             "permuted_store = store_dir if permuted_profile == profile else store_root(permuted_profile)\n"
             "permuted = dhclib.run_search(\"permuted_mnist\", regularisers, profile=permuted_profile, out_dir=permuted_store,\n"
             "                             **search)\n"
             "save_table(permuted, out_dir, \"permuted_mnist_grid_tidy\")\n"
             "permuted_table = report.grid_table(permuted)\n"
             "save_table(permuted_table, out_dir, \"permuted_mnist_grid\");"),
        code("print(report.percent(permuted_table, 2).to_string(index=False))"),
        code("# NBVAL_CHECK_OUTPUT\n"
             "print(regression.format_check(regression.check_table(\n"
             "    permuted_table, reference(\"permuted_mnist_grid\"), keys=[\"benchmark\", \"method\", \"lam\"], values=[\"avg_acc\", \"bwt\"], exact=[\"trials\", \"diverged\"])))"),
        code("fig = plots.lambda_search(permuted_table, f\"Permuted MNIST, seed {seed} ({permuted_profile} profile)\")\n"
             "plots.save(fig, out_dir, \"permuted_mnist_lambda\");"),
        new_markdown_cell(
            "## Beyond the paper's grid: SI on Permuted MNIST\n\n"
            "With plain SGD at lr 0.01, SI's path integral ω = −Σ g·Δθ ≈ lr·Σ g² is small, so at the paper's "
            "c = 0.1 the penalty barely acts (quick profile, seed 0: SI ≈ finetuning in notebook 01). If that is the "
            "reason, accuracy should keep rising with c past the grid's end (1.0). These values are **ours**, not "
            "the paper's (parameter `beyond`); the shaded region of the figure marks them."),
        code("# NBVAL_IGNORE_OUTPUT\n"
             "wider = {reg: sorted({*paper.search_grid(\"permuted_mnist\", reg), *values}) for reg, values in beyond.items()}\n"
             "extended = dhclib.run_search(\"permuted_mnist\", wider, profile=permuted_profile, out_dir=permuted_store, **search)\n"
             "beyond_table = report.grid_table(extended)\n"
             "beyond_table[\"in_paper_grid\"] = [v in paper.search_grid(\"permuted_mnist\", m)\n"
             "                                   for m, v in zip(beyond_table[\"method\"], beyond_table[\"lam\"])]\n"
             "save_table(beyond_table, out_dir, \"permuted_mnist_beyond_grid\");"),
        code("print(report.percent(beyond_table, 2).to_string(index=False))"),
        code("# NBVAL_CHECK_OUTPUT\n"
             "print(regression.format_check(regression.check_table(\n"
             "    beyond_table, reference(\"permuted_mnist_beyond_grid\"), keys=[\"benchmark\", \"method\", \"lam\"], values=[\"avg_acc\", \"bwt\"], exact=[\"trials\", \"diverged\", \"in_paper_grid\"])))"),
        code("ends = {m: max(paper.search_grid(\"permuted_mnist\", m)) for m in beyond}\n"
             "fig = plots.lambda_search(beyond_table, f\"Permuted MNIST beyond the paper's grid ({permuted_profile} profile)\",\n"
             "                          grid_end=ends)\n"
             "plots.save(fig, out_dir, \"permuted_mnist_beyond_grid\");"),
        new_markdown_cell(
            "## The best λ of each grid against the paper's choice\n\n"
            "`avg_acc_gap` = best − paper's choice, in points, on this one seed. A gap above `clear_gain` marks a "
            "λ that a benchmark notebook may show as an extra, labelled row (`variants`); the paper-budget rows "
            "stay the reference. One seed is a noisy judge: the SEM of one method over three quick-profile seeds "
            "is 0.6–1.2 points."),
        code("best = report.grid_best(pd.concat([split_table, permuted_table], ignore_index=True))\n"
             "best[\"clearly_better\"] = best[\"avg_acc_gap\"] > clear_gain\n"
             "save_table(best, out_dir, \"best_lambda\")\n"
             "print(report.percent(best, 2).to_string(index=False))"),
        code("# NBVAL_CHECK_OUTPUT\n"
             "print(regression.format_check(regression.check_table(\n"
             "    best, reference(\"best_lambda\"), keys=[\"benchmark\", \"method\"], values=[\"best_avg_acc\", \"paper_choice_avg_acc\"], exact=[\"paper_lam\", \"clearly_better\"])))"),
    ]
    return _notebook(cells)


def main(names: list[str]) -> None:
    """Write the notebooks named (all when none is): writing one drops its outputs, so `make notebooks` must follow."""
    builders = {name: (lambda n=name, spec=spec: benchmark_notebook(n, spec)) for name, spec in BENCHMARKS.items()}
    builders.update({"05_ablation": ablation_notebook, "06_split_cifar": split_cifar_notebook,
                     "07_lambda_search": lambda_search_notebook})
    unknown = sorted(set(names) - set(builders))
    if unknown:
        raise SystemExit(f"unknown notebooks {unknown}; known: {', '.join(sorted(builders))}")
    for name in names or sorted(builders):
        nbformat.write(builders[name](), HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main(sys.argv[1:])
