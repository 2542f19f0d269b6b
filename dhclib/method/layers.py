"""Output layers: the DHP Softmax layer and its capacity-matched baseline (docs/method.md (DHP Softmax, baseline)).

Both layers take the same call, ``layer(h, y=None)``, so a model swaps one for the other. Both expose
``slow_parameters()`` (what a consolidation regulariser may touch, docs/method.md (consolidation)) and ``sample_grad_stat`` (the
closed-form per-sample gradient statistic used by Online EWC and MAS, see ``dhclib.method.importance``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dhclib.registry import OutputLayer, Settings, is_int, need, register_layer

__all__ = ["DHPSoftmax", "DHPSettings", "MatchedSoftmax", "hebbian_update", "slow_weight_init"]


def slow_weight_init(in_features: int, out_features: int) -> Tensor:
    """Slow weights initialised as Listing 1 does (docs/method.md (DHP Softmax)).

    ``kaiming_uniform_(theta, a=sqrt(5))`` on an in x out tensor: PyTorch takes fan_in = out_features, so the
    bound is 1/sqrt(out_features) (0.316 for 10 classes), not nn.Linear's 1/sqrt(in_features). This is the
    authors' quirk and we keep it on purpose.
    """
    theta = torch.empty(in_features, out_features)
    nn.init.kaiming_uniform_(theta, a=math.sqrt(5))
    return theta


def one_hot(y: Tensor, classes: int, dtype: torch.dtype) -> Tensor:
    """``(len(y), classes)`` indicators of the labels, exactly 0 or 1; built by comparison rather than an
    in-place scatter so that it also runs under ``torch.func.vmap`` (the stacked engine)."""
    return (y.unsqueeze(-1) == torch.arange(classes, device=y.device)).to(dtype)


def hebbian_update(hebb: Tensor, h: Tensor, y: Tensor, eta: Tensor) -> Tensor:
    """One batch of Algorithm 1 (lines 4-7; Eq. 3), without a Python loop over classes.

    For every class c present in ``y``: ``hebb[:, c] <- (1 - eta) hebb[:, c] + eta * mean(h[y == c])``;
    columns of absent classes are returned unchanged. ``eta`` is a scalar (shape ``(1,)``) or has ``hebb``'s
    shape (per-connection eta, Appendix A.4). Returns a new tensor; differentiable w.r.t. ``h``, ``eta`` and
    ``hebb``.
    """
    onehot = one_hot(y, hebb.shape[1], h.dtype)
    counts = onehot.sum(0)  # (d,)
    present = counts > 0
    h_bar = (h.t() @ onehot) / counts.clamp(min=1.0)  # (m, d): column c = mean activation of class c
    updated = hebb + eta * (h_bar - hebb)  # = (1 - eta) hebb + eta h_bar
    return torch.where(present, updated, hebb)


class DHPSoftmax(nn.Module):
    """Differentiable Hebbian Plasticity softmax layer (Sec. 3, Eq. 2-3, Algorithm 1, Listing 1; docs/method.md (DHP Softmax)).

    ``z = h @ (theta + alpha * hebb)``. In training mode with labels, the trace ``hebb`` is first updated with
    the batch's class-mean activations (Eq. 3) and the logits use the updated trace; in evaluation mode, or
    without labels, the trace is used as it is. The trace is a buffer (part of ``state_dict``), zero at
    construction and reset only by :meth:`reset_hebb`; it persists across tasks.

    Args:
        in_features: m, width of the last hidden layer.
        out_features: d, number of output units (all heads together).
        eta_init: initial plastic learning rate (0.001 for MNIST, 0.0001 per connection for the Vision Mixture).
        eta_per_connection: learn one eta per connection (m x d) instead of one scalar (Appendix A.4).
        eta_grad_horizon: how far back eta's gradient reaches through the trace. 1 (the default, as in
            Listing 1): only through this step's update. k > 1: the carried gradient is cut after every k-th
            update (docs/method.md (DHP Softmax): "detach every k"), so it reaches back between 1 and k updates. ``None``: through
            the whole history. k > 1 and ``None`` are computed in O(1) memory with a forward-mode sensitivity
            ``d hebb / d eta`` (docs/method.md (DHP Softmax), open question); the class means of earlier batches are held constant,
            so the extra gradient reaches eta only, never the hidden layers of earlier steps.
        eta_clamp: keep the effective eta in [0, 1] (clamped in the forward pass). Off by default: Listing 1
            leaves eta unconstrained, and docs/method.md (DHP Softmax) reports it drifting outside (0, 1) on some seeds.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        eta_init: float = 1e-3,
        eta_per_connection: bool = False,
        eta_grad_horizon: int | None = 1,
        eta_clamp: bool = False,
    ) -> None:
        super().__init__()
        if not eta_init > 0:
            raise ValueError(f"eta_init must be > 0, got {eta_init!r}")
        if eta_grad_horizon is not None and (not isinstance(eta_grad_horizon, int) or eta_grad_horizon < 1):
            raise ValueError(f"eta_grad_horizon must be an int >= 1 or None (whole history), got {eta_grad_horizon!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.eta_grad_horizon = eta_grad_horizon
        self.eta_clamp = eta_clamp
        self.theta = nn.Parameter(slow_weight_init(in_features, out_features))
        self.alpha = nn.Parameter(0.01 * torch.rand(in_features, out_features))
        eta_shape = (in_features, out_features) if eta_per_connection else (1,)
        self.eta = nn.Parameter(torch.full(eta_shape, float(eta_init)))
        self.register_buffer("hebb", torch.zeros(in_features, out_features))
        # d hebb / d eta, carried between steps when eta_grad_horizon != 1 (elementwise: the update of
        # hebb[i, c] involves eta[i, c] only, or the scalar eta).
        self.register_buffer("hebb_sensitivity", torch.zeros(in_features, out_features))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self._slow_only = False  # see slow_only()

    @property
    def eta_per_connection(self) -> bool:
        return self.eta.dim() == 2

    def effective_eta(self) -> Tensor:
        return self.eta.clamp(0.0, 1.0) if self.eta_clamp else self.eta

    def reset_hebb(self) -> None:
        """Zero the trace (docs/method.md (DHP Softmax): only at the start of task 1)."""
        self.hebb.zero_()
        self.hebb_sensitivity.zero_()
        self.steps.zero_()

    def slow_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters consolidation may regularise: theta only, never alpha or eta (docs/method.md (consolidation))."""
        return {"theta": self.theta}

    @contextlib.contextmanager
    def slow_only(self) -> Iterator[None]:
        """Within the block the logits are ``h @ theta``: the plastic term ``alpha * hebb`` is left out (the trace
        itself is kept). Sec. 3's "we do not compute the synaptic importance parameters on the plastic component
        of the network", read as importance estimated on the slow-only logits (``importance_logits="slow"``)."""
        self._slow_only = True
        try:
            yield
        finally:
            self._slow_only = False

    def forward(self, h: Tensor, y: Tensor | None = None) -> Tensor:
        if self.training and y is not None:
            eta = self.effective_eta()
            if self.eta_grad_horizon == 1:
                prev = self.hebb
            else:
                # Value of hebb, gradient w.r.t. eta equal to the carried sensitivity.
                prev = self.hebb + self.hebb_sensitivity.clone() * (eta - eta.detach())
            hebb = hebbian_update(prev, h, y, eta)
            if self.eta_grad_horizon != 1:
                self._advance_sensitivity(h.detach(), y, eta.detach())
            self.hebb.copy_(hebb.detach())  # truncate the graph between steps
        else:
            hebb = self.hebb
        if self._slow_only:
            return h @ self.theta
        return h @ (self.theta + self.alpha * hebb)

    @torch.no_grad()
    def _advance_sensitivity(self, h: Tensor, y: Tensor, eta: Tensor) -> None:
        # On updated columns: s_t = (h_bar_t - hebb_{t-1}) + (1 - eta) s_{t-1}; else s_t = s_{t-1}.
        s = self.hebb_sensitivity
        self.steps += 1
        onehot = one_hot(y, s.shape[1], h.dtype)
        counts = onehot.sum(0)
        h_bar = (h.t() @ onehot) / counts.clamp(min=1.0)
        new = torch.where(counts > 0, (h_bar - self.hebb) + (1 - eta) * s, s)
        if self.eta_grad_horizon is not None:  # cut after every k-th update; a tensor test, so that vmap can run it
            new = torch.where(self.steps % self.eta_grad_horizon == 0, torch.zeros_like(new), new)
        s.copy_(new)

    def sample_grad_stat(self, a: Tensor, d: Tensor) -> dict[str, Tensor]:
        """Sum over samples of a per-sample gradient statistic of theta; see ``dhclib.method.importance``."""
        return {"theta": a.t() @ d}

    def extra_repr(self) -> str:
        eta = "per-connection" if self.eta_per_connection else "scalar"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, eta={eta}, "
            f"eta_grad_horizon={self.eta_grad_horizon}, eta_clamp={self.eta_clamp}"
        )


