"""dhc beside Avalanche 0.6 on one protocol, in one process (issue #7, item 8).

Permuted MNIST, MLP 784-400-400-10, plain SGD lr 0.01, batch 64, ``--tasks`` tasks of one epoch each (the paper's
protocol without early stopping or validation, so both sides do the same number of steps), on this machine's CPU
with ``--threads`` torch threads. Timed: training and each task boundary's consolidation (Fisher, MAS importance,
SI's Omega); not timed: evaluation, which the two sides schedule differently.

- dhc: what a run executes per task (``on_task_start``, ``train.train_epoch``, ``on_task_end``), the paper's
  settings (docs/method.md (strengths): Online EWC lambda 100, gamma 1, exact Fisher on 2,000 samples; SI c 0.1, xi 0.1; MAS lambda
  0.1 on 2,000 samples) with the capacity-matched output layer;
- Avalanche: its documented API, ``avalanche.benchmarks.classic.PermutedMNIST`` and the strategies ``Naive``,
  ``EWC(mode="online", decay_factor=1)``, ``SynapticIntelligence`` and ``MAS`` with the same strengths, an
  ``nn.Sequential`` of the same widths, ``train_mb_size=64``, ``train_epochs=1``, an evaluator without loggers.

The two sides alternate per method and repeat (the machine drifts); the table gives each side's seconds per epoch
(mean over tasks, fastest repeat), Avalanche / dhc per method, the same over the four summed, and each dhc method
against dhc's fine-tuning per epoch (the ratio of issue #7, item 8's targets).

    pip install avalanche-lib==0.6.0    # not a dependency of dhc; this script is never run in CI
    python benchmarks/peer_avalanche.py [--tasks 10] [--repeats 1] [--threads 2] [--methods finetune,ewc,si,mas]

Needs MNIST under $DHC_DATA_DIR (or --data-dir). Avalanche reads MNIST through torchvision, which unpacks the
``.gz`` files: it is given a temporary folder of links to them, never the data root itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from dhclib.benchmarks import permuted_mnist, rng
from dhclib.data.idx import resolve_data_dir
from dhclib.method.train import Tracer, train_epoch
from dhclib.runs.config import resolve_config
from dhclib.runs.build import build_model, build_regulariser, device_description

# dhc's method -> the paper's strength (docs/method.md (strengths), Permuted MNIST), the one both sides use
STRENGTH = {"finetune": None, "ewc": 100.0, "si": 0.1, "mas": 0.1}
SI_XI = 0.1


def dhc_epochs(method: str, tasks, seed: int = 0) -> list[float]:
    """Seconds of each task's epoch (training and its boundary) through dhc's trainer."""
    cfg = resolve_config("permuted_mnist", method, seed, "paper", "cpu")
    model = build_model(cfg)
    reg = build_regulariser(model, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    tracer = Tracer(model, cfg.trace_every)
    out = []
    for task in tasks:
        t0 = time.perf_counter()
        reg.on_task_start(task)
        train_epoch(model, task, reg, opt, cfg.batch_size, rng(seed, "order", task.index), tracer).item()
        reg.on_task_end(task, rng(seed, "importance", task.index))
        out.append(time.perf_counter() - t0)
    return out


def avalanche_strategy(method: str, model: nn.Module):
    from avalanche.training import EWC, MAS, Naive, SynapticIntelligence
    from avalanche.training.plugins import EvaluationPlugin

    common = dict(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                  criterion=nn.CrossEntropyLoss(), train_mb_size=64, train_epochs=1, eval_mb_size=10000,
                  device="cpu", evaluator=EvaluationPlugin(loggers=[]))
    if method == "finetune":
        return Naive(**common)
    if method == "ewc":
        return EWC(ewc_lambda=STRENGTH["ewc"], mode="online", decay_factor=1.0, **common)
    if method == "si":
        return SynapticIntelligence(si_lambda=STRENGTH["si"], eps=SI_XI, **common)
    if method == "mas":
        return MAS(lambda_reg=STRENGTH["mas"], **common)
    raise ValueError(f"no Avalanche strategy for {method!r}; accepted: {', '.join(STRENGTH)}")


def avalanche_epochs(method: str, scenario, seed: int = 0) -> list[float]:
    """Seconds of each experience's ``strategy.train`` (one epoch and the strategy's consolidation)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(),
                          nn.Linear(400, 10))
    strategy = avalanche_strategy(method, model)
    out = []
    for experience in scenario.train_stream:
        t0 = time.perf_counter()
        strategy.train(experience)
        out.append(time.perf_counter() - t0)
    return out


def linked_mnist(root: Path, into: Path) -> Path:
    """``into/MNIST/raw`` holding links to the data root's MNIST files (torchvision unpacks them there)."""
    raw = into / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (root / "MNIST" / "raw").iterdir():
        os.symlink(f.resolve(), raw / f.name)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default="finetune,ewc,si,mas")
    args = ap.parse_args()
    try:
        from avalanche.benchmarks.classic import PermutedMNIST
    except ImportError:
        raise SystemExit("this benchmark needs avalanche-lib: pip install avalanche-lib==0.6.0") from None
    root = resolve_data_dir(args.data_dir)
    if root is None or not (root / "MNIST" / "raw").is_dir():
        raise SystemExit("this benchmark needs MNIST under --data-dir or $DHC_DATA_DIR (<root>/MNIST/raw)")
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    tasks = permuted_mnist(0, n_tasks=args.tasks, data_dir=args.data_dir, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        scenario = PermutedMNIST(n_experiences=args.tasks, seed=0,
                                 dataset_root=linked_mnist(root, Path(tmp)))
        ours: dict[str, list[float]] = {m: [] for m in methods}
        peer: dict[str, list[float]] = {m: [] for m in methods}
        for rep in range(args.repeats):
            for i, m in enumerate(methods):
                first_ours = (rep + i) % 2 == 0
                for side in ("ours", "peer") if first_ours else ("peer", "ours"):
                    times = dhc_epochs(m, tasks) if side == "ours" else avalanche_epochs(m, scenario)
                    (ours if side == "ours" else peer)[m].append(statistics.mean(times))
                    print(f"{m:9s} {'dhc' if side == 'ours' else 'Avalanche':9s} {statistics.mean(times):7.2f} s/epoch "
                          f"(per task: {', '.join(f'{t:.2f}' for t in times)})", flush=True)
    best = {m: (min(ours[m]), min(peer[m])) for m in methods}
    print(f"\nPermuted MNIST, MLP 784-400-400-10, SGD 0.01, batch 64, {args.tasks} tasks x 1 epoch; "
          f"{args.repeats} repeat(s), sides alternating; {device_description('cpu')}, "
          f"torch {torch.__version__}\n")
    print("| method | dhc (s/epoch) | dhc / dhc finetune | Avalanche 0.6 (s/epoch) | Avalanche / dhc |")
    print("| --- | --- | --- | --- | --- |")
    ft = best.get("finetune", (float("nan"),))[0]
    for m, (o, p) in best.items():
        print(f"| {m} | {o:.2f} | {o / ft:.2f}x | {p:.2f} | {p / o:.1f}x |")
    total_o, total_p = sum(o for o, _ in best.values()), sum(p for _, p in best.values())
    print(f"| all {len(best)} | {total_o:.2f} | | {total_p:.2f} | {total_p / total_o:.1f}x |")


if __name__ == "__main__":
    main()
