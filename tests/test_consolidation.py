"""dhclib.method.consolidation: Online EWC, SI and MAS (Eq. 1 and 4, docs/method.md (consolidation)) driven through the trainer's hooks
(on_task_start; per step backward, before_step, add_penalty_grad, opt.step, after_step; on_task_end) on tiny MLPs
in float64: no penalty during task 1, slow weights only, the closed-form penalty gradient against autograd,
importance values against independent references, and the state round trip used by early stopping."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dhclib.benchmarks import Task
from dhclib.method.consolidation import MAS, REGULARISERS, SI, Consolidation, OnlineEWC
from dhclib.method.importance import batch_fisher, sample_grad_stats
from dhclib.method.models import MLP

OUTPUTS = ("dhp", "matched")
HEAD_A, HEAD_B = slice(0, 2), slice(2, 4)  # two tasks, one head of two output units each
LR = 0.1


def make_regulariser(name: str, model, lam: float = 1.0) -> Consolidation:
    if name == "ewc":
        return OnlineEWC(model, lam, samples=10)
    if name == "mas":
        return MAS(model, lam, samples=10)
    if name == "si":
        return SI(model, lam, xi=0.1)
    return REGULARISERS[name](model, lam)


REG_NAMES = ("ewc", "mas", "si")


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
def tiny_model(output: str, seed: int = 0) -> MLP:
    """A 3-5-4 MLP in float64 (two heads of two units)."""
    torch.manual_seed(seed)
    model = MLP(3, (5,), 4, output=output)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
        if output == "dhp":
            model.out.alpha.copy_(torch.randn_like(model.out.alpha))
    return model.double()


def make_task(index: int, head: slice, n: int = 24, seed: int = 0) -> Task:
    """A hand-built task with global labels in ``head``, all rows for training (and testing)."""
    g = torch.Generator().manual_seed(100 + seed + index)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = head.start + torch.randint(0, head.stop - head.start, (n,), generator=g)
    rows = torch.arange(n)
    return Task(name=f"t{index}", index=index, classes=tuple(range(head.start, head.stop)), head=head, x_train=x,
                y_train=y, train_idx=rows, val_idx=torch.empty(0, dtype=torch.long), x_test=x, y_test=y,
                test_idx=rows)


def task_loss(model, task: Task, step: int, batch: int = 8):
    x, y, rows = task.split("train")
    r = rows[(torch.arange(batch) + step * batch) % rows.numel()]
    yb = y.index_select(0, r)
    logits = model(task.inputs(x, r), yb)
    return F.cross_entropy(logits[:, task.head], task.local(yb))


def sgd_step(model, task, reg, opt, step: int, record: dict | None = None):
    """One training step exactly as dhclib.method.train.train_epoch orders the hooks; optionally records, per slow weight,
    the task-loss gradient, the gradient after the penalty was added, and the weights before the step."""
    loss = task_loss(model, task, step)
    opt.zero_grad()
    loss.backward()
    slow = model.slow_parameters()
    if record is not None:
        record.setdefault("g", []).append({k: p.grad.clone() for k, p in slow.items()})
        record.setdefault("before", []).append({k: p.detach().clone() for k, p in slow.items()})
    reg.before_step()
    reg.add_penalty_grad()
    if record is not None:
        record.setdefault("g_total", []).append({k: p.grad.clone() for k, p in slow.items()})
    opt.step()
    reg.after_step()
    if record is not None:
        record.setdefault("after", []).append({k: p.detach().clone() for k, p in slow.items()})
    return loss


def learn(model, task, reg, steps: int = 3, start: bool = True, record: dict | None = None, first_step: int = 0):
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    if start:
        reg.on_task_start(task)
    for s in range(first_step, first_step + steps):
        sgd_step(model, task, reg, opt, s, record)


def end_task(reg, task, seed: int = 5):
    reg.on_task_end(task, torch.Generator().manual_seed(seed))


def slow_snapshot(model) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.slow_parameters().items()}


def seeded_subset(task: Task, n: int | None, seed: int):
    x, y = task.sample("train", n, torch.Generator().manual_seed(seed))
    return x, task.local(y)


def ref_importance(model, x, head, kind: str) -> dict[str, torch.Tensor]:
    """Independent reference: one autograd pass per sample (and per class for the Fisher), model in eval mode.
    Fisher: mean_n sum_y p(y|x_n) (d log p(y|x_n)/dw)^2; MAS: mean_n |d ||f(x_n)||^2 / dw|."""
    was_training = model.training
    model.eval()
    slow = model.slow_parameters()
    out = {k: torch.zeros_like(p) for k, p in slow.items()}
    for xn in x:
        z = model(xn.unsqueeze(0))[0, head]
        if kind == "mas":
            for k, g in zip(slow, torch.autograd.grad(z.square().sum(), list(slow.values()))):
                out[k] += g.abs() / len(x)
            continue
        logp = torch.log_softmax(z, 0)
        for c in range(len(z)):
            grads = torch.autograd.grad(logp[c], list(slow.values()), retain_graph=True)
            for k, g in zip(slow, grads):
                out[k] += logp[c].exp().detach() * g.square() / len(x)
    model.train(was_training)
    return out


def assert_close_dicts(got, want, rtol=1e-10, atol=1e-12):
    assert list(got) == list(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=rtol, atol=atol, msg=lambda m: f"{k}: {m}")


# ---------------------------------------------------------------------------------------------------------------
# task 1: no penalty; slow weights only
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("name", REG_NAMES)
def test_no_penalty_while_learning_task_1(name, output):
    """docs/method.md (consolidation): Omega is 0 while task 1 is learned: penalty() is 0, importance() is all zeros, and add_penalty_grad
    leaves every .grad bit-for-bit unchanged, even with a large lambda."""
    model = tiny_model(output)
    reg = make_regulariser(name, model, lam=1000.0)
    task = make_task(0, HEAD_A)
    reg.on_task_start(task)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for s in range(3):
        opt.zero_grad()
        task_loss(model, task, s).backward()
        reg.before_step()
        before = [p.grad.clone() for p in model.parameters()]
        reg.add_penalty_grad()
        assert all(torch.equal(p.grad, b) for p, b in zip(model.parameters(), before))
        assert float(reg.penalty().detach()) == 0.0
        opt.step()
        reg.after_step()
    imp = reg.importance()
    assert list(imp) == list(model.slow_parameters())
    assert all(torch.equal(v, torch.zeros_like(v)) for v in imp.values())


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("name", REG_NAMES)
def test_importance_covers_slow_weights_only(name, output):
    """Omega and theta* exist for model.slow_parameters() only (the same Parameter objects): never DHP's alpha or
    eta; the matched layer's theta2 is a slow weight. After task 1 ends, Omega is non-zero."""
    model = tiny_model(output)
    reg = make_regulariser(name, model)
    slow = model.slow_parameters()
    assert len(reg.params) == len(slow) and all(a is b for a, b in zip(reg.params, slow.values()))
    task = make_task(0, HEAD_A)
    learn(model, task, reg)
    end_task(reg, task)
    imp = reg.importance()
    assert list(imp) == list(slow)
    assert all(imp[k].shape == p.shape for k, p in slow.items())
    assert len(reg.theta_star) == len(slow)
    if output == "dhp":
        assert "out.alpha" not in imp and "out.eta" not in imp
        assert not any(p is model.out.alpha or p is model.out.eta for p in reg.params)
    else:
        assert "out.theta2" in imp
    for k, v in imp.items():
        assert v.abs().sum() > 0, k
        if name != "si":  # SI's per-weight path integral may be negative; Fisher and MAS may not
            assert (v >= 0).all(), k


