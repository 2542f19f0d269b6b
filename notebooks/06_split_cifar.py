# %% [markdown]
# # Split CIFAR-10/100: Figure 8
#
# Appendix D replicates the Split CIFAR-10/100 experiment of Zenke et al. (2017): the network first learns all of CIFAR-10, then five tasks of ten consecutive CIFAR-100 classes (0–9, …, 40–49), one 10-way head per task. Figure 8 shows the test accuracy on every task after the last one for DHP Softmax, and quotes Finetune, SI and training from scratch (a new network per task) from von Oswald et al. (2019). The network and protocol are Zenke et al.'s (docs/choices.md: Adam, batch 256, 60 epochs per task; our decisions where the paper is silent are there too).
#
# **What the committed notebook holds.** The workplace where it was committed has no CIFAR data, so it is committed without outputs and `make test` skips it with the reason; a pipeline check runs it on generated files. `make reproduce` runs it where `cifar-10-batches-py/` and `cifar-100-python/` are under the data root (docs/data.md).

# %% tags=["parameters"]
profile = "quick"  # "quick" (CPU, minutes) | "paper" (the paper's protocol, docs/method.md; a GPU is advised)
methods = "all"  # Figure 8's: finetune, dhp, si, dhp+si, scratch
trials = 3  # seeds 0 .. trials-1 (the paper: 10)
device = "auto"  # "auto" | "cpu" | "cuda"
engine = "stack:auto"  # where and how runs train, e.g. "here", "local:2", "local:2,stack:8" (docs/engines.md)
overrides = {}  # config overrides passed to dhclib, e.g. {"max_epochs": 20}
missing = "train"  # runs not in the store: "train" them, or "skip" (tabulate only what is stored)

# %%
NOTEBOOK = "06_split_cifar"
BENCHMARK = "split_cifar10_100"
import pandas as pd

import dhclib
from dhclib import paper, plots, report
from dhclib.paper import notebook
from dhclib.runs.outputs import save_table

# reference("table1"): the committed table the checked cells compare with (docs/reproducibility.md)
out_dir, store_dir, reference = notebook.setup(NOTEBOOK, profile, engine)
from dhclib.benchmarks import SPLIT_CIFAR_TASK_NAMES

# %% [markdown]
# ## Training
#
# The paper's claim: DHP Softmax alone significantly outperforms finetuning (accuracy averaged over the six tasks) and on some tasks matches or beats training from scratch; SI is best. Its numbers, read from Figure 8 (`dhclib/paper_data/figure8.csv`):

# %%
notebook.paper_claim(BENCHMARK)

# %%
# NBVAL_IGNORE_OUTPUT
seeds = f"0-{trials - 1}"
df = dhclib.run_many(BENCHMARK, methods, seeds, profile, device, out_dir=store_dir, progress="runs",
                     on_diverge="record", missing=missing, engine=engine, **overrides)
save_table(df, out_dir, "results_tidy")
diverged = pd.DataFrame(df.attrs["diverged"], columns=["method", "seed", "message"])
save_table(diverged, out_dir, "diverged")
print(f"{df.groupby(['method', 'seed']).ngroups} runs, {len(diverged)} diverged")

# %%
# NBVAL_CHECK_OUTPUT
print(diverged.to_string(index=False) if len(diverged) else "no run diverged")

# %% [markdown]
# ## Figure 8's numbers: accuracy after the last task, averaged over the six tasks
#
# Ours: mean ± SEM over trials; the paper's: as printed in Figure 8 (DHP Softmax its own; the others quoted from von Oswald et al. 2019, who trained the same network). `diff` = ours − paper.

# %%
# NBVAL_CHECK_OUTPUT
table = report.figure8_comparison(df)
table = notebook.show(table, out_dir, "figure8", 2)

# %% [markdown]
# ## Figure 8: accuracy on each task after the last one

# %%
# NBVAL_CHECK_OUTPUT
per_task = report.final_task_accuracy(df)
per_task["task_name"] = per_task["task"].map(dict(enumerate(SPLIT_CIFAR_TASK_NAMES)))
per_task = notebook.show(per_task, out_dir, "per_task_accuracy", 1)

# %%
fig = plots.final_task_bars(per_task, SPLIT_CIFAR_TASK_NAMES, paper.figure8(),
                           f"Split CIFAR-10/100 ({profile} profile, {df.seed.nunique()} trials)")
plots.save(fig, out_dir, "figure8_per_task");

# %% [markdown]
# ## Average accuracy against the number of tasks learned

# %%
curves = report.curves(df)
save_table(curves, out_dir, "curves")
fig = plots.accuracy_curves(curves, f"Split CIFAR-10/100 ({profile} profile)")
plots.save(fig, out_dir, "average_accuracy");
