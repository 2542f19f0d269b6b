"""dhclib.method.train and dhclib.run: evaluation, the early-stopping protocol, the NaN guard, determinism, end to end
(docs/method.md (benchmarks) protocol and A.1, docs/method.md (DHP Softmax) traces, docs/method.md (metrics) R and BWT)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import dhclib
import dhclib.runs.unit
import dhclib.method.train
from dhclib.benchmarks import Task
from dhclib.runs.config import resolve_config
from dhclib.method.consolidation import Consolidation
from dhclib.method.models import MLP
from dhclib.runs.build import build_model, build_regulariser, build_tasks
from dhclib.method.train import evaluate, train_task

# Small overrides for every synthetic run (quick profile; docs/method.md (benchmarks) protocol scaled down).
TINY = dict(n_tasks=2, train_size=500, max_epochs=2, min_epochs=1)


def _clone_state(model, reg):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, reg.state_dict()


def _equal_values(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal_values(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal_values(a[k], b[k]) for k in a)
    return a == b


# ---------------------------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------------------------
class _TableModel(nn.Module):
    """Returns fixed logits per sample: input column 0 holds the sample's row in ``table``."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, x, y=None):
        return self.table[x[:, 0].long()]


def _head_task(x, y) -> Task:
    empty = torch.empty(0, dtype=torch.long)
    return Task(name="split-2/3", index=1, classes=(2, 3), head=slice(2, 4), x_train=x, y_train=y, train_idx=empty,
                val_idx=empty, x_test=x, y_test=y, test_idx=torch.arange(len(y)))


def test_evaluate_predicts_within_the_head():
    """Multi-head (docs/method.md (benchmarks)): the prediction is the argmax over the task's head only. Unit 0 has the largest logit
    everywhere, so an argmax over all units would score 0; within the head (units 2, 3) 3 of 4 are right."""
    x = torch.zeros(4, 784)
    x[:, 0] = torch.arange(4, dtype=torch.float)
    y = torch.tensor([2, 3, 2, 3])
    table = torch.full((4, 10), -1.0)
    table[:, 0] = 10.0  # the global argmax, outside the head
    table[:, 2] = torch.tensor([5.0, 1.0, 5.0, 5.0])
    table[:, 3] = torch.tensor([1.0, 5.0, 1.0, 1.0])  # sample 3 (label 3) is wrong within the head
    model = _TableModel(table)
    task = _head_task(x, y)
    assert (table.argmax(1) == y).float().mean() == 0.0
    assert evaluate(model, task, "test") == pytest.approx(0.75)
    assert evaluate(model, task, "test", batch_size=3) == pytest.approx(0.75)  # batching does not matter
    assert math.isnan(evaluate(model, task, "val"))  # no rows: NaN, not a division by zero


def test_evaluate_leaves_trace_and_mode_alone(idx_root):
    """evaluate never updates the Hebbian trace (eval mode, docs/method.md (DHP Softmax)) and restores the model's training mode."""
    cfg = resolve_config("permuted_mnist", "dhp", 0, "quick", "cpu", n_tasks=1, hidden=[16], train_size=100)
    (task,) = build_tasks(cfg, idx_root)
    model = build_model(cfg)
    layer = model.out
    layer.hebb.copy_(torch.rand_like(layer.hebb))
    before = layer.hebb.clone()
    model.train()
    acc = evaluate(model, task, "test")
    assert 0.0 <= acc <= 1.0
    assert model.training
    assert torch.equal(layer.hebb, before)


# ---------------------------------------------------------------------------------------------------------------
# early stopping (A.1)
# ---------------------------------------------------------------------------------------------------------------
def _one_task_setup(idx_root, method="dhp+si", **overrides):
    ov = dict(n_tasks=1, hidden=[16], train_size=128, val_fraction=0.1)
    ov.update(overrides)
    cfg = resolve_config("permuted_mnist", method, 0, "quick", "cpu", **ov)
    task = build_tasks(cfg, idx_root)[0]
    model = build_model(cfg)
    reg = build_regulariser(model, cfg)
    return cfg, task, model, reg


