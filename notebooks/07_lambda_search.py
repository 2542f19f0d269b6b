# %% [markdown]
# # The consolidation-strength search of Appendix A
#
# The paper chose λ for Online EWC, SI (λ is SI's c) and MAS by a grid search on one task sequence (one seed), and used the same λ with and without DHP Softmax (docs/method.md). Its grids are printed with ellipses; `dhclib.paper.search_grids()` holds our expansion of each (declared beside each regulariser's class) (the printed values, the evident step, and always the paper's choice). This notebook runs those grids for Split MNIST (A.3) and, on the quick profile, Permuted MNIST (A.1), and asks: is the paper's λ the best of its grid here?
#
# The defaults run the quick profile on a CPU in minutes: the best λ of the quick profile need not be the best of the paper's protocol (`profile="paper"` runs Split MNIST's search as the paper did).

# %% tags=["parameters"]
profile = "quick"  # Split MNIST's search: "quick" (CPU, a minute) | "paper" (the paper's protocol, as the paper searched)
permuted_profile = "quick"  # Permuted MNIST's search (the paper profile costs about 10 min a run on a CPU)
seed = 0  # the paper searched on one task sequence, i.e. one seed
regularisers = ["ewc", "si", "mas"]  # the baselines whose lambda the paper searched
device = "auto"  # "auto" | "cpu" | "cuda"
engine = "stack:auto"  # where and how runs train, e.g. "here", "local:2", "local:2,stack:8" (docs/engines.md)
overrides = {}  # config overrides passed to dhclib for both searches
missing = "train"  # runs not in the store: "train" them, or "skip" (tabulate only what is stored)
beyond = {"si": [2.0, 5.0, 10.0, 50.0, 100.0]}  # Permuted MNIST: values past the paper's grid (ours, labelled)
clear_gain = 0.01  # a lambda counts as clearly better than the paper's when it beats it by this much (1 point)

# %%
NOTEBOOK = "07_lambda_search"
import pandas as pd

import dhclib
from dhclib import paper, plots, report
from dhclib.paper import notebook
from dhclib.runs.outputs import save_table

# reference("table1"): the committed table the checked cells compare with (docs/reproducibility.md)
out_dir, store_dir, reference = notebook.setup(NOTEBOOK, profile, engine)
from dhclib.runs.outputs import store_root

search = dict(seed=seed, device=device, progress="runs", missing=missing, engine=engine, **overrides)

# %% [markdown]
# ## Split MNIST (A.3)
#
# Printed grids: Online EWC λ ∈ {1, 25, 50, 100, …, 1×10³, 2×10³}, SI λ ∈ {0.1, 0.5, 1.0, …, 5.0}, MAS λ ∈ {0.01, 0.05, 1.0, …, 4.5, 5.0}; chosen: 400, 1.0 and 1.5 (SI's ξ = 0.001).

# %%
# NBVAL_IGNORE_OUTPUT
split = dhclib.run_search("split_mnist", regularisers, profile=profile, out_dir=store_dir, **search)
save_table(split, out_dir, "split_mnist_grid_tidy")
split_table = report.grid_table(split)
save_table(split_table, out_dir, "split_mnist_grid");

# %%
notebook.display_table(report.percent(split_table, 2))

# %% [markdown]
# **Regression check.** The cells the tests compare require every grid point's average accuracy and BWT within 2.5 and 3 points of the committed reference (`tests/reference/`; the exact numbers depend on the machine's numeric path, docs/reproducibility.md), and the same trials and divergences. The best λ of a grid is not checked where grid points lie within the tolerance of each other; its accuracy is.

# %%
# NBVAL_CHECK_OUTPUT
notebook.check(split_table, reference("split_mnist_grid"),
               keys=["benchmark", "method", "lam"], values=["avg_acc", "bwt"], exact=["trials", "diverged"])

# %%
fig = plots.lambda_search(split_table, f"Split MNIST, seed {seed} ({profile} profile)")
plots.save(fig, out_dir, "split_mnist_lambda");