class MatchedSoftmax(nn.Module):
    """Capacity-matched softmax layer for the non-DHP methods (Sec. 4; docs/method.md (baseline)).

    ``z = h @ (theta + theta2)``: theta initialised as DHP's theta, theta2 (m x d) as DHP's alpha; both are slow
    weights, trained and regularised. Accepts and ignores ``y`` so that a model can swap it for DHPSoftmax.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.theta = nn.Parameter(slow_weight_init(in_features, out_features))
        self.theta2 = nn.Parameter(0.01 * torch.rand(in_features, out_features))

    def slow_parameters(self) -> dict[str, nn.Parameter]:
        return {"theta": self.theta, "theta2": self.theta2}

    def forward(self, h: Tensor, y: Tensor | None = None) -> Tensor:
        return h @ (self.theta + self.theta2)

    def sample_grad_stat(self, a: Tensor, d: Tensor) -> dict[str, Tensor]:
        # theta and theta2 enter the logits identically, so their per-sample gradients are equal.
        stat = a.t() @ d
        return {"theta": stat, "theta2": stat.clone()}

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


@dataclass(frozen=True)
class DHPSettings(Settings):
    """DHP Softmax's options in a run config (docs/method.md (DHP Softmax); the defaults are the MNIST benchmarks': eta 0.001, one
    scalar eta, Listing 1's one-step gradient, no clamp). ``eta_grad_horizon``: 1 | k | ``"full"``."""

    eta_init: float = 1e-3
    eta_per_connection: bool = False
    eta_grad_horizon: int | str = 1
    eta_clamp: bool = False

    def validate(self) -> None:
        need(isinstance(self.eta_init, (int, float)) and self.eta_init > 0,
             f"eta_init must be > 0, got {self.eta_init!r}")
        need(self.eta_grad_horizon == "full" or (is_int(self.eta_grad_horizon) and self.eta_grad_horizon >= 1),
             f"eta_grad_horizon must be an integer >= 1 or 'full', got {self.eta_grad_horizon!r}")

    def layer_kwargs(self) -> dict:
        """The keyword arguments of :class:`DHPSoftmax` (``"full"`` is its ``eta_grad_horizon=None``)."""
        return dict(eta_init=self.eta_init, eta_per_connection=self.eta_per_connection, eta_clamp=self.eta_clamp,
                    eta_grad_horizon=None if self.eta_grad_horizon == "full" else self.eta_grad_horizon)


# The capacity-matched baseline comes first: a method's baseline is listed before its DHP variant (Table 1).
register_layer(OutputLayer("matched", "", None, MatchedSoftmax))
register_layer(OutputLayer("dhp", "DHP Softmax", DHPSettings, DHPSoftmax))