def _script_validation(monkeypatch, scores, model, reg):
    """Replace dhclib.method.train.evaluate: the validation accuracy of epoch e is scores[e-1]; the model's and the
    regulariser's state at each validation pass is recorded (after the epoch's training)."""
    snapshots = {}

    def fake_evaluate(m, task, split="test", batch_size=10000):
        assert split == "val", split
        epoch = len(snapshots) + 1
        snapshots[epoch] = _clone_state(model, reg)
        return scores[epoch - 1]

    monkeypatch.setattr(dhclib.method.train, "evaluate", fake_evaluate)
    return snapshots


def _capture_at_task_end(monkeypatch, reg, model):
    """The model's and regulariser's state when training of the task is over (before on_task_end consolidates)."""
    seen = {}
    cls = type(reg)
    original = cls.on_task_end

    def wrapped(self, task, generator):
        seen["state"] = _clone_state(model, self)
        return original(self, task, generator)

    monkeypatch.setattr(cls, "on_task_end", wrapped)
    return seen


def test_early_stopping_restores_best_weights_trace_and_regulariser(idx_root, monkeypatch):
    """A.1 / docs/method.md (benchmarks): after early stopping, the weights AND the Hebbian trace AND the regulariser state are those
    of the best validation epoch (here epoch 3 of 6), not of the last epoch."""
    cfg, task, model, reg = _one_task_setup(idx_root, "dhp+si", min_epochs=2, patience=3, max_epochs=10)
    scores = [0.1, 0.5, 0.9, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]
    snaps = _script_validation(monkeypatch, scores, model, reg)
    seen = _capture_at_task_end(monkeypatch, reg, model)
    log = train_task(model, task, reg, cfg.protocol, seed=0)
    assert len(log.epochs) == 6 and log.best_epoch == 3
    model_state, reg_state = seen["state"]
    best_model, best_reg = snaps[3]
    last_model, last_reg = snaps[6]
    # parameters and the trace, one by one
    for name in ("body.0.weight", "body.0.bias", "out.theta", "out.alpha", "out.eta", "out.hebb"):
        assert torch.equal(model_state[name], best_model[name]), name
    assert set(model_state) == set(best_model) and all(torch.equal(model_state[k], best_model[k]) for k in best_model)
    assert not torch.equal(best_model["out.hebb"], last_model["out.hebb"])  # the test can tell them apart
    assert not torch.equal(best_model["out.theta"], last_model["out.theta"])
    assert best_model["out.hebb"].abs().sum() > 0
    # the regulariser: SI's running path integral (omega) of the task, restored to the best epoch's
    assert _equal_values(reg_state, best_reg)
    assert not _equal_values(best_reg["path"], last_reg["path"])


def test_early_stopping_restores_state_on_a_later_task(idx_root, monkeypatch):
    """The same on task 2, where the regulariser (Online EWC via DHP) already holds Omega and theta*; the trace
    carried over from task 1 is restored to the best epoch of task 2."""
    cfg, _, model, reg = _one_task_setup(idx_root, "dhp+ewc", n_tasks=2, min_epochs=1, patience=2, max_epochs=6)
    tasks = build_tasks(cfg, idx_root)
    monkeypatch.setattr(dhclib.method.train, "evaluate", lambda m, t, split="test", batch_size=10000: 0.5)
    train_task(model, tasks[0], reg, cfg.protocol, seed=0)  # task 1: best epoch 1, stops at 3
    assert reg.omega is not None
    snaps = _script_validation(monkeypatch, [0.2, 0.6, 0.4, 0.3, 0.1, 0.1], model, reg)
    seen = _capture_at_task_end(monkeypatch, reg, model)
    log = train_task(model, tasks[1], reg, cfg.protocol, seed=0)
    assert log.best_epoch == 2 and len(log.epochs) == 4
    model_state, reg_state = seen["state"]
    assert all(torch.equal(model_state[k], snaps[2][0][k]) for k in snaps[2][0])
    assert not torch.equal(snaps[2][0]["out.hebb"], snaps[4][0]["out.hebb"])
    assert _equal_values(reg_state, snaps[2][1])