# %% [markdown]
# ## Permuted MNIST (A.1), quick profile
#
# Printed grids: Online EWC λ ∈ {10, 20, 50, …, 400}, SI λ ∈ {0.01, 0.05, …, 0.5, 1.0}, MAS λ ∈ {0.01, 0.5, …, 1.5, 2.0} (which, as printed, does not contain the chosen 0.1: we add 0.05 and 0.1); chosen: 100, 0.1 and 0.1 (SI's ξ = 0.1).

# %%
# NBVAL_IGNORE_OUTPUT
permuted_store = store_dir if permuted_profile == profile else store_root(permuted_profile)
permuted = dhclib.run_search("permuted_mnist", regularisers, profile=permuted_profile, out_dir=permuted_store,
                             **search)
save_table(permuted, out_dir, "permuted_mnist_grid_tidy")
permuted_table = report.grid_table(permuted)
save_table(permuted_table, out_dir, "permuted_mnist_grid");

# %%
notebook.display_table(report.percent(permuted_table, 2))

# %%
# NBVAL_CHECK_OUTPUT
notebook.check(permuted_table, reference("permuted_mnist_grid"),
               keys=["benchmark", "method", "lam"], values=["avg_acc", "bwt"], exact=["trials", "diverged"])

# %%
fig = plots.lambda_search(permuted_table, f"Permuted MNIST, seed {seed} ({permuted_profile} profile)")
plots.save(fig, out_dir, "permuted_mnist_lambda");

# %% [markdown]
# ## Beyond the paper's grid: SI on Permuted MNIST
#
# With plain SGD at lr 0.01, SI's path integral ω = −Σ g·Δθ ≈ lr·Σ g² is small, so at the paper's c = 0.1 the penalty barely acts (quick profile, seed 0: SI ≈ finetuning in notebook 01). If that is the reason, accuracy should keep rising with c past the grid's end (1.0). These values are **ours**, not the paper's (parameter `beyond`); the shaded region of the figure marks them.

# %%
# NBVAL_IGNORE_OUTPUT
wider = {reg: sorted({*paper.search_grid("permuted_mnist", reg), *values}) for reg, values in beyond.items()}
extended = dhclib.run_search("permuted_mnist", wider, profile=permuted_profile, out_dir=permuted_store, **search)
beyond_table = report.grid_table(extended)
beyond_table["in_paper_grid"] = [v in paper.search_grid("permuted_mnist", m)
                                   for m, v in zip(beyond_table["method"], beyond_table["lam"])]
save_table(beyond_table, out_dir, "permuted_mnist_beyond_grid");

# %%
notebook.display_table(report.percent(beyond_table, 2))

# %%
# NBVAL_CHECK_OUTPUT
notebook.check(beyond_table, reference("permuted_mnist_beyond_grid"),
               keys=["benchmark", "method", "lam"], values=["avg_acc", "bwt"], exact=["trials", "diverged", "in_paper_grid"])

# %%
ends = {m: max(paper.search_grid("permuted_mnist", m)) for m in beyond}
fig = plots.lambda_search(beyond_table, f"Permuted MNIST beyond the paper's grid ({permuted_profile} profile)",
                          grid_end=ends)
plots.save(fig, out_dir, "permuted_mnist_beyond_grid");

# %% [markdown]
# ## The best λ of each grid against the paper's choice
#
# `avg_acc_gap` = best − paper's choice, in points, on this one seed. A gap above `clear_gain` marks a λ that a benchmark notebook may show as an extra, labelled row (`variants`); the paper-budget rows stay the reference. One seed is a noisy judge: the SEM of one method over three quick-profile seeds is 0.6–1.2 points.

# %%
best = report.grid_best(pd.concat([split_table, permuted_table], ignore_index=True))
best["clearly_better"] = best["avg_acc_gap"] > clear_gain
best = notebook.show(best, out_dir, "best_lambda", 2)

# %%
# NBVAL_CHECK_OUTPUT
notebook.check(best, reference("best_lambda"),
               keys=["benchmark", "method"], values=["best_avg_acc", "paper_choice_avg_acc"], exact=["paper_lam", "clearly_better"])
