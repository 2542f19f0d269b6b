"""The stacked engine: several trials of one configuration trained in lockstep on one device (issue #7).

Each trial keeps its own network, regulariser, optimiser, tasks (its seed's permutations, splits and imbalance
subset) and data order, exactly as :func:`dhclib.method.train.train_sequence` would build them. For an epoch the
trials' parameters and buffers move into stacked tensors with a leading trial dimension, and each trial's own
tensors become views of them (:class:`_Stack`). A training step is then one ``torch.func.vmap`` of the network's
forward pass over the stacked tensors (a linear layer becomes a batched matrix product, a convolution a grouped
one; DHP's trace is updated in place, per trial), one backward pass of the summed losses (each trial gets the
gradient of its own loss, since no trial's loss depends on another's parameters), and the regulariser's hooks and
the optimiser's step once over the stacked tensors: they are elementwise, so Online EWC, SI and MAS keep per-trial
importance, anchors and path integrals, and DHP Softmax a per-trial trace and eta, while the number of operations
per step does not grow with the number of trials (what a GPU pays for). An optimiser with state (Adam) steps each
trial on its own instead.

The protocol is per trial (docs/method.md (benchmarks), A.1; :class:`dhclib.method.train.TaskState`): a trial whose task has ended
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

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.utils._python_dispatch import TorchDispatchMode

from dhclib._progress import tqdm
from dhclib.errors import PlasticInstabilityError
from dhclib.method.consolidation import Consolidation
from dhclib.method.task import Task, stacked_inputs
from dhclib.method.train import (Protocol, SequenceLog, TaskState, Tracer, apply_step, epoch_order, evaluate,
                                 tick_traces, train_sequence, train_step)

__all__ = ["Trial", "train_stack", "train_epoch_stacked", "evaluate_stacked", "OpCounter"]


class Trial:
    """One trial of a stack: its network, tasks, regulariser and seed, and what it has logged so far."""

    def __init__(self, model: nn.Module, tasks: list[Task], reg: Consolidation, seed: int) -> None:
        self.model, self.tasks, self.reg, self.seed = model, tasks, reg, seed
        self.tracer: Tracer | None = None  # made by train_stack, with the protocol's trace_every
        self.log: SequenceLog | None = None  # made by train_stack, with the tracer
        self.error: PlasticInstabilityError | None = None

    def result(self) -> SequenceLog | PlasticInstabilityError:
        return self.error if self.error is not None else self.log


class OpCounter(TorchDispatchMode):
    """Counts the tensor operations dispatched while it is active (``with OpCounter() as ops: ...``, then
    ``ops.n``), views (which move no data) left out. On a GPU each is about one kernel launch, and a launch costs
    about the same whatever the tensor's size: the cost that a stack shares among its trials
    (``benchmarks/stack_throughput.py``, ``tests/test_stacked.py``)."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += not func.is_view
        return func(*args, **(kwargs or {}))


