"""Networks: a body (the MLPs and CNNs of docs/method.md (benchmarks)) and an output layer (DHP Softmax or the matched baseline).

A model knows nothing about tasks: ``model(x, y)`` returns the logits of every output unit (all heads); the
trainer slices the active head for the loss and the prediction (multi-head, docs/method.md (benchmarks)). Labels ``y`` are always global output-unit indices, so the Hebbian trace keeps one
column per unit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dhclib import registry
from dhclib.method.layers import DHPSoftmax
from dhclib.registry import Settings, is_int, need

__all__ = ["Classifier", "MLP", "TableCNN", "ZenkeCNN", "NETWORKS", "NetworkSettings", "slow_logits",
           "plastic_layer", "reset_hebb"]


def output_layer(width: int, out_features: int, output: str, **layer_kwargs) -> nn.Module:
    """The registered output layer ``output`` (``registry.LAYERS``: DHP Softmax, docs/method.md (DHP Softmax), or the capacity-matched
    baseline, docs/method.md (baseline)) on top of a body of width ``width``, with its settings' keyword arguments."""
    spec = registry.layer(output)  # an unknown name: ConfigError (a ValueError) naming the registered ones
    if layer_kwargs and spec.settings is None:
        raise ValueError(f"options {sorted(layer_kwargs)} given for the {output!r} output layer, which takes none "
                         "(DHP options need the dhp layer)")
    return spec.module(width, out_features, **layer_kwargs)


class Classifier(nn.Module):
    """A body (any stack of layers ending in a flat hidden vector h) and an output layer, ``out(body(x), y)``."""

    inputs: str  # what the network takes: "vector" (flat 784) or "image" (3x32x32)
    body: nn.Sequential
    out: nn.Module

    @property
    def plastic(self) -> bool:
        return isinstance(self.out, DHPSoftmax)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.out(self.body(x), y)

    def slow_parameters(self) -> dict[str, nn.Parameter]:
        """Every parameter a regulariser may consolidate: all but DHP's alpha and eta (docs/method.md (consolidation))."""
        params = {f"body.{k}": p for k, p in self.body.named_parameters()}
        params.update({f"out.{k}": p for k, p in self.out.slow_parameters().items()})
        return params


class MLP(Classifier):
    """Fully connected ReLU network with a DHP or capacity-matched softmax output layer (docs/method.md (benchmarks)).

    Permuted MNIST: ``MLP(784, (400, 400), 10)``; Split MNIST: ``MLP(784, (256, 256), 10)``.

    Args:
        in_features: input size (784 for MNIST).
        hidden: widths of the hidden layers.
        out_features: output units of all heads together.
        output: ``"dhp"`` (DHPSoftmax) or ``"matched"`` (MatchedSoftmax).
        **dhp_kwargs: passed to :class:`DHPSoftmax` (``eta_init``, ``eta_per_connection``, ...).
    """

    inputs = "vector"

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        output: str = "dhp",
        **dhp_kwargs,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        self.out = output_layer(width, out_features, output, **dhp_kwargs)


def _fc_width(body: nn.Sequential, in_shape: tuple[int, int, int]) -> int:
    """Features the convolutional part gives for one input (in evaluation mode, so dropout draws nothing)."""
    body.eval()
    with torch.no_grad():
        width = int(body(torch.zeros(1, *in_shape)).shape[1])
    body.train()  # a new module is in training mode; leaving its dropout layers in eval mode would disable them
    return width


class TableCNN(Classifier):
    """The Vision Datasets Mixture CNN of Table 3 (Appendix A.4; docs/method.md (benchmarks)).

    conv 20 (5x5, padding 1) -> LeakyReLU -> max-pool 2 -> conv 50 (5x5, padding 1) -> LeakyReLU -> max-pool 2
    -> conv 50 (5x5, padding 1) -> LeakyReLU -> max-pool 2 -> FC 500 -> LeakyReLU -> output layer. The paper's
    text says two conv layers and a LeakyReLU slope of 0.3; Table 3 says three and 0.2: we follow Table 3
    (docs/method.md (benchmarks)) and keep both as arguments. On 3x32x32 inputs the feature map before the FC layer is 50x2x2.
    """

    inputs = "image"

    def __init__(self, out_features: int, output: str = "dhp", hidden: Sequence[int] = (500,),
                 channels: Sequence[int] = (20, 50, 50), slope: float = 0.2, in_shape=(3, 32, 32),
                 **dhp_kwargs) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_shape[0]
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 5, padding=1), nn.LeakyReLU(slope), nn.MaxPool2d(2)]
            c_in = c_out
        layers.append(nn.Flatten())
        width = _fc_width(nn.Sequential(*layers), in_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LeakyReLU(slope)]
            width = size
        self.body = nn.Sequential(*layers)
        self.out = output_layer(width, out_features, output, **dhp_kwargs)


