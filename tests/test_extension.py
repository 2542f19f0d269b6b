"""Extending dhclib without editing it (issue #6, item 2): a new regulariser and a new benchmark are declared in
this file, registered, and run through run_many, the CLI, the report and a plot; ``dhp+l2`` exists with no code
of its own. The README's "Adding a regulariser" and "Adding a benchmark" sections show the same two steps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import dhclib
from dhclib import plots, registry, report
import dhclib.runs.config
from dhclib.benchmarks import Task, TaskSettings, rng
from dhclib.benchmarks.tasks import TABLE1_METHODS
from dhclib.cli import main
from dhclib.method.consolidation import Consolidation
from dhclib.paper.report_md import report_tables, write_report
from dhclib.registry import Benchmark, Settings, need


# --- a regulariser: plain L2 to the previous task's weights (Omega = 1) --------------------------------------
@dataclass(frozen=True)
class L2Settings(Settings):
    lam: float = 1.0

    def validate(self) -> None:
        need(self.lam >= 0, f"lam must be >= 0, got {self.lam!r}")


class L2(Consolidation):
    """lam * ||theta - theta*||^2 over the slow weights, theta* the weights after the previous task."""

    name = "l2"
    label = "L2 to the previous task"
    Settings = L2Settings
    paper: dict = {}
    search_grid = {"toy_blobs": (0.1, 1.0)}

    @classmethod
    def from_settings(cls, model, settings: L2Settings, protocol) -> "L2":
        return cls(model, settings.lam)

    def on_task_end(self, task, generator) -> None:
        self._consolidate([torch.ones_like(p) for p in self.params])


# --- a benchmark: three two-class tasks of Gaussian blobs in 20 dimensions, one 2-unit head each -------------
@dataclass(frozen=True)
class BlobSettings(TaskSettings):
    n_tasks: int = 3
    separation: float = 4.0  # distance of the two class means, in standard deviations

    max_tasks = 3

    def validate(self) -> None:
        super().validate()
        need(self.separation > 0, f"separation must be > 0, got {self.separation!r}")


def blobs(seed: int, s: BlobSettings, data_dir=None, device="cpu", download: bool = True) -> list[Task]:
    g = rng(seed, "blobs")
    n_train, n_test = s.train_size or 200, s.test_size or 100
    tasks = []
    for t in range(s.n_tasks):
        direction = torch.randn(20, generator=g)
        direction = direction / direction.norm()

        def draw(n: int):
            y = torch.randint(0, 2, (n,), generator=g)
            x = torch.randn(n, 20, generator=g) + (y[:, None] - 0.5) * s.separation * direction
            return x.to(device), (y + 2 * t).to(device)

        (x_tr, y_tr), (x_te, y_te) = draw(n_train), draw(n_test)
        n_val = int(round(s.val_fraction * n_train))
        rows = torch.arange(n_train, device=device)
        tasks.append(Task(name=f"blobs-{t + 1}", index=t, classes=(2 * t, 2 * t + 1), head=slice(2 * t, 2 * t + 2),
                          x_train=x_tr, y_train=y_tr, train_idx=rows[n_val:], val_idx=rows[:n_val], x_test=x_te,
                          y_test=y_te, test_idx=torch.arange(n_test, device=device)))
    return tasks


_QUICK = dict(hidden=(16,), min_epochs=5, max_epochs=5, early_stopping=False,
              importance_samples=50, batch_size=32, lr=0.1)
BLOBS = Benchmark(name="toy_blobs", title="Toy blobs", build=blobs, settings=BlobSettings,
                  profiles={"quick": _QUICK, "paper": dict(_QUICK, max_epochs=10, min_epochs=10)},
                  datasets=(), inputs="vector", paper_table=None)


@pytest.fixture
def extended():
    """L2 and the toy benchmark registered for one test, and forgotten after it."""
    registry.register_regulariser(L2)
    registry.register_benchmark(BLOBS)
    yield
    del registry.REGULARISERS["l2"], registry.BENCHMARKS["toy_blobs"]


def test_the_new_parts_compose_with_the_old(extended):
    assert {"l2", "dhp+l2"} <= set(dhclib.METHODS)
    assert ("l2", "dhp+l2") in registry.pairs()
    cfg = dhclib.resolve_config("toy_blobs", "dhp+l2", 0, "quick", "cpu")
    assert (cfg.lam, cfg.eta_init, cfg.separation, cfg.hidden) == (1.0, 1e-3, 4.0, (16,))
    assert dhclib.resolve_config("toy_blobs", "mas", 0, "quick", "cpu", lam=0.5).importance_samples == 50
    assert registry.method("dhp+l2").label == "DHP Softmax + L2 to the previous task"
    with pytest.raises(dhclib.ConfigError, match="'separation' applies to toy_blobs only"):
        dhclib.resolve_config("split_mnist", "l2", 0, "quick", "cpu", separation=1.0)
    with pytest.raises(dhclib.ConfigError, match="separation must be > 0"):
        dhclib.resolve_config("toy_blobs", "l2", 0, "quick", "cpu", separation=0.0)
    with pytest.raises(dhclib.ConfigError, match="n_tasks must be an integer from 1 to 3, got 4"):
        dhclib.resolve_config("toy_blobs", "l2", 0, "quick", "cpu", n_tasks=4)


def test_all_stays_the_papers_methods_on_its_benchmarks(extended):
    """A regulariser with a default lam runs on every benchmark when named, but "all" on a benchmark of the paper
    stays its declared methods (notebooks 01-04 compare "all" with Table 1); on the toy, every composition."""
    for name in ("permuted_mnist", "imbalanced_permuted_mnist", "split_mnist", "vision_mixture"):
        assert dhclib.runs.config.benchmark_methods(name) == TABLE1_METHODS
    assert dhclib.resolve_config("split_mnist", "dhp+l2", 0, "quick", "cpu").lam == 1.0
    assert dhclib.runs.config.benchmark_methods("toy_blobs") == ("finetune", "dhp", "l2", "dhp+l2")


def test_a_benchmark_must_declare_the_paper_profile():
    """The drivers default to profile "paper": a benchmark without it is refused when it is registered."""
    with pytest.raises(dhclib.ConfigError, match="declares the profiles quick; it must declare 'paper'"):
        registry.register_benchmark(dataclasses.replace(BLOBS, name="toy_no_paper", profiles={"quick": _QUICK}))
    assert "toy_no_paper" not in registry.BENCHMARKS


def test_run_many_report_and_plot(extended, tmp_path):
    # "all": the methods that can run here as declared (SI, EWC and MAS have no paper lambda for the toy)
    df = dhclib.run_many("toy_blobs", "all", "0-1", "quick", "cpu", out_dir=tmp_path, progress=False)
    assert set(df["method"]) == {"finetune", "dhp", "l2", "dhp+l2"} and df.groupby(["method", "seed"]).ngroups == 8
    assert len(list((tmp_path / "runs" / "toy_blobs" / "dhp_l2").glob("seed*.json"))) == 2
    # the penalty is wired in: at lam = 0, L2 is fine-tuning exactly; at the default it is not
    finetune = dhclib.run("toy_blobs", "finetune", 0, "quick", "cpu")
    free = dhclib.run("toy_blobs", "l2", 0, "quick", "cpu", lam=0.0)
    held = dhclib.run("toy_blobs", "l2", 0, "quick", "cpu")
    assert np.array_equal(free.R, finetune.R, equal_nan=True)
    assert not np.array_equal(held.R, finetune.R, equal_nan=True)
    assert finetune.R[0, 0] > 0.9  # the tasks are learnable: the test can tell forgetting from chance

    tables = report_tables(tmp_path)
    paired = tables["paired"].set_index("dhp_variant")
    assert paired.loc["dhp+l2", "baseline"] == "l2" and paired.loc["dhp+l2", "pairs"] == 2
    t1 = tables["table1"].set_index("method")
    assert t1.loc["dhp+l2", "trials"] == 2 and np.isnan(t1.loc["dhp+l2", "paper_avg_acc"])  # no paper table
    text = write_report(tmp_path, "quick").read_text()
    assert "## Toy blobs" in text and "| dhp+l2 | 2 |" in text

    fig = plots.accuracy_curves(report.curves(df), "toy")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("DHP Softmax + L2 to the previous task (") for t in legend)
    colours = {plots.method_color(m) for m in ("finetune", "si", "ewc", "mas", "l2")}  # a hue of its own
    assert len(colours) == 5 and plots.method_color("dhp+l2") == plots.method_color("l2")


def test_cli_runs_and_lists_them(extended, tmp_path, capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "toy_blobs" in listed and "dhp+l2" in listed
    assert main(["run", "--benchmark", "toy_blobs", "--method", "l2,dhp+l2", "--seeds", "0", "--profile", "quick",
                 "--device", "cpu", "--out", str(tmp_path), "--no-progress", "--set", "separation=3"]) == 0
    out = capsys.readouterr().out
    assert "dhp+l2" in out and "l2" in out
    stored = list((tmp_path / "runs" / "toy_blobs").glob("*/seed0-*.json"))
    assert sorted(p.parent.name for p in stored) == ["dhp_l2", "l2"]
    assert main(["grid", "--benchmark", "toy_blobs", "--method", "l2", "--param", "lam", "--profile", "quick",
                 "--device", "cpu", "--out", str(tmp_path), "--no-progress"]) == 0  # its grid: declared above
    assert "0.1" in capsys.readouterr().out