@pytest.mark.parametrize("scores, min_epochs, patience, max_epochs, epochs, best", [
    ([0.1, 0.5, 0.9, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1], 2, 3, 10, 6, 3),  # patience after the peak
    ([0.5] * 10, 4, 2, 10, 4, 1),  # no improvement after epoch 1, but at least min_epochs
    ([0.2, 0.6, 0.4, 0.3, 0.1, 0.1], 3, 2, 10, 4, 2),  # patience exhausted at epoch 4 >= min_epochs
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], 1, 2, 5, 5, 5),  # always improving: capped at max_epochs
    ([0.5, 0.7, 0.7, 0.7, 0.7], 1, 3, 5, 5, 2),  # a tie is not an improvement: the first best epoch is kept
    ([0.1 * i for i in range(1, 9)] + [0.1] * 20, 10, 5, 100, 13, 8),  # the paper's protocol: min 10, patience 5
    ([0.9] + [0.1] * 20, 10, 5, 100, 10, 1),  # ... and at least 10 epochs
])
def test_min_epochs_patience_max_epochs(idx_root, monkeypatch, scores, min_epochs, patience, max_epochs, epochs,
                                        best):
    """A.1: at least min_epochs; stop once validation has not improved for `patience` epochs; at most max_epochs."""
    cfg, task, model, reg = _one_task_setup(idx_root, "finetune", min_epochs=min_epochs, patience=patience,
                                            max_epochs=max_epochs, train_size=64, hidden=[8])
    snaps = _script_validation(monkeypatch, scores, model, reg)
    log = train_task(model, task, reg, cfg.protocol, seed=0)
    assert len(log.epochs) == epochs == len(snaps)
    assert log.best_epoch == best
    assert [row["epoch"] for row in log.epochs] == list(range(1, epochs + 1))


def test_no_early_stopping_runs_exactly_max_epochs_and_keeps_the_last_state(idx_root, monkeypatch):
    """Without early stopping exactly max_epochs epochs run and nothing is restored (Split MNIST protocol)."""
    cfg, task, model, reg = _one_task_setup(idx_root, "dhp", early_stopping=False, min_epochs=1, max_epochs=4)
    snaps = _script_validation(monkeypatch, [0.9, 0.1, 0.1, 0.1], model, reg)
    seen = _capture_at_task_end(monkeypatch, reg, model)
    log = train_task(model, task, reg, cfg.protocol, seed=0)
    assert len(log.epochs) == 4 and log.best_epoch == 4
    assert all(torch.equal(seen["state"][0][k], snaps[4][0][k]) for k in snaps[4][0])
    assert not torch.equal(snaps[1][0]["out.theta"], snaps[4][0]["out.theta"])


def test_split_mnist_run_uses_exactly_max_epochs(idx_root):
    """End to end: Split MNIST (no early stopping, docs/method.md (benchmarks)) runs max_epochs epochs on every task."""
    r = dhclib.run("split_mnist", "dhp", 0, "quick", "cpu", data_dir=idx_root, n_tasks=2, max_epochs=4, min_epochs=4,
                   train_size=100)
    assert r.tasks["epochs"].tolist() == [4, 4]
    assert r.tasks["best_epoch"].tolist() == [4, 4]
    assert len(r.epochs) == 8 and "val_acc" not in r.epochs


# ---------------------------------------------------------------------------------------------------------------
# the NaN guard
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [dict(lr=1e6), dict(eta_init=1e6)])
def test_divergence_raises_plastic_instability(idx_root, overrides):
    """A loss that becomes NaN/inf raises PlasticInstabilityError naming the task and the epoch."""
    with pytest.raises(dhclib.PlasticInstabilityError) as info:
        dhclib.run("permuted_mnist", "dhp", 0, "quick", "cpu", data_dir=idx_root, **dict(TINY, **overrides))
    msg = str(info.value)
    assert "task 1" in msg and "epoch 1" in msg
    assert isinstance(info.value, dhclib.DhcError)


def test_divergence_names_a_later_task_and_epoch(idx_root, monkeypatch):
    """NaN injected into a weight at task 2, epoch 2: the error names task 2 and epoch 2."""
    original = dhclib.method.train.train_epoch

    def poisoned(model, task, reg, opt, batch_size, generator, tracer=None, epoch=0):
        if task.index == 1 and epoch == 2:
            with torch.no_grad():
                model.body[0].weight[0, 0] = float("nan")
        return original(model, task, reg, opt, batch_size, generator, tracer, epoch)

    monkeypatch.setattr(dhclib.method.train, "train_epoch", poisoned)
    with pytest.raises(dhclib.PlasticInstabilityError) as info:
        dhclib.run("permuted_mnist", "dhp+si", 0, "quick", "cpu", data_dir=idx_root,
                   **dict(TINY, max_epochs=3, min_epochs=3))
    msg = str(info.value)
    assert "task 2" in msg and "epoch 2" in msg and "task 1" not in msg


