"""Issue #27's labelled options, each on a hand-made case: importance on DHP Softmax's slow-only logits
(``importance_logits``), MAS's mini-batch estimator (``mas_mode``), early stopping on the validation cross-entropy
(``select_metric``), Split MNIST's loss over all output units (``loss_units``); what every run now records per task
(:func:`dhclib.method.train.mechanism`) and the code it ran; and that none of them changes a stored run's key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dhclib.errors import ConfigError
from dhclib.method.consolidation import MAS, OnlineEWC
from dhclib.method.importance import batch_grad_stats, sample_grad_stats
from dhclib.method.models import MLP, slow_logits
from dhclib.method.task import Task
from dhclib.method.train import Protocol, TaskState, evaluate, mechanism, train_epoch, train_step
from dhclib.runs.config import resolve_config
from dhclib.runs.build import code_version
from dhclib.seeds import rng

HEAD = slice(0, 3)


def plastic_mlp(seed: int = 0) -> MLP:
    """A 6-5-3 MLP with DHP Softmax in float64, whose plastic term alpha * hebb is as large as theta."""
    torch.manual_seed(seed)
    model = MLP(6, (5,), 3, output="dhp").double()
    with torch.no_grad():
        model.out.hebb.copy_(torch.rand_like(model.out.hebb))
        model.out.alpha.copy_(torch.randn_like(model.out.alpha))
    return model


def data(n: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def without_plastic_term(model: MLP) -> MLP:
    """The same network with alpha = 0: its logits are the slow weights' alone, by construction."""
    twin = plastic_mlp()
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        twin.out.alpha.zero_()
    return twin


def close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-10, atol=1e-12) for k in a)


# -- (1a) importance on the slow-only logits ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mas", "fisher"])
def test_slow_logits_leave_the_plastic_term_out_of_importance(kind):
    """Within ``slow_logits`` the importance is that of the same network with alpha = 0, on every slow weight
    (hidden layers included), and not that of the logits as trained; the trace is left as it was."""
    model, (x, y) = plastic_mlp(), data()
    hebb = model.out.hebb.clone()
    model.eval()
    before = model(x)
    full = sample_grad_stats(model, x, HEAD, kind, y=y)
    with slow_logits(model):
        slow = sample_grad_stats(model, x, HEAD, kind, y=y)
    want = sample_grad_stats(without_plastic_term(model), x, HEAD, kind, y=y)
    assert close(slow, want)
    assert not torch.allclose(slow["out.theta"], full["out.theta"])
    assert not torch.allclose(slow["body.0.weight"], full["body.0.weight"])
    assert torch.equal(model.out.hebb, hebb)
    assert torch.equal(model(x), before)  # the plastic term is back after the block


@pytest.mark.parametrize("cls", [MAS, OnlineEWC])
def test_regulariser_with_slow_logits_consolidates_the_slow_only_importance(cls):
    """MAS and Online EWC with ``logits="slow"`` store as Omega exactly the slow-only statistic of their seeded
    subset; with the default they store the statistic of the logits as trained."""
    task = make_task(torch.randn(40, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5)))
    omegas = {}
    for logits in ("full", "slow"):
        model = plastic_mlp()
        reg = cls(model, 1.0, samples=16, logits=logits)
        reg.on_task_end(task, rng(0, "importance", 0))
        omegas[logits] = reg.importance()
    model = plastic_mlp()
    x, y = task.sample("train", 16, rng(0, "importance", 0))
    kind = "mas" if cls is MAS else "fisher"
    want = sample_grad_stats(without_plastic_term(model), x, HEAD, kind, y=y, generator=rng(0, "importance", 0))
    assert close(omegas["slow"], want)
    assert not torch.allclose(omegas["slow"]["out.theta"], omegas["full"]["out.theta"])


def make_task(x: torch.Tensor, head: slice = HEAD, loss_head: slice | None = None, n_val: int = 0) -> Task:
    g = torch.Generator().manual_seed(9)
    y = head.start + torch.randint(0, head.stop - head.start, (x.shape[0],), generator=g)
    rows = torch.arange(x.shape[0])
    return Task(name="t", index=0, classes=tuple(range(head.start, head.stop)), head=head, x_train=x, y_train=y,
                train_idx=rows[n_val:], val_idx=rows[:n_val], x_test=x, y_test=y, test_idx=rows,
                loss_head=loss_head)


