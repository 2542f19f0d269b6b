"""Seconds per paper-profile training epoch of the CNN benchmarks' tasks (issue #4: what they cost on a GPU / CPU).

For each task of the Vision Datasets Mixture (Table 3's CNN, batch 32, SGD 0.01) and of Split CIFAR-10/100 (Zenke
et al.'s CNN, batch 256, Adam 0.001), one epoch of dhclib's trainer (``train_epoch``: DHP Softmax with the
per-connection eta, the hooks of the method) over ``--samples`` rows of generated 3x32x32 uint8 data on the device,
scaled to the task's real training-set size (the paper's sizes below). Also the end-of-task importance of Online
EWC (exact Fisher) on 2,000 samples. Generated data: the time of an epoch does not depend on the pixels.

    python benchmarks/cnn_epoch.py [--device cuda] [--samples 4096] [--method dhp]

Prints one row per task: rows timed, seconds, seconds per full epoch, hours for the paper's epochs of that task.
"""

from __future__ import annotations

import argparse
import time

import torch

from dhclib.benchmarks import Task, rng
from dhclib.runs.config import resolve_config
from dhclib.runs.build import build_model, build_regulariser, device_description, resolve_device
from dhclib.method.train import make_optimizer, train_epoch

# Training samples per task (A.4; CIFAR-100's five tasks: 5,000 each) and epochs per task of the paper profile.
SIZES = {
    "vision_mixture": [("MNIST", 60000), ("notMNIST", 60000), ("FashionMNIST", 60000), ("SVHN", 73257),
                       ("CIFAR-10", 50000)],
    "split_cifar10_100": [("CIFAR-10", 50000)] + [(f"CIFAR-100 {10 * k}-{10 * k + 9}", 5000) for k in range(5)],
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fake_task(index: int, n: int, device: torch.device) -> Task:
    g = torch.Generator().manual_seed(index)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    y = (torch.randint(0, 10, (n,), generator=g) + 10 * index).to(device)
    rows = torch.arange(n, device=device)
    head = slice(10 * index, 10 * index + 10)
    return Task(f"task{index}", index, tuple(range(head.start, head.stop)), head, x, y, rows, rows[:0], x, y, rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--samples", type=int, default=4096, help="rows timed per task (scaled to the full epoch)")
    p.add_argument("--method", default="dhp", help="any method (default dhp: DHP Softmax, per-connection eta)")
    args = p.parse_args()
    device = resolve_device(args.device)
    print(f"device: {device_description(device)}, torch {torch.__version__}, method {args.method}")
    for bench, sizes in SIZES.items():
        cfg = resolve_config(bench, args.method, 0, "paper", str(device))
        model = build_model(cfg, 3, 10 * len(sizes))
        reg = build_regulariser(model, cfg)
        total_h = 0.0
        print(f"\n{bench} ({cfg.network}, batch {cfg.batch_size}, {cfg.optimizer or 'sgd'} {cfg.lr}, "
              f"{cfg.max_epochs} epochs per task)")
        print(f"{'task':<22}{'rows timed':>11}{'s':>9}{'s / full epoch':>16}{'h / task':>10}")
        for t, (name, n_full) in enumerate(sizes):
            task = fake_task(t, min(args.samples, n_full), device)
            opt = make_optimizer(model, cfg.protocol)
            reg.on_task_start(task)
            train_epoch(model, task, reg, opt, cfg.batch_size, rng(0, "warmup", t))  # warm-up (kernels, caches)
            _sync(device)
            t0 = time.perf_counter()
            train_epoch(model, task, reg, opt, cfg.batch_size, rng(0, "order", t))
            _sync(device)
            seconds = time.perf_counter() - t0
            per_epoch = seconds * n_full / task.n_train
            total_h += per_epoch * cfg.max_epochs / 3600
            print(f"{name:<22}{task.n_train:>11}{seconds:>9.2f}{per_epoch:>16.1f}{per_epoch * cfg.max_epochs / 3600:>10.2f}")
        print(f"{'one run (all tasks)':<58}{total_h:>10.2f} h")
        ewc = build_regulariser(model, resolve_config(bench, "ewc", 0, "paper", str(device),
                                                       **({} if bench == "vision_mixture" else {"lam": 1.0})))
        task = fake_task(0, 2000, device)
        _sync(device)
        t0 = time.perf_counter()
        ewc.on_task_end(task, rng(0, "importance", 0))
        _sync(device)
        print(f"Online EWC's exact Fisher on 2,000 samples at a task boundary: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