def _same_shapes(models: list[nn.Module]) -> None:
    shapes = [[(k, tuple(v.shape)) for k, v in m.state_dict().items()] for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("a stack trains networks of one architecture; these differ in their parameters' shapes")


class _Stack:
    """The running trials' parameters and buffers held in stacked tensors for one epoch (``[trial, ...]``), each
    trial's own tensors rebound to views of them, so that a stacked step updates every trial in place and whatever
    reads a trial (its hooks, its tracer, a one-at-a-time step, ``state_dict``) sees the current values; with the
    regulariser's per-step hooks (:meth:`~dhclib.method.consolidation.Consolidation.stacked`) and, for plain SGD, one
    optimiser over the stacked parameters. :meth:`close` gives every trial back tensors of its own."""

    def __init__(self, models: list[nn.Module], states: list[TaskState]) -> None:
        self.base, self.states = models[0], states
        self.params: dict[str, Tensor] = {}
        self.buffers: dict[str, Tensor] = {}
        self._own: list[Tensor] = []  # every trial tensor now a view, to be given its own storage back by close()
        for store, named in ((self.params, "named_parameters"), (self.buffers, "named_buffers")):
            owns = [dict(getattr(m, named)()) for m in models]
            for n, first in owns[0].items():
                own = [o[n] for o in owns]
                stacked = torch.stack([t.detach() for t in own])
                for k, t in enumerate(own):
                    t.data = stacked[k]
                self._own.extend(own)
                store[n] = stacked.requires_grad_(first.requires_grad) if store is self.params else stacked
        slow = list(self.states[0].reg.names)
        regs = [s.reg for s in states]
        for r in regs:
            self._own.extend(t for name in type(r).step_state for t in getattr(r, name))
        self.reg = type(regs[0]).stacked(regs, [self.params[n] for n in slow])
        opts = [s.opt for s in states]
        # Plain SGD is stateless and elementwise: one step over the stacked parameters is every trial's own step.
        # An optimiser with state (Adam) steps each trial on its own, from the stacked gradient's views.
        plain = all(type(o) is torch.optim.SGD and all(g["momentum"] == 0 for g in o.param_groups) for o in opts)
        self.opt = torch.optim.SGD(list(self.params.values()), **opts[0].defaults) if plain else None
        self._own_params = [list(m.parameters()) for m in models]

    def step(self, x: Tensor, y: Tensor, head: slice) -> Tensor:
        """One training step of every trial on its batch (``x``: ``[trial, batch, ...]``, ``y`` global labels; the
        trials learn one task, so one ``head``):
        one vmapped forward pass over the stacked parameters and buffers (DHP's trace is updated in place in the
        stacked buffer), one backward pass of the summed task losses (no trial's loss depends on another's
        parameters), then the regulariser's hooks around the optimiser's step (:func:`apply_step`), once for
        all trials. Returns the trials' task losses (detached), shape ``(trials,)``."""
        base = self.base

        def forward(p, b, xb, yb):
            return functional_call(base, (p, b), (xb, yb))

        logits = vmap(forward, randomness="different")(self.params, self.buffers, x, y)
        z = logits[:, :, head]
        losses = F.cross_entropy(z.reshape(-1, z.shape[-1]), (y - head.start).reshape(-1),
                                 reduction="none").view(y.shape).mean(1)
        for p in self.params.values():
            p.grad = None
        losses.sum().backward()
        if self.opt is not None:
            apply_step(self.reg, self.opt)
        else:
            for k, s in enumerate(self.states):
                for p, stacked in zip(self._own_params[k], self.params.values()):
                    p.grad = None if stacked.grad is None else stacked.grad[k]
                apply_step(s.reg, s.opt)
        return losses.detach()

    @torch.no_grad()
    def close(self) -> None:
        for t in self._own:
            t.data = t.data.clone()
        self._own.clear()


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
        for k, c in zip(members, correct.tolist()):  # one read for the group, not one per trial
            out[k] = c / size
    return out


class _Graphed:
    """One stacked step captured as a CUDA graph (``torch.cuda.graph``) and replayed at every later step of the
    epoch: a GPU then launches the step's kernels from one call instead of one Python dispatch each (issue #7
    item 4). ``fn(rows)`` is the step from the batch's row indices ``[trial, batch]`` (gather, forward, backward,
    the regulariser's hooks, SGD, the loss sums); a replay runs the same kernels on the same addresses, so it gives
    the numbers the step gives eagerly. The capture records, it does not run: the step captured is replayed once
    at once. :meth:`capture` returns None, and says why once, where capture fails (the epoch then goes on
    eagerly)."""

    warned = False

    def __init__(self, fn, rows: Tensor) -> None:
        self.rows = rows.clone()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = fn(self.rows)

    @classmethod
    def capture(cls, fn, rows: Tensor) -> "_Graphed | None":
        try:
            return cls(fn, rows)
        except RuntimeError as exc:  # an operation that cannot be captured: go on eagerly
            if not cls.warned:
                cls.warned = True
                warnings.warn(f"the stacked step could not be captured as a CUDA graph; it runs eagerly: "
                              f"{' '.join(str(exc).split())[:300]}", RuntimeWarning, stacklevel=3)
            return None

    def __call__(self, rows: Tensor) -> Tensor:
        self.rows.copy_(rows)
        self.graph.replay()
        return self.out


def _on_side_stream(side: "torch.cuda.Stream", fn, rows: Tensor) -> Tensor:
    """``fn(rows)`` on the stream ``side``, as CUDA graphs want the steps before a capture (lazy initialisation,
    such as the BLAS handles, happens there and not inside the capture)."""
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = fn(rows)
    torch.cuda.current_stream().wait_stream(side)
    return out


GRAPH_WARMUP = 3  # eager steps of an epoch before its step is captured


def train_epoch_stacked(trials: list[Trial], states: list[TaskState], protocol: Protocol,
                        cuda_graphs: bool = False) -> list[Tensor]:
    """One epoch of every running trial in lockstep; each trial's summed loss. A step that every trial takes with
    a batch of one shape is one stacked step (:class:`_Stack`, built once for the epoch); the others (the last,
    shorter batches, or trials with more training rows than the rest) are each trial's own one-at-a-time step, on
    the same tensors.

    ``cuda_graphs``: on a CUDA device, capture the stacked step after :data:`GRAPH_WARMUP` eager steps and replay
    it for the rest of the epoch (:class:`_Graphed`), where it can be: plain SGD (Adam steps per trial) and
    trials gathering their batches from one dataset. Elsewhere it changes nothing."""
    orders, data = [], []
    for t, s in zip(trials, states):
        t.model.train()
        x, y, rows = s.task.split("train")
        orders.append(epoch_order(rows, s.order_rng))
        data.append((x, y))
    bs = protocol.batch_size
    loss_sums = torch.zeros(len(trials), device=orders[0].device)
    steps = max(-(-o.numel() // bs) for o in orders)
    together = min(o.numel() // bs for o in orders)  # the steps every trial takes with a full batch
    stacked_rows = torch.stack([o[:together * bs] for o in orders]).view(len(trials), together, bs)
    tasks = [s.task for s in states]
    shared = all(d[0] is data[0][0] and d[1] is data[0][1] for d in data)  # one dataset: gathered at once
    head = tasks[0].loss_units
    if any(task.loss_units != head for task in tasks):
        raise ValueError("a stack's trials learn one task at a time: their loss units differ")
    stack = _Stack([t.model for t in trials], states)
    tracers, task_ids, epochs = [t.tracer for t in trials], [task.index for task in tasks], [s.epoch for s in states]

    def step(rs: Tensor) -> Tensor:
        if shared:
            x, y = stacked_inputs(tasks, data[0][0], rs), data[0][1].index_select(0, rs.reshape(-1)).view(rs.shape)
        else:
            x = torch.stack([task.inputs(d[0], r) for task, d, r in zip(tasks, data, rs)])
            y = torch.stack([d[1].index_select(0, r) for d, r in zip(data, rs)])
        losses = stack.step(x, y, head)
        loss_sums.add_(losses)
        return losses

    graphs = cuda_graphs and loss_sums.device.type == "cuda" and stack.opt is not None and shared
    side = torch.cuda.Stream() if graphs else None
    graphed = None
    try:
        for i in range(together):
            rs = stacked_rows[:, i]
            if graphs and graphed is None and i >= GRAPH_WARMUP:
                graphed = _Graphed.capture(step, rs)
                graphs = graphed is not None
            if graphed is not None:
                losses = graphed(rs)
            else:
                losses = _on_side_stream(side, step, rs) if graphs else step(rs)
            tick_traces(tracers, task_ids, epochs, losses)
        for i in range(together, steps):
            for k, (t, s, d, o) in enumerate(zip(trials, states, data, orders)):
                r = o[i * bs:(i + 1) * bs]
                if r.numel():
                    loss = train_step(t.model, s.task, s.reg, s.opt, s.task.inputs(d[0], r),
                                      d[1].index_select(0, r)).detach()
                    loss_sums[k] += loss
                    t.tracer.tick(s.task.index, s.epoch, loss)
    finally:
        del graphed
        stack.close()
    return list(loss_sums.unbind())


def train_stack(trials: list[Trial], protocol: Protocol, progress: bool = False, desc: str = "tasks",
                cuda_graphs: bool = False) -> list[SequenceLog | PlasticInstabilityError]:
    """Learn every trial's tasks in order, in lockstep (module docstring), and test every task seen after each
    one (docs/method.md (metrics)). Returns, per trial, its :class:`~dhclib.method.train.SequenceLog`, or the error that ended it
    if its loss became NaN/inf. A single trial is :func:`~dhclib.method.train.train_sequence` itself.
    ``cuda_graphs``: see :func:`train_epoch_stacked`."""
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
        t.log = SequenceLog.start(n, t.tracer)
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
            sums = train_epoch_stacked(running, now, protocol, cuda_graphs)
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
                t.log.add_task(s.finish(), t.tasks[T])
            running = still
        done = [t for t in alive if t.error is None]
        for i in range(T + 1):
            accs = evaluate_stacked([t.model for t in done], [t.tasks[i] for t in done], "test",
                                    protocol.eval_batch_size)
            for t, acc in zip(done, accs):
                t.log.R[T, i] = acc
        bar.set_postfix(task=T + 1, trials=sum(t.error is None for t in trials))
    bar.close()
    return [t.result() for t in trials]