def test_slow_logits_only_for_plastic_methods():
    with pytest.raises(ConfigError, match="'mas' has none; accepted for dhp\\+ewc, dhp\\+mas"):
        resolve_config("permuted_mnist", "mas", 0, "paper", importance_logits="slow")
    with pytest.raises(ConfigError, match="importance_logits must be 'full' or 'slow'"):
        resolve_config("permuted_mnist", "dhp+mas", 0, "paper", importance_logits="plastic")


# -- (1b) MAS from mini-batch gradients --------------------------------------------------------------------------
def test_batch_mas_is_the_mean_over_batches_of_abs_mini_batch_gradients():
    """mean_b |d mean_{n in b} ||f(x_n)||^2 / dw| over consecutive batches (a last, smaller one counts as one),
    written out here with autograd; with batches of equal size it is at most the per-sample mean |g_n| (triangle
    inequality), and smaller somewhere."""
    model, (x, _) = plastic_mlp(), data(n=10)
    got = batch_grad_stats(model, x, HEAD, "mas", batch_size=4)
    slow = model.slow_parameters()
    want = {k: torch.zeros_like(p) for k, p in slow.items()}
    model.eval()
    for s in (0, 4, 8):
        loss = model(x[s : s + 4])[:, HEAD].square().sum(1).mean()
        for k, g in zip(slow, torch.autograd.grad(loss, list(slow.values()))):
            want[k] += g.abs() / 3
    assert close(got, want)
    x, _ = data(n=12)
    got = batch_grad_stats(model, x, HEAD, "mas", batch_size=4)
    per_sample = sample_grad_stats(model, x, HEAD, "mas")
    assert all((got[k] <= per_sample[k] + 1e-12).all() for k in got)
    assert any((got[k] < per_sample[k] - 1e-6).any() for k in got)


def test_mas_mode_reaches_the_regulariser():
    cfg = resolve_config("permuted_mnist", "mas", 0, "paper", mas_mode="batch")
    assert cfg.mas_mode == "batch" and cfg.importance_logits == "full"
    with pytest.raises(ConfigError, match="mas_mode must be 'per_sample' or 'batch'"):
        resolve_config("permuted_mnist", "mas", 0, "paper", mas_mode="minibatch")
    model = plastic_mlp()
    reg = MAS.from_settings(model, resolve_config("permuted_mnist", "dhp+mas", 0, "paper", mas_mode="batch",
                                                  importance_logits="slow").regulariser_settings, Protocol())
    assert reg.batch and reg.logits == "slow" and reg.batch_size == 64


