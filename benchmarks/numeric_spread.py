"""How far the quick notebooks' tables move with the numeric path (issue #5, item 2).

Same code, same seeds, another torch build or CPU kernel family: other float sums, and after thousands of SGD steps
other trajectories. This script trains the runs behind the checked tables of notebooks 01 (Permuted MNIST) and 02
(Imbalanced Permuted MNIST) on the quick profile — Table 1's eight methods x 3 trials and each notebook's labelled
extra rows — into one store per numeric path, then compares the stores.

    # one store per path; the caller sets the path's variables (and picks the interpreter for another torch)
    ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 OMP_NUM_THREADS=1 python benchmarks/numeric_spread.py run STORE_A
    ATEN_CPU_CAPABILITY=avx512 OMP_NUM_THREADS=1 python benchmarks/numeric_spread.py run STORE_B
    python benchmarks/numeric_spread.py compare STORE_A STORE_B ... [--csv spread.csv]
    # a '+'-separated list of notebooks' results_tidy.csv stands for a store made elsewhere (committed outputs)

``compare`` prints, per benchmark and method, each store's mean average accuracy (3 trials) and its deviation from
the first store, whether the stores' R matrices are bitwise equal, and each store's verdict per DHP pair. The
measured spread justifies the tolerance of the notebooks' regression checks (``dhclib.paper.regression``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import dhclib
from dhclib import report

# The runs of notebooks 01 and 02 on the quick profile (their parameters cells: trials = 3 and the variants).
SETS = {
    "permuted_mnist": [{"methods": ["si", "dhp+si"], "overrides": {"lam": 50.0}}],
    "imbalanced_permuted_mnist": [{"methods": ["ewc", "dhp+ewc"], "overrides": {"fisher_mode": "batch"}}],
}
SEEDS = "0-2"


def frames(store: str, missing: str = "train", benchmarks=tuple(SETS), methods="all") -> pd.DataFrame:
    out = []
    for bench in benchmarks:
        variants = SETS[bench] if methods == "all" else []
        df = dhclib.run_many(bench, methods, SEEDS, "quick", "cpu", None, store, progress="runs",
                             on_diverge="record", missing=missing)
        parts = [df]
        if variants:
            parts.append(dhclib.run_variants(bench, variants, SEEDS, "quick", "cpu", None, store, progress="runs",
                                             missing=missing))
        out.append(pd.concat(parts, ignore_index=True).assign(bench=bench))
    return pd.concat(out, ignore_index=True)


def path_of(store: str) -> dict:
    """The numeric environment recorded by the store's first run."""
    if store.endswith(".csv"):
        return {}
    first = next(Path(store).glob("runs/*/*/seed*.json"), None)
    return json.loads(first.read_text()).get("numeric_env", {}) if first else {}


def compare(stores: list[str], labels: list[str], benchmarks=tuple(SETS)) -> tuple[pd.DataFrame, pd.DataFrame]:
    tables, verdicts, tidy = [], [], {}
    for store, label in zip(stores, labels):
        if store.endswith(".csv"):  # tidy frames saved by the notebooks (results_tidy.csv), '+'-separated
            df = pd.concat([pd.read_csv(p) for p in store.split("+")], ignore_index=True)
            df = df[df["benchmark"].isin(benchmarks)].assign(bench=lambda d: d["benchmark"])
        else:
            df = frames(store, missing="skip", benchmarks=benchmarks)
        tidy[label] = df.sort_values(["bench", "method", "seed", "after_task", "task"]).reset_index(drop=True)
        for bench, part in df.groupby("bench"):
            t = report.table1_comparison(part, bench)
            # a store stopped early holds some methods with fewer trials: compare complete methods only
            t = t[t["trials"] == len(dhclib.runs.config.parse_seeds(SEEDS))][["method", "avg_acc_mean", "avg_acc_sem"]]
            tables.append(t.assign(benchmark=bench, path=label))
            v = report.dhp_verdicts(part, bench)
            verdicts.append(v.assign(benchmark=bench, path=label))
    table = pd.concat(tables, ignore_index=True)
    ref = table[table.path == labels[0]].set_index(["benchmark", "method"])["avg_acc_mean"]
    table["dev_from_first"] = table.apply(lambda r: r.avg_acc_mean - ref.get((r.benchmark, r.method), np.nan), axis=1)
    first = tidy[labels[0]]
    table["bitwise_equal_to_first"] = [
        bool(len(a := first[(first.bench == r.benchmark) & (first.method == r.method)]) and
             np.array_equal(a.accuracy.to_numpy(),
                            (b := tidy[r.path])[(b.bench == r.benchmark) & (b.method == r.method)].accuracy.to_numpy()))
        for r in table.itertuples()]
    return table, pd.concat(verdicts, ignore_index=True)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the quick runs of notebooks 01 and 02 into STORE")
    r.add_argument("store")
    r.add_argument("--benchmarks", default=",".join(SETS), help="comma-separated subset of " + ", ".join(SETS))
    r.add_argument("--methods", default="all", help="comma-separated subset of Table 1's methods (default: all, "
                   "with the notebooks' labelled extra rows)")
    c = sub.add_parser("compare", help="compare stores (the first is the reference)")
    c.add_argument("stores", nargs="+")
    c.add_argument("--labels", help="comma-separated, one per store (default: the folder names)")
    c.add_argument("--csv", help="write the per-method table here")
    c.add_argument("--benchmarks", default=",".join(SETS), help="comma-separated subset of " + ", ".join(SETS))
    args = ap.parse_args(argv)
    if args.cmd == "run":
        frames(args.store, benchmarks=args.benchmarks.split(","), methods=args.methods)
        print(json.dumps(path_of(args.store)))
        return
    labels = args.labels.split(",") if args.labels else [Path(s).name for s in args.stores]
    for s, lab in zip(args.stores, labels):
        env = path_of(s)
        print(f"{lab}: torch {env.get('torch')}, {env.get('cpu_capability')}, env {env.get('env')}, {env.get('cpu')}")
    table, verdicts = compare(args.stores, labels, args.benchmarks.split(","))
    if args.csv:
        table.to_csv(args.csv, index=False)
        verdicts.to_csv(Path(args.csv).with_name(Path(args.csv).stem + "_verdicts.csv"), index=False)
    wide = table.pivot_table(index=["benchmark", "method"], columns="path", values="avg_acc_mean")[labels] * 100
    print("\nmean average accuracy (%), 3 trials\n" + wide.round(2).to_string())
    dev = table.pivot_table(index=["benchmark", "method"], columns="path", values="dev_from_first")[labels] * 100
    print("\ndeviation from the first path (points)\n" + dev.round(2).to_string())
    print(f"\nlargest |deviation|: {np.nanmax(np.abs(dev.to_numpy())):.2f} points")
    same = table.pivot_table(index=["benchmark", "method"], columns="path", values="bitwise_equal_to_first",
                             aggfunc="first")[labels]
    print("\nR bitwise equal to the first path\n" + same.to_string())
    vw = verdicts.pivot_table(index=["benchmark", "baseline"], columns="path", values="verdict", aggfunc="first")
    print("\nverdicts\n" + vw[labels].to_string())


if __name__ == "__main__":
    main(sys.argv[1:])
