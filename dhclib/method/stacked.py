"""The stacked engine: several trials of one configuration trained in lockstep on one device (issue #7).

Each trial keeps its own network, regulariser, optimiser, tasks (its seed's permutations, splits and imbalance
subset) and data order, exactly as :func:`dhclib.method.train.train_sequence` would build them. Only the hot
step is shared: at every training step the trials' parameters and buffers are stacked along a leading trial
dimension and one ``torch.func.vmap`` of the network's forward pass computes every trial's logits (a linear layer
becomes a batched matrix product, a convolution a grouped one); one backward pass of the summed losses gives each
trial the gradient of its own loss, since no trial's loss depends on another's parameters. The regulariser hooks and
the optimiser step then run per trial on its own parameters (:func:`dhclib.method.train.apply_step`), so Online
EWC, SI and MAS keep per-trial importance, anchors and path integrals, and DHP Softmax a per-trial trace and eta.

The protocol is per trial (SPEC §4, A.1; :class:`dhclib.method.train.TaskState`): a trial whose task has ended
(early stopping) leaves the stack, frozen, until every trial has ended the task; a trial whose loss becomes
NaN/inf ends with its usual :class:`~dhclib.errors.PlasticInstabilityError` and the others go on. Evaluation is
batched over the trials too (:func:`evaluate_stacked`: one vmapped forward pass per chunk, each trial on its own
validation or test rows and its own permutation); the task-boundary work (importance, consolidation) runs per trial
with the one-at-a-time code.

Same numbers: a stack of one trial takes the one-at-a-time path, so it is the same run bit for bit. In a larger
stack the batched matrix products may sum in another order than the single ones (platform-dependent), so a trial
agrees with its one-at-a-time run to rounding, not always bitwise (``tests/test_stacked.py`` states the tolerance).
Dropout (the Split CIFAR CNN) draws its masks from the global generator in another order under vmap: such a stack
is a valid run of the same protocol, not the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from dhclib._progress import tqdm
from dhclib.errors import PlasticInstabilityError
from dhclib.method.consolidation import Consolidation
from dhclib.method.task import Task
from dhclib.method.train import (Protocol, SequenceLog, TaskState, Tracer, apply_step, epoch_order, evaluate,
                                 train_sequence, train_step)

__all__ = ["Trial", "train_stack", "train_epoch_stacked", "stack_step", "evaluate_stacked"]


class Trial:
    """One trial of a stack: its network, tasks, regulariser and seed, and what it has logged so far."""

    def __init__(self, model: nn.Module, tasks: list[Task], reg: Consolidation, seed: int) -> None:
        self.model, self.tasks, self.reg, self.seed = model, tasks, reg, seed
        self.R = np.full((len(tasks), len(tasks)), np.nan)
        self.tracer: Tracer | None = None  # made by train_stack, with the protocol's trace_every
        self.epochs: list[dict] = []
        self.task_rows: list[dict] = []
        self.error: PlasticInstabilityError | None = None

    def result(self) -> SequenceLog | PlasticInstabilityError:
        return self.error if self.error is not None else SequenceLog(R=self.R, traces=self.tracer.rows,
                                                                     epochs=self.epochs, tasks=self.task_rows)


def _same_shapes(models: list[nn.Module]) -> None:
    shapes = [[(k, tuple(v.shape)) for k, v in m.state_dict().items()] for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("a stack trains networks of one architecture; these differ in their parameters' shapes")


def stack_step(models: list[nn.Module], states: list[TaskState], batches: list[tuple[Tensor, Tensor]],
               heads: list[slice]) -> Tensor:
    """One training step of every trial in ``models`` at once: vmapped forward over the stacked parameters and
    buffers, one backward pass, then each trial's regulariser hooks and optimiser step; the updated buffers (DHP's
    trace) are written back to each trial's network. ``batches``: each trial's (inputs, labels), of one shape.
    Returns the trials' task losses (detached), shape ``(len(models),)``."""
    base = models[0]
    names = [n for n, _ in base.named_parameters()]
    buffer_names = [n for n, _ in base.named_buffers()]
    own_params = [list(m.parameters()) for m in models]  # in named_parameters' order
    own_buffers = [list(m.buffers()) for m in models]
    params = {n: torch.stack([p[j] for p in own_params]) for j, n in enumerate(names)}
    buffers = {n: torch.stack([b[j] for b in own_buffers]) for j, n in enumerate(buffer_names)}
    x = torch.stack([b[0] for b in batches])
    y = torch.stack([b[1] for b in batches])

    def forward(p, b, xb, yb):
        return functional_call(base, (p, b), (xb, yb))

    logits = vmap(forward, randomness="different")(params, buffers, x, y)
    losses = torch.stack([F.cross_entropy(logits[k][:, h], y[k] - h.start) for k, h in enumerate(heads)])
    for s in states:
        s.opt.zero_grad()
    losses.sum().backward()
    with torch.no_grad():
        for k, own in enumerate(own_buffers):
            for j, n in enumerate(buffer_names):
                own[j].copy_(buffers[n][k])
    for s in states:
        apply_step(s.reg, s.opt)
    return losses.detach()