# ---------------------------------------------------------------------------------------------------------------
# the penalty and its closed-form gradient
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("name", REG_NAMES)
def test_add_penalty_grad_adds_the_autograd_gradient_of_penalty(name, output):
    """After a task end: theta* = the slow weights at that moment (penalty 0 there); on the next task
    penalty() = lam sum Omega (theta - theta*)^2, and add_penalty_grad adds exactly its autograd gradient to
    the existing .grad of every slow weight and nothing to alpha/eta (whose penalty gradient is zero)."""
    lam = 2.5
    model = tiny_model(output)
    reg = make_regulariser(name, model, lam)
    a, b = make_task(0, HEAD_A), make_task(1, HEAD_B)
    learn(model, a, reg)
    end_task(reg, a)
    star = slow_snapshot(model)
    assert all(torch.equal(s, star[k]) for s, k in zip(reg.theta_star, star))
    assert float(reg.penalty().detach()) == 0.0
    learn(model, b, reg)
    with torch.no_grad():  # drift in every slow weight (task 2 leaves task 1's head columns where they were)
        g = torch.Generator().manual_seed(8)
        for p in model.slow_parameters().values():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    omega = reg.importance()
    by_hand = lam * sum((omega[k] * (p.detach() - star[k]).square()).sum() for k, p in model.slow_parameters().items())
    pen = reg.penalty()
    assert float(pen.detach()) > 0
    torch.testing.assert_close(pen.detach(), by_hand, rtol=1e-12, atol=0)

    params = dict(model.named_parameters())
    auto = dict(zip(params, torch.autograd.grad(pen, list(params.values()), allow_unused=True)))
    g = torch.Generator().manual_seed(9)
    for p in params.values():
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
    existing = {k: p.grad.clone() for k, p in params.items()}
    reg.add_penalty_grad()
    slow = set(model.slow_parameters())
    for k, p in params.items():
        if k in slow:
            assert auto[k] is not None and auto[k].abs().sum() > 0, k
            torch.testing.assert_close(p.grad, existing[k] + auto[k], rtol=1e-12, atol=1e-14)
        else:  # alpha, eta
            assert auto[k] is None or torch.equal(auto[k], torch.zeros_like(auto[k])), k
            assert torch.equal(p.grad, existing[k]), k
    if output == "dhp":
        assert {"out.alpha", "out.eta"} <= set(params) - slow


