"""Per-sample gradient statistics for Online EWC's Fisher and MAS's importance (docs/method.md (consolidation)).

Both need, for every slow weight w, a sum over samples n of a function of the per-sample gradient:
``sum_n g_n(w)^2`` (Fisher) or ``sum_n |g_n(w)|`` (MAS). torch.func would give them; ``vmap(grad)`` materialises
one gradient per sample (and, for the exact Fisher, per class), which measured 28 s for 2,000 samples x 10
classes on the Permuted MNIST MLP on a 2-core CPU. What is computed instead depends on the layer; the results are
the same (tests check every path against torch.func).

Fully connected layers (``nn.Linear`` and the output layers, which provide ``sample_grad_stat(A, D)``): the
per-sample gradient of a weight is an outer product ``a_n (x) delta_n`` of the layer input a and the gradient at
the layer output delta, so

    sum_n (a_n (x) delta_n)^2 = (a^2)^T (delta^2)      sum_n |a_n (x) delta_n| = |a|^T |delta|

are one matrix product each, and no per-sample gradient is ever formed.

Convolutions (``nn.Conv2d``, groups=1; any stride, padding incl. 'same'/'valid', padding mode and dilation): the
weight is shared over the P output positions, so a sample's gradient is a *sum* of outer products,
``g_n = delta_n (C_out x P) @ unfold(a_n)^T (P x C_in*kh*kw)``, and its square or absolute value does not
factorise over positions: no closed form exists, and these layers' per-sample gradients are materialised. How:

* the backward pass to the layer outputs runs once per class (K = the active head's classes for the exact
  Fisher, else 1), not as one vmap-batched pass over the K classes, which measured 3x slower through
  convolutions and pooling on the CPU;
* for each class, a batched matmul of delta with the layer's unfolded (im2col) input gives the per-sample
  gradients of ``_GRAD_ELEMENTS`` numbers' worth of samples at a time (8 MiB in float32), whose square or absolute
  value is summed over those samples at once. For the exact Fisher delta is first scaled by sqrt p(y|x), as
  ``p g^2 = (sqrt(p) g)^2``. The bias's per-sample gradient is delta summed over positions;
* the unfolded input is computed once per forward pass and kept across the K classes (recomputing it per class
  cost a third of the time), so models with convolutions go through the model in blocks of at most ``chunk``
  samples sized so that the unfolded inputs of all conv layers hold at most ``_UNFOLD_ELEMENTS`` numbers (64 MiB
  in float32; 97 samples for the Table 3 CNN on 3x32x32, 37 for Zenke et al.'s). Memory is then bounded whatever
  the chunk: those two bounds, plus the forward graph and one class's gradients at the layer outputs of one block
  (what a training step with that batch size holds). For ``fisher_mode="sample"`` the labels of a chunk are still
  drawn in one call, from a forward pass without a graph over the chunk's blocks.

The Table 3 CNN's exact Fisher of 2,000 3x32x32 samples (10 classes) took 19 s on one thread of a shared
2-core CPU (about 4.5 s for the empirical Fisher or MAS, one class); the closed form does a 784-1000-1000-10
MLP's in about 1 s.

A model with any other parametrised module (Conv1d, grouped convolutions, normalisation layers, ...) raises a
clear error rather than giving a wrong answer. The model is evaluated in evaluation mode (dropout off, the
Hebbian trace used and not updated).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dhclib.errors import ConfigError

__all__ = ["sample_grad_stats", "batch_fisher", "batch_grad_stats", "FISHER_MODES", "EWC_FISHER_MODES", "MAS_MODES",
           "check_mode",
           "IMPORTANCE_LOGITS", "supported_modules"]

FISHER_MODES = ("exact", "sample", "true")  # per-sample estimators (sample_grad_stats)
EWC_FISHER_MODES = FISHER_MODES + ("batch",)  # plus the mini-batch shortcut (batch_fisher)
MAS_MODES = ("per_sample", "batch")  # MAS: per-sample |g| (sample_grad_stats), or |g| of mini-batch gradients


def check_mode(name: str, value: object, accepted: tuple[str, ...]) -> None:
    """The one rule for an estimator's mode (``fisher_mode``), wherever it is checked: early in a config's settings,
    or in a constructor or estimator called directly. A ConfigError (a ValueError) naming what is accepted."""
    if value not in accepted:
        raise ConfigError(f"unknown {name} {value!r}; accepted: {', '.join(accepted)}")
# The logits importance is estimated on: the layer's output as trained ("full": theta + alpha * hebb for DHP
# Softmax), or the slow weights' alone ("slow"; dhclib.method.models.slow_logits).
IMPORTANCE_LOGITS = ("full", "slow")

# Models with convolutions: most numbers the unfolded inputs of all Conv2d layers hold for one forward block of
# samples (64 MiB in float32), and most numbers of per-sample conv gradients materialised at once (8 MiB).
_UNFOLD_ELEMENTS = 1 << 24
_GRAD_ELEMENTS = 1 << 21


def _linear_stat(module: nn.Linear, a: Tensor, d: Tensor) -> dict[str, Tensor]:
    stats = {"weight": d.t() @ a}
    if module.bias is not None:
        stats["bias"] = d.sum(0)
    return stats


def _stat_fn(module: nn.Module) -> Callable[[Tensor, Tensor], dict[str, Tensor]] | None:
    """The closed-form statistic of a fully connected layer, or None."""
    if hasattr(module, "sample_grad_stat"):
        return module.sample_grad_stat
    if isinstance(module, nn.Linear):
        return lambda a, d: _linear_stat(module, a, d)
    return None


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and not hasattr(module, "sample_grad_stat")


def _unsupported_reason(module: nn.Module) -> str | None:
    if _is_conv(module):
        return None if module.groups == 1 else f"{type(module).__name__} with groups={module.groups}"
    if _stat_fn(module) is None:
        return type(module).__name__
    return None


def supported_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules with parameters whose per-sample statistic we compute, by qualified name."""
    found, unsupported = {}, []
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        reason = _unsupported_reason(module)
        if reason is None:
            found[name] = module
        else:
            unsupported.append(f"{name} ({reason})")
    if unsupported:
        raise NotImplementedError(
            "per-sample importance is implemented for nn.Linear, nn.Conv2d (groups=1 only), DHPSoftmax and "
            f"MatchedSoftmax; this model also has {', '.join(unsupported)}"
        )
    return found


