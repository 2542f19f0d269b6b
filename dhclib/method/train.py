"""The sequential training protocol (docs/method.md (benchmarks), Appendix A.1) and batched evaluation.

Tasks are learned one after the other with plain SGD (or Adam where a protocol says so: Split CIFAR-10/100). Each epoch is followed by a validation pass; with early
stopping, training runs at least ``min_epochs``, stops once the validation score has not improved for
``patience`` epochs (or at ``max_epochs``), and restores the weights, the Hebbian trace and the regulariser's
state of the best epoch. The score is the validation accuracy by default; A.1's "validation error" can as well
mean the validation cross-entropy (``select_metric="loss"``, a labelled reading). Each task's row records, at the
restored epoch, what the consolidation mechanism looks like (:func:`mechanism`). After each task, every task seen so far is tested: row T of the accuracy matrix R.

The loop calls the regulariser's hooks and never branches on the method's name; it reads only the small
:class:`Protocol` of a run, never the whole run config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from dhclib._progress import tqdm

from dhclib.method import divergence
from dhclib.method.consolidation import Consolidation
from dhclib.errors import PlasticInstabilityError
from dhclib.method.models import plastic_layer
from dhclib.method.task import Task
from dhclib.registry import Settings, added, is_int, need
from dhclib.seeds import rng

__all__ = ["Protocol", "evaluate", "make_optimizer", "train_epoch", "train_task", "train_sequence", "SequenceLog",
           "Tracer", "record_traces", "tick_traces", "TaskState", "train_step", "apply_step", "epoch_order",
           "evaluate_with_loss", "mechanism", "SELECT_METRICS"]

# What early stopping compares between epochs (Appendix A.1's "validation error"): the accuracy (ours, the
# default) or the cross-entropy (lower is better).
SELECT_METRICS = ("accuracy", "loss")


@dataclass(frozen=True)
class Protocol(Settings):
    """How each task is learned (docs/method.md (benchmarks), A.1): the optimiser (None: plain SGD, the paper's; ``"adam"``: Split
    CIFAR-10/100 after Zenke et al.), batch size and learning rate, the epochs (at least ``min_epochs``, at most
    ``max_epochs``; with ``early_stopping``, stop after ``patience`` epochs without a better validation score,
    ``select_on`` "val" (ours) or "test" (the paper's wording, flagged), compared by ``select_metric`` "accuracy"
    (ours) or "loss" (the cross-entropy over the task's loss units), and restore the best epoch); how often the
    ablation traces are recorded (``trace_every`` steps) and the evaluation batch size."""

    optimizer: str | None = None
    batch_size: int = 64
    lr: float = 0.01
    min_epochs: int = 10
    max_epochs: int = 100
    patience: int = 5
    early_stopping: bool = True
    select_on: str = "val"
    trace_every: int = 50
    eval_batch_size: int = 10000
    select_metric: str = added("accuracy")

    def __post_init__(self) -> None:
        if self.optimizer == "sgd":  # the default spelled out: the same run, so the same key
            object.__setattr__(self, "optimizer", None)
        super().__post_init__()

    def validate(self) -> None:
        need(is_int(self.batch_size) and self.batch_size >= 1,
             f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        need(isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool) and self.lr > 0,
             f"lr must be > 0, got {self.lr!r}")
        need(is_int(self.min_epochs) and self.min_epochs >= 1,
             f"min_epochs must be an integer >= 1, got {self.min_epochs!r}")
        need(is_int(self.max_epochs) and self.max_epochs >= self.min_epochs,
             f"max_epochs must be an integer >= min_epochs ({self.min_epochs}), got {self.max_epochs!r}")
        need(is_int(self.patience) and self.patience >= 1, f"patience must be an integer >= 1, got {self.patience!r}")
        need(self.select_on in ("val", "test"), f"select_on must be 'val' or 'test', got {self.select_on!r}")
        need(self.select_metric in SELECT_METRICS,
             f"select_metric must be 'accuracy' or 'loss', got {self.select_metric!r}")
        need(self.optimizer in (None, "sgd", "adam"), f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        need(is_int(self.trace_every) and self.trace_every >= 1,
             f"trace_every must be an integer >= 1, got {self.trace_every!r}")
        need(is_int(self.eval_batch_size) and self.eval_batch_size >= 1, "eval_batch_size must be an integer >= 1")


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, split: str = "test", batch_size: int = 10000) -> float:
    """Accuracy of the model on a task's split, predicting within the task's head; the trace is not updated."""
    return _evaluate(model, task, split, batch_size, with_loss=False)[0]


@torch.no_grad()
def evaluate_with_loss(model: nn.Module, task: Task, split: str = "val", batch_size: int = 10000) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of the model on a task's split in one pass: the accuracy as
    :func:`evaluate`, the loss over the units its training loss uses (``task.loss_units``)."""
    return _evaluate(model, task, split, batch_size, with_loss=True)


def _evaluate(model: nn.Module, task: Task, split: str, batch_size: int, with_loss: bool) -> tuple[float, float]:
    x, y, rows = task.split(split)
    if rows.numel() == 0:
        return float("nan"), float("nan")
    was_training = model.training
    model.eval()
    head, units = task.head, task.loss_units
    correct = torch.zeros((), dtype=torch.long, device=rows.device)
    total = torch.zeros((), dtype=torch.float64, device=rows.device)
    for start in range(0, rows.numel(), batch_size):
        r = rows[start : start + batch_size]
        logits, yb = model(task.inputs(x, r)), y.index_select(0, r)
        correct += (logits[:, head].argmax(1) == task.local(yb)).sum()
        if with_loss:
            total += F.cross_entropy(logits[:, units], yb - units.start, reduction="sum").double()
    model.train(was_training)
    return correct.item() / rows.numel(), (total.item() / rows.numel() if with_loss else float("nan"))


@torch.no_grad()
def mechanism(model: nn.Module, reg: Consolidation, lr: float) -> dict[str, float]:
    """What the consolidation mechanism looks like now (recorded per task at its restored epoch): for DHP Softmax
    the plastic term's size against the slow weights, ``||alpha (.) Hebb||_F / ||theta||_F`` (``plastic_ratio``),
    and ``||alpha||_F``; for every method the penalty's largest ``lr * 2 lam Omega`` in force while the task was
    learned (``penalty_stiffness``; plain SGD on the penalty alone oscillates with a growing amplitude above 2)."""
    out = {}
    layer = plastic_layer(model)
    if layer is not None:
        out["plastic_ratio"] = float((layer.alpha * layer.hebb).norm() / layer.theta.norm())
        out["alpha_norm"] = float(layer.alpha.norm())
    out["penalty_stiffness"] = reg.stiffness(lr)[1]
    return out


class Tracer:
    """Records the ablation traces (Fig. 3) every ``every`` training steps: the task loss, eta (mean and, for a
    per-connection eta, quantiles), ||Hebb||_F and ||alpha||_F."""

    QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

    def __init__(self, model: nn.Module, every: int) -> None:
        self.layer = plastic_layer(model)
        self.every = every
        self.step = 0
        self.rows: list[dict] = []

    @torch.no_grad()
    def measure(self, loss: Tensor) -> dict[str, Tensor]:
        """This step's traced values, as 0-d tensors still on the device (:func:`record_traces` reads them back)."""
        out = {"loss": loss.detach()}
        layer = self.layer
        if layer is not None:
            eta = layer.effective_eta().float()
            out["eta"] = eta.mean()
            if eta.numel() > 1:
                qs = torch.quantile(eta.flatten(), torch.tensor(self.QUANTILES, device=eta.device))
                out.update({f"eta_q{int(q * 100):02d}": v for q, v in zip(self.QUANTILES, qs.unbind())})
            out["hebb_norm"] = layer.hebb.norm()
            out["alpha_norm"] = layer.alpha.norm()
        return out

    def record(self, task: int, epoch: int, loss: Tensor) -> None:
        record_traces([(self, task, epoch, loss)])

    def tick(self, task: int, epoch: int, loss: Tensor) -> None:
        """Count one training step, recording it every ``every`` steps (nothing else on the other steps: this is
        every step's hot path)."""
        if self.step % self.every == 0:
            self.record(task, epoch, loss)
        self.step += 1


@torch.no_grad()
def record_traces(due: list[tuple[Tracer, int, int, Tensor]]) -> None:
    """Record ``(tracer, task, epoch, loss)`` for each entry, all values read back from the device at once: one
    synchronisation per recorded step of a whole stack, where reading each value alone (``.item()``) would stall a
    GPU's queue of kernels once per value and trial."""
    measured = [(tracer, task, epoch, tracer.measure(loss)) for tracer, task, epoch, loss in due]
    flat = torch.stack([v.to(torch.float64) for *_, m in measured for v in m.values()]).tolist()
    i = 0
    for tracer, task, epoch, m in measured:
        row = {"step": tracer.step, "task": task, "epoch": epoch}
        row.update(zip(m, flat[i:i + len(m)]))
        i += len(m)
        tracer.rows.append(row)


def tick_traces(tracers: list[Tracer], tasks: list[int], epochs: list[int], losses: Tensor) -> None:
    """Count one training step of each tracer (``losses[k]``: tracer k's loss, indexed only when it records), and
    record those due (:func:`record_traces`)."""
    due = [(tr, task, epoch, losses[k]) for k, (tr, task, epoch) in enumerate(zip(tracers, tasks, epochs))
           if tr.step % tr.every == 0]
    if due:
        record_traces(due)
    for tr in tracers:
        tr.step += 1


def apply_step(reg: Consolidation, opt: torch.optim.Optimizer) -> None:
    """Everything of one training step after the backward pass: the regulariser's hooks around the optimiser's
    step (shared by the one-at-a-time and the stacked engines, :mod:`dhclib.method.stacked`)."""
    reg.before_step()
    reg.add_penalty_grad()
    opt.step()
    reg.after_step()


def train_step(model: nn.Module, task: Task, reg: Consolidation, opt: torch.optim.Optimizer, xb: Tensor,
               yb: Tensor) -> Tensor:
    """One training step of one trial on one batch (labels ``yb`` global): the task loss over the task's head,
    its backward pass and :func:`apply_step`; returns the loss."""
    units = task.loss_units
    loss = F.cross_entropy(model(xb, yb)[:, units], yb - units.start)
    opt.zero_grad()
    loss.backward()
    apply_step(reg, opt)
    return loss


def train_epoch(
    model: nn.Module,
    task: Task,
    reg: Consolidation,
    opt: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    tracer: Tracer | None = None,
    epoch: int = 0,
) -> Tensor:
    """One pass over the task's training rows in a seeded random order; returns the summed task loss (a tensor,
    so that the hot loop never waits for the device)."""
    model.train()
    x, y, rows = task.split("train")
    order = epoch_order(rows, generator)
    loss_sum = torch.zeros((), device=rows.device)
    for start in range(0, order.numel(), batch_size):
        r = order[start : start + batch_size]
        loss = train_step(model, task, reg, opt, task.inputs(x, r), y.index_select(0, r))
        loss_sum += loss.detach()
        if tracer is not None:
            tracer.tick(task.index, epoch, loss)
    return loss_sum


def epoch_order(rows: Tensor, generator: torch.Generator) -> Tensor:
    """The training rows of one epoch in the seeded random order of ``generator``."""
    return rows.index_select(0, torch.randperm(rows.numel(), generator=generator).to(rows.device))


def _divergence_message(model: nn.Module, task: Task, reg: Consolidation, protocol: Protocol, epoch: int,
                        loss: float, task_start: dict[str, Tensor], epoch_start: dict[str, Tensor]) -> str:
    """Say which task diverged and its measured cause (:func:`dhclib.method.divergence.diagnose`, on the network as
    the task and as the diverging epoch began): a learning rate too large for the loss, a penalty too stiff, or
    the plastic trace amplifying itself."""
    where = f"training diverged on task {task.index + 1} ({task.name}), epoch {epoch}: the loss became {loss}."
    cause = divergence.diagnose(model, task, reg, protocol.lr, task_start, epoch_start, epoch, protocol.batch_size)
    return where + cause + " The run is not stored."


@dataclass
class TaskLog:
    task: int
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    mechanism: dict = field(default_factory=dict)

    def row(self, task: Task) -> dict:
        """The task's row of a run's ``tasks`` table."""
        return {"task": task.index, "name": task.name, "n_train": task.n_train, "epochs": len(self.epochs),
                "best_epoch": self.best_epoch, "seconds": self.seconds, **self.mechanism}


def make_optimizer(model: nn.Module, protocol: Protocol) -> torch.optim.Optimizer:
    """A new optimiser per task: plain SGD (docs/method.md (benchmarks)), or Adam (betas 0.9, 0.999) for ``optimizer="adam"``."""
    if protocol.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=protocol.lr)
    return torch.optim.SGD(model.parameters(), lr=protocol.lr)


def _snapshot(model: nn.Module, reg: Consolidation) -> tuple[dict, dict]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, reg.state_dict()


class TaskState:
    """One trial's progress through one task under the protocol of docs/method.md (benchmarks) / A.1 (the module docstring): its
    optimiser and data order, the epochs, early stopping and the restore of the best epoch. The one-at-a-time
    loop (:func:`train_task`) and the stacked engine (:mod:`dhclib.method.stacked`) both drive it."""

    def __init__(self, model: nn.Module, task: Task, reg: Consolidation, protocol: Protocol, seed: int,
                 bar=None) -> None:
        self.model, self.task, self.reg, self.protocol, self.seed, self.bar = model, task, reg, protocol, seed, bar
        self.log = TaskLog(task=task.index)
        self.t0 = time.perf_counter()
        self.opt = make_optimizer(model, protocol)
        self.order_rng = rng(seed, "order", task.index)
        reg.on_task_start(task)
        self.best_score, self.best_state, self.since_best = -float("inf"), None, 0
        self.epoch = 0

    def next_epoch(self) -> int:
        # The states known finite, should this epoch diverge (its cause is measured there: dhclib.method.divergence)
        self.epoch_start = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.epoch == 0:
            self.task_start = self.epoch_start
        self.epoch += 1
        return self.epoch

    def end_epoch(self, loss_sum: Tensor, val_acc: float | None = None) -> bool:
        """Validate after an epoch (``val_acc``: the validation accuracy if already measured, as the stacked engine
        does for all its trials at once); True once the task is over. A non-finite loss raises
        :class:`~dhclib.errors.PlasticInstabilityError` naming the task, the epoch and the measured cause."""
        model, task, protocol, epoch = self.model, self.task, self.protocol, self.epoch
        train_loss = loss_sum.item() / max(1, -(-task.n_train // protocol.batch_size))
        if not np.isfinite(train_loss):
            raise PlasticInstabilityError(_divergence_message(model, task, self.reg, protocol, epoch, train_loss,
                                                              self.task_start, self.epoch_start))
        row = {"task": task.index, "epoch": epoch, "train_loss": train_loss}
        if task.val_idx.numel() > 0:
            if protocol.select_metric == "loss":  # one pass for both (the stacked engine measured the accuracy)
                acc, row["val_loss"] = evaluate_with_loss(model, task, "val", protocol.eval_batch_size)
                row["val_acc"] = acc if val_acc is None else val_acc
            else:
                row["val_acc"] = evaluate(model, task, "val", protocol.eval_batch_size) if val_acc is None else val_acc
        if protocol.early_stopping:
            score = self._score(row)
            row["select_score"] = score
            if score > self.best_score:
                self.best_score, self.best_state, self.since_best = score, _snapshot(model, self.reg), 0
                self.log.best_epoch = epoch
            else:
                self.since_best += 1
        self.log.epochs.append(row)
        if self.bar is not None:
            self.bar.set_postfix(task=task.index + 1, epoch=epoch, val=f"{row.get('val_acc', float('nan')):.4f}")
        stopped = protocol.early_stopping and epoch >= protocol.min_epochs and self.since_best >= protocol.patience
        return stopped or epoch >= protocol.max_epochs

    def _score(self, row: dict) -> float:
        """The epoch's early-stopping score, higher is better: the accuracy, or minus the cross-entropy."""
        p, task = self.protocol, self.task
        if p.select_metric == "loss":
            if p.select_on == "val":
                return -row["val_loss"]
            return -evaluate_with_loss(self.model, task, "test", p.eval_batch_size)[1]
        return row["val_acc"] if p.select_on == "val" else evaluate(self.model, task, "test", p.eval_batch_size)

    def finish(self) -> TaskLog:
        """Restore the best epoch (with early stopping) and consolidate: the regulariser's end-of-task work."""
        if self.protocol.early_stopping and self.best_state is not None:
            self.model.load_state_dict(self.best_state[0])
            self.reg.load_state_dict(self.best_state[1])
        else:
            self.log.best_epoch = len(self.log.epochs)
        self.log.mechanism = mechanism(self.model, self.reg, self.protocol.lr)
        self.reg.on_task_end(self.task, rng(self.seed, "importance", self.task.index))
        self.log.seconds = time.perf_counter() - self.t0
        return self.log


def train_task(model: nn.Module, task: Task, reg: Consolidation, protocol: Protocol, seed: int,
               tracer: Tracer | None = None, bar=None) -> TaskLog:
    """Learn one task with the protocol of docs/method.md (benchmarks) / A.1 (see the module docstring)."""
    state = TaskState(model, task, reg, protocol, seed, bar)
    while True:
        epoch = state.next_epoch()
        loss_sum = train_epoch(model, task, reg, state.opt, protocol.batch_size, state.order_rng, tracer, epoch)
        if state.end_epoch(loss_sum):
            return state.finish()


@dataclass
class SequenceLog:
    R: np.ndarray  # R[T, i]: test accuracy on task i after learning task T (NaN for i > T)
    traces: list[dict]
    epochs: list[dict]
    tasks: list[dict]

    @classmethod
    def start(cls, n_tasks: int, tracer: Tracer) -> "SequenceLog":
        """An empty log of a sequence of ``n_tasks`` tasks, its traces those ``tracer`` records."""
        return cls(R=np.full((n_tasks, n_tasks), np.nan), traces=tracer.rows, epochs=[], tasks=[])

    def add_task(self, log: TaskLog, task: Task) -> None:
        """A learned task's epochs and its row of the ``tasks`` table: one trial's, alone or in a stack."""
        self.epochs.extend(log.epochs)
        self.tasks.append(log.row(task))


def train_sequence(model: nn.Module, tasks: list[Task], reg: Consolidation, protocol: Protocol, seed: int,
                   progress: bool = False, fresh_model=None, desc: str = "tasks") -> SequenceLog:
    """Learn ``tasks`` in order (docs/method.md (benchmarks)) and test every task seen after each one (docs/method.md (metrics)).

    ``fresh_model(t) -> (model, regulariser)``: learn every task after the first with a new network instead
    (the ``scratch`` reference of Figure 8); task i is then always tested with the network that learned it.
    """
    learners = []
    tracer = Tracer(model, protocol.trace_every)
    out = SequenceLog.start(len(tasks), tracer)
    bar = tqdm(tasks, desc=desc, leave=False, disable=not progress)
    for T, task in enumerate(bar):
        if fresh_model is not None and T > 0:
            model, reg = fresh_model(T)
            tracer.layer = plastic_layer(model)
        learners.append(model)
        log = train_task(model, task, reg, protocol, seed, tracer, bar)
        for i in range(T + 1):
            tester = learners[i] if fresh_model is not None else model
            out.R[T, i] = evaluate(tester, tasks[i], "test", protocol.eval_batch_size)
        out.add_task(log, task)
    bar.close()
    return out
