"""dhclib.method.layers and dhclib.method.models: the DHP Softmax layer against a literal loop implementation of the paper's
Listing 1, its gradients, trace lifecycle, state_dict, the capacity-matched baseline, the slow-weight init quirk,
the eta-gradient horizon, eta clamping, constructor errors and multi-head slicing (docs/method.md (DHP Softmax), §2, §4)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dhclib.method.layers import DHPSoftmax, MatchedSoftmax, hebbian_update, slow_weight_init
from dhclib.method.models import MLP, plastic_layer, reset_hebb

DT = torch.float64


# ---------------------------------------------------------------------------------------------------------------
# the reference: Listing 1 (Appendix B), literally, with a Python loop over classes
# ---------------------------------------------------------------------------------------------------------------
def loop_hebbian_update(hebb: torch.Tensor, h: torch.Tensor, y: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """Listing 1's training-mode update: for each class c present in y, ``hebb[:, c] = (1 - eta) * hebb[:, c] +
    eta * h_bar_c`` with h_bar_c the mean of the rows of h labelled c; absent classes untouched. ``eta`` is a
    scalar (shape (1,)) or per connection (shape (m, d), hebb[i, c] uses eta[i, c]). Differentiable (autograd
    follows the column writes into the clone)."""
    hebb = hebb.clone()
    m, d = hebb.shape
    for c in range(d):
        rows = [n for n in range(len(y)) if int(y[n]) == c]
        if not rows:
            continue
        h_bar = sum(h[n] for n in rows) / len(rows)
        e = eta if eta.numel() == 1 else eta[:, c]
        hebb[:, c] = (1 - e) * hebb[:, c].clone() + e * h_bar  # clone(), as Listing 1 does
    return hebb


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _eta(m: int, d: int, per_connection: bool, g: torch.Generator) -> torch.Tensor:
    shape = (m, d) if per_connection else (1,)
    return (0.05 + 0.9 * torch.rand(shape, generator=g)).to(DT)


def _batches(m: int, d: int, g: torch.Generator):
    """Random (h, y) batches, float64: all classes, some classes absent, a single class, a single sample."""
    out = []
    for n, classes in [(12, list(range(d))), (9, [0, 2]), (5, [d - 1]), (1, [1]), (15, list(range(d)))]:
        y = torch.tensor(classes)[torch.randint(len(classes), (n,), generator=g)]
        y[: len(classes)] = torch.tensor(classes)[: n]  # every listed class present when n allows it
        h = torch.randn(n, m, generator=g, dtype=DT)
        out.append((h, y))
    return out


def _layer(m=5, d=4, seed=0, **kwargs) -> DHPSoftmax:
    torch.manual_seed(seed)
    return DHPSoftmax(m, d, **kwargs).to(DT)


# ---------------------------------------------------------------------------------------------------------------
# hebbian_update == Listing 1
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("per_connection", [False, True], ids=["scalar-eta", "per-connection-eta"])
def test_hebbian_update_matches_listing_1_loop(per_connection):
    """The vectorised update (docs/method.md (DHP Softmax) decision: no loop over classes) equals Listing 1's loop exactly, batch after
    batch, including batches with absent classes (their columns untouched) and a single-class batch."""
    m, d = 5, 4
    g = _gen(1)
    eta = _eta(m, d, per_connection, g)
    hebb = torch.randn(m, d, generator=g, dtype=DT)
    ref = hebb.clone()
    for h, y in _batches(m, d, g):
        new = hebbian_update(hebb, h, y, eta)
        ref = loop_hebbian_update(ref, h, y, eta)
        torch.testing.assert_close(new, ref, rtol=1e-12, atol=1e-12)
        absent = [c for c in range(d) if c not in set(y.tolist())]
        torch.testing.assert_close(new[:, absent], hebb[:, absent], rtol=0, atol=0)  # untouched, bit for bit
        assert all(not torch.equal(new[:, c], hebb[:, c]) for c in set(y.tolist()))
        hebb = new


def test_hebbian_update_hand_values():
    """A hand-computed case: eta 0.5, classes 0 (rows [1,2] and [3,4], mean [2,3]) and 2 (row [5,7]); class 1
    absent. Column 0: 0.5*[1,1] + 0.5*[2,3] = [1.5,2]; column 2: 0.5*[0,2] + 0.5*[5,7] = [2.5,4.5]."""
    hebb = torch.tensor([[1.0, 9.0, 0.0], [1.0, 9.0, 2.0]], dtype=DT)
    h = torch.tensor([[1.0, 2.0], [5.0, 7.0], [3.0, 4.0]], dtype=DT)
    y = torch.tensor([0, 2, 0])
    out = hebbian_update(hebb, h, y, torch.tensor([0.5], dtype=DT))
    torch.testing.assert_close(out, torch.tensor([[1.5, 9.0, 2.5], [2.0, 9.0, 4.5]], dtype=DT))


@pytest.mark.parametrize("per_connection", [False, True], ids=["scalar-eta", "per-connection-eta"])
def test_forward_train_updates_trace_like_listing_1_and_uses_updated_trace(per_connection):
    """DHPSoftmax.forward in training mode with labels: after several steps ``hebb`` equals the loop's result, and
    each step returns ``h @ (theta + alpha * hebb_updated)`` (the UPDATED trace, docs/method.md (DHP Softmax))."""
    m, d = 5, 4
    layer = _layer(m, d, eta_per_connection=per_connection)
    g = _gen(2)
    with torch.no_grad():
        layer.eta.copy_(_eta(m, d, per_connection, g))
    layer.train()
    ref = torch.zeros(m, d, dtype=DT)
    for h, y in _batches(m, d, g):
        z = layer(h, y)
        ref = loop_hebbian_update(ref, h, y, layer.eta.detach())
        torch.testing.assert_close(layer.hebb, ref, rtol=1e-12, atol=1e-12)
        expected = h @ (layer.theta.detach() + layer.alpha.detach() * ref)
        torch.testing.assert_close(z.detach(), expected, rtol=1e-12, atol=1e-12)
    assert ref.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------------------------
def test_gradients_reach_eta_alpha_theta_and_hidden_layers():
    """After a training-mode forward with labels and a backward, eta, alpha and theta have non-zero gradients,
    and so has the hidden layer of an MLP with a DHP output (docs/method.md (DHP Softmax): gradients flow through the update)."""
    torch.manual_seed(0)
    model = MLP(6, (7,), 4, output="dhp").to(DT)
    model.train()
    x = torch.randn(10, 6, dtype=DT)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    loss = nn.functional.cross_entropy(model(x, y), y)
    loss.backward()
    out = model.out
    for name in ("eta", "alpha", "theta"):
        grad = getattr(out, name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert model.body[0].weight.grad is not None and model.body[0].weight.grad.abs().sum() > 0
    assert model.body[0].bias.grad.abs().sum() > 0


def _hand_grads(layer: DHPSoftmax, hebb_old, h, y, w):
    """Hand-derived gradients of L = sum(z * w), z = h @ (theta + alpha * H'), H' = Eq. 3 applied to hebb_old:
    G = dL/dW = h^T w; dL/dH' = alpha * G; dH'/deta = mask * (h_bar - hebb_old) (mask: present classes);
    dL/dh = w W^T (direct path) + sum_c dL/dH'[:, c] * eta[:, c] / n_c on rows of class c (update path)."""
    theta, alpha, eta = layer.theta.detach(), layer.alpha.detach(), layer.eta.detach()
    d = hebb_old.shape[1]
    onehot = torch.nn.functional.one_hot(y, d).to(DT)
    counts = onehot.sum(0)
    mask = (counts > 0).to(DT)
    h_bar = (h.t() @ onehot) / counts.clamp(min=1)
    new = hebb_old + mask * eta * (h_bar - hebb_old)
    W = theta + alpha * new
    G = h.t() @ w
    dH = alpha * G
    deta_full = dH * mask * (h_bar - hebb_old)
    deta = deta_full if eta.dim() == 2 else deta_full.sum().reshape(1)
    e = eta.expand_as(hebb_old)
    dh_direct = w @ W.t()
    dh_update = (onehot / counts.clamp(min=1)) @ (dH * e * mask).t()
    return deta, dh_direct, dh_update


@pytest.mark.parametrize("per_connection", [False, True], ids=["scalar-eta", "per-connection-eta"])
def test_eta_and_h_gradients_match_hand_derivation_and_loop_autograd(per_connection):
    """eta's gradient (one-step horizon, Listing 1) equals the hand-derived formula and autograd through the
    literal loop; dL/dh equals the direct path plus the Hebbian-update path, and the update path is non-zero."""
    m, d = 5, 4
    layer = _layer(m, d, eta_per_connection=per_connection)
    g = _gen(3)
    with torch.no_grad():
        layer.eta.copy_(_eta(m, d, per_connection, g))
        layer.hebb.copy_(torch.randn(m, d, generator=g, dtype=DT))
        layer.alpha.copy_(torch.randn(m, d, generator=g, dtype=DT))
    layer.train()
    h = torch.randn(7, m, generator=g, dtype=DT, requires_grad=True)
    y = torch.tensor([0, 2, 2, 0, 3, 0, 2])  # class 1 absent
    w = torch.randn(7, d, generator=g, dtype=DT)
    hebb_old = layer.hebb.clone()

    loss = (layer(h, y) * w).sum()
    g_eta, g_h = torch.autograd.grad(loss, (layer.eta, h))

    deta, dh_direct, dh_update = _hand_grads(layer, hebb_old, h.detach(), y, w)
    torch.testing.assert_close(g_eta, deta, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_h, dh_direct + dh_update, rtol=1e-10, atol=1e-12)
    assert dh_update.abs().max() > 1e-3  # the update path carries gradient to h

    # Autograd through Listing 1's loop, written out explicitly.
    eta = layer.eta.detach().clone().requires_grad_(True)
    h2 = h.detach().clone().requires_grad_(True)
    new = loop_hebbian_update(hebb_old, h2, y, eta)
    loss_ref = (h2 @ (layer.theta.detach() + layer.alpha.detach() * new) * w).sum()
    ref_eta, ref_h = torch.autograd.grad(loss_ref, (eta, h2))
    torch.testing.assert_close(g_eta, ref_eta, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_h, ref_h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("alpha_zero", [False, True], ids=["alpha-random", "alpha-zero"])
def test_gradient_to_h_flows_through_the_update_unless_alpha_is_zero(alpha_zero):
    """dL/dh with the update in the graph differs from dL/dh with the updated trace detached; with alpha = 0 the
    plastic term vanishes and the two agree (docs/method.md (DHP Softmax): alpha = 0 is a plain linear softmax layer)."""
    m, d = 5, 4
    layer = _layer(m, d, eta_init=0.4)
    g = _gen(4)
    with torch.no_grad():
        layer.alpha.copy_(torch.zeros(m, d, dtype=DT) if alpha_zero else torch.randn(m, d, generator=g, dtype=DT))
        layer.hebb.copy_(torch.randn(m, d, generator=g, dtype=DT))
    hebb_old = layer.hebb.clone()
    h = torch.randn(6, m, generator=g, dtype=DT, requires_grad=True)
    y = torch.tensor([0, 1, 1, 3, 0, 3])
    w = torch.randn(6, d, generator=g, dtype=DT)
    layer.train()
    (g_with,) = torch.autograd.grad((layer(h, y) * w).sum(), h)
    updated = loop_hebbian_update(hebb_old, h.detach(), y, layer.eta.detach())
    (g_without,) = torch.autograd.grad((h @ (layer.theta + layer.alpha * updated) * w).sum(), h)
    diff = (g_with - g_without).abs().max()
    if alpha_zero:
        assert diff == 0
        layer.eval()
        torch.testing.assert_close(layer(h).detach(), h.detach() @ layer.theta.detach())
    else:
        assert diff > 1e-3


# ---------------------------------------------------------------------------------------------------------------
# trace lifecycle
# ---------------------------------------------------------------------------------------------------------------
def _state(layer):
    return {k: v.clone() for k, v in layer.state_dict().items()}


@pytest.mark.parametrize("horizon", [1, None], ids=["horizon-1", "horizon-full"])
def test_eval_mode_and_missing_labels_never_change_the_trace(horizon):
    """Evaluation mode (with or without labels) and training mode without labels leave hebb (and the carried
    sensitivity and step counter) untouched, and use the trace as it is: z = h @ (theta + alpha * hebb)."""
    layer = _layer(eta_init=0.3, eta_grad_horizon=horizon)
    g = _gen(5)
    layer.train()
    for h, y in _batches(5, 4, g)[:2]:
        layer(h, y)
    before = _state(layer)
    assert before["hebb"].abs().sum() > 0
    h = torch.randn(6, 5, generator=g, dtype=DT)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    expected = h @ (layer.theta.detach() + layer.alpha.detach() * before["hebb"])
    layer.eval()
    outs = [layer(h, y), layer(h)]
    layer.train()
    outs.append(layer(h))
    for z in outs:
        torch.testing.assert_close(z.detach(), expected, rtol=1e-12, atol=1e-12)
    after = _state(layer)
    for k in before:
        assert torch.equal(before[k], after[k]), k
    model = MLP(5, (4,), 3).to(DT)
    model.eval()
    model(torch.randn(4, 5, dtype=DT), torch.tensor([0, 1, 2, 0]))
    assert model.out.hebb.abs().sum() == 0


def test_trace_persists_across_task_boundaries_and_reset_zeroes_it():
    """No implicit reset (docs/method.md (DHP Softmax): zero at the start of task 1 only): columns written in 'task 1' (classes 0, 1)
    stay as they were while 'task 2' (classes 2, 3) trains, eval passes in between change nothing, and
    reset_hebb() (the layer's, and dhclib.method.models.reset_hebb on a model) zeroes it."""
    torch.manual_seed(0)
    model = MLP(6, (5,), 4, output="dhp", eta_init=0.2).to(DT)
    layer = plastic_layer(model)
    assert layer is model.out
    g = _gen(6)
    model.train()
    for _ in range(3):
        model(torch.randn(8, 6, generator=g, dtype=DT), torch.tensor([0, 1] * 4))
    task1 = layer.hebb.clone()
    assert (task1[:, :2].abs().sum(0) > 0).all() and task1[:, 2:].abs().sum() == 0
    model.eval()
    model(torch.randn(8, 6, generator=g, dtype=DT))
    model.train()
    for _ in range(3):
        model(torch.randn(8, 6, generator=g, dtype=DT), torch.tensor([2, 3] * 4))
    assert torch.equal(layer.hebb[:, :2], task1[:, :2])
    assert (layer.hebb[:, 2:].abs().sum(0) > 0).all()
    reset_hebb(model)
    assert layer.hebb.abs().sum() == 0 and layer.hebb_sensitivity.abs().sum() == 0 and int(layer.steps) == 0
    layer.hebb.fill_(1.0)
    layer.reset_hebb()
    assert layer.hebb.abs().sum() == 0
    reset_hebb(MLP(6, (5,), 4, output="matched"))  # a model without a plastic layer: a no-op, no error
    assert plastic_layer(MLP(6, (5,), 4, output="matched")) is None


@pytest.mark.parametrize("per_connection,horizon", [(False, 1), (True, None), (False, 3)])
def test_state_dict_round_trip_reproduces_layer(per_connection, horizon):
    """A state_dict loaded into a freshly constructed layer (different random init) reproduces hebb, theta,
    alpha, eta (and the sensitivity buffer), gives identical eval logits, and the next training step is identical."""
    kwargs = dict(eta_per_connection=per_connection, eta_grad_horizon=horizon, eta_init=0.2)
    layer = _layer(seed=0, **kwargs)
    g = _gen(7)
    layer.train()
    for h, y in _batches(5, 4, g)[:3]:
        layer(h, y)
    fresh = _layer(seed=123, **kwargs)
    assert not torch.equal(fresh.theta, layer.theta)
    fresh.load_state_dict(layer.state_dict())
    for name in ("hebb", "theta", "alpha", "eta", "hebb_sensitivity", "steps"):
        assert torch.equal(getattr(fresh, name), getattr(layer, name)), name
    assert layer.hebb.abs().sum() > 0
    h = torch.randn(5, 5, generator=g, dtype=DT)
    y = torch.tensor([3, 1, 1, 0, 3])
    layer.eval(), fresh.eval()
    assert torch.equal(layer(h), fresh(h))
    layer.train(), fresh.train()
    z1, z2 = layer(h, y), fresh(h, y)
    assert torch.equal(z1, z2) and torch.equal(layer.hebb, fresh.hebb)
    g1 = torch.autograd.grad(z1.pow(2).sum(), layer.eta)[0]
    g2 = torch.autograd.grad(z2.pow(2).sum(), fresh.eta)[0]
    assert torch.equal(g1, g2)


# ---------------------------------------------------------------------------------------------------------------
# capacity-matched baseline (docs/method.md (baseline)) and parameter groups
# ---------------------------------------------------------------------------------------------------------------
def _n_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("per_connection", [False, True], ids=["scalar-eta", "per-connection-eta"])
def test_matched_softmax_capacity_equals_dhp_slow_plus_plastic_weights(per_connection):
    """docs/method.md (baseline): the matched layer's trainable parameters (theta, theta2) number 2*m*d = DHP's theta + alpha.
    DHP additionally learns eta: +1 parameter for the scalar eta (MNIST benchmarks), +m*d for the per-connection
    eta (Vision Datasets Mixture, Appendix A.4). The trace is a buffer, not a parameter. The same holds for MLPs
    with either output layer (identical bodies)."""
    m, d = 7, 3
    dhp = DHPSoftmax(m, d, eta_per_connection=per_connection)
    matched = MatchedSoftmax(m, d)
    assert _n_trainable(matched) == 2 * m * d == dhp.theta.numel() + dhp.alpha.numel()
    extra = m * d if per_connection else 1
    assert _n_trainable(dhp) - _n_trainable(matched) == extra == dhp.eta.numel()
    assert "hebb" not in dict(dhp.named_parameters()) and "hebb" in dhp.state_dict()

    kwargs = dict(eta_per_connection=True) if per_connection else {}
    mlp_dhp = MLP(11, (9, m), d, output="dhp", **kwargs)
    mlp_matched = MLP(11, (9, m), d, output="matched")
    body = (11 * 9 + 9) + (9 * m + m)
    assert _n_trainable(mlp_matched) == body + 2 * m * d
    assert _n_trainable(mlp_dhp) == body + 2 * m * d + extra


def test_matched_softmax_ignores_labels_and_init():
    """MatchedSoftmax accepts y and ignores it (same logits, train or eval, no state), computes
    h @ (theta + theta2), with theta2 initialised like alpha (0.01 * U(0, 1))."""
    torch.manual_seed(0)
    layer = MatchedSoftmax(5, 4).to(DT)
    assert ((layer.theta2 >= 0) & (layer.theta2 < 0.01)).all()
    h = torch.randn(6, 5, dtype=DT)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    layer.train()
    z = layer(h, y)
    assert torch.equal(z, layer(h)) and torch.equal(z, layer(h, y))
    layer.eval()
    assert torch.equal(z, layer(h, y))
    torch.testing.assert_close(z, h @ (layer.theta + layer.theta2))
    assert list(layer.buffers()) == []


def test_slow_parameters_groups():
    """slow_parameters (what consolidation regularises, docs/method.md (consolidation)): DHP -> {theta} only, never alpha or eta;
    matched -> {theta, theta2}; an MLP adds every body parameter."""
    dhp, matched = DHPSoftmax(5, 4), MatchedSoftmax(5, 4)
    assert set(dhp.slow_parameters()) == {"theta"} and dhp.slow_parameters()["theta"] is dhp.theta
    assert set(matched.slow_parameters()) == {"theta", "theta2"}
    assert matched.slow_parameters()["theta2"] is matched.theta2
    mlp = MLP(6, (5,), 4, output="dhp")
    assert set(mlp.slow_parameters()) == {"body.0.weight", "body.0.bias", "out.theta"}
    mlp_m = MLP(6, (5,), 4, output="matched")
    assert set(mlp_m.slow_parameters()) == {"body.0.weight", "body.0.bias", "out.theta", "out.theta2"}


def test_dhp_parameter_initialisation():
    """docs/method.md (DHP Softmax) init: alpha = 0.01 * U(0, 1), eta = eta_init (scalar shape (1,) or m x d), hebb zero."""
    torch.manual_seed(0)
    layer = DHPSoftmax(30, 10, eta_init=0.001)
    assert ((layer.alpha >= 0) & (layer.alpha < 0.01)).all() and layer.alpha.max() > 0.009
    assert layer.eta.shape == (1,) and layer.eta.item() == pytest.approx(0.001)
    assert layer.hebb.shape == (30, 10) and layer.hebb.abs().sum() == 0
    pc = DHPSoftmax(30, 10, eta_init=1e-4, eta_per_connection=True)
    assert pc.eta.shape == (30, 10) and torch.allclose(pc.eta, torch.full((30, 10), 1e-4))


# ---------------------------------------------------------------------------------------------------------------
# slow-weight init: Listing 1's quirk (docs/method.md (DHP Softmax))
# ---------------------------------------------------------------------------------------------------------------
def test_slow_weight_init_bound_is_one_over_sqrt_out_features():
    """kaiming_uniform_(a=sqrt 5) on the in x out tensor takes fan_in = out_features: the bound is
    1/sqrt(out_features) (0.316 for 10 classes), not nn.Linear's 1/sqrt(in_features) (0.05 for 400 inputs).
    All values lie within it and, for a large tensor, the largest |value| is within 1% of it."""
    torch.manual_seed(0)
    theta = slow_weight_init(400, 10)
    bound = 1 / math.sqrt(10)
    assert theta.shape == (400, 10)
    assert theta.abs().max() <= bound
    assert theta.abs().max() > 0.99 * bound
    assert theta.abs().max() > 1 / math.sqrt(400)  # would fail with nn.Linear's bound
    assert abs(theta.mean().item()) < 0.02  # uniform, centred
    torch.manual_seed(1)
    wide = slow_weight_init(20, 400)
    assert wide.abs().max() <= 1 / math.sqrt(400) and wide.abs().max() > 0.99 / math.sqrt(400)
    torch.manual_seed(2)
    layer = DHPSoftmax(400, 10)
    assert layer.theta.abs().max() <= bound and layer.theta.abs().max() > 0.99 * bound
    torch.manual_seed(3)
    assert MatchedSoftmax(400, 10).theta.abs().max() <= bound


# ---------------------------------------------------------------------------------------------------------------
# eta_grad_horizon (docs/method.md (DHP Softmax) open question)
# ---------------------------------------------------------------------------------------------------------------
def _horizon_batches(m, d, T, g):
    out = []
    for t in range(T):
        n = 6
        if t % 3 == 2:
            y = torch.tensor([1] * n)  # single class
        elif t % 3 == 1:
            y = torch.tensor([0, 2] * (n // 2))  # classes 1 and 3 absent
        else:
            y = torch.randint(d, (n,), generator=g)
            y[:d] = torch.arange(d)
        out.append((torch.randn(n, m, generator=g, dtype=DT), y, torch.randn(n, d, generator=g, dtype=DT)))
    return out


def _brute_force_eta_grad(layer, batches, t, horizon):
    """d loss_t / d eta with the full autograd graph through the trace, detached after every k-th update
    (k = horizon; never for None), steps counted from the last reset; the hidden activations (so the class
    means) are constants. loss_t = sum(z_t * w_t)."""
    eta = layer.eta.detach().clone().requires_grad_(True)
    hebb = torch.zeros_like(layer.hebb)
    for j, (h, y, _) in enumerate(batches[: t + 1], start=1):
        hebb = loop_hebbian_update(hebb, h, y, eta)
        if horizon is not None and j % horizon == 0 and j <= t:
            hebb = hebb.detach()
    h, _, w = batches[t]
    loss = (h @ (layer.theta.detach() + layer.alpha.detach() * hebb) * w).sum()
    return torch.autograd.grad(loss, eta)[0], hebb.detach()


@pytest.mark.parametrize("per_connection", [False, True], ids=["scalar-eta", "per-connection-eta"])
@pytest.mark.parametrize("horizon", [1, 2, 3, None], ids=["k=1", "k=2", "k=3", "full"])
def test_eta_grad_horizon_matches_brute_force_truncated_backprop(horizon, per_connection):
    """eta_grad_horizon (DHPSoftmax docstring, docs/method.md (DHP Softmax) 'detaching every k'): the O(1) forward-mode sensitivity
    gives, at every step t, the same d loss_t / d eta as backpropagating through the whole chain of Hebbian
    updates with the trace detached after updates k, 2k, ... (None: never), class means held constant. So at
    steps that are multiples of k the gradient reaches back exactly k updates; right after, only 1."""
    m, d, T = 4, 4, 7
    layer = _layer(m, d, eta_per_connection=per_connection, eta_grad_horizon=horizon)
    g = _gen(8)
    with torch.no_grad():
        layer.eta.copy_(0.1 + 0.6 * torch.rand(layer.eta.shape, generator=g, dtype=DT))
        layer.alpha.copy_(torch.randn(m, d, generator=g, dtype=DT))
    batches = _horizon_batches(m, d, T, g)
    one_step_differs = []
    layer.train()
    for t, (h, y, w) in enumerate(batches):
        loss = (layer(h, y) * w).sum()
        (grad,) = torch.autograd.grad(loss, layer.eta)
        ref, ref_hebb = _brute_force_eta_grad(layer, batches, t, horizon)
        torch.testing.assert_close(layer.hebb, ref_hebb, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, ref, rtol=1e-9, atol=1e-12)
        one_step, _ = _brute_force_eta_grad(layer, batches, t, 1)
        one_step_differs.append(not torch.allclose(grad, one_step, rtol=1e-6, atol=1e-9))
    # The test discriminates: longer horizons give a different gradient from the one-step one where they reach
    # further back (all steps after the first for None; for k, steps t with t mod k != 0 after a reset, 0-based).
    expected = [t > 0 if horizon is None else (t % horizon != 0) for t in range(T)]
    assert one_step_differs == expected


@pytest.mark.parametrize("horizon", [2, None], ids=["k=2", "full"])
def test_training_steps_with_longer_eta_horizon_backpropagate(horizon):
    """The ordinary training loop (forward, backward, optimizer step) works for eta_grad_horizon k > 1 and None
    (config eta_grad_horizon = k | 'full'), as it does for 1: backward must not fail because the forward pass
    saved a buffer that the same forward then updates in place, and eta must move."""
    torch.manual_seed(0)
    model = MLP(6, (5,), 4, output="dhp", eta_init=0.1, eta_grad_horizon=horizon)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = _gen(10)
    eta0 = model.out.eta.detach().clone()
    model.train()
    for _ in range(3):
        x, y = torch.randn(8, 6, generator=g), torch.randint(4, (8,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x, y), y).backward()
        opt.step()
    assert not torch.equal(model.out.eta, eta0)


def test_eta_grad_horizon_extra_gradient_reaches_eta_only():
    """DHPSoftmax docstring: the longer horizon's extra gradient reaches eta only, never the hidden layers of
    earlier steps. Two identical MLPs, horizon 1 and None, same batches: after 3 steps the body, theta and alpha
    gradients agree exactly, eta's differ."""
    models = []
    for horizon in (1, None):
        torch.manual_seed(0)
        models.append(MLP(6, (5,), 4, output="dhp", eta_init=0.3, eta_grad_horizon=horizon).to(DT))
    g = _gen(9)
    batches = [(torch.randn(8, 6, generator=g, dtype=DT), torch.tensor([0, 1, 2, 3, 0, 2, 1, 0])) for _ in range(3)]
    grads = []
    for model in models:
        model.train()
        for x, y in batches:
            model.zero_grad()
            nn.functional.cross_entropy(model(x, y), y).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    for k in grads[0]:
        if k == "out.eta":
            assert not torch.allclose(grads[0][k], grads[1][k]), k
        else:
            torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-12, atol=1e-14)
    assert torch.equal(models[0].out.hebb, models[1].out.hebb)


# ---------------------------------------------------------------------------------------------------------------
# eta_clamp and constructor errors
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("per_connection", [False, True], ids=["scalar-eta", "per-connection-eta"])
def test_eta_clamp_keeps_effective_eta_in_unit_interval(per_connection):
    """eta_clamp=True: effective_eta = clamp(eta, 0, 1) and the update uses it (eta 1.7 -> 1: the trace becomes
    the class mean; eta -0.4 -> 0: the trace is unchanged); off by default, eta is used as it is (Listing 1)."""
    m, d = 3, 4
    h = torch.tensor([[1.0, 2.0, 3.0], [3.0, 0.0, 1.0], [5.0, 5.0, 5.0]], dtype=DT)
    y = torch.tensor([0, 0, 2])
    h_bar = torch.zeros(m, d, dtype=DT)
    h_bar[:, 0] = torch.tensor([2.0, 1.0, 2.0])
    h_bar[:, 2] = torch.tensor([5.0, 5.0, 5.0])
    start = torch.full((m, d), 0.5, dtype=DT)
    for raw, eff in [(1.7, 1.0), (-0.4, 0.0), (0.3, 0.3)]:
        for clamp in (True, False):
            layer = _layer(m, d, eta_per_connection=per_connection, eta_clamp=clamp)
            with torch.no_grad():
                layer.eta.fill_(raw)
                layer.hebb.copy_(start)
            e = eff if clamp else raw
            assert torch.allclose(layer.effective_eta(), torch.full_like(layer.eta, e))
            layer.train()
            layer(h, y)
            expected = start.clone()
            expected[:, [0, 2]] = (1 - e) * start[:, [0, 2]] + e * h_bar[:, [0, 2]]
            torch.testing.assert_close(layer.hebb, expected, rtol=1e-12, atol=1e-12)
    assert not DHPSoftmax(3, 4).eta_clamp


@pytest.mark.parametrize("eta_init", [0.0, -1e-3, float("nan")])
def test_bad_eta_init_raises(eta_init):
    """eta_init must be > 0: zero, negative and NaN raise ValueError naming the argument and the value."""
    with pytest.raises(ValueError, match=r"eta_init must be > 0"):
        DHPSoftmax(4, 3, eta_init=eta_init)


@pytest.mark.parametrize("horizon", [0, -2, 1.5, "3", 2.0])
def test_bad_eta_grad_horizon_raises(horizon):
    """eta_grad_horizon must be an int >= 1 or None: 0, negatives, floats and strings raise ValueError."""
    with pytest.raises(ValueError, match=r"eta_grad_horizon must be an int >= 1 or None"):
        DHPSoftmax(4, 3, eta_grad_horizon=horizon)


def test_mlp_constructor_errors():
    """MLP rejects an unknown output layer and DHP options given for the matched (non-DHP) layer."""
    with pytest.raises(ValueError, match="unknown output layer 'softmax'"):
        MLP(4, (3,), 2, output="softmax")
    with pytest.raises(ValueError, match="given for the 'matched' output layer, which takes none"):
        MLP(4, (3,), 2, output="matched", eta_init=0.01)


# ---------------------------------------------------------------------------------------------------------------
# models: multi-head slicing
# ---------------------------------------------------------------------------------------------------------------
def test_a_heads_batch_updates_only_its_trace_columns():
    """Multi-head (docs/method.md (benchmarks)): the model returns every unit's logits and labels are global unit indices, so a
    task-2 batch (units 2, 3) updates only trace columns 2 and 3."""
    torch.manual_seed(0)
    model = MLP(6, (5,), 6, output="dhp", eta_init=0.2).to(DT)
    x = torch.randn(4, 6, dtype=DT)
    y = torch.tensor([2, 3, 3, 2])
    model.train()
    assert model(x, y).shape == (4, 6)
    hebb = model.out.hebb
    assert hebb[:, [0, 1, 4, 5]].abs().sum() == 0 and (hebb[:, 2:4].abs().sum(0) > 0).all()
