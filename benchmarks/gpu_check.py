"""The GPU check of issue #7 (item 6), in one process, writing one Markdown file: run by ``gpu_check.sh``.

1. The stacked engine's throughput on the device (``stack_throughput.py``'s table: N = 1, 10, 40, 80, 160), eager
   and with its step captured as a CUDA graph (whose weights are checked against the eager stack's, bit for bit).
2. Split MNIST on the paper profile, all eight methods × 10 seeds, trained in stacks of ``--stack``: its wall time,
   and each method's mean average accuracy and BWT beside the committed CPU paper runs (``outputs/paper``), with
   whether they agree within 2 standard errors (of the difference of the two means), said per row; eagerly, or
   with ``--cuda-graphs`` each stacked step replayed as a CUDA graph (the path ``--engine stack:N+graphs`` gives runs).
3. The projected time of Table 1's three MNIST columns on this device: the trial-steps of the committed CPU runs
   (epochs × batches per epoch of each task, scaled to 10 trials per method) at the trial-step rate measured in 2.

``--smoke`` shrinks every part (two methods, two seeds, two tasks, tiny data and stacks) so that the script runs
in seconds on a CPU: the test suite runs it so (``tests/test_gpu_check.py``); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import dhclib
from dhclib.method.metrics import summarize
from dhclib.runs.build import device_description, resolve_device
from dhclib.runs.store import load_results, variant_of

ROOT = Path(__file__).resolve().parent.parent
MNIST_BENCHMARKS = ("permuted_mnist", "imbalanced_permuted_mnist", "split_mnist")
SMOKE = dict(n_tasks=2, train_size=128, test_size=64, min_epochs=1, max_epochs=1)


def _throughput(device: str, smoke: bool) -> str:
    """stack_throughput.py's table; on CUDA with its CUDA-graph columns, and should that run fail (the graphed step
    has never run on a GPU before this check), the error's last lines and the table without them, so that the
    rest of the check still runs."""
    args = [sys.executable, str(ROOT / "benchmarks" / "stack_throughput.py"), "--device", device]
    args += (["--stacks", "1,2", "--methods", "finetune,dhp", "--steps", "3", "--repeats", "1"] if smoke
             else ["--steps", "50", "--repeats", "2"])
    run = subprocess.run(args, capture_output=True, text=True)
    if run.returncode == 0:
        return run.stdout
    tail = "\n".join(run.stderr.strip().splitlines()[-8:])
    eager = subprocess.run(args + ["--no-cuda-graphs"], check=True, capture_output=True, text=True).stdout
    return f"The run with CUDA graphs failed (exit {run.returncode}):\n\n```\n{tail}\n```\n\nWithout them:\n\n{eager}"


def _trial_steps(results) -> float:
    """Training steps of a set of runs: per task, epochs × batches per epoch."""
    return float(sum((np.ceil(r.tasks["n_train"] / r.config["batch_size"]) * r.tasks["epochs"]).sum()
                     for r in results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--stack", default="10", help="stack size of part 2 (default 10: the 10 seeds of a method)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--paper-store", default=str(ROOT / "outputs" / "paper"))
    ap.add_argument("--out", default="gpu_check.md")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--cuda-graphs", action="store_true",
                    help="part 2 with each stacked step replayed as a CUDA graph (dhclib.run_many(engine='stack:N+graphs'))")
    args = ap.parse_args()
    device = str(resolve_device(args.device))
    kind = "SMOKE RUN: the numbers mean nothing" if args.smoke else "paper profile"
    lines = [f"# GPU check (issue #7, item 6): {device_description(device)}", "",
             f"torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}; {kind}", ""]

    lines += ["## 1. Stacked engine throughput", "", _throughput(device, args.smoke)]
    Path(args.out).write_text("\n".join(lines) + "\n(parts 2 and 3 still running)\n")  # kept should time run out

    methods, seeds = ("finetune,dhp", "0-1") if args.smoke else ("all", "0-9")
    extra = SMOKE if args.smoke else {}
    profile = "quick" if args.smoke else "paper"
    with tempfile.TemporaryDirectory() as store:
        t0 = time.perf_counter()
        df = dhclib.run_many("split_mnist", methods, seeds, profile, device, args.data_dir, store, progress=False,
                             on_diverge="record",
                             engine=dhclib.Engine(stack=int(args.stack), graphs=args.cuda_graphs), **extra)
        wall = time.perf_counter() - t0
        steps = _trial_steps(load_results(store))
    ours = summarize(df, by=("method",)).set_index("method")
    cpu = [r for r in load_results(args.paper_store) if r.config["benchmark"] == "split_mnist" and not variant_of(r)]
    ref = summarize(pd.concat([r.tidy() for r in cpu], ignore_index=True), by=("method",)).set_index("method")
    engine = f"stack {args.stack}" + (", CUDA graphs" if args.cuda_graphs else "")
    lines += [f"## 2. Split MNIST, {profile} profile, in stacks", "",
              f"{len(ours)} methods × {seeds} seeds, {engine}: {wall:.0f} s wall, {steps:,.0f} trial-steps "
              f"({steps / wall:,.0f} trial-steps/s)", "",
              "| method | trials | avg acc (device) | avg acc (CPU store) | BWT (device) | BWT (CPU store) "
              "| within 2 SE |",
              "|---|---|---|---|---|---|---|"]
    for m, row in ours.iterrows():
        if m not in ref.index:
            lines.append(f"| {m} | {row['trials']} | {100 * row['avg_acc_mean']:.2f} | — | "
                         f"{row['bwt_mean']:.3f} | — | no CPU runs |")
            continue
        c = ref.loc[m]
        ok = all(abs(row[f"{k}_mean"] - c[f"{k}_mean"]) <= 2 * np.hypot(np.nan_to_num(row[f"{k}_sem"]),
                                                                        np.nan_to_num(c[f"{k}_sem"]))
                 for k in ("avg_acc", "bwt"))
        lines.append(f"| {m} | {row['trials']} | {100 * row['avg_acc_mean']:.2f} ± {100 * row['avg_acc_sem']:.2f} | "
                     f"{100 * c['avg_acc_mean']:.2f} ± {100 * c['avg_acc_sem']:.2f} | {row['bwt_mean']:.3f} | "
                     f"{c['bwt_mean']:.3f} | {'yes' if ok else 'NO'} |")

    rate = steps / wall
    lines += ["", "## 3. Projected: Table 1's MNIST columns on this device", "",
              f"At {rate:,.0f} trial-steps/s (part 2's rate, {engine}); trial-steps from the committed CPU "
              "runs, scaled to 8 methods × 10 trials:", "",
              "| benchmark | CPU runs | trial-steps (10 trials) | projected |", "|---|---|---|---|"]
    total = 0.0
    for b in MNIST_BENCHMARKS:
        runs = [r for r in load_results(args.paper_store) if r.config["benchmark"] == b and not variant_of(r)]
        if not runs:
            lines.append(f"| {b} | 0 | — | — |")
            continue
        per_method = {}
        for r in runs:
            per_method.setdefault(r.config["method"], []).append(_trial_steps([r]))
        scaled = sum(10 * float(np.mean(v)) for v in per_method.values()) * 8 / len(per_method)
        total += scaled
        lines.append(f"| {b} | {len(runs)} | {scaled:,.0f} | {scaled / rate / 60:.1f} min |")
    lines += [f"| all three | | {total:,.0f} | {total / rate / 60:.1f} min |", ""]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
