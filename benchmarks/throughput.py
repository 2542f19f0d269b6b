"""Training throughput of the eight methods against a minimal plain PyTorch loop (issue #2, item 11).

For each method: seconds per training epoch on Permuted MNIST (the 784-400-400-10 MLP, batch 64, SGD 0.01), measured
over two tasks of one epoch each with one task boundary in between, so that the end-of-task consolidation (Online
EWC's Fisher, MAS's importance, SI's Omega) is counted. Validation and testing are not part of a training epoch and
are not timed. The plain loop trains the same network (nn.Linear layers, a plain linear softmax output) on the same
batches, in the same process, on the same device. The speed of a shared 2-core machine drifts by tens of percent
over minutes, so each repeat times the plain loop and the method back to back (alternating which goes first) and
takes their ratio; the table reports the median of these paired ratios and the fastest time of each.

    python benchmarks/throughput.py [--device cpu] [--repeats 5] [--methods finetune,dhp,...]

Needs MNIST under $DHC_DATA_DIR (or --data-dir); training uses the full 54,000 training rows per task.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from dhclib.benchmarks import permuted_mnist, rng
from dhclib.runs.config import METHODS, resolve_config
from dhclib.runs.execute import build_model, build_regulariser, device_description, resolve_device
from dhclib.method.train import Tracer, train_epoch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(tasks, device: torch.device, seed: int) -> float:
    """Seconds for one epoch on each task with a minimal PyTorch loop (no hooks, no traces)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 10)).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    _sync(device)
    t0 = time.perf_counter()
    for task in tasks:
        x, y, rows = task.x_train, task.y_train, task.train_idx
        order = rows[torch.randperm(rows.numel(), generator=rng(seed, "order", task.index)).to(device)]
        for start in range(0, order.numel(), 64):
            r = order[start : start + 64]
            loss = F.cross_entropy(net(x[r][:, task.perm]), y[r])
            opt.zero_grad()
            loss.backward()
            opt.step()
    _sync(device)
    return time.perf_counter() - t0


def method_loop(tasks, method: str, device: torch.device, seed: int) -> float:
    """Seconds for one epoch on each task through dhclib's trainer, with the task boundary's consolidation."""
    cfg = resolve_config("permuted_mnist", method, seed, "paper", str(device))
    model = build_model(cfg)
    reg = build_regulariser(model, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    tracer = Tracer(model, cfg.trace_every)  # as in a real run
    _sync(device)
    t0 = time.perf_counter()
    for task in tasks:
        reg.on_task_start(task)
        train_epoch(model, task, reg, opt, cfg.batch_size, rng(seed, "order", task.index), tracer)
        reg.on_task_end(task, rng(seed, "importance", task.index))
    _sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    device = resolve_device(args.device)
    tasks = permuted_mnist(0, n_tasks=2, data_dir=args.data_dir, device=device)
    methods = args.methods.split(",")
    plain_loop(tasks[:1], device, 0)  # warm-up (allocator, kernels)
    rows = []
    for method in methods:
        plain, ours = [], []
        for rep in range(args.repeats):
            if rep % 2 == 0:
                plain.append(plain_loop(tasks, device, rep) / len(tasks))
                ours.append(method_loop(tasks, method, device, rep) / len(tasks))
            else:
                ours.append(method_loop(tasks, method, device, rep) / len(tasks))
                plain.append(plain_loop(tasks, device, rep) / len(tasks))
        ratio = statistics.median(o / p for p, o in zip(plain, ours))
        p, o = min(plain), min(ours)
        rows.append((method, p, o, ratio))
        print(f"{method:10s} plain {p:6.3f} s/epoch   dhclib {o:6.3f} s/epoch   ratio {ratio:5.2f}   "
              f"(ratios {', '.join(f'{o / p:.2f}' for p, o in zip(plain, ours))})", flush=True)
    print(f"\nPermuted MNIST, MLP 784-400-400-10, batch 64, 54,000 training rows per task, 2 tasks x 1 epoch + 1 "
          f"task boundary; {args.repeats} paired repeats; {device_description(device)}, "
          f"torch {torch.__version__}\n")
    print("| method | plain loop (s/epoch, fastest) | dhclib (s/epoch, fastest) | ratio (median of paired) |")
    print("| --- | --- | --- | --- |")
    for method, p, o, ratio in rows:
        print(f"| {method} | {p:.3f} | {o:.3f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
