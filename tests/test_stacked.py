"""The stacked engine (issue #7): trials of one configuration trained in lockstep give the runs they give alone.

Tolerance, where a stack has more than one trial: the batched matrix products of ``vmap`` may sum in another order
than the single ones, so the weights of a trial drift from its one-at-a-time run by float32 rounding (measured on
Split MNIST's networks, every method, three seeds: at most 5.1e-5 absolute after a few hundred steps, DHP Softmax
the largest, every other method ≤ 6.6e-6; R identical). We allow 5e-4 on every weight and buffer, and on R one test sample in a hundred (a sample near the
decision boundary may flip); the early-stopping decisions and the number of traced steps must be the same.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import dhclib
from dhclib.errors import ConfigError, PlasticInstabilityError
from dhclib.method.stacked import Trial, evaluate_stacked, train_stack
from dhclib.method.train import evaluate, train_sequence
from dhclib.runs.config import resolve_config
from dhclib.runs.execute import build_run, resolve_stack, run_config, run_stack, stack_key

METHODS = ["finetune", "dhp", "si", "dhp+si", "ewc", "dhp+ewc", "mas", "dhp+mas"]
SMALL = dict(n_tasks=2, train_size=200, test_size=100, min_epochs=1, max_epochs=4, patience=1, trace_every=2)
WEIGHT_TOL, R_TOL = 5e-4, 0.01


def _cfg(method, seed, **kw):
    return resolve_config("permuted_mnist", method, seed, "quick", "cpu", **dict(SMALL, **kw))


def _trial(cfg, root) -> Trial:
    tasks, model, reg = build_run(cfg, root)
    return Trial(model, tasks, reg, cfg.seed)


def _alone(cfg, root):
    tasks, model, reg = build_run(cfg, root)
    return train_sequence(model, tasks, reg, cfg.protocol, cfg.seed), model


def _assert_same_run(alone, model_alone, stacked, model_stacked):
    assert np.nanmax(np.abs(alone.R - stacked.R)) <= R_TOL
    assert [(e["task"], e["epoch"]) for e in alone.epochs] == [(e["task"], e["epoch"]) for e in stacked.epochs]
    assert [t["best_epoch"] for t in alone.tasks] == [t["best_epoch"] for t in stacked.tasks]
    assert len(alone.traces) == len(stacked.traces)
    for (name, a), b in zip(model_alone.state_dict().items(), model_stacked.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(b, a, rtol=0, atol=WEIGHT_TOL, msg=lambda m: f"{name}: {m}")
        else:
            assert torch.equal(a, b), name


@pytest.mark.parametrize("method", METHODS)
def test_a_stack_of_three_seeds_gives_each_seeds_own_run(method, idx_root):
    cfgs = [_cfg(method, s) for s in (0, 1, 2)]
    trials = [_trial(c, idx_root) for c in cfgs]
    logs = train_stack(trials, cfgs[0].protocol)
    for c, t, log in zip(cfgs, trials, logs):
        alone, model = _alone(c, idx_root)
        _assert_same_run(alone, model, log, t.model)


def test_a_stack_of_one_is_the_one_at_a_time_run_bitwise(idx_root):
    cfg = _cfg("dhp+mas", 0)
    (stacked,) = run_stack([cfg], idx_root)
    alone = run_config(cfg, idx_root)
    assert np.array_equal(stacked.R, alone.R, equal_nan=True) and stacked.traces.equals(alone.traces)
    assert stacked.engine == {"engine": "single"}


def test_early_stopping_is_per_trial(idx_root):
    """With patience 1 the seeds stop after different numbers of epochs: each trial freezes at its own stop
    (restoring its best epoch) while the others go on, exactly as it does alone."""
    cfgs = [_cfg("dhp+si", s, max_epochs=8) for s in (0, 1, 2, 3)]
    trials = [_trial(c, idx_root) for c in cfgs]
    logs = train_stack(trials, cfgs[0].protocol)
    epochs = [[t["epochs"] for t in log.tasks] for log in logs]
    assert len({tuple(e) for e in epochs}) > 1, f"the seeds stopped alike ({epochs}): this test shows nothing"
    for c, t, log in zip(cfgs, trials, logs):
        alone, model = _alone(c, idx_root)
        _assert_same_run(alone, model, log, t.model)


@pytest.mark.parametrize("method", METHODS)
def test_a_diverging_trial_leaves_the_stack_and_the_others_go_on(method, idx_root):
    cfgs = [_cfg(method, s) for s in (0, 1, 2)]
    trials = [_trial(c, idx_root) for c in cfgs]
    with torch.no_grad():  # trial 1 diverges by construction: a non-finite weight
        next(trials[1].model.parameters()).view(-1)[0] = float("inf")
    logs = train_stack(trials, cfgs[0].protocol)
    assert isinstance(logs[1], PlasticInstabilityError) and "task 1" in str(logs[1])
    assert "The run is not stored" in str(logs[1])
    for k in (0, 2):
        alone, model = _alone(cfgs[k], idx_root)
        _assert_same_run(alone, model, logs[k], trials[k].model)


def test_run_many_stores_each_trial_of_a_stack_under_its_own_key(idx_root, tmp_path):
    one, three = tmp_path / "one", tmp_path / "three"
    alone = dhclib.run_many("permuted_mnist", "dhp,ewc", "0-2", "quick", "cpu", idx_root, one, progress=False,
                            **SMALL)
    stacked = dhclib.run_many("permuted_mnist", "dhp,ewc", "0-2", "quick", "cpu", idx_root, three, progress=False,
                              stack=3, **SMALL)
    names = sorted(p.relative_to(one).as_posix() for p in one.glob("runs/*/*/*.json"))
    assert names == sorted(p.relative_to(three).as_posix() for p in three.glob("runs/*/*/*.json")) and len(names) == 6
    for name in names:
        a, b = (json.loads((root / name).read_text()) for root in (one, three))
        assert a["config"] == b["config"] and a["engine"] == {"engine": "single"}
        assert b["engine"]["engine"] == "stacked" and b["engine"]["stack"] == 3
        assert np.nanmax(np.abs(np.array(a["R"], dtype=float) - np.array(b["R"], dtype=float))) <= R_TOL
    assert list(alone["method"]) == list(stacked["method"]) and list(alone["seed"]) == list(stacked["seed"])
    # a second call finds every run stored and trains nothing
    again = dhclib.run_many("permuted_mnist", "dhp,ewc", "0-2", "quick", "cpu", idx_root, three, progress=False,
                            stack=3, **SMALL)
    assert again["accuracy"].equals(stacked["accuracy"])


def test_a_lambda_grid_is_one_stack_and_a_diverged_value_is_recorded(idx_root, tmp_path):
    values = [1.0, 10.0, 1e6]  # the last is far too stiff for SGD: it diverges alone too; the others must not notice
    grid = dhclib.run_grid("permuted_mnist", "ewc", "lam", values, "0", "quick", "cpu", idx_root, tmp_path / "s",
                           progress=False, stack=3, **SMALL)
    assert sorted(grid["lam"].unique()) == [1.0, 10.0]
    (failed,) = grid.attrs["diverged"]
    assert failed["lam"] == 1e6 and "too stiff" in failed["message"]
    with pytest.raises(PlasticInstabilityError, match="too stiff"):
        run_config(_cfg("ewc", 0, lam=1e6), idx_root)
    for lam in (1.0, 10.0):
        alone = run_config(_cfg("ewc", 0, lam=lam), idx_root)
        R = dhclib.method.metrics.R_from_tidy(grid[grid["lam"] == lam])
        assert np.nanmax(np.abs(alone.R - R)) <= R_TOL


def test_what_may_share_a_stack(idx_root):
    assert stack_key(_cfg("ewc", 0)) == stack_key(_cfg("ewc", 5, lam=3.0))
    assert stack_key(_cfg("dhp", 0)) == stack_key(_cfg("dhp", 1, eta_init=0.01))
    assert stack_key(_cfg("ewc", 0)) != stack_key(_cfg("ewc", 0, lr=0.1))
    assert stack_key(_cfg("ewc", 0)) != stack_key(_cfg("mas", 0))
    with pytest.raises(ConfigError, match="may differ only in seed, lam, si_xi, eta_init"):
        run_stack([_cfg("ewc", 0), _cfg("ewc", 1, lr=0.1)], idx_root)
    assert resolve_stack("auto", "cpu") == 1 and resolve_stack(4, "cpu") == 4
    for bad in (0, -1, 2.5, "many", True):
        with pytest.raises(ConfigError, match="stack must be an integer >= 1 or 'auto'"):
            resolve_stack(bad, "cpu")


def test_the_command_line_stacks_and_rejects_a_bad_size(idx_root, tmp_path, capsys):
    from dhclib.cli import main

    small = ["--profile", "quick", "--device", "cpu", "--data-dir", str(idx_root), "--out", str(tmp_path),
             "--no-progress", "--seeds", "0-1", *[f"--set={k}={v}" for k, v in SMALL.items()]]
    assert main(["run", "--benchmark", "permuted_mnist", "--method", "dhp", "--stack", "2", *small]) == 0
    stored = [json.loads(p.read_text()) for p in tmp_path.glob("runs/*/*/*.json")]
    assert len(stored) == 2 and {r["engine"]["stack"] for r in stored} == {2}
    with pytest.raises(SystemExit):
        main(["run", "--benchmark", "permuted_mnist", "--method", "dhp", "--stack", "0", *small])
    assert "--stack must be an integer >= 1 or 'auto', got '0'" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["finetune", "dhp+mas"])
def test_evaluation_is_batched_over_trials_each_on_its_own_rows(method, idx_root):
    """evaluate_stacked gives each trained trial the accuracy evaluate gives it alone, on its own permutation and
    rows (validation and test), DHP's trace read but not changed; trials whose split has another size are
    evaluated in their own group, a trial alone by evaluate itself."""
    cfgs = [_cfg(method, s) for s in (0, 1, 2)]
    runs = [_alone(c, idx_root)[1] for c in cfgs]
    tasks = [build_run(c, idx_root)[0] for c in cfgs]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in runs]
    for split in ("val", "test"):
        for i in range(2):
            task_i = [t[i] for t in tasks]
            alone = [evaluate(m, t, split) for m, t in zip(runs, task_i)]
            assert evaluate_stacked(runs, task_i, split, batch_size=37) == alone  # chunks of 37 rows
    assert all(torch.equal(b[k], v) for b, m in zip(before, runs) for k, v in m.state_dict().items())
    shorter = dataclasses.replace(tasks[2][0], test_idx=tasks[2][0].test_idx[:50])
    mixed = [tasks[0][0], tasks[1][0], shorter]
    assert evaluate_stacked(runs, mixed, "test") == [evaluate(m, t, "test") for m, t in zip(runs, mixed)]