def _stacked_state(models: list[nn.Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The trials' parameters and buffers stacked along a leading trial dimension (detached: for evaluation)."""
    own_params = [dict(m.named_parameters()) for m in models]
    own_buffers = [dict(m.named_buffers()) for m in models]
    params = {n: torch.stack([o[n].detach() for o in own_params]) for n in own_params[0]}
    buffers = {n: torch.stack([o[n] for o in own_buffers]) for n in own_buffers[0]}
    return params, buffers


@torch.no_grad()
def evaluate_stacked(models: list[nn.Module], tasks: list[Task], split: str = "test",
                     batch_size: int = 10000) -> list[float]:
    """Each trial's accuracy on its own task's ``split`` (:func:`dhclib.method.train.evaluate`, batched over the
    trials): trials whose split has the same number of rows share one vmapped forward pass per chunk of
    ``batch_size`` rows, in evaluation mode (DHP's trace is read, not updated); a trial alone is evaluated by
    ``evaluate`` itself. NaN for an empty split."""
    out = [float("nan")] * len(models)
    groups: dict[int, list[int]] = {}
    for k, task in enumerate(tasks):
        groups.setdefault(task.split(split)[2].numel(), []).append(k)
    for size, members in groups.items():
        if size == 0:
            continue
        if len(members) == 1:
            out[members[0]] = evaluate(models[members[0]], tasks[members[0]], split, batch_size)
            continue
        base = models[members[0]]
        params, buffers = _stacked_state([models[k] for k in members])
        was_training = base.training
        base.eval()  # functional_call runs base's forward: its mode is the pass's mode

        def forward(p, b, xb):
            return functional_call(base, (p, b), (xb,))

        data = [tasks[k].split(split) for k in members]
        correct = torch.zeros(len(members), dtype=torch.long, device=data[0][2].device)
        try:
            for start in range(0, size, batch_size):
                rows = [d[2][start:start + batch_size] for d in data]
                x = torch.stack([tasks[k].inputs(d[0], r) for k, d, r in zip(members, data, rows)])
                logits = vmap(forward)(params, buffers, x)
                for j, (k, d, r) in enumerate(zip(members, data, rows)):
                    head = tasks[k].head
                    correct[j] += (logits[j][:, head].argmax(1) == tasks[k].local(d[1].index_select(0, r))).sum()
        finally:
            base.train(was_training)
        for j, k in enumerate(members):
            out[k] = correct[j].item() / size
    return out


def train_epoch_stacked(trials: list[Trial], states: list[TaskState], protocol: Protocol) -> list[Tensor]:
    """One epoch of every running trial in lockstep; each trial's summed loss. Trials whose current batch has
    another shape (a task with fewer training rows) are stepped in groups of equal shape."""
    orders, data = [], []
    for t, s in zip(trials, states):
        t.model.train()
        x, y, rows = s.task.split("train")
        orders.append(epoch_order(rows, s.order_rng))
        data.append((x, y))
    bs = protocol.batch_size
    loss_sums = [torch.zeros((), device=o.device) for o in orders]
    steps = max(-(-o.numel() // bs) for o in orders)
    for i in range(steps):
        groups: dict[int, list[int]] = {}
        for k, o in enumerate(orders):
            r = o[i * bs:(i + 1) * bs]
            if r.numel():
                groups.setdefault(r.numel(), []).append(k)
        for members in groups.values():
            rs = [orders[k][i * bs:(i + 1) * bs] for k in members]
            batches = [(states[k].task.inputs(data[k][0], r), data[k][1].index_select(0, r))
                       for k, r in zip(members, rs)]
            if len(members) == 1:  # the one-at-a-time step itself
                (k,), s = members, states[members[0]]
                losses = train_step(trials[k].model, s.task, s.reg, s.opt, *batches[0]).detach().reshape(1)
            else:
                losses = stack_step([trials[k].model for k in members], [states[k] for k in members], batches,
                                    [states[k].task.head for k in members])
            for j, k in enumerate(members):
                loss_sums[k] += losses[j]
                trials[k].tracer.tick(states[k].task.index, states[k].epoch, losses[j])
    return loss_sums


def train_stack(trials: list[Trial], protocol: Protocol, progress: bool = False,
                desc: str = "tasks") -> list[SequenceLog | PlasticInstabilityError]:
    """Learn every trial's tasks in order, in lockstep (module docstring), and test every task seen after each
    one (SPEC §6). Returns, per trial, its :class:`~dhclib.method.train.SequenceLog`, or the error that ended it
    if its loss became NaN/inf. A single trial is :func:`~dhclib.method.train.train_sequence` itself."""
    if len(trials) == 1:
        t = trials[0]
        try:
            return [train_sequence(t.model, t.tasks, t.reg, protocol, t.seed, progress=progress, desc=desc)]
        except PlasticInstabilityError as exc:
            return [exc]
    _same_shapes([t.model for t in trials])
    n = len(trials[0].tasks)
    if any(len(t.tasks) != n for t in trials):
        raise ValueError("a stack's trials learn the same number of tasks")
    for t in trials:
        t.tracer = Tracer(t.model, protocol.trace_every)
    bar = tqdm(range(n), desc=desc, leave=False, disable=not progress)
    for T in bar:
        alive = [t for t in trials if t.error is None]
        if not alive:
            break
        states = {id(t): TaskState(t.model, t.tasks[T], t.reg, protocol, t.seed) for t in alive}
        running = list(alive)
        while running:
            now = [states[id(t)] for t in running]
            for s in now:
                s.next_epoch()
            sums = train_epoch_stacked(running, now, protocol)
            val = evaluate_stacked([t.model for t in running], [s.task for s in now], "val", protocol.eval_batch_size)
            still = []
            for t, s, loss_sum, val_acc in zip(running, now, sums, val):
                try:
                    if not s.end_epoch(loss_sum, val_acc):
                        still.append(t)
                        continue
                except PlasticInstabilityError as exc:
                    t.error = exc
                    continue
                log = s.finish()
                t.epochs.extend(log.epochs)
                t.task_rows.append({"task": T, "name": t.tasks[T].name, "n_train": t.tasks[T].n_train,
                                    "epochs": len(log.epochs), "best_epoch": log.best_epoch, "seconds": log.seconds})
            running = still
        done = [t for t in alive if t.error is None]
        for i in range(T + 1):
            accs = evaluate_stacked([t.model for t in done], [t.tasks[i] for t in done], "test",
                                    protocol.eval_batch_size)
            for t, acc in zip(done, accs):
                t.R[T, i] = acc
        bar.set_postfix(task=T + 1, trials=sum(t.error is None for t in trials))
    bar.close()
    return [t.result() for t in trials]