def test_stiff_penalty_divergence_is_diagnosed(idx_root):
    """EWC with a lambda so large that lr * 2 * lam * Omega > 2 makes plain SGD oscillate and diverge on task 2;
    the error names task 2, says the penalty is too stiff, names the weight and suggests fisher_mode='batch'
    (the case met on Imbalanced Permuted MNIST with the paper's lambda = 400, see the README)."""
    with pytest.raises(dhclib.PlasticInstabilityError) as info:
        dhclib.run("permuted_mnist", "ewc", 0, "quick", "cpu", data_dir=idx_root,
                   **dict(TINY, n_tasks=2, lam=1e7, max_epochs=2, min_epochs=2))
    msg = str(info.value)
    assert "task 2" in msg and "too stiff" in msg and "fisher_mode='batch'" in msg, msg


def test_stiffness_is_lr_times_two_lam_omega():
    """Consolidation.stiffness: the largest lr * 2 * lam * Omega over the slow weights, with its name; 0 before
    the first task ends."""
    model = MLP(4, (3,), 2, output="matched")
    reg = Consolidation(model, lam=5.0)
    assert reg.stiffness(0.01) == ("", 0.0)
    reg._consolidate([torch.full_like(p, 0.5) for p in reg.params])
    reg.omega[1] = torch.full_like(reg.omega[1], 3.0)  # body.0.bias
    name, value = reg.stiffness(0.01)
    assert name == "body.0.bias" and value == pytest.approx(0.01 * 2 * 5.0 * 3.0)


def test_diverged_run_is_not_stored(idx_root, tmp_path):
    """run_many stores NO file (no result, no leftover temporary) for a run that diverges."""
    out = tmp_path / "store"
    with pytest.raises(dhclib.PlasticInstabilityError):
        dhclib.run_many("permuted_mnist", "dhp", "0", "quick", "cpu", data_dir=idx_root, out_dir=out,
                        progress=False, **dict(TINY, lr=1e6))
    stored = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert stored == []
    assert dhclib.load_results(out) == []


def test_on_diverge_record_goes_on_and_resumes(idx_root, tmp_path, monkeypatch, capsys):
    """on_diverge="record": the diverging run (EWC with an absurd lambda) is written to diverged/, never to runs/,
    the batch goes on with the other method, the frame lists the failure in attrs["diverged"], and a resumed
    batch neither retrains it nor the stored run. The CLI (default: record) exits 0 and names the failure."""
    out = tmp_path / "store"
    kw = dict(TINY, lam=1e7, max_epochs=2, min_epochs=2)
    df = dhclib.run_many("permuted_mnist", "finetune,ewc", "0", "quick", "cpu", data_dir=idx_root, out_dir=out,
                         progress=False, on_diverge="record", **{k: v for k, v in kw.items() if k != "lam"})
    assert set(df["method"]) == {"finetune", "ewc"}  # without the big lambda both finish
    out2 = tmp_path / "store2"
    df = dhclib.run_many("permuted_mnist", "ewc", "0", "quick", "cpu", data_dir=idx_root, out_dir=out2,
                         progress=False, on_diverge="record", **kw)
    assert len(df) == 0 and [d["method"] for d in df.attrs["diverged"]] == ["ewc"]
    assert "too stiff" in df.attrs["diverged"][0]["message"]
    assert list((out2 / "runs").rglob("*.json")) == [] and len(list((out2 / "diverged").rglob("*.json"))) == 1
    assert dhclib.load_results(out2) == [] and len(dhclib.load_diverged(out2)) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("a stored or recorded run was trained again")

    monkeypatch.setattr(dhclib.runs.unit, "run_config", no_training)
    again = dhclib.run_many("permuted_mnist", "ewc", "0", "quick", "cpu", data_dir=idx_root, out_dir=out2,
                            progress=False, on_diverge="record", **kw)
    assert [d["config_key"] for d in again.attrs["diverged"]] == [d["config_key"] for d in df.attrs["diverged"]]
    from dhclib.cli import main

    argv = ["run", "--benchmark", "permuted_mnist", "--method", "ewc", "--profile", "quick", "--device", "cpu",
            "--out", str(out2), "--data-dir", str(idx_root), "--no-progress"]
    argv += [f"--set={k}={v}" for k, v in kw.items()]
    assert main(argv) == 0
    assert "diverged (no result): permuted_mnist ewc seed 0" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# determinism and end-to-end runs