# -- (1c) early stopping on the validation cross-entropy ---------------------------------------------------------
@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_early_stopping_restores_the_epoch_of_the_best_score(metric):
    """Every epoch's row records its score; the restored epoch is the first with the best validation accuracy,
    or with the lowest validation cross-entropy (recorded as ``val_loss``, measured by hand here)."""
    x = torch.randn(200, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    task = make_task(x, n_val=60)
    model = plastic_mlp()
    protocol = Protocol(lr=0.5, min_epochs=6, max_epochs=6, patience=10, select_metric=metric, batch_size=16)
    reg = MAS(model, 0.0)
    state, losses = TaskState(model, task, reg, protocol, seed=0), []
    while True:
        epoch = state.next_epoch()
        loss_sum = train_epoch(model, task, reg, state.opt, protocol.batch_size, state.order_rng, None, epoch)
        with torch.no_grad():
            model.eval()
            xv, yv = x[:60], task.y_train[:60]
            losses.append(float(F.cross_entropy(model(xv), yv)))
            model.train()
        if state.end_epoch(loss_sum):
            break
    rows = state.log.epochs
    if metric == "loss":
        assert np.allclose([r["val_loss"] for r in rows], losses)
        want = int(np.argmin(losses)) + 1
    else:
        assert "val_loss" not in rows[0]
        want = int(np.argmax([r["val_acc"] for r in rows])) + 1
    assert state.finish().best_epoch == want
    # the two scores pick different epochs here, so the option is not a relabelling
    accs = [r["val_acc"] for r in rows]
    if metric == "loss":
        assert int(np.argmax(accs)) + 1 != want


def test_select_metric_is_checked():
    with pytest.raises(ConfigError, match="select_metric must be 'accuracy' or 'loss', got 'error'"):
        resolve_config("permuted_mnist", "dhp", 0, "paper", select_metric="error")


# -- (1d) Split MNIST's loss over all output units ---------------------------------------------------------------
def test_loss_over_all_units_trains_every_head_and_predicts_within_the_task_head():
    """With ``loss_head`` spanning all units, a step's gradient reaches the other heads' output weights (zero with
    the task's head alone), and the loss is the cross-entropy over all units with the global label; the
    evaluation still predicts within the task's head."""
    x = torch.randn(16, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    grads = {}
    for loss_head in (None, slice(0, 6)):
        torch.manual_seed(0)
        model = MLP(6, (5,), 6, output="matched").double()
        task = make_task(x, head=slice(2, 4), loss_head=loss_head)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        rows = task.train_idx[:8]
        loss = train_step(model, task, MAS(model, 0.0), opt, x[rows], task.y_train[rows])
        units = task.loss_units
        assert torch.isclose(loss, F.cross_entropy(model(x[rows])[:, units], task.y_train[rows] - units.start))
        grads[loss_head is None] = model.out.theta.grad.clone()
        logits = model(x)[:, 2:4]
        assert evaluate(model, task) == (logits.argmax(1) == task.y_train - 2).double().mean().item()
    assert torch.count_nonzero(grads[True][:, [0, 1, 4, 5]]) == 0
    assert torch.count_nonzero(grads[False][:, [0, 1, 4, 5]]) > 0


def test_split_mnist_loss_units_option():
    cfg = resolve_config("split_mnist", "dhp", 0, "paper", loss_units="all")
    assert cfg.loss_units == "all"
    with pytest.raises(ConfigError, match="loss_units must be 'head' or 'all'"):
        resolve_config("split_mnist", "dhp", 0, "paper", loss_units="every")
    with pytest.raises(ConfigError, match="applies to split_mnist only"):
        resolve_config("permuted_mnist", "dhp", 0, "paper", loss_units="all")


# -- (2) the mechanism, recorded per task ------------------------------------------------------------------------
def test_mechanism_on_hand_set_weights():
    """||alpha * hebb||_F / ||theta||_F, ||alpha||_F and the penalty's largest lr * 2 lam Omega, on weights set
    by hand: theta = 2 everywhere (15 entries), alpha = 1, hebb = 0.5, Omega(theta) max 3 with lam 0.1, lr 0.01."""
    model = plastic_mlp()
    with torch.no_grad():
        model.out.theta.fill_(2.0)
        model.out.alpha.fill_(1.0)
        model.out.hebb.fill_(0.5)
    reg = MAS(model, 0.1)
    assert mechanism(model, reg, 0.01)["penalty_stiffness"] == 0.0  # nothing consolidated yet
    reg._consolidate([torch.full_like(p, 1.0) for p in reg.params])
    reg.omega[-1][0, 0] = 3.0
    got = mechanism(model, reg, 0.01)
    assert got["plastic_ratio"] == pytest.approx(0.25)
    assert got["alpha_norm"] == pytest.approx(15 ** 0.5)
    assert got["penalty_stiffness"] == pytest.approx(0.01 * 2 * 0.1 * 3.0)
    assert set(mechanism(MLP(6, (5,), 3, output="matched"), reg, 0.01)) == {"penalty_stiffness"}


# -- keys and code provenance ------------------------------------------------------------------------------------
def test_new_options_at_their_defaults_keep_every_key_and_are_stored():
    """At its default an added field is stored with the config but left out of the key (so no stored run changes
    key: tests/test_store_compat.py checks the committed store); any other value makes a new key."""
    base = resolve_config("permuted_mnist", "dhp+mas", 0, "paper")
    spelled = resolve_config("permuted_mnist", "dhp+mas", 0, "paper", mas_mode="per_sample",
                             importance_logits="full", select_metric="accuracy")
    assert spelled.key() == base.key()
    assert {"mas_mode", "importance_logits", "select_metric"} <= set(base.to_dict())
    keys = {resolve_config("permuted_mnist", "dhp+mas", 0, "paper", **kw).key()
            for kw in ({}, {"mas_mode": "batch"}, {"importance_logits": "slow"}, {"select_metric": "loss"})}
    assert len(keys) == 4
    split = resolve_config("split_mnist", "dhp", 0, "paper")
    assert split.key() != resolve_config("split_mnist", "dhp", 0, "paper", loss_units="all").key()


def test_code_version_names_the_checkout_commit(tmp_path):
    root = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    got = code_version()
    assert got["commit"] == head.stdout.strip() and isinstance(got["dirty"], bool)
