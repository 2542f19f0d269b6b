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
from dhclib.runs.build import build_run
from dhclib.runs.engine import Engine
from dhclib.runs.unit import run_config, run_stack, stack_key

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


def _assert_same_run(alone, model_alone, stacked, model_stacked, weight_tol=WEIGHT_TOL):
    assert np.nanmax(np.abs(alone.R - stacked.R)) <= R_TOL + 1e-12  # R_TOL itself: one sample in 100
    assert [(e["task"], e["epoch"]) for e in alone.epochs] == [(e["task"], e["epoch"]) for e in stacked.epochs]
    assert [t["best_epoch"] for t in alone.tasks] == [t["best_epoch"] for t in stacked.tasks]
    assert len(alone.traces) == len(stacked.traces)
    for (name, a), b in zip(model_alone.state_dict().items(), model_stacked.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(b, a, rtol=0, atol=weight_tol, msg=lambda m: f"{name}: {m}")
        else:
            assert torch.equal(a, b), name


def _stack_matches_alone(cfgs, root, weight_tol=WEIGHT_TOL) -> list[Trial]:
    """Train ``cfgs`` as one stack and check each trial against its one-at-a-time run; the trials."""
    trials = [_trial(c, root) for c in cfgs]
    logs = train_stack(trials, cfgs[0].protocol)
    for c, t, log in zip(cfgs, trials, logs):
        alone, model = _alone(c, root)
        _assert_same_run(alone, model, log, t.model, weight_tol)
    return trials


@pytest.mark.parametrize("method", METHODS)
def test_a_stack_of_three_seeds_gives_each_seeds_own_run(method, idx_root):
    _stack_matches_alone([_cfg(method, s) for s in (0, 1, 2)], idx_root)


def test_a_stack_of_one_is_the_one_at_a_time_run_bitwise(idx_root):
    cfg = _cfg("dhp+mas", 0)
    (stacked,) = run_stack([cfg], idx_root)
    alone = run_config(cfg, idx_root)
    assert np.array_equal(stacked.R, alone.R, equal_nan=True) and stacked.traces.equals(alone.traces)
    assert stacked.engine == {"engine": "single"}


@pytest.mark.parametrize("method", METHODS)
def test_early_stopping_is_per_trial(method, idx_root):
    """With patience 1 the seeds stop after different numbers of epochs: each trial freezes at its own stop
    (restoring its best epoch) while the others go on, exactly as it does alone; for every regulariser and both
    output layers (a frozen trial's trace, path integral and importance must not move either)."""
    cfgs = [_cfg(method, s, max_epochs=8) for s in (0, 1, 2, 3)]
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
                              engine="stack:3", **SMALL)
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
                            engine=Engine(stack=3), **SMALL)
    assert again["accuracy"].equals(stacked["accuracy"])


def test_a_lambda_grid_is_one_stack_and_a_diverged_value_is_recorded(idx_root, tmp_path):
    values = [1.0, 10.0, 1e6]  # the last is far too stiff for SGD: it diverges alone too; the others must not notice
    grid = dhclib.run_grid("permuted_mnist", "ewc", "lam", values, "0", "quick", "cpu", idx_root, tmp_path / "s",
                           progress=False, engine="stack:3", **SMALL)
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
    assert Engine.of("stack:auto").stack_size("cpu") == 1 and Engine.of("stack:auto").stack_size("cuda:1") == 80
    assert Engine(stack=4).stack_size("cpu") == 4
    for bad in (0, -1, 2.5, "many", True):
        with pytest.raises(ConfigError, match="stack must be an integer >= 1 or 'auto'"):
            Engine(stack=bad)