def _conv_padding(module: nn.Conv2d) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding of a Conv2d's input, as its forward pass applies it."""
    if isinstance(module.padding, str):
        if module.padding == "valid":
            return (0, 0, 0, 0)
        # 'same' (stride 1): total d (k - 1) per dimension, the odd one extra on the right/bottom, as PyTorch does.
        pads = []
        for k, d in ((module.kernel_size[1], module.dilation[1]), (module.kernel_size[0], module.dilation[0])):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    ph, pw = module.padding
    return (pw, pw, ph, ph)


class _ConvStat:
    """Accumulates ``sum_n stat(g_n)`` of one Conv2d over the classes of one forward block.

    The block's unfolded input (N, P, q) is computed once, on first use, and kept across the classes; the
    per-sample gradients are materialised for ``_GRAD_ELEMENTS`` numbers' worth of samples at a time.
    """

    def __init__(self, module: nn.Conv2d, a: Tensor, out_shape: torch.Size, kind: str) -> None:
        if a.dim() != 4:
            raise NotImplementedError(f"per-sample importance of Conv2d needs batched 4-D input, got {tuple(a.shape)}")
        self.module, self.kind, self.a = module, kind, a
        self.n, c_out = a.shape[0], module.out_channels
        self.q = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        self.p = out_shape[2] * out_shape[3]
        self.sub = max(1, _GRAD_ELEMENTS // (c_out * self.q))
        self.unfolded: Tensor | None = None
        self.weight = torch.zeros(c_out, self.q, dtype=a.dtype, device=a.device)
        self.bias = None if module.bias is None else torch.zeros(c_out, dtype=a.dtype, device=a.device)

    def _unfold(self) -> Tensor:
        """(N, P, q): each output position's receptive field, padded as the layer's forward pass pads."""
        if self.unfolded is None:
            m, a = self.module, self.a
            pad = _conv_padding(m)
            if m.padding_mode == "zeros" and pad[0] == pad[1] and pad[2] == pad[3]:
                padding = (pad[2], pad[0])
            else:  # asymmetric ('same' with an even extent) or a non-zero padding mode: pad first, as Conv2d does
                a, padding = F.pad(a, pad, mode="constant" if m.padding_mode == "zeros" else m.padding_mode), 0
            u = F.unfold(a, m.kernel_size, dilation=m.dilation, padding=padding, stride=m.stride)
            if u.shape[2] != self.p:
                raise RuntimeError(f"unfolded {u.shape[2]} positions for an output of {self.p} ({m})")
            self.unfolded = u.transpose(1, 2)
            self.a = None
        return self.unfolded

    def add(self, delta: Tensor, weight: Tensor | None) -> None:
        """One class: delta (N, C_out, H', W') at the layer output, weight (N,) its p(y|x) (None: 1)."""
        d = delta.reshape(self.n, delta.shape[1], self.p)
        if weight is not None:  # sum_y p g^2 = sum_y (sqrt(p) g)^2
            d = d * weight.sqrt()[:, None, None]
        reduce = (lambda t: t.square_().sum(0)) if self.kind == "fisher" else (lambda t: t.abs_().sum(0))
        if self.bias is not None:
            self.bias += reduce(d.sum(2))
        u = self._unfold()
        for start in range(0, self.n, self.sub):
            stop = start + self.sub
            self.weight += reduce(torch.bmm(d[start:stop], u[start:stop]))  # (sub, C_out, q) per-sample gradients

    def result(self) -> dict[str, Tensor]:
        stats = {"weight": self.weight.view_as(self.module.weight)}
        if self.bias is not None:
            stats["bias"] = self.bias
        return stats


def _unfolded_size(module: nn.Conv2d, output: Tensor) -> int:
    """Numbers in one sample's unfolded input of a Conv2d: (C_in kh kw) x output positions."""
    if output.dim() != 4:
        raise NotImplementedError(f"per-sample importance of Conv2d needs batched 4-D input ({module})")
    return module.in_channels * module.kernel_size[0] * module.kernel_size[1] * output.shape[2] * output.shape[3]


def _draw(p: Tensor, generator: torch.Generator | None) -> Tensor:
    """One label per row of the probabilities p, (N, C)."""
    return torch.multinomial(p, 1, generator=generator).squeeze(1)


def _output_grads(kind: str, logits: Tensor, y: Tensor | None, fisher_mode: str, generator) -> tuple[Tensor, Tensor]:
    """Gradients at the active-head logits, (K, N, C), and their weights, (K, N)."""
    n, c = logits.shape
    if kind == "mas":  # d ||f(x)||^2 / d f = 2 f
        return (2 * logits).unsqueeze(0), logits.new_ones(1, n)
    p = torch.softmax(logits, dim=1)
    if fisher_mode == "exact":  # every class y, weighted by p(y|x); d log p(y|x) / d z = e_y - p
        eye = torch.eye(c, dtype=logits.dtype, device=logits.device)
        return eye[:, None, :] - p[None], p.t()
    if fisher_mode == "sample":
        labels = _draw(p, generator)
    elif fisher_mode == "true":
        if y is None:
            raise ValueError("fisher_mode='true' (empirical Fisher) needs the labels")
        labels = y
    else:
        check_mode("fisher_mode", fisher_mode, FISHER_MODES)
    onehot = torch.nn.functional.one_hot(labels, c).to(logits.dtype)
    return (onehot - p).unsqueeze(0), logits.new_ones(1, n)


def sample_grad_stats(
    model: nn.Module,
    x: Tensor,
    head: slice,
    kind: str,
    y: Tensor | None = None,
    fisher_mode: str = "exact",
    generator: torch.Generator | None = None,
    chunk: int = 512,
) -> dict[str, Tensor]:
    """Mean over the samples of a per-sample gradient statistic, for every slow weight (docs/method.md (consolidation)).

    ``kind="fisher"``: diagonal Fisher, ``E_x E_{y~p(y|x)} [(d log p(y|x) / d w)^2]`` over the active head
    (``fisher_mode="exact"``: the expectation over y in closed form, weighted by the predicted probabilities;
    ``"sample"``: one y drawn from p(y|x); ``"true"``: y = the label, the empirical Fisher; ``y`` holds local
    head labels). ``kind="mas"``: ``E_x |d ||f(x)||_2^2 / d w|`` with f the active-head logits (MAS).
    The model is evaluated as it is at test time (evaluation mode: dropout off, the Hebbian trace used, not
    updated). At most ``chunk`` samples go through the model at a time (fewer with convolutions, see the module
    docstring); for ``"sample"`` the labels of a chunk are drawn in one ``torch.multinomial`` call.
    Returns a dict keyed like ``model.slow_parameters()``.
    """
    if kind not in ("fisher", "mas"):
        raise ValueError(f"unknown importance kind {kind!r}; accepted: fisher, mas")
    modules = supported_modules(model)
    names = list(modules)
    convs = {name for name, m in modules.items() if _is_conv(m)}
    slow = model.slow_parameters()
    was_training = model.training
    model.eval()
    captured: dict[str, tuple[Tensor, Tensor]] = {}

    def hook(name):
        def fn(module, inputs, output):
            captured[name] = (inputs[0].detach(), output)

        return fn

    sums: dict[str, Tensor] = {}

    def add(name: str, stats: dict[str, Tensor]) -> None:
        for pname, stat in stats.items():
            key = f"{name}.{pname}" if name else pname
            sums[key] = sums[key] + stat if key in sums else stat

    def accumulate(xs: Tensor, ys: Tensor | None, mode: str) -> None:
        """Add the statistics of one forward block of samples to ``sums``."""
        captured.clear()
        with torch.enable_grad():
            logits = model(xs)[:, head]
            grads, weights = _output_grads(kind, logits.detach(), ys, mode, generator)
            weighted = kind == "fisher" and mode == "exact"
            outputs = [captured[n][1] for n in names]
            conv_stats = {n: _ConvStat(modules[n], captured[n][0], captured[n][1].shape, kind) for n in convs}
            # all K classes in one vmap-batched backward pass, or one class at a time with convolutions
            n_classes = grads.shape[0]
            groups = [(k, k + 1) for k in range(n_classes)] if convs else [(0, n_classes)]
            fc_d: dict[str, Tensor] = {}  # fully connected layers: D of the closed form, summed over classes
            for g_i, (k0, k1) in enumerate(groups):
                retain = g_i < len(groups) - 1
                if convs:
                    deltas = torch.autograd.grad(logits, outputs, grad_outputs=grads[k0], retain_graph=retain,
                                                 allow_unused=True)
                    deltas = [None if d is None else d.unsqueeze(0) for d in deltas]
                else:
                    deltas = torch.autograd.grad(logits, outputs, grad_outputs=grads[k0:k1], is_grads_batched=True,
                                                 retain_graph=retain, allow_unused=True)
                for name, delta in zip(names, deltas):
                    if delta is None:  # a head-irrelevant module; its statistic is 0
                        continue
                    if name in convs:
                        for k in range(k1 - k0):
                            conv_stats[name].add(delta[k], weights[k0 + k] if weighted else None)
                    else:
                        if kind == "fisher":
                            d = (weights[k0:k1].unsqueeze(-1) * delta.square()).sum(0)
                        else:
                            d = delta.abs().sum(0)
                        fc_d[name] = fc_d[name] + d if name in fc_d else d
        for name in names:
            if name in convs:
                add(name, conv_stats[name].result())
                continue
            a, out = captured[name]
            d = fc_d[name] if name in fc_d else torch.zeros(out.shape, dtype=grads.dtype, device=x.device)
            add(name, _stat_fn(modules[name])(a.square() if kind == "fisher" else a.abs(), d))
        captured.clear()

    handles = [m.register_forward_hook(hook(name)) for name, m in modules.items()]
    try:
        block = chunk  # samples per forward pass
        if convs and x.shape[0] > 0:  # bound the unfolded inputs of a block (shapes from a one-sample probe)
            captured.clear()
            with torch.no_grad():
                model(x[:1])
            per_sample = sum(_unfolded_size(modules[n], captured[n][1]) for n in convs)
            block = max(1, min(chunk, _UNFOLD_ELEMENTS // per_sample))
        for start in range(0, x.shape[0], chunk):
            xs = x[start : start + chunk]
            ys = None if y is None else y[start : start + chunk]
            mode = fisher_mode
            if kind == "fisher" and fisher_mode == "sample" and block < xs.shape[0]:
                # one draw for the whole chunk, as with one forward pass, from a pass without a graph
                with torch.no_grad():
                    logits = torch.cat([model(xs[b : b + block])[:, head] for b in range(0, xs.shape[0], block)])
                ys, mode = _draw(torch.softmax(logits, dim=1), generator), "true"
            for b in range(0, xs.shape[0], block):
                accumulate(xs[b : b + block], None if ys is None else ys[b : b + block], mode)
    finally:
        for h in handles:
            h.remove()
        captured.clear()
        model.train(was_training)
    n = x.shape[0]
    missing = set(slow) - set(sums)
    if missing:
        raise NotImplementedError(f"no per-sample statistic for slow parameters {sorted(missing)}")
    return {k: sums[k].detach() / n for k in slow}


def batch_fisher(model: nn.Module, x: Tensor, y: Tensor, head: slice, batch_size: int = 64) -> dict[str, Tensor]:
    """The mini-batch Fisher shortcut (docs/method.md (consolidation), "peers differ here: batch vs per-sample"): not the default.

    ``mean_b (d mean_{n in b} -log p(y_n|x_n) / d w)^2`` over consecutive mini-batches b of ``batch_size``
    samples with their true (local head) labels. It squares a batch-mean gradient, so it is roughly the
    per-sample empirical Fisher divided by the batch size (plus the squared mean gradient): a much smaller
    Omega for the same lambda. The model is evaluated in evaluation mode (the Hebbian trace is not updated).
    """
    return batch_grad_stats(model, x, head, "fisher", y, batch_size)


def batch_grad_stats(model: nn.Module, x: Tensor, head: slice, kind: str, y: Tensor | None = None,
                     batch_size: int = 64) -> dict[str, Tensor]:
    """Mini-batch counterparts of :func:`sample_grad_stats`: a statistic of each mini-batch's mean gradient,
    averaged over consecutive mini-batches b of ``batch_size`` samples.

    ``kind="fisher"``: ``mean_b (d mean_{n in b} -log p(y_n|x_n) / d w)^2`` with the true (local head) labels y
    (:func:`batch_fisher`). ``kind="mas"``: ``mean_b |d mean_{n in b} ||f(x_n)||_2^2 / d w|`` (f the active-head
    logits), which is how Aljundi et al. accumulate MAS's importance from mini-batches; by the triangle
    inequality it is at most the per-sample ``mean_n |g_n|`` of ``sample_grad_stats``, and smaller the more the
    samples' gradients differ in sign. Evaluation mode: the Hebbian trace is used, not updated.
    """
    if kind not in ("fisher", "mas"):
        raise ValueError(f"unknown importance kind {kind!r}; accepted: fisher, mas")
    if kind == "fisher" and y is None:
        raise ValueError("the mini-batch Fisher needs the labels")
    slow = model.slow_parameters()
    names, params = list(slow), list(slow.values())
    was_training = model.training
    model.eval()
    sums = [torch.zeros_like(p) for p in params]
    n_batches = 0
    try:
        for start in range(0, x.shape[0], batch_size):
            with torch.enable_grad():
                logits = model(x[start : start + batch_size])[:, head]
                if kind == "fisher":
                    loss = nn.functional.cross_entropy(logits, y[start : start + batch_size])
                else:
                    loss = logits.square().sum(1).mean()
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            for s, g in zip(sums, grads):
                if g is not None:
                    s.add_(g.detach().square() if kind == "fisher" else g.detach().abs())
            n_batches += 1
    finally:
        model.train(was_training)
    return {k: s / max(n_batches, 1) for k, s in zip(names, sums)}
