"""The CNN benchmarks (docs/method.md (benchmarks)): Vision Datasets Mixture and Split CIFAR-10/100 tasks, Table 3's CNN and Zenke et
al.'s network, their profiles, the ``scratch`` reference and Adam. All on generated files in the real formats."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import dhclib
from dhclib import benchmarks
from dhclib.data import vision as vision_data
from dhclib.runs import config
from dhclib.errors import ConfigError, DataNotFoundError, PlasticInstabilityError
from dhclib.data.fake import write_fake_data_root
from dhclib.method.models import TableCNN, ZenkeCNN
from dhclib.runs.build import build_model
from dhclib.runs.config import resolve_config

N_TRAIN, N_TEST = 200, 100


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return write_fake_data_root(tmp_path_factory.mktemp("vision"), n_train=N_TRAIN, n_test=N_TEST)


# ---------------------------------------------------------------------------------------------------------------
# tasks
# ---------------------------------------------------------------------------------------------------------------
def test_vision_mixture_tasks_in_the_papers_order_with_one_head_each(fake_root):
    tasks = benchmarks.vision_mixture(0, data_dir=fake_root)
    assert [t.name for t in tasks] == ["MNIST", "notMNIST", "FashionMNIST", "SVHN", "CIFAR-10"]
    for t, task in enumerate(tasks):
        assert task.head == slice(10 * t, 10 * t + 10)
        assert task.x_train.dtype == torch.uint8 and tuple(task.x_train.shape[1:]) == (3, 32, 32)
        y = task.y_train[task.train_idx]
        assert int(y.min()) >= 10 * t and int(y.max()) < 10 * t + 10 and y.unique().numel() == 10
        assert task.n_train == N_TRAIN and task.test_idx.numel() == N_TEST


def test_grayscale_tasks_are_zero_padded_and_replicated_and_scaled_per_batch(fake_root):
    """A.4: 28x28 grayscale zero-padded to 32x32, replicated to 3 channels; pixels in [0, 1] (docs/method.md (benchmarks))."""
    task = benchmarks.vision_mixture(0, data_dir=fake_root, vision_tasks=("mnist",))[0]
    raw = vision_data.load_mnist_uint8(fake_root)["x_train"]
    x = task.inputs(task.x_train, torch.arange(5))
    assert x.dtype == torch.float32 and x.shape == (5, 3, 32, 32)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    assert torch.allclose(x[:, 0, 2:30, 2:30], raw[:5].float() / 255)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert x[:, :, border].abs().sum() == 0


def test_vision_tasks_is_a_parameter(fake_root):
    tasks = benchmarks.vision_mixture(0, data_dir=fake_root, vision_tasks=("cifar10", "mnist"))
    assert [t.name for t in tasks] == ["CIFAR-10", "MNIST"] and tasks[1].head == slice(10, 20)
    with pytest.raises(ConfigError, match="vision_tasks must be"):
        benchmarks.vision_mixture(0, data_dir=fake_root, vision_tasks=("imagenet",))


def test_notmnist_from_its_test_split_only_is_explicit(fake_root, tmp_path):
    """Without notMNIST's training images the default fails, naming the option; the option re-splits the test set."""
    root = tmp_path / "root"
    shutil.copytree(fake_root / "notMNIST", root / "notMNIST")
    (root / "notMNIST" / "raw" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError, match="test_resplit"):
        benchmarks.vision_mixture(0, data_dir=root, vision_tasks=("notmnist",), download=False)
    a = benchmarks.vision_mixture(0, data_dir=root, vision_tasks=("notmnist",), notmnist_split="test_resplit",
                                  download=False)[0]
    b = benchmarks.vision_mixture(1, data_dir=root, vision_tasks=("notmnist",), notmnist_split="test_resplit",
                                  download=False)[0]
    assert a.n_train + a.test_idx.numel() == N_TEST and a.test_idx.numel() == round(0.2 * N_TEST)
    assert not torch.equal(a.x_test, b.x_test)  # the re-split follows the trial's seed