def test_the_command_line_stacks_and_rejects_a_bad_size(idx_root, tmp_path, capsys):
    from dhclib.cli import main

    small = ["--profile", "quick", "--device", "cpu", "--data-dir", str(idx_root), "--out", str(tmp_path),
             "--no-progress", "--seeds", "0-1", *[f"--set={k}={v}" for k, v in SMALL.items()]]
    assert main(["run", "--benchmark", "permuted_mnist", "--method", "dhp", "--engine", "stack:2", *small]) == 0
    stored = [json.loads(p.read_text()) for p in tmp_path.glob("runs/*/*/*.json")]
    assert len(stored) == 2 and {r["engine"]["stack"] for r in stored} == {2}
    assert main(["run", "--benchmark", "permuted_mnist", "--method", "dhp", "--engine", "stack:0", *small]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "the stack must be an integer >= 1 or 'auto', got 0; accepted: here |" in err[0]
    with pytest.raises(SystemExit):  # the flag --engine replaced: one line naming its replacement
        main(["run", "--benchmark", "permuted_mnist", "--method", "dhp", "--stack", "2", *small])
    assert "--stack was replaced by --engine stack:N" in capsys.readouterr().err
    # +graphs: recorded in the engine, never in the key; on a CPU it changes no number
    graphed = tmp_path / "graphed"
    small[small.index("--out") + 1] = str(graphed)
    assert main(["run", "--benchmark", "permuted_mnist", "--method", "dhp", "--engine", "stack:2+graphs",
                 *small]) == 0
    again = {p.name: json.loads(p.read_text()) for p in graphed.glob("runs/*/*/*.json")}
    assert sorted(again) == sorted(p.name for p in tmp_path.glob("runs/*/*/*.json"))
    assert all(r["engine"]["cuda_graphs"] is True for r in again.values())
    assert sorted(json.dumps(r["R"]) for r in again.values()) == sorted(json.dumps(r["R"]) for r in stored)
    assert main(["run", "--benchmark", "permuted_mnist", "--method", "dhp", "--engine", "stack:1+graphs", *small]) == 2
    assert "+graphs applies to stacked runs" in capsys.readouterr().err


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


@pytest.mark.parametrize("case", ["imbalanced", "adam", "lam_zero"])
def test_stacks_that_step_apart_or_with_state_give_each_trial_its_own_run(case, idx_root):
    """Imbalanced Permuted MNIST: each seed has its own number of training rows, so a stack mixes stacked steps
    with each trial's own steps on the same (stacked) tensors; Adam keeps state, so each trial takes its own
    optimiser step from the stacked gradient; a lam of 0 beside a positive one adds no penalty to its trial.

    Adam's tolerance on the weights is 10 lr, not WEIGHT_TOL: it divides each gradient by the root of its running
    square, so a gradient near zero that the batched product rounds differently can move its weight by up to about
    lr in one step (measured: 1.7e-3 after about 30 steps at lr 1e-3, identically with the engine before the stacked
    optimiser step; the accuracies and early-stopping decisions are held as for SGD)."""
    if case == "imbalanced":
        kw = dict(SMALL, imbalance="random")  # the test data are too small for Table 2's counts
        kw.pop("train_size")  # every kept sample is trained on: the seeds' sizes differ
        cfgs = [resolve_config("imbalanced_permuted_mnist", "dhp+si", s, "quick", "cpu", **kw) for s in (0, 1, 2)]
    elif case == "adam":
        cfgs = [_cfg("dhp+mas", s, optimizer="adam", lr=0.001) for s in (0, 1)]
    else:
        cfgs = [_cfg("ewc", 0, lam=0.0), _cfg("ewc", 0, lam=10.0)]
    trials = _stack_matches_alone(cfgs, idx_root, 10 * cfgs[0].protocol.lr if case == "adam" else WEIGHT_TOL)
    if case == "imbalanced":
        sizes = {tuple(t.n_train for t in trial.tasks) for trial in trials}
        assert len(sizes) == len(trials), f"the seeds share training sizes ({sizes}): this test shows nothing"


@pytest.mark.parametrize("method", METHODS)
def test_a_stacked_step_does_as_many_operations_for_five_trials_as_for_two(method, idx_root):
    """What a GPU pays for is the number of operations it is asked to launch: a stacked step (forward, backward,
    the regulariser's hooks and the optimiser's step, with the penalty active on task 2) must not grow with the
    number of trials."""
    from dhclib.method.stacked import OpCounter, _Stack
    from dhclib.method.train import TaskState

    counts = []
    for n in (2, 5):
        cfgs = [_cfg(method, s) for s in range(n)]
        trials = [_trial(c, idx_root) for c in cfgs]
        for t in trials:  # consolidate task 1 untrained, so that task 2's step carries the penalty
            TaskState(t.model, t.tasks[0], t.reg, cfgs[0].protocol, t.seed).finish()
        states = [TaskState(t.model, t.tasks[1], t.reg, cfgs[0].protocol, t.seed) for t in trials]
        stack = _Stack([t.model for t in trials], states)
        x, y, rows = states[0].task.split("train")
        xb = torch.stack([s.task.inputs(x, rows[:64]) for s in states])
        yb = torch.stack([y.index_select(0, rows[:64])] * n)
        head = states[0].task.head
        stack.step(xb, yb, head)  # warm-up: lazily made tensors (the penalty's factors) are not per step
        with OpCounter() as ops:
            stack.step(xb, yb, head)
        stack.close()
        counts.append(ops.n)
    assert counts[0] == counts[1], f"operations per stacked step: {counts[0]} for 2 trials, {counts[1]} for 5"


def test_a_stacked_epoch_reads_its_traces_back_without_one_read_per_value_and_trial(idx_root):
    """Each value read back from a GPU (``.item()``) waits for every kernel queued before it. The traces of a stack
    are read all at once (``record_traces``), so the reads of an epoch, recording every step, do not grow with the
    number of trials, and the traces are each trial's own."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from dhclib.method.stacked import train_epoch_stacked
    from dhclib.method.train import TaskState, Tracer

    class Reads(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Reads.n += func is torch.ops.aten._local_scalar_dense.default  # what .item() dispatches
            return func(*args, **(kwargs or {}))

    reads, traces = [], {}
    for n in (2, 5):
        cfgs = [_cfg("dhp+si", s, trace_every=1) for s in range(n)]
        trials = [_trial(c, idx_root) for c in cfgs]
        states = []
        for t in trials:
            t.tracer = Tracer(t.model, 1)
            states.append(TaskState(t.model, t.tasks[0], t.reg, cfgs[0].protocol, t.seed))
            states[-1].next_epoch()
        Reads.n = 0
        with Reads():
            train_epoch_stacked(trials, states, cfgs[0].protocol)
        reads.append(Reads.n)
        traces[n] = [t.tracer.rows for t in trials]
    assert reads[0] == reads[1], f"values read one by one in a stacked epoch: {reads[0]} for 2 trials, {reads[1]} for 5"
    assert len(traces[5][0]) > 1
    for mine, alone in zip(traces[5][:2], traces[2]):  # seeds 0 and 1: their own traces, whatever the stack
        assert len(mine) == len(alone) and all(a == pytest.approx(b, rel=1e-5) for a, b in zip(mine, alone))
    assert {"loss", "eta", "hebb_norm", "alpha_norm"} <= set(traces[5][0][0])


def test_stacked_inputs_gather_every_trials_batch_at_once(idx_root):
    """The stacked engine's batches: one gather for all trials, the very values of each task's own inputs (with
    its permutation; uint8 images scaled; tasks without a permutation); the trials of a stack share the dataset
    tensors, so this path is the one taken."""
    from dhclib.method.task import stacked_inputs

    runs = [build_run(_cfg("dhp", s), idx_root)[0] for s in (0, 1, 2)]
    tasks = [r[1] for r in runs]
    assert all(t.x_train is tasks[0].x_train and t.y_train is tasks[0].y_train for t in tasks)
    rows = torch.stack([t.train_idx[:7] for t in tasks])
    want = torch.stack([t.inputs(t.x_train, r) for t, r in zip(tasks, rows)])
    assert torch.equal(stacked_inputs(tasks, tasks[0].x_train, rows), want)
    as_bytes = (tasks[0].x_train * 255).round().to(torch.uint8)
    want = torch.stack([t.inputs(as_bytes, r) for t, r in zip(tasks, rows)])
    assert torch.equal(stacked_inputs(tasks, as_bytes, rows), want)
    plain = [dataclasses.replace(t, perm=None) for t in tasks]
    assert torch.equal(stacked_inputs(plain, as_bytes, rows), as_bytes[rows].float() / 255.0)


@pytest.mark.parametrize("horizon", ["full", 3])
def test_a_stack_carries_each_trials_eta_sensitivity(horizon, idx_root):
    """DHP Softmax with eta's gradient through the trace's history (``eta_grad_horizon``, the remedy of issue #13):
    each trial carries its own d hebb / d eta (and, cut every k steps, its own step count) through the stack."""
    _stack_matches_alone([_cfg("dhp+mas", s, eta_grad_horizon=horizon) for s in (0, 1)], idx_root)


def test_cuda_graphs_change_nothing_where_they_cannot_run(idx_root):
    """``cuda_graphs=True`` on a CPU trains the same stack bit for bit; a capture that fails (here: no usable CUDA)
    gives None and one warning, and the epoch goes on eagerly. On a GPU the graphed step is checked against the
    eager one by benchmarks/stack_throughput.py (its "graphed = stacked, bitwise" column, run by gpu_check.sh)."""
    from dhclib.method import stacked

    runs = []
    for graphs in (False, True):
        cfgs = [_cfg("dhp+si", s) for s in (0, 1)]
        trials = [_trial(c, idx_root) for c in cfgs]
        runs.append((train_stack(trials, cfgs[0].protocol, cuda_graphs=graphs), trials))
    for a, b, ta, tb in zip(runs[0][0], runs[1][0], runs[0][1], runs[1][1]):
        assert np.array_equal(a.R, b.R, equal_nan=True) and a.traces == b.traces
        assert all(torch.equal(x, y) for x, y in zip(ta.model.state_dict().values(), tb.model.state_dict().values()))
    if torch.cuda.is_available():
        pytest.skip("CUDA is usable here: the capture itself is checked by gpu_check.sh")
    stacked._Graphed.warned = False
    with pytest.warns(RuntimeWarning, match="could not be captured as a CUDA graph; it runs eagerly"):
        assert stacked._Graphed.capture(lambda rows: rows.sum(), torch.zeros(2, 4, dtype=torch.long)) is None
    assert stacked._Graphed.warned
