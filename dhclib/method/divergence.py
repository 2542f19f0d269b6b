"""Why a run diverged, from measured quantities (issue #12 item 4; docs/method.md (DHP Softmax), §3, §4).

When a task's training loss becomes NaN/inf the network is already non-finite, so the causes are measured on
states known to be finite, which :class:`~dhclib.method.train.TaskState` keeps: first the network as the task
began, then, if nothing was unstable there, as the diverging epoch began (the last finite state). The earlier state
comes first because an instability, once it has run for an epoch, inflates the others (a too-stiff penalty leaves
weights whose loss is far sharper), so only where it starts tells the cause. Three candidates, each as a ratio to
the bound above which it is unstable:

- **lr**: plain SGD on a loss of curvature ``h`` diverges (oscillates with growing amplitude) once ``lr * h > 2``.
  ``h`` is the largest eigenvalue of the task loss's Hessian over every trained parameter, on one training batch,
  by power iteration with Hessian-vector products. What the learning rate answers for is the curvature of the
  network without its plastic part, ``h_slow`` (DHP's trace cleared; ``h_slow = h`` for other networks): ratio
  ``lr * h_slow / 2``.
- **penalty**: the consolidation penalty ``lam * Omega (theta - theta*)^2`` (Eq. 4) adds curvature ``2 lam Omega``
  per weight, so SGD on it alone diverges once ``lr * 2 lam Omega > 2``
  (:meth:`~dhclib.method.consolidation.Consolidation.stiffness`). Ratio ``lr * 2 lam max(Omega) / 2``.
- **plasticity**: the trace's update ``hebb <- (1 - eta) hebb + eta h_bar`` (Eq. 3) amplifies the trace once
  ``|1 - eta| > 1`` (eta outside [0, 2]: possible since Listing 1 leaves eta unconstrained), and a grown trace
  ``alpha * hebb`` raises the loss's curvature from ``h_slow`` to ``h``. Ratio
  ``max(max |1 - eta|, lr * (h - h_slow) / 2)``; ``||alpha * hebb|| / ||theta||`` is reported beside it.

The cause named is the largest ratio above 1, and any other above 1 is named after it; when none is at either
state, the divergence grew within the epoch from a state that was stable by every measure, and the message says so
and gives the numbers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dhclib.method.consolidation import Consolidation
from dhclib.method.models import plastic_layer
from dhclib.method.task import Task

__all__ = ["Measured", "measure", "explain", "diagnose", "sharpness"]

POWER_ITERATIONS = 20


@dataclass(frozen=True)
class Measured:
    """The stability measures of one network state (module docstring), each as a ratio to its bound."""

    lr_ratio: float  # lr * h_slow / 2
    sharpness: float  # h: largest eigenvalue of the task loss's Hessian
    sharpness_slow: float  # h_slow: the same with DHP's trace cleared (= h without a DHP layer)
    penalty_ratio: float  # lr * 2 lam max(Omega) / 2
    penalty_weight: str  # the slow weight where max(Omega) is
    plastic_ratio: float | None  # max(max |1 - eta|, lr * (h - h_slow) / 2) (None: no DHP layer)
    plastic_share: float | None  # ||alpha * hebb||_F / ||theta||_F
    trace_gain: float | None  # max |1 - eta|

    def ratios(self) -> dict[str, float]:
        out = {"lr": self.lr_ratio, "penalty": self.penalty_ratio}
        if self.plastic_ratio is not None:
            out["plasticity"] = self.plastic_ratio
        return out

    def causes(self) -> list[str]:
        """Every measure above its bound ("lr", "penalty", "plasticity"), the stiffest first."""
        return [n for n, r in sorted(self.ratios().items(), key=lambda kv: -kv[1]) if r > 1.0]

    def cause(self) -> str | None:
        """The stiffest measure above its bound, or None."""
        return next(iter(self.causes()), None)


def sharpness(model: nn.Module, task: Task, iterations: int = POWER_ITERATIONS, batch_size: int = 64) -> float:
    """The largest eigenvalue of the Hessian of the task loss (cross-entropy over the task's loss units, in training
    mode as SGD sees it) over every trained parameter, on the task's first ``batch_size`` training rows; by power
    iteration with Hessian-vector products from a fixed start. The forward pass updates DHP's trace: pass a copy."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    x, y, rows = task.split("train")
    r = rows[:batch_size]
    yb = y.index_select(0, r)
    units = task.loss_units
    loss = F.cross_entropy(model(task.inputs(x, r), yb)[:, units], yb - units.start)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator().manual_seed(0)
    v = [torch.randn(p.shape, generator=gen).to(p) for p in params]
    value = 0.0
    for _ in range(iterations):
        norm = torch.sqrt(sum((u * u).sum() for u in v))
        v = [u / norm for u in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        value = float(sum((a * b).sum() for a, b in zip(v, hv)))
        v = [h.detach() for h in hv]
        if not all(torch.isfinite(h).all() for h in v):
            return float("nan")
    return value


def _plastic(model: nn.Module) -> tuple[float | None, float | None]:
    layer = plastic_layer(model)
    if layer is None:
        return None, None
    with torch.no_grad():
        gain = float((1 - layer.effective_eta()).abs().max())
        share = float((layer.alpha * layer.hebb).norm() / layer.theta.norm().clamp(min=1e-12))
    return gain, share


def _finite(h: float) -> float:
    return max(h, 0.0) if h == h else float("inf")


def measure(model: nn.Module, task: Task, reg: Consolidation, lr: float, state: dict[str, Tensor] | None = None,
            batch_size: int = 64) -> Measured:
    """The stability measures on ``task`` under ``reg`` at learning rate ``lr`` of ``model``, or of ``model``'s
    architecture in ``state`` (a ``state_dict``: the last finite state); ``model`` itself is left as it is."""
    probe = copy.deepcopy(model)
    if state is not None:
        probe.load_state_dict(state)
    gain, share = _plastic(probe)
    slow = copy.deepcopy(probe)
    h = sharpness(probe, task, batch_size=batch_size)
    h_slow = h
    if gain is not None:
        plastic_layer(slow).reset_hebb()
        h_slow = sharpness(slow, task, batch_size=batch_size)
    name, stiff = reg.stiffness(lr)
    plastic = None if gain is None else max(gain, lr * max(_finite(h) - _finite(h_slow), 0.0) / 2.0)
    return Measured(lr_ratio=lr * _finite(h_slow) / 2.0, sharpness=h, sharpness_slow=h_slow,
                    penalty_ratio=stiff / 2.0, penalty_weight=name, plastic_ratio=plastic, plastic_share=share,
                    trace_gain=gain)


def diagnose(model: nn.Module, task: Task, reg: Consolidation, lr: float, task_start: dict[str, Tensor],
             epoch_start: dict[str, Tensor] | None, epoch: int, batch_size: int = 64) -> str:
    """The measured cause of a divergence in epoch ``epoch`` of ``task`` (module docstring): at the task's
    start state, else at the epoch's (``None`` or ``epoch == 1``: the same state)."""
    m = measure(model, task, reg, lr, task_start, batch_size)
    if m.cause() is None and epoch > 1 and epoch_start is not None:
        return explain(measure(model, task, reg, lr, epoch_start, batch_size), reg, lr, f"when epoch {epoch} began")
    return explain(m, reg, lr, "when the task began")


def explain(m: Measured, reg: Consolidation, lr: float, when: str = "when the epoch began") -> str:
    """One or two sentences: the measured cause and its remedy, then every measure's value."""
    numbers = f"lr * h = {lr * m.sharpness:.3g} (h = {m.sharpness:.3g}, the task loss's sharpest curvature"
    if m.trace_gain is not None:
        numbers += f"; {m.sharpness_slow:.3g} with the trace cleared"
    numbers += f"), lr * 2 * lam * Omega = {2 * m.penalty_ratio:.3g}"
    if m.trace_gain is not None:
        numbers += f", max |1 - eta| = {m.trace_gain:.3g}, ||alpha * hebb|| / ||theta|| = {m.plastic_share:.3g}"
    causes = m.causes()
    if not causes:
        head = (f" No measure was above its stability bound {when}, so the divergence grew from a stable state; "
                f"try a smaller lr (lr = {lr:g}).")
    else:
        head = " " + _sentence(causes[0], m, reg, lr)
        # an instability seldom comes alone (a stiff penalty beside a grown trace): the others are named too
        for other in causes[1:]:
            text = _sentence(other, m, reg, lr)
            head += f" Also above its bound: {text[0].lower()}{text[1:]}"
    return head + f" Measured {when}: {numbers}."


def _sentence(cause: str, m: Measured, reg: Consolidation, lr: float) -> str:
    """What ``cause`` ("lr", "penalty" or "plasticity") measured, and its remedy."""
    if cause == "penalty":
        return (f"The consolidation penalty is too stiff for plain SGD: lr * 2 * lam * Omega reaches "
                f"{2 * m.penalty_ratio:.3g} in {m.penalty_weight} (SGD diverges above 2); try {reg.remedy}.")
    if cause == "lr":
        return (f"The learning rate is too large for the task loss's curvature: lr * h reaches "
                f"{2 * m.lr_ratio:.3g} (SGD diverges above 2); try lr below {2 / m.sharpness_slow:.3g}.")
    why = (f"max |1 - eta| reaches {m.trace_gain:.3g}, so the Hebbian trace grows at every update (it is stable "
           f"for eta in [0, 2])" if m.trace_gain >= m.plastic_ratio else
           f"the plastic term alpha * hebb raises the loss's curvature from {m.sharpness_slow:.3g} to "
           f"{m.sharpness:.3g}, beyond what lr = {lr:g} allows")
    return f"Plastic instability: {why}; try eta_clamp=True, a smaller eta_init or a per-connection eta."