@pytest.mark.parametrize("name", REG_NAMES)
def test_zero_lambda_never_touches_grad(name):
    """With lam = 0 the penalty and its gradient are 0 on later tasks too."""
    model = tiny_model("dhp")
    reg = make_regulariser(name, model, lam=0.0)
    a, b = make_task(0, HEAD_A), make_task(1, HEAD_B)
    learn(model, a, reg)
    end_task(reg, a)
    learn(model, b, reg, steps=2)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    reg.add_penalty_grad()
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    assert float(reg.penalty().detach()) == 0.0


# ---------------------------------------------------------------------------------------------------------------
# Online EWC and MAS importance
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("mode", ["exact", "sample", "true"])
def test_ewc_importance_is_the_fisher_of_the_seeded_subset(output, mode):
    """Online EWC after one task: Omega = sample_grad_stats's Fisher (mean over the samples, active head) on the
    `samples` training samples drawn with the generator passed to on_task_end, the same generator then drawing y
    in "sample" mode; "true" uses the task's local labels. For "exact" it also equals an independent per-sample
    autograd reference on that subset, and not the Fisher of a different subset."""
    model = tiny_model(output)
    reg = OnlineEWC(model, lam=1.0, samples=10, fisher_mode=mode)
    task = make_task(1, HEAD_B)  # the second head: labels 2, 3 -> local 0, 1
    learn(model, task, reg)
    end_task(reg, task, seed=21)
    g = torch.Generator().manual_seed(21)
    x, y = task.sample("train", 10, g)
    want = sample_grad_stats(model, x, task.head, "fisher", y=task.local(y), fisher_mode=mode, generator=g)
    got = reg.importance()
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    if mode == "exact":
        assert_close_dicts(got, ref_importance(model, x, task.head, "fisher"))
        x_other, _ = seeded_subset(task, 10, seed=22)
        other = ref_importance(model, x_other, task.head, "fisher")
        assert not torch.allclose(got["body.0.weight"], other["body.0.weight"])


def test_ewc_samples_none_uses_all_training_samples():
    """samples=None ("all"): the Fisher of every training sample of the task."""
    model = tiny_model("dhp")
    reg = OnlineEWC(model, lam=1.0, samples=None)
    task = make_task(0, HEAD_A, n=12)
    learn(model, task, reg)
    end_task(reg, task)
    x, y, rows = task.split("train")
    assert_close_dicts(reg.importance(), ref_importance(model, x, task.head, "fisher"))


def learn_two_tasks(model, reg, kind, seeds):
    """Learn tasks A then B through the hooks; return the importance of each task's seeded 10-sample subset,
    computed here independently at its task's end (and check that Omega after task A is the first)."""
    first, second = make_task(0, HEAD_A), make_task(1, HEAD_B)
    learn(model, first, reg)
    I1 = ref_importance(model, seeded_subset(first, 10, seeds[0])[0], first.head, kind)
    end_task(reg, first, seed=seeds[0])
    assert_close_dicts(reg.importance(), I1)
    learn(model, second, reg)
    I2 = ref_importance(model, seeded_subset(second, 10, seeds[1])[0], second.head, kind)
    end_task(reg, second, seed=seeds[1])
    return I1, I2


