"""How much a stack can gain on this CPU at all (issue #7, item 5): the bare forward and backward pass and SGD update
of Permuted MNIST's MLP (784-400-400-10, batch 64), ten trials as one batched product (``bmm``) against ten
single products (``mm``) one after the other, in this process, three paired repeats. No dhclib code: this is the
ceiling the stacked engine works under, not the engine.

    python benchmarks/bmm_probe.py [--threads 1,2] [--trials 10]
"""

from __future__ import annotations

import argparse
import time

import torch

SIZES = ((784, 400), (400, 400), (400, 10))


def _step(ws: list[torch.Tensor], x: torch.Tensor, matmul) -> None:
    h = x
    for i, w in enumerate(ws):
        h = matmul(h, w)
        if i < len(ws) - 1:
            h = torch.relu(h)
    h.sum().backward()
    with torch.no_grad():
        for w in ws:
            w.sub_(0.01 * w.grad)
            w.grad = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()
    n, batch = args.trials, 64
    print(f"# bare MLP step, {n} trials: bmm over the trials ÷ {n} single mm, trial-steps per second")
    print("| threads | single ms / trial-step | bmm ms / trial-step | bmm ÷ single (speed) |")
    print("|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        one = [torch.randn(i, o, requires_grad=True) for i, o in SIZES]
        many = [torch.randn(n, i, o, requires_grad=True) for i, o in SIZES]
        x1, xn = torch.randn(batch, 784), torch.randn(n, batch, 784)
        for _ in range(5):
            _step(one, x1, torch.mm), _step(many, xn, torch.bmm)
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(20 * n):
                _step(one, x1, torch.mm)
            single = (time.perf_counter() - t0) / (20 * n)
            t0 = time.perf_counter()
            for _ in range(20):
                _step(many, xn, torch.bmm)
            stacked = (time.perf_counter() - t0) / (20 * n)
            print(f"| {threads} | {1e3 * single:.3f} | {1e3 * stacked:.3f} | {single / stacked:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
