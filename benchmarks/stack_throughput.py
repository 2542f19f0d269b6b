"""Trial-steps per second of the stacked engine against the one-at-a-time engine (issue #7, item 5).

Permuted MNIST's MLP (784-400-400-10, batch 64, SGD 0.01, paper profile), one task's training epoch restricted to
``--steps`` batches: the one-at-a-time engine trains N trials one after the other (``train_epoch``), the stacked
engine trains the same N trials in lockstep (``dhclib.method.stacked``). Each repeat times both back to back, in
alternating order, in this process, and takes their ratio (a shared machine drifts by tens of percent over
minutes); the table gives the median paired ratio (stacked trial-steps/s ÷ one-at-a-time trial-steps/s) and the
fastest trial-steps/s of each. It also counts the tensor operations per trial-step of both engines (up to N = 10;
on a GPU each is about one kernel launch). On CUDA, unless ``--no-cuda-graphs``, the stacked engine runs a third
time with its step captured as a CUDA graph (issue #7 item 4): its rate, its ratio to the one-at-a-time engine,
and whether its weights after the epoch equal the eager stacked engine's bit for bit.

    python benchmarks/stack_throughput.py [--device cpu] [--stacks 1,2,5,10] [--methods finetune,dhp,...]

Needs MNIST under $DHC_DATA_DIR (or --data-dir). Default sizes: N = 1, 2, 5, 10 on a CPU; 1, 10, 40, 80, 160 on CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dhclib.method.stacked import OpCounter, Trial, train_epoch_stacked
from dhclib.method.train import TaskState, Tracer, train_epoch
from dhclib.runs.config import resolve_config
from dhclib.runs.build import build_run, device_description, resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trials(method: str, n: int, device: torch.device, data_dir, rows: int) -> tuple[list[Trial], list[TaskState]]:
    trials, states = [], []
    for seed in range(n):
        cfg = resolve_config("permuted_mnist", method, seed, "paper", str(device), n_tasks=1, train_size=rows)
        tasks, model, reg = build_run(cfg, data_dir)
        t = Trial(model, tasks, reg, seed)
        t.tracer = Tracer(model, cfg.protocol.trace_every)
        trials.append(t)
        states.append(TaskState(model, tasks[0], reg, cfg.protocol, seed))
    return trials, states


def one_at_a_time(trials, states, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for t, s in zip(trials, states):
        s.next_epoch()
        train_epoch(t.model, s.task, s.reg, s.opt, s.protocol.batch_size, s.order_rng, t.tracer, s.epoch)
    _sync(device)
    return time.perf_counter() - t0


def stacked(trials, states, device, cuda_graphs: bool = False) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for s in states:
        s.next_epoch()
    train_epoch_stacked(trials, states, states[0].protocol, cuda_graphs)
    _sync(device)
    return time.perf_counter() - t0


def graphed(trials, states, device) -> float:
    """The stacked engine with its step captured as a CUDA graph (issue #7 item 4)."""
    return stacked(trials, states, device, cuda_graphs=True)


def same_weights(a: list[Trial], b: list[Trial]) -> bool:
    return all(torch.equal(x, y) for ta, tb in zip(a, b)
               for x, y in zip(ta.model.state_dict().values(), tb.model.state_dict().values()))


def ops_per_trial_step(method: str, n: int, device, data_dir) -> tuple[float, float]:
    """Tensor operations (views left out) per trial-step of each engine: counted, not timed, over an epoch of 60
    batches less one of 10 (what an epoch costs once, its data order and snapshots, cancels; the trace recorded
    every 50 steps stays). On a GPU each is about one kernel launch, the bound of a small network's step there."""
    out = []
    for engine in (one_at_a_time, stacked):
        counts = []
        for steps in (10, 60):
            with OpCounter() as ops:
                engine(*_trials(method, n, device, data_dir, 64 * steps), device)
            counts.append(ops.n)
        out.append((counts[1] - counts[0]) / (n * 50))
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--stacks", default=None, help="comma-separated N (default: by device)")
    ap.add_argument("--methods", default="finetune,dhp,dhp+si,dhp+ewc,dhp+mas")
    ap.add_argument("--steps", type=int, default=100, help="training steps (batches of 64) per timed epoch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-cuda-graphs", action="store_true", help="on CUDA, leave out the graphed engine's columns")
    args = ap.parse_args()
    device = resolve_device(args.device)
    graphs = device.type == "cuda" and not args.no_cuda_graphs
    stacks = [int(n) for n in (args.stacks or ("1,10,40,80,160" if device.type == "cuda" else "1,2,5,10")).split(",")]
    rows = 64 * args.steps
    print(f"# {device_description(device)}; Permuted MNIST MLP, batch 64, {args.steps} steps per trial, "
          f"median of {args.repeats} paired repeats")
    head = ("| method | N | one-at-a-time trial-steps/s | stacked trial-steps/s | stacked / one-at-a-time "
            "| operations per trial-step, one-at-a-time / stacked |")
    if graphs:
        head += " graphed trial-steps/s | graphed / one-at-a-time | graphed = stacked, bitwise |"
    print(head)
    print("|---" * head.count(" |") + "|")
    for method in args.methods.split(","):
        for n in stacks:
            ratios, single_best, stack_best = [], 0.0, 0.0
            graph_ratios, graph_best, same = [], 0.0, True
            for rep in range(args.repeats):
                # fresh trials for each engine, so that all train the same first epoch
                a = _trials(method, n, device, args.data_dir, rows)
                b = _trials(method, n, device, args.data_dir, rows)
                if rep % 2:
                    ts, t1 = stacked(*b, device), one_at_a_time(*a, device)
                else:
                    t1, ts = one_at_a_time(*a, device), stacked(*b, device)
                single, stack = n * args.steps / t1, n * args.steps / ts
                ratios.append(stack / single)
                single_best, stack_best = max(single_best, single), max(stack_best, stack)
                if graphs:
                    g = _trials(method, n, device, args.data_dir, rows)
                    rate = n * args.steps / graphed(*g, device)
                    graph_ratios.append(rate / single)
                    graph_best = max(graph_best, rate)
                    same = same and same_weights(b[0], g[0])
            # counting runs every operation through Python: slow, and the same on every device; up to N = 10 only
            ops = "%.0f / %.1f" % ops_per_trial_step(method, n, device, args.data_dir) if n <= 10 else "—"
            line = (f"| {method} | {n} | {single_best:.0f} | {stack_best:.0f} | {statistics.median(ratios):.2f}× "
                    f"| {ops} |")
            if graphs:
                line += f" {graph_best:.0f} | {statistics.median(graph_ratios):.2f}× | {'yes' if same else 'NO'} |"
            print(line, flush=True)


if __name__ == "__main__":
    main()
