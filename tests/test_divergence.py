"""dhclib.method.divergence: a diverged run's cause named from measured quantities (issue #12 item 4): the
learning rate against the loss's curvature, the penalty's stiffness, the plastic trace's amplification."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dhclib
from dhclib.benchmarks import Task
from dhclib.method import divergence
from dhclib.method.consolidation import Consolidation
from dhclib.method.models import MLP

TINY = dict(n_tasks=2, train_size=500, max_epochs=2, min_epochs=1)


def _task(n: int = 64) -> Task:
    gen = torch.Generator().manual_seed(3)
    x, y = torch.rand(n, 5, generator=gen), torch.randint(0, 3, (n,), generator=gen)
    rows, empty = torch.arange(n), torch.zeros(0, dtype=torch.long)
    return Task(name="toy", index=0, classes=(0, 1, 2), head=slice(0, 3), x_train=x, y_train=y, train_idx=rows,
                val_idx=empty, x_test=x, y_test=y, test_idx=empty)


def _diverge(idx_root, method: str, **overrides) -> str:
    with pytest.raises(dhclib.PlasticInstabilityError) as info:
        dhclib.run("permuted_mnist", method, 0, "quick", "cpu", data_dir=idx_root, **dict(TINY, **overrides))
    return str(info.value)


def test_sharpness_is_the_hessians_largest_eigenvalue():
    """Power iteration agrees with the largest eigenvalue of the explicit Hessian of a tiny network's task loss."""
    torch.manual_seed(0)
    model, task = MLP(5, (4,), 3, output="matched"), _task()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss(vec):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = vec[i:i + s.numel()].view(s)
            i += s.numel()
        out = torch.func.functional_call(model, parts, (task.x_train, task.y_train))
        return F.cross_entropy(out, task.y_train)

    exact = float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat)).max())
    assert divergence.sharpness(model, task, iterations=200) == pytest.approx(exact, rel=1e-3)


def test_measure_leaves_the_network_alone():
    """Measuring runs DHP's training-mode forward on a copy: the trace and the weights are unchanged."""
    model, task = MLP(5, (4,), 3, output="dhp"), _task()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    divergence.measure(model, task, Consolidation(model), lr=0.1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_large_lr_is_named_for_finetune_and_dhp_alike(idx_root):
    """The defect of issue #12: at lr=50 fine-tuning and DHP Softmax both diverge and the DHP run was blamed on
    plasticity. Measured, both are the learning rate against the loss's curvature, with a bound to try."""
    for method in ("finetune", "dhp"):
        msg = _diverge(idx_root, method, lr=50.0)
        assert "task 1" in msg and "learning rate is too large" in msg and "Plastic" not in msg, msg
        assert "try lr below" in msg and "lr * h =" in msg


def test_a_trace_that_amplifies_from_the_start_is_named(mnist_root):
    """eta = 3 on 2000 real images: the trace overflows within the first epoch, where |1 - eta| = 2 already."""
    msg = _diverge(mnist_root, "dhp", eta_init=3.0, n_tasks=1, train_size=2000)
    assert "Plastic instability: max |1 - eta| reaches 2, so the Hebbian trace grows" in msg, msg


def test_an_amplifying_trace_is_named_plasticity(idx_root):
    """eta = 3 at a normal lr: |1 - eta| = 2 makes the trace double at every update. On these 8 steps a task the
    trace survives task 1 and, grown, makes task 2's loss far sharper than the network without it: named
    plasticity, not the lr (the plain network's curvature is well inside lr's bound)."""
    msg = _diverge(idx_root, "dhp", eta_init=3.0)
    assert "task 2" in msg and "Plastic instability" in msg and "eta_clamp=True" in msg, msg
    assert "learning rate is too large" not in msg


def test_the_stiffest_measure_above_its_bound_is_the_cause():
    m = divergence.Measured(lr_ratio=1.5, sharpness=300.0, sharpness_slow=300.0, penalty_ratio=4.0,
                            penalty_weight="body.0.bias", plastic_ratio=1.2, plastic_share=0.1, trace_gain=1.2)
    assert m.cause() == "penalty" and m.causes() == ["penalty", "lr", "plasticity"]
    text = divergence.explain(m, Consolidation(MLP(5, (4,), 3)), lr=0.01)  # every one named, the stiffest first
    first, rest = text.split(" Also above its bound: ", 1)
    assert "consolidation penalty is too stiff" in first and "body.0.bias" in first
    assert rest.startswith("the learning rate is too large") and "Also above its bound: plastic instability" in rest
    assert divergence.Measured(3.0, 600.0, 600.0, 1.1, "w", None, None, None).cause() == "lr"
    calm = divergence.Measured(0.5, 100.0, 100.0, 0.2, "w", 0.99, 0.0, 0.99)
    assert calm.cause() is None
    text = divergence.explain(calm, Consolidation(MLP(5, (4,), 3)), lr=0.01)
    assert "No measure was above its stability bound when the epoch began" in text and "max |1 - eta| = 0.99" in text


def test_the_task_start_is_measured_first_then_the_epoch_start():
    """Nothing unstable when the task began: the last finite state (the diverging epoch's start) is measured and
    named; something unstable at the task start is named from there, however the epoch's state looks."""
    model, task = MLP(5, (4,), 3, output="dhp"), _task()
    calm = {k: v.clone() for k, v in model.state_dict().items()}
    amplifying = dict(calm, **{"out.eta": torch.full_like(calm["out.eta"], 3.0)})
    reg = Consolidation(model)
    late = divergence.diagnose(model, task, reg, 0.01, calm, amplifying, epoch=3)
    assert late.startswith(" Plastic instability: max |1 - eta| reaches 2") and "Measured when epoch 3 began" in late
    early = divergence.diagnose(model, task, reg, 0.01, amplifying, calm, epoch=3)
    assert "Plastic instability" in early and "Measured when the task began" in early
    neither = divergence.diagnose(model, task, reg, 0.01, calm, calm, epoch=3)
    assert "No measure was above its stability bound when epoch 3 began" in neither