class ZenkeCNN(Classifier):
    """The Split CIFAR-10/100 network of Zenke et al. (2017), Appendix D's benchmark (docs/method.md (benchmarks) leaves it open).

    Four 3x3 convolutions in two blocks, conv 32 ('same') -> ReLU -> conv 32 (no padding) -> ReLU -> max-pool 2
    -> dropout 0.25, then the same with 64 channels, -> FC 512 -> ReLU -> dropout 0.5 -> output layer; on 3x32x32
    inputs the FC layer sees 64x6x6 = 2,304 features (the shapes of Zenke et al.'s network as reimplemented by
    von Oswald et al. 2019, whose numbers the paper's Figure 8 quotes). The output layer is DHP Softmax or the
    matched baseline, like every other network here.
    """

    inputs = "image"

    def __init__(self, out_features: int, output: str = "dhp", hidden: Sequence[int] = (512,),
                 dropout: tuple[float, float] = (0.25, 0.5), in_shape=(3, 32, 32), **dhp_kwargs) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_shape[0]
        for c_out in (32, 64):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Dropout(dropout[0])]
            c_in = c_out
        layers.append(nn.Flatten())
        width = _fc_width(nn.Sequential(*layers), in_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout[1])]
            width = size
        self.body = nn.Sequential(*layers)
        self.out = output_layer(width, out_features, output, **dhp_kwargs)


# Config name -> network (RunConfig.network; None means the MLP). Each network class says which inputs it takes
# (``inputs``): "vector" (MNIST's 784 pixels, flat) or "image" (3x32x32); a benchmark declares which its tasks give.
NETWORKS = {"mlp": MLP, "table3_cnn": TableCNN, "zenke_cnn": ZenkeCNN}


@dataclass(frozen=True)
class NetworkSettings(Settings):
    """The network of a run config (docs/method.md (benchmarks)): ``network`` None is the MLP of ``hidden``; for a CNN ``hidden``
    are the widths of its fully connected layers."""

    hidden: tuple[int, ...] = (400, 400)
    network: str | None = None

    def validate(self) -> None:
        need(isinstance(self.hidden, tuple) and len(self.hidden) >= 1 and all(is_int(h) and h >= 1 for h in self.hidden),
             f"hidden must be a non-empty list of positive integers, e.g. [400, 400], got {self.hidden!r}")
        need(self.network is None or self.network in NETWORKS,
             f"network must be one of {', '.join(NETWORKS)} (or None: the MLP), got {self.network!r}")

    @property
    def inputs(self) -> str:
        return NETWORKS[self.network or "mlp"].inputs

    def build(self, in_features: int, out_features: int, output: str, **layer_kwargs) -> Classifier:
        if self.network in (None, "mlp"):
            return MLP(in_features, self.hidden, out_features, output=output, **layer_kwargs)
        return NETWORKS[self.network](out_features, output, hidden=self.hidden, **layer_kwargs)


def plastic_layer(model: nn.Module) -> DHPSoftmax | None:
    """The model's DHP Softmax layer, or None for a model without one."""
    out = getattr(model, "out", None)
    return out if isinstance(out, DHPSoftmax) else None


def slow_logits(model: nn.Module) -> contextlib.AbstractContextManager:
    """A block in which the model's DHP Softmax computes its logits from the slow weights only
    (:meth:`DHPSoftmax.slow_only`); nothing changes for a model without one."""
    layer = plastic_layer(model)
    return contextlib.nullcontext() if layer is None else layer.slow_only()


@torch.no_grad()
def reset_hebb(model: nn.Module) -> None:
    layer = plastic_layer(model)
    if layer is not None:
        layer.reset_hebb()
