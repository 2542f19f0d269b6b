"""Networks: a body (the MLPs of SPEC §4) and an output layer (DHP Softmax or the matched baseline).

A model knows nothing about tasks except which output units are active: ``model(x, y)`` returns the logits of
every output unit (all heads), and :func:`head_logits` slices the active head for the loss and the prediction
(multi-head, SPEC §4). Labels ``y`` are always global output-unit indices, so the Hebbian trace keeps one
column per unit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .layers import DHPSoftmax, MatchedSoftmax

__all__ = ["MLP", "head_logits", "OUTPUT_LAYERS"]

OUTPUT_LAYERS = ("dhp", "matched")


class MLP(nn.Module):
    """Fully connected ReLU network with a DHP or capacity-matched softmax output layer (SPEC §4).

    Permuted MNIST: ``MLP(784, (400, 400), 10)``; Split MNIST: ``MLP(784, (256, 256), 10)``.

    Args:
        in_features: input size (784 for MNIST).
        hidden: widths of the hidden layers.
        out_features: output units of all heads together.
        output: ``"dhp"`` (DHPSoftmax) or ``"matched"`` (MatchedSoftmax).
        **dhp_kwargs: passed to :class:`DHPSoftmax` (``eta_init``, ``eta_per_connection``, ...).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        output: str = "dhp",
        **dhp_kwargs,
    ) -> None:
        super().__init__()
        if output not in OUTPUT_LAYERS:
            raise ValueError(f"unknown output layer {output!r}; accepted: {', '.join(OUTPUT_LAYERS)}")
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        if output == "dhp":
            self.out = DHPSoftmax(width, out_features, **dhp_kwargs)
        else:
            if dhp_kwargs:
                raise ValueError(f"DHP options {sorted(dhp_kwargs)} given for a matched (non-DHP) output layer")
            self.out = MatchedSoftmax(width, out_features)

    @property
    def plastic(self) -> bool:
        return isinstance(self.out, DHPSoftmax)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.out(self.body(x), y)

    def slow_parameters(self) -> dict[str, nn.Parameter]:
        """Every parameter a regulariser may consolidate: all but DHP's alpha and eta (SPEC §3)."""
        params = {f"body.{k}": p for k, p in self.body.named_parameters()}
        params.update({f"out.{k}": p for k, p in self.out.slow_parameters().items()})
        return params


def head_logits(logits: Tensor, head: slice) -> Tensor:
    """Logits of the active head only (multi-head, SPEC §4); a single-head task uses ``slice(0, d)``."""
    return logits[:, head]


def plastic_layer(model: nn.Module) -> DHPSoftmax | None:
    """The model's DHP Softmax layer, or None for a model without one."""
    out = getattr(model, "out", None)
    return out if isinstance(out, DHPSoftmax) else None


@torch.no_grad()
def reset_hebb(model: nn.Module) -> None:
    layer = plastic_layer(model)
    if layer is not None:
        layer.reset_hebb()