@pytest.mark.parametrize("gamma", [None, 0.5, 0.0])
def test_online_ewc_running_fisher_with_gamma(gamma):
    """Online EWC over two tasks: Omega = gamma F1 + F2 (gamma 1 by default), with F1 the Fisher of task 1's
    subset at the end of task 1 and F2 that of task 2's subset at the end of task 2, both computed here
    independently; theta* = the weights at the end of task 2."""
    model = tiny_model("dhp")
    kwargs = {} if gamma is None else {"gamma": gamma}
    reg = OnlineEWC(model, lam=1.0, samples=10, **kwargs)
    gamma = 1.0 if gamma is None else gamma
    F1, F2 = learn_two_tasks(model, reg, "fisher", seeds=(31, 32))
    want = {k: gamma * F1[k] + F2[k] for k in F1}
    assert_close_dicts(reg.importance(), want)
    assert not torch.allclose(F2["out.theta"], F1["out.theta"] + F2["out.theta"])  # the two cases differ
    assert all(torch.equal(s, p) for s, p in zip(reg.theta_star, slow_snapshot(model).values()))


def test_online_ewc_batch_mode_and_bad_mode():
    """fisher_mode="batch" uses batch_fisher on the same seeded subset (true labels, batch_size); an unknown
    fisher_mode is a ValueError at construction."""
    model = tiny_model("matched")
    reg = OnlineEWC(model, lam=1.0, samples=10, fisher_mode="batch", batch_size=4)
    task = make_task(1, HEAD_B)
    learn(model, task, reg)
    end_task(reg, task, seed=3)
    x, y = seeded_subset(task, 10, 3)
    want = batch_fisher(model, x, y, task.head, 4)
    assert all(torch.equal(reg.importance()[k], want[k]) for k in want)
    with pytest.raises(ValueError, match="unknown fisher_mode 'nope'"):
        OnlineEWC(model, lam=1.0, fisher_mode="nope")


@pytest.mark.parametrize("output", OUTPUTS)
def test_mas_importance_accumulates(output):
    """MAS: Omega_1 = mean_n |d ||f(x_n)||^2 / dw| on task 1's seeded subset (active head), and after task 2
    Omega = Omega_1 + Omega_2 (no decay), each computed here independently."""
    model = tiny_model(output)
    reg = MAS(model, lam=1.0, samples=10)
    O1, O2 = learn_two_tasks(model, reg, "mas", seeds=(41, 42))
    assert_close_dicts(reg.importance(), {k: O1[k] + O2[k] for k in O1})


# ---------------------------------------------------------------------------------------------------------------
# SI
# ---------------------------------------------------------------------------------------------------------------
def si_by_hand(record, start, end, xi, g_key="g"):
    """omega = sum_t -g_t * delta_t; Omega = omega / (Delta^2 + xi) with Delta = end - start."""
    omega = {k: torch.zeros_like(v) for k, v in start.items()}
    for g, before, after in zip(record[g_key], record["before"], record["after"]):
        for k in omega:
            omega[k] -= g[k] * (after[k] - before[k])
    return {k: omega[k] / ((end[k] - start[k]).square() + xi) for k in omega}


@pytest.mark.parametrize("output", OUTPUTS)
def test_si_path_integral_by_hand_over_two_tasks(output):
    """SI through the hooks with explicit SGD steps: after task 1, Omega = omega / (Delta^2 + xi) with
    omega = sum_t -g_t delta_t (g the task-loss gradient, delta the step's change) and Delta the change over the
    task; after task 2, Omega = Omega_1 + omega_2 / (Delta_2^2 + xi), where g is still the task-loss gradient
    WITHOUT the penalty (which is active and large on task 2). The running path is reset at each task end."""
    xi = 0.05
    model = tiny_model(output)
    reg = SI(model, lam=2.0, xi=xi)
    a, b = make_task(0, HEAD_A), make_task(1, HEAD_B)
    start = slow_snapshot(model)
    rec: dict = {}
    learn(model, a, reg, steps=4, record=rec)
    end = slow_snapshot(model)
    end_task(reg, a)
    O1 = si_by_hand(rec, start, end, xi)
    assert_close_dicts(reg.importance(), O1)
    assert all(torch.equal(w, torch.zeros_like(w)) for w in reg.path)

    rec2: dict = {}
    learn(model, b, reg, steps=4, record=rec2)
    end2 = slow_snapshot(model)
    # the penalty really acted on task 2, so using the total gradient would give another answer
    assert any(not torch.allclose(g[k], t[k]) for g, t in zip(rec2["g"], rec2["g_total"]) for k in g)
    end_task(reg, b)
    step2 = si_by_hand(rec2, end, end2, xi)
    assert_close_dicts(reg.importance(), {k: O1[k] + step2[k] for k in O1})
    wrong = si_by_hand(rec2, end, end2, xi, g_key="g_total")
    assert any(not torch.allclose(reg.importance()[k], O1[k] + wrong[k]) for k in O1)
    assert all(torch.equal(s, e) for s, e in zip(reg.theta_star, end2.values()))