def test_split_cifar10_100_takes_cifar10_then_ten_consecutive_cifar100_classes(fake_root):
    tasks = benchmarks.split_cifar10_100(0, data_dir=fake_root)
    assert [t.name for t in tasks] == list(benchmarks.SPLIT_CIFAR_TASK_NAMES)
    c100 = vision_data.load_cifar100(fake_root)
    for k, task in enumerate(tasks):
        assert task.head == slice(10 * k, 10 * k + 10)
        y = task.y_test[task.test_idx]
        assert int(y.min()) >= 10 * k and int(y.max()) < 10 * k + 10
        if k > 0:  # the task's images are exactly CIFAR-100's of classes 10(k-1) .. 10(k-1)+9
            lo = 10 * (k - 1)
            keep = (c100["y_test"] >= lo) & (c100["y_test"] < lo + 10)
            assert torch.equal(task.x_test.cpu(), c100["x_test"][keep])
            assert torch.equal(task.y_test.cpu() - 10 * k, c100["y_test"][keep] - lo)


# ---------------------------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------------------------
def test_table3_cnn_has_tables_layers():
    """Table 3: three 5x5 convs (20, 50, 50; padding 1) each with LeakyReLU 0.2 and max-pool 2, FC 500."""
    net = TableCNN(50, "matched")
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(20, (5, 5), (1, 1)), (50, (5, 5), (1, 1)),
                                                                          (50, (5, 5), (1, 1))]
    assert {m.negative_slope for m in net.body if isinstance(m, torch.nn.LeakyReLU)} == {0.2}
    fc = [m for m in net.body if isinstance(m, torch.nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fc] == [(50 * 2 * 2, 500)]


def test_zenke_cnn_feeds_2304_features_to_its_fc_layer():
    net = ZenkeCNN(60, "matched")
    fc = [m for m in net.body if isinstance(m, torch.nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fc] == [(2304, 512)]
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.body) == 4


@pytest.mark.parametrize("net", [TableCNN, ZenkeCNN])
def test_a_new_cnn_is_in_training_mode(net):
    """Measuring the FC layer's input runs the conv part in eval mode once; its dropout must not stay off."""
    assert all(m.training for m in net(10, "matched").modules())


@pytest.mark.slow
@pytest.mark.parametrize("net", [TableCNN, ZenkeCNN])
@pytest.mark.parametrize("output", ["dhp", "matched"])
def test_cnn_trains_a_few_steps_with_each_output_layer(net, output):
    torch.manual_seed(0)
    kw = dict(eta_init=1e-4, eta_per_connection=True) if output == "dhp" else {}
    model = net(10, output, **kw)
    x, y = torch.rand(32, 3, 32, 32), torch.arange(32) % 10
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def eval_loss() -> float:  # without dropout, and without updating the Hebbian trace
        model.eval()
        with torch.no_grad():
            out = torch.nn.functional.cross_entropy(model(x), y).item()
        model.train()
        return out

    before = eval_loss()
    for _ in range(70):  # memorising 32 random images: with Zenke's dropout, about 70 Adam steps
        loss = torch.nn.functional.cross_entropy(model(x, y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < 0.5 * before
    if output == "dhp":
        assert model.out.eta.shape == (model.out.in_features, 10) and model.out.eta.grad is not None


# ---------------------------------------------------------------------------------------------------------------
# profiles and methods
# ---------------------------------------------------------------------------------------------------------------
def test_vision_mixture_paper_profile_follows_spec():
    """docs/method.md (benchmarks, strengths): Table 3's CNN, batch 32, SGD 0.01, 50 epochs; per-connection eta 1e-4; lambdas 100 / 0.1 / 1.0."""
    c = resolve_config("vision_mixture", "dhp+si", 0, "paper")
    assert (c.network, c.batch_size, c.lr, c.optimizer, c.min_epochs, c.max_epochs, c.early_stopping) == (
        "table3_cnn", 32, 0.01, None, 50, 50, False)
    assert (c.eta_init, c.eta_per_connection, c.lam, c.si_xi) == (1e-4, True, 0.1, 0.1)
    assert c.vision_tasks == benchmarks.PAPER_VISION_TASKS and c.notmnist_split == "official"
    assert resolve_config("vision_mixture", "ewc", 0, "paper").lam == 100.0
    assert resolve_config("vision_mixture", "mas", 0, "paper").lam == 1.0


def test_vision_tasks_shorthand_and_sequence_length():
    short = resolve_config("vision_mixture", "dhp", 0, "quick", vision_tasks=["mnist", "fashion_mnist"])
    assert short.n_tasks == 2 and short.vision_tasks == ("mnist", "fashion_mnist")
    assert resolve_config("vision_mixture", "dhp", 0, "quick", vision_tasks="paper").key() == \
        resolve_config("vision_mixture", "dhp", 0, "quick").key()
    with pytest.raises(ConfigError, match="notmnist_split' applies to vision_mixture only"):
        resolve_config("split_mnist", "dhp", 0, "quick", notmnist_split="test_resplit")
    with pytest.raises(ConfigError, match="notmnist_split must be"):
        resolve_config("vision_mixture", "dhp", 0, "quick", notmnist_split="train")


def test_split_cifar_profile_and_methods():
    c = resolve_config("split_cifar10_100", "si", 0, "paper")
    assert (c.network, c.optimizer, c.lr, c.batch_size, c.max_epochs, c.lam, c.si_xi) == (
        "zenke_cnn", "adam", 0.001, 256, 60, 0.1, 0.001)
    assert config.benchmark_methods("split_cifar10_100") == ("finetune", "dhp", "si", "dhp+si", "scratch")
    with pytest.raises(ConfigError, match="no lambda for 'ewc' on split_cifar10_100.*pass lam="):
        resolve_config("split_cifar10_100", "ewc", 0, "paper")
    assert resolve_config("split_cifar10_100", "ewc", 0, "paper", lam=10.0).lam == 10.0


def test_the_network_must_fit_the_inputs():
    with pytest.raises(ConfigError, match="does not fit permuted_mnist's inputs"):
        resolve_config("permuted_mnist", "dhp", 0, "quick", network="table3_cnn")
    with pytest.raises(ConfigError, match="accepted: table3_cnn, zenke_cnn"):
        resolve_config("vision_mixture", "dhp", 0, "quick", network="mlp")
    assert resolve_config("split_cifar10_100", "dhp", 0, "quick", network="table3_cnn").network == "table3_cnn"


def test_existing_store_keys_are_unchanged():
    """The new optional fields are None for the MNIST benchmarks, so results stored before them keep their keys."""
    assert resolve_config("permuted_mnist", "dhp", 0, "paper", "cpu").key() == "73ee1418f2"


def test_scratch_learns_every_task_with_a_new_network(fake_root):
    r = dhclib.run("split_cifar10_100", "scratch", 0, "quick", "cpu", data_dir=fake_root, n_tasks=3,
                   train_size=64, test_size=50, max_epochs=1, min_epochs=1)
    for i in range(3):  # a task's accuracy never changes once learned: nothing else trains its network
        assert np.all(r.R[i:, i] == r.R[i, i])
    cfg = resolve_config("split_cifar10_100", "scratch", 0, "quick", "cpu")
    a, b = build_model(cfg, 3, 60), build_model(cfg, 3, 60, init_key="task1")
    assert not torch.equal(a.body[0].weight, b.body[0].weight)


def test_adam_is_used_when_the_protocol_says_so(fake_root, monkeypatch):
    made = []
    real = torch.optim.Adam

    def spy(*args, **kwargs):
        made.append(kwargs.get("lr"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    dhclib.run("split_cifar10_100", "dhp", 0, "quick", "cpu", data_dir=fake_root, n_tasks=2, train_size=32,
               test_size=20, max_epochs=1, min_epochs=1)
    assert made == [0.001, 0.001]  # a new Adam per task


def test_a_diverging_vision_run_names_the_task(fake_root):
    with pytest.raises(PlasticInstabilityError, match=r"task 1 \(MNIST\)"):
        dhclib.run("vision_mixture", "dhp", 0, "quick", "cpu", data_dir=fake_root, vision_tasks=["mnist"],
                   train_size=64, test_size=20, max_epochs=1, min_epochs=1, lr=1e6)


def test_report_shows_the_cnn_benchmarks_beside_the_paper(fake_root, tmp_path):
    """REPORT.md: the 5-Vision column of Table 1, and Split CIFAR-10/100 beside Figure 8's averages."""
    from dhclib.paper.report_md import write_report

    tiny = dict(train_size=32, test_size=20, min_epochs=1, max_epochs=1)
    dhclib.run_many("split_cifar10_100", "finetune,dhp", "0", "quick", "cpu", fake_root, tmp_path, progress=False,
                    n_tasks=2, **tiny)
    dhclib.run_many("vision_mixture", "finetune", "0", "quick", "cpu", fake_root, tmp_path, progress=False,
                    vision_tasks=["mnist", "svhn"], **tiny)
    text = write_report(tmp_path, "quick").read_text()
    assert "## Split CIFAR-10/100 (Figure 8)" in text and "| 47.5 |" in text and "| 61.28 |" in text
    assert "## Vision Datasets Mixture (5-Vision)" in text and "| 60.02 |" in text
    assert "vision_tasks=['mnist', 'svhn']" in text  # a shorter sequence is labelled, never a Table 1 row


def test_tables_and_figures_accept_a_store_without_runs():
    """``missing="skip"`` on a profile with no stored run (e.g. the paper profile of a CNN benchmark on a CPU):
    empty tables and a figure that says so, not a traceback."""
    import matplotlib.pyplot as plt

    from dhclib import plots, report
    from dhclib.runs.store import TIDY_COLUMNS as _TIDY_COLUMNS
    import pandas as pd

    empty = pd.DataFrame(columns=_TIDY_COLUMNS)
    assert list(report.curves(empty).columns)[-2:] == ["tasks_learned", "avg_acc"]
    fig8 = report.figure8_comparison(empty)
    assert set(fig8["method"]) == {"dhp", "finetune", "si", "scratch"} and (fig8["trials"] == 0).all()
    for fig in (plots.accuracy_curves(report.curves(empty)), plots.first_and_latest(report.first_and_latest(empty)),
                plots.r_heatmaps({}), plots.final_task_bars(report.final_task_accuracy(empty), ["a"])):
        assert "no stored runs" in fig.axes[0].texts[0].get_text()
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# stacks (the stacked engine on the CNNs: convolutions under vmap)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("benchmark", ["vision_mixture", "split_cifar10_100"])
def test_both_cnn_benchmarks_train_in_a_stack(benchmark, fake_root):
    """Table 3's CNN (Vision Mixture) in a stack of two seeds gives each seed its own run (to the stacked engine's
    rounding: tests/test_stacked.py); Zenke et al.'s CNN (Split CIFAR) has dropout, whose masks a stack draws in
    another order, so there each trial is a complete run of its own: the accuracy matrix filled, the weights apart."""
    from dhclib.method.stacked import Trial, train_stack
    from dhclib.method.train import train_sequence
    from dhclib.runs.build import build_run

    kw = dict(train_size=64, test_size=32, min_epochs=1, max_epochs=2, patience=1, batch_size=16)
    if benchmark == "vision_mixture":
        kw["vision_tasks"] = ["mnist", "fashion_mnist"]
    else:
        kw["n_tasks"] = 2
    cfgs = [resolve_config(benchmark, "dhp+si", s, "quick", "cpu", **kw) for s in (0, 1)]
    trials = []
    for c in cfgs:
        tasks, model, reg = build_run(c, fake_root)
        trials.append(Trial(model, tasks, reg, c.seed))
    logs = train_stack(trials, cfgs[0].protocol)
    for c, t, log in zip(cfgs, trials, logs):
        assert np.isfinite(np.tril(log.R)).all() and (np.tril(log.R) <= 1).all()
        if benchmark == "vision_mixture":
            tasks, model, reg = build_run(c, fake_root)
            alone = train_sequence(model, tasks, reg, c.protocol, c.seed)
            assert np.nanmax(np.abs(alone.R - log.R)) <= 0.01 + 1e-12
            for (name, a), b in zip(model.state_dict().items(), t.model.state_dict().values()):
                if a.is_floating_point():
                    torch.testing.assert_close(b, a, rtol=0, atol=5e-4, msg=lambda m: f"{name}: {m}")
    first = [dict(t.model.named_parameters()) for t in trials]
    assert not torch.equal(first[0]["out.theta"], first[1]["out.theta"])