# ---------------------------------------------------------------------------------------------------------------
def test_same_seed_same_result_on_cpu(idx_root):
    """Two runs with the same seed on the CPU give identical R, epoch logs and traces; another seed does not
    give identical traces (so the comparison can fail)."""
    kw = dict(data_dir=idx_root, trace_every=5, **TINY)
    a = dhclib.run("permuted_mnist", "dhp+si", 0, "quick", "cpu", **kw)
    b = dhclib.run("permuted_mnist", "dhp+si", 0, "quick", "cpu", **kw)
    c = dhclib.run("permuted_mnist", "dhp+si", 1, "quick", "cpu", **kw)
    np.testing.assert_array_equal(a.R, b.R)
    pd.testing.assert_frame_equal(a.traces, b.traces)
    pd.testing.assert_frame_equal(a.epochs, b.epochs)
    assert a.config == b.config
    assert not a.traces["loss"].equals(c.traces["loss"])


def test_real_mnist_learns(mnist_root):
    """End to end on real MNIST (skipped when absent): DHP on 2 permuted tasks, 2,000 training samples, quick
    profile, learns each task far above chance (0.1)."""
    r = dhclib.run("permuted_mnist", "dhp", 0, "quick", "cpu", data_dir=mnist_root, n_tasks=2, train_size=2000)
    assert r.R.shape == (2, 2)
    assert r.R[0, 0] > 0.8 and r.R[1, 1] > 0.8
    assert r.R[1, 0] > 0.5  # the first task is not wiped out by one more task


def _total_steps(result, batch_size=64) -> int:
    return int(sum(row.epochs * math.ceil(row.n_train / batch_size) for row in result.tasks.itertuples()))


@pytest.mark.parametrize("method", ["dhp+si", "dhp+ewc", "dhp+mas"])
def test_dhp_with_each_regulariser_end_to_end(idx_root, method):
    """DHP Softmax + SI / Online EWC / MAS runs end to end (docs/method.md (consolidation)): finite R, BWT and average accuracy; the Fig. 3
    traces (loss, eta, ||Hebb||_F, ||alpha||_F) are recorded every trace_every steps."""
    r = dhclib.run("permuted_mnist", method, 0, "quick", "cpu", data_dir=idx_root, trace_every=3,
                   **dict(TINY, train_size=200))
    assert r.R.shape == (2, 2)
    assert np.isfinite(np.tril(r.R)).all() and np.isnan(r.R[0, 1])
    assert ((0 <= np.tril(r.R)) & (np.tril(r.R) <= 1)).all()
    assert math.isfinite(r.bwt) and math.isfinite(r.avg_acc)
    assert r.bwt == pytest.approx(r.R[1, 0] - r.R[0, 0])
    assert r.config["method"] == method and r.config["lam"] is not None
    tr = r.traces
    assert {"step", "task", "epoch", "loss", "eta", "hebb_norm", "alpha_norm"} <= set(tr.columns)
    total = _total_steps(r)
    assert tr["step"].tolist() == list(range(0, total, 3))
    assert set(tr["task"]) == {0, 1}
    assert np.isfinite(tr[["loss", "eta", "hebb_norm", "alpha_norm"]].to_numpy()).all()
    assert tr["eta"].iloc[0] == pytest.approx(1e-3, rel=0.05)  # docs/method.md (DHP Softmax): eta starts at 0.001
    assert tr["hebb_norm"].iloc[-1] > 0  # the trace has been written


def test_non_dhp_traces_have_no_plastic_columns(idx_root):
    """A matched-softmax method records the loss only (no eta / Hebb / alpha); trace_every=1 records every step."""
    r = dhclib.run("permuted_mnist", "finetune", 0, "quick", "cpu", data_dir=idx_root, trace_every=1,
                   **dict(TINY, train_size=100))
    assert not {"eta", "hebb_norm", "alpha_norm"} & set(r.traces.columns)
    assert r.traces["step"].tolist() == list(range(_total_steps(r)))