def test_si_hand_values_one_weight():
    """Fully by hand: a 1-input, 2-output matched model (no hidden layer), one sample x = 1 of class 0, lr 0.5,
    two SGD steps. For each step dL/dtheta_c = x (p_c - 1[c=0]) (both theta and theta2), delta = -lr g, so
    omega = sum lr g^2 and Omega = omega / (Delta^2 + xi), written out with floats."""
    torch.manual_seed(0)
    model = MLP(1, (), 2, output="matched").double()
    with torch.no_grad():
        model.out.theta.copy_(torch.tensor([[0.2, 0.4]], dtype=torch.float64))
        model.out.theta2.copy_(torch.tensor([[0.0, 0.1]], dtype=torch.float64))
    x = torch.ones(1, 1, dtype=torch.float64)
    y = torch.zeros(1, dtype=torch.long)
    task = Task(name="one", index=0, classes=(0, 1), head=slice(0, 2), x_train=x, y_train=y, train_idx=torch.arange(1),
                val_idx=torch.empty(0, dtype=torch.long), x_test=x, y_test=y, test_idx=torch.arange(1))
    xi, lr = 0.1, 0.5
    reg = SI(model, lam=1.0, xi=xi)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    reg.on_task_start(task)
    w = [0.2 + 0.0, 0.4 + 0.1]  # theta + theta2 (what the logits see)
    t, t2 = [0.2, 0.4], [0.0, 0.1]
    omega_t, omega_t2 = [0.0, 0.0], [0.0, 0.0]
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        reg.before_step(), reg.add_penalty_grad(), opt.step(), reg.after_step()
        e = [math.exp(v) for v in w]
        p = [v / sum(e) for v in e]
        g = [p[0] - 1.0, p[1]]
        for c in range(2):
            omega_t[c] += lr * g[c] ** 2  # -g * (-lr g)
            omega_t2[c] += lr * g[c] ** 2
            t[c] -= lr * g[c]
            t2[c] -= lr * g[c]
            w[c] = t[c] + t2[c]
    reg.on_task_end(task, torch.Generator().manual_seed(0))
    d_t = [t[0] - 0.2, t[1] - 0.4]
    d_t2 = [t2[0] - 0.0, t2[1] - 0.1]
    want_t = [omega_t[c] / (d_t[c] ** 2 + xi) for c in range(2)]
    want_t2 = [omega_t2[c] / (d_t2[c] ** 2 + xi) for c in range(2)]
    imp = reg.importance()
    torch.testing.assert_close(model.out.theta.detach(), torch.tensor([t], dtype=torch.float64), rtol=1e-12, atol=0)
    torch.testing.assert_close(imp["out.theta"], torch.tensor([want_t], dtype=torch.float64), rtol=1e-12, atol=0)
    torch.testing.assert_close(imp["out.theta2"], torch.tensor([want_t2], dtype=torch.float64), rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------------------------
# state round trip (early stopping restores it)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("name", REG_NAMES)
def test_state_dict_round_trip_restores_the_penalty(name, output):
    """state_dict() is a deep snapshot (later steps and task ends do not change it); after load_state_dict (and
    the model's weights restored), Omega, theta*, SI's running path and the penalty, its value and the gradient
    add_penalty_grad adds, are exactly those of the snapshot, on the same and on a fresh regulariser; and SI's
    restored path goes on to give the same Omega as without the detour."""
    model = tiny_model(output)
    reg = make_regulariser(name, model, lam=3.0)
    a, b = make_task(0, HEAD_A), make_task(1, HEAD_B)
    learn(model, a, reg)
    end_task(reg, a)
    learn(model, b, reg, steps=2)
    snap = reg.state_dict()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    pen0 = reg.penalty().detach().clone()
    omega0 = {k: v.clone() for k, v in reg.importance().items()}
    star0 = [s.clone() for s in reg.theta_star]
    path0 = [w.clone() for w in reg.path] if name == "si" else None
    if name == "si":
        assert any(w.abs().sum() > 0 for w in path0)

    def penalty_grad(r):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        r.add_penalty_grad()
        return [p.grad.clone() for p in model.parameters()]

    grad0 = penalty_grad(reg)
    # the detour: more steps on task 2, then its end (Omega, theta*, path all change)
    learn(model, b, reg, steps=3, start=False, first_step=2)
    end_task(reg, b)
    learn(model, b, reg, steps=1, start=False, first_step=5)
    assert not all(torch.equal(g, g0) for g, g0 in zip(penalty_grad(reg), grad0))  # (caches the new factors)
    assert not torch.equal(reg.importance()["out.theta"], omega0["out.theta"])
    if name == "si":
        assert all(torch.equal(w, w0) for w, w0 in zip(snap["path"], path0))  # the snapshot is a copy
    assert all(torch.equal(s, s0) for s, s0 in zip(snap["theta_star"], star0))
    model.load_state_dict(weights)
    reg.load_state_dict(snap)
    for r in (reg, _fresh_loaded(name, model, snap)):
        assert torch.equal(r.penalty().detach(), pen0)
        assert all(torch.equal(r.importance()[k], omega0[k]) for k in omega0)
        assert all(torch.equal(s, s0) for s, s0 in zip(r.theta_star, star0))
        if name == "si":
            assert all(torch.equal(w, w0) for w, w0 in zip(r.path, path0))
        assert all(torch.equal(g, g0) for g, g0 in zip(penalty_grad(r), grad0))


def _fresh_loaded(name, model, snap):
    r = make_regulariser(name, model, lam=0.5)
    r.load_state_dict(snap)
    assert r.lam == 3.0
    return r


def test_si_state_dict_excludes_scratch_buffers_and_restored_path_continues():
    """SI's state holds omega, theta*, the running path and theta_start but not the per-step scratch buffers; a
    task continued after a restore ends with the same Omega as the uninterrupted run."""
    model = tiny_model("dhp")
    reg = SI(model, lam=1.0)
    a = make_task(0, HEAD_A)
    learn(model, a, reg, steps=2)
    snap = reg.state_dict()
    assert {"path", "theta_start", "omega", "theta_star", "xi", "lam"} <= set(snap)
    assert "_grad" not in snap and "_prev" not in snap
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    learn(model, a, reg, steps=2, start=False, first_step=2)
    end_task(reg, a)
    straight = {k: v.clone() for k, v in reg.importance().items()}
    # again from the snapshot, after a detour that pollutes the path
    model.load_state_dict(weights)
    reg.load_state_dict(snap)
    learn(model, a, reg, steps=2, start=False, first_step=2)
    end_task(reg, a)
    assert all(torch.equal(reg.importance()[k], straight[k]) for k in straight)


# ---------------------------------------------------------------------------------------------------------------
# every regulariser with every output layer
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("name", ("none",) + REG_NAMES)
def test_every_regulariser_trains_with_either_output_layer(name, output):
    """Any regulariser combines with DHP or the matched layer: two tasks of a couple of steps through the hooks
    run, the loss stays finite, every parameter (slow weights, and DHP's alpha and eta) moves, and on task 2 the
    consolidation penalty is positive (zero for fine-tuning)."""
    model = tiny_model(output)
    reg = make_regulariser(name, model, lam=1.0)
    initial = {k: p.detach().clone() for k, p in model.named_parameters()}
    a, b = make_task(0, HEAD_A), make_task(1, HEAD_B)
    learn(model, a, reg, steps=2)
    end_task(reg, a)
    after_a = {k: p.detach().clone() for k, p in model.named_parameters()}
    learn(model, b, reg, steps=2)
    for k, p in model.named_parameters():
        assert torch.isfinite(p).all(), k
        assert not torch.equal(after_a[k], initial[k]), k
    assert not torch.equal(model.state_dict()["body.0.weight"], after_a["body.0.weight"])
    assert torch.isfinite(task_loss(model, b, 0))
    pen = float(reg.penalty().detach())
    assert (pen > 0) if name != "none" else (pen == 0.0)
    if output == "dhp":
        assert model.out.hebb.abs().sum() > 0  # the trace was updated through training
