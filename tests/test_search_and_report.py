"""Issue #3's tools: Appendix A's lambda grids, ``missing="skip"``, labelled variants, the grid tables and figure,
``python -m dhclib grid|report`` and the generated REPORT.md."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest
from scipy import stats  # noqa: E402

import dhclib  # noqa: E402
import dhclib.runs.unit  # noqa: E402
import dhclib.runs.runner  # noqa: E402
from dhclib import paper, plots, report  # noqa: E402
from dhclib.runs.labels import label_of  # noqa: E402
from dhclib.runs.store import TIDY_COLUMNS  # noqa: E402
from dhclib.cli import main  # noqa: E402
from dhclib.paper.report_md import classify_runs, report_tables, write_report  # noqa: E402
from dhclib.runs.difference import config_difference  # noqa: E402
from dhclib.runs.store import RunResult, result_path, write_atomic as _write_atomic  # noqa: E402

SMALL = dict(n_tasks=2, train_size=100)
ROOT = Path(__file__).resolve().parent.parent


def _forbid_training(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("run_config called although nothing may be trained")

    monkeypatch.setattr(dhclib.runs.unit, "run_config", no_training)


# ---------------------------------------------------------------------------------------------------------------
# the paper's grids and config keys
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("benchmark", sorted(paper.search_grids()))
def test_each_grid_holds_the_papers_lambda_and_is_increasing(benchmark):
    """docs/method.md (strengths): the lambda the paper chose is a point of its (expanded) grid, for every regulariser; grids are
    strictly increasing and positive (a log axis). Split CIFAR-10/100 had no search (Appendix D): no grid."""
    assert set(paper.search_grids()) == set(paper.paper_lambdas()) - {"split_cifar10_100"}
    for reg, chosen in paper.paper_lambdas()[benchmark].items():
        grid = paper.search_grid(benchmark, reg)
        assert chosen in grid, (benchmark, reg)
        assert all(a < b for a, b in zip(grid, grid[1:])) and grid[0] > 0
    assert paper.search_grid(benchmark, "dhp+si") == paper.search_grid(benchmark, "si")


def test_printed_grid_values_are_kept():
    """The values Appendix A prints survive the expansion of its ellipses (A.1, A.3)."""
    assert {10, 20, 50, 400} <= set(paper.search_grid("permuted_mnist", "ewc"))
    assert {0.01, 0.05, 0.5, 1.0} <= set(paper.search_grid("permuted_mnist", "si"))
    assert {0.01, 0.5, 1.5, 2.0} <= set(paper.search_grid("permuted_mnist", "mas"))
    assert {1, 25, 50, 100, 1000, 2000} <= set(paper.search_grid("split_mnist", "ewc"))
    assert {0.01, 0.05, 1.0, 4.5, 5.0} <= set(paper.search_grid("split_mnist", "mas"))


@pytest.mark.parametrize("bad, match", [(("cifar", "ewc"), "no search grid for benchmark 'cifar'"),
                                        (("split_mnist", "dhp"), "accepted: si, ewc, mas")])
def test_search_grid_rejects_unknown_names(bad, match):
    with pytest.raises(ValueError, match=match):
        paper.search_grid(*bad)


def test_integer_lambda_is_the_same_run_as_its_float():
    """lam=400 and lam=400.0 (and the default) resolve to one config, so a grid point reuses a stored run."""
    a = dhclib.resolve_config("split_mnist", "ewc", 0, "paper", "cpu", lam=400)
    b = dhclib.resolve_config("split_mnist", "ewc", 0, "paper", "cpu")
    assert a == b and a.key() == b.key() and isinstance(a.lam, float)
    assert dhclib.resolve_config("split_mnist", "dhp", 0, "paper", "cpu", eta_init=1).eta_init == 1.0


# ---------------------------------------------------------------------------------------------------------------
# missing="skip", variants, run_grid on generated data
# ---------------------------------------------------------------------------------------------------------------
def test_missing_skip_trains_nothing_and_lists_what_is_absent(idx_root, tmp_path, monkeypatch):
    out = tmp_path / "store"
    dhclib.run_many("split_mnist", "finetune", "0", "quick", "cpu", idx_root, out, progress=False, **SMALL)
    _forbid_training(monkeypatch)
    df = dhclib.run_many("split_mnist", "finetune,dhp", "0-1", "quick", "cpu", idx_root, out, progress=False,
                         missing="skip", **SMALL)
    assert set(map(tuple, df[["method", "seed"]].drop_duplicates().to_numpy().tolist())) == {("finetune", 0)}
    assert {(d["method"], d["seed"]) for d in df.attrs["missing"]} == {("finetune", 1), ("dhp", 0), ("dhp", 1)}
    assert dhclib.load_runs(out, "split_mnist", "finetune", "0-1", "quick", "cpu", missing="skip", **SMALL)[0] \
        .config["seed"] == 0
    with pytest.raises(FileNotFoundError, match="seed 1"):
        dhclib.load_runs(out, "split_mnist", "finetune", "0-1", "quick", "cpu", **SMALL)
    with pytest.raises(dhclib.ConfigError, match="missing must be 'train' or 'skip'"):
        dhclib.run_many("split_mnist", "dhp", "0", "quick", "cpu", idx_root, out, missing="never", **SMALL)


def test_a_batch_says_how_many_runs_it_trains_before_its_bar(idx_root, tmp_path, capsys):
    """With progress on, the line before the bar counts the runs to train, those already stored and the engine;
    nothing is said when nothing trains, or with progress off."""
    out = tmp_path / "store"
    dhclib.run_many("split_mnist", "finetune", "0", "quick", "cpu", idx_root, out, progress=False, **SMALL)
    assert "training" not in capsys.readouterr().out
    dhclib.run_many("split_mnist", "finetune,dhp", "0", "quick", "cpu", idx_root, out, progress="runs", **SMALL)
    assert "training 1 of 2 runs (1 already stored) on engine 'here'\n" in capsys.readouterr().out
    dhclib.run_many("split_mnist", "finetune,dhp", "0", "quick", "cpu", idx_root, out, progress="runs", **SMALL)
    assert "training" not in capsys.readouterr().out


def test_the_runs_a_table_lacks_are_listed_by_row_benchmark_and_grid_value(capsys):
    """``notebook.list_missing``: one line per row label and seed span; the benchmark named where the runs span
    several (notebook 05's Table 4), a grid's value where they come from one (``eta_init``)."""
    from dhclib.paper import notebook

    rows = [dict(benchmark=b, method="dhp", base_method="dhp", variant="", seed=s, config_key="k", eta_init=e)
            for b in ("permuted_mnist", "split_mnist") for e in (0.1, 0.01) for s in (0, 1, 2, 4)]
    notebook.list_missing(rows)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("16 runs are not in the store") and len(out) == 5
    assert "  permuted_mnist: dhp, eta_init=0.1: seeds 0-2, 4" in out
    assert "  split_mnist: dhp, eta_init=0.01: seeds 0-2, 4" in out
    notebook.list_missing([dict(benchmark="split_mnist", method="ewc [fisher_mode=batch]", base_method="ewc",
                                variant="fisher_mode=batch", seed=3, config_key="k")])
    assert capsys.readouterr().out.splitlines()[1] == "  ewc [fisher_mode=batch]: seed 3"
    notebook.list_missing([])
    assert capsys.readouterr().out == ""


def test_variants_are_labelled_stored_apart_and_reused(idx_root, tmp_path, monkeypatch):
    """A variant's runs carry their setting in the method name, use their own store key, and are reloaded."""
    out = tmp_path / "store"
    variants = [{"methods": ["ewc", "dhp+ewc"], "overrides": {"fisher_mode": "batch"}}]
    df = dhclib.run_variants("split_mnist", variants, "0", "quick", "cpu", idx_root, out, progress=False, **SMALL)
    assert sorted(df["method"].unique()) == ["dhp+ewc [fisher_mode=batch]", "ewc [fisher_mode=batch]"]
    stored = dhclib.load_results(out)
    assert {r.config["fisher_mode"] for r in stored} == {"batch"}
    default_key = dhclib.resolve_config("split_mnist", "ewc", 0, "quick", "cpu", **SMALL).key()
    assert default_key not in set(df["config_key"])
    _forbid_training(monkeypatch)
    again = dhclib.run_variants("split_mnist", variants, "0", "quick", "cpu", idx_root, out, progress=False, **SMALL)
    pd.testing.assert_frame_equal(df, again)


@pytest.mark.parametrize("variants, match", [
    ([{"methods": ["ewc"]}], "has no overrides"),
    ([{"methods": ["ewc"], "overrides": {"fisher_mode": "batch"}, "lam": 3}], "a variant is"),
    (["ewc"], "a variant is"),
    ([{"methods": ["ewc"], "overrides": {"fisher_mode": "batch"}, "seeds": "2-1"}], "seed range '2-1' is empty"),
])
def test_bad_variants_are_one_line_errors(variants, match, tmp_path):
    with pytest.raises(dhclib.ConfigError, match=match):
        dhclib.run_variants("split_mnist", variants, out_dir=tmp_path, progress=False)


def test_a_variant_with_its_own_seeds_runs_only_those_of_the_batch():
    """A labelled row run on fewer seeds than Table 1's (e.g. an intervention on seeds 0-4 beside 10 trials): its
    spec's "seeds" keeps only those of the batch's seeds, so nothing else is planned or listed as missing."""
    from dhclib.runs import plan

    spec = {"methods": ["dhp", "dhp+mas"], "overrides": {"eta_clamp": True}, "seeds": "0-2"}
    planned = plan.variants("permuted_mnist", [spec], "0-9", "paper")
    assert sorted((p.config.method, p.config.seed) for p in planned) == [
        (m, s) for m in ("dhp", "dhp+mas") for s in (0, 1, 2)]
    assert [p.config.seed for p in plan.variants("permuted_mnist", [spec], "1,5", "paper")] == [1, 1]
    assert plan.variants("permuted_mnist", [dict(spec, seeds="7")], "0-2", "paper") == []
    assert len(plan.variants("permuted_mnist", [{k: v for k, v in spec.items() if k != "seeds"}], "0-3")) == 8


def test_variant_label_is_rendered_and_its_parts_travel_with_the_rows():
    label = dhclib.variant_label("dhp+ewc", {"fisher_mode": "batch", "lam": 50.0})
    assert label == "dhp+ewc [fisher_mode=batch, lam=50.0]" and dhclib.variant_label("si", {}) == "si"
    # the label is never split back: a frame carries its parts (base_method, variant) beside it
    frame = pd.DataFrame({"method": [label, "si"], "base_method": ["dhp+ewc", "si"],
                          "variant": ["fisher_mode=batch, lam=50.0", ""]})
    assert dhclib.runs.store.label_parts(frame) == {label: ("dhp+ewc", "fisher_mode=batch, lam=50.0"),
                                                     "si": ("si", "")}
    # a hand-written frame without them names plain methods only; a bracket in a name is not parsed
    assert dhclib.runs.store.label_parts(pd.DataFrame({"method": ["odd [name]"]})) == {"odd [name]": ("odd [name]", "")}


def test_run_grid_marks_each_value_and_rejects_a_clash(idx_root, tmp_path):
    out = tmp_path / "store"
    grid = dhclib.run_grid("split_mnist", "mas", "lam", [0.5, 1.5], "0", "quick", "cpu", idx_root, out,
                           progress=False, **SMALL)
    assert sorted(grid["lam"].unique()) == [0.5, 1.5] and grid.groupby("lam")["config_key"].nunique().eq(1).all()
    assert grid["config_key"].nunique() == 2
    with pytest.raises(dhclib.ConfigError, match="cannot also be an override"):
        dhclib.run_grid("split_mnist", "mas", "lam", [1.0], out_dir=out, lam=2.0)
    with pytest.raises(dhclib.ConfigError, match="at least one value"):
        dhclib.run_grid("split_mnist", "mas", "lam", [], out_dir=out)


# ---------------------------------------------------------------------------------------------------------------
# tables: variants beside Table 1, grid tables
# ---------------------------------------------------------------------------------------------------------------
def _tidy(R_by_run: dict[tuple, np.ndarray], benchmark: str = "imbalanced_permuted_mnist", **cols):
    """A tidy frame as dhclib builds it; a key is (method, seed) or (method, seed, rendered variant)."""
    rows = []
    for (method, seed, *variant), R in R_by_run.items():
        variant = variant[0] if variant else ""
        label = label_of(method, variant)
        for t in range(R.shape[0]):
            for i in range(t + 1):
                rows.append((benchmark, label, method, variant, seed, "quick", f"k{label}{seed}", t, i, R[t, i]))
    return pd.DataFrame(rows, columns=TIDY_COLUMNS).assign(**cols)


R_LOW = np.array([[0.9, np.nan], [0.7, 0.8]])  # avg 0.75
R_HIGH = np.array([[1.0, np.nan], [0.9, 0.9]])  # avg 0.90


def test_variant_row_sits_beside_the_papers_value_of_its_method():
    df = _tidy({("ewc", 0, "fisher_mode=batch"): R_LOW, ("ewc", 1, "fisher_mode=batch"): R_HIGH, ("mas", 0): R_HIGH})
    t = report.table1_comparison(df, "imbalanced_permuted_mnist").set_index("method")
    row = t.loc["ewc [fisher_mode=batch]"]
    assert row["paper_avg_acc"] == pytest.approx(0.8718) and row["paper_bwt"] == pytest.approx(-0.09)
    assert row["avg_acc_diff"] == pytest.approx(0.825 - 0.8718) and row["trials"] == 2
    assert t.loc["ewc", "trials"] == 0  # Table 1's own row stays, empty
    order = list(t.index)
    assert order.index("ewc [fisher_mode=batch]") > order.index("dhp+mas")


def test_paired_tests_add_the_pairs_of_labelled_variants():
    runs = {("ewc", s, "fisher_mode=batch"): R_LOW if s else R_HIGH for s in range(3)}
    runs.update({("dhp+ewc", s, "fisher_mode=batch"): R_HIGH for s in range(3)})
    w = report.paired_tests(_tidy(runs))
    pair = w[w["baseline"] == "ewc [fisher_mode=batch]"].iloc[0]
    assert pair["dhp_variant"] == "dhp+ewc [fisher_mode=batch]" and pair["pairs"] == 3
    assert pair["avg_acc_gain"] == pytest.approx(0.90 - (0.90 + 0.75 + 0.75) / 3)
    assert len(w) == 5  # Table 1's four pairs (empty here) + the variant's


def _grid(values_R: dict[float, np.ndarray], method="ewc", benchmark="split_mnist", diverged=()):
    frames = [_tidy({(method, 0): R}, benchmark).assign(lam=v, config_key=f"k{v}") for v, R in values_R.items()]
    g = pd.concat(frames, ignore_index=True)
    g.attrs["diverged"] = [dict(benchmark=benchmark, method=method, seed=0, lam=v, message="nan") for v in diverged]
    return g


def test_grid_table_and_best_against_the_papers_choice():
    """Split MNIST EWC: the paper chose 400; 800 is better here by 0.15; 2000 diverged and stays a row."""
    g = _grid({100.0: R_LOW, 400.0: R_LOW, 800.0: R_HIGH}, diverged=(2000.0,))
    t = report.grid_table(g)
    assert list(t["lam"]) == [100.0, 400.0, 800.0, 2000.0]
    assert list(t["paper_choice"]) == [False, True, False, False]
    assert list(t["diverged"]) == [False, False, False, True] and np.isnan(t["avg_acc"].iloc[-1])
    best = report.grid_best(t).iloc[0]
    assert best["best_lam"] == 800.0 and best["paper_lam"] == 400.0
    assert best["avg_acc_gap"] == pytest.approx(0.15) and best["diverged"] == 1 and best["values"] == 4
    fig = plots.lambda_search(t, "test")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert any(list(line.get_xdata()) == [400.0, 400.0] for line in ax.get_lines())  # the paper's choice
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "diverged (no result)" in labels and any(lab.startswith("best here (800") for lab in labels)


# ---------------------------------------------------------------------------------------------------------------
# REPORT.md
# ---------------------------------------------------------------------------------------------------------------
def _store_run(out, benchmark, method, seed, R, **overrides) -> RunResult:
    cfg = dhclib.resolve_config(benchmark, method, seed, "paper", "cpu", **overrides)
    r = RunResult(config=dict(cfg.to_dict(), key=cfg.key()), R=R, traces=pd.DataFrame(), epochs=pd.DataFrame(),
                  tasks=pd.DataFrame(), wall_time=3600.0, versions={}, device_name="cpu: test")
    _write_atomic(result_path(out, cfg), r.to_json())
    return r


def test_config_difference_sorts_runs_by_what_differs(tmp_path):
    runs = [_store_run(tmp_path, "split_mnist", "ewc", 0, R_LOW),
            _store_run(tmp_path, "split_mnist", "ewc", 0, R_HIGH, lam=800.0),
            _store_run(tmp_path, "split_mnist", "dhp", 0, R_HIGH, eta_init=0.1),
            _store_run(tmp_path, "split_mnist", "ewc", 0, R_HIGH, fisher_mode="batch", trace_every=7)]
    assert config_difference(runs[0].config) == {}
    assert config_difference(runs[1].config) == {"lam": 800.0}
    assert config_difference(runs[3].config) == {"fisher_mode": "batch"}  # trace_every cannot change a number
    kinds = classify_runs(dhclib.load_results(tmp_path))
    assert set(kinds["table1"]["method"]) == {"ewc"}
    assert sorted(kinds["search"]["lam"].unique()) == [400.0, 800.0]  # the paper's lambda joins its grid
    assert set(kinds["eta"]["eta_init"]) == {0.1}
    assert set(kinds["variants"]["method"]) == {"ewc [fisher_mode=batch]"}


def test_the_default_eta_run_joins_table4(tmp_path):
    """Table 4's eta = 0.001 point is DHP Softmax's Table 1 run of the same seed (as the paper's lambda joins its
    grid); a seed without an eta sweep does not join."""
    _store_run(tmp_path, "split_mnist", "dhp", 0, R_LOW)
    _store_run(tmp_path, "split_mnist", "dhp", 1, R_LOW)
    _store_run(tmp_path, "split_mnist", "dhp", 0, R_HIGH, eta_init=0.1)
    eta = classify_runs(dhclib.load_results(tmp_path))["eta"]
    assert sorted(eta.groupby("eta_init")["seed"].unique().map(list).tolist()) == [[0], [0]]
    assert sorted(eta["eta_init"].unique()) == [0.001, 0.1]


def test_table4_says_what_a_mean_of_fewer_runs_than_were_started_rests_on(tmp_path):
    """Table 4 beside the paper's 5-trial values: an initial eta whose runs partly diverged reads "1 of 2; 1
    diverged" in REPORT.md's table, its CSV and the notebook's table (run_grid's records); one whose every run
    diverged stays a row with 0 trials, and the figure marks both."""
    out = tmp_path / "paper"
    for seed in (0, 1):
        _store_run(out, "split_mnist", "dhp", seed, R_LOW)
    _store_run(out, "split_mnist", "dhp", 0, R_HIGH, eta_init=0.1)
    for seed, eta in ((1, 0.1), (0, 0.0001)):
        cfg = dhclib.resolve_config("split_mnist", "dhp", seed, "paper", "cpu", eta_init=eta)
        _write_atomic(result_path(out, cfg, "diverged"),
                      dict(benchmark=cfg.benchmark, method=cfg.method, seed=cfg.seed, config_key=cfg.key(),
                           message="loss nan", config=cfg.to_dict(), purpose={"variant": {"eta_init": eta}}))
    eta = report_tables(out)["eta"].set_index("eta_init")
    assert eta.loc[0.1, ["trials", "diverged", "rests_on"]].tolist() == [1, 1, "1 of 2; 1 diverged"]
    assert eta.loc[0.0001, ["trials", "diverged", "rests_on"]].tolist() == [0, 1, "0 of 1; 1 diverged"]
    assert np.isnan(eta.loc[0.0001, "avg_acc_mean"]) and eta.loc[0.001, "rests_on"] == ""
    text = write_report(out).read_text()
    assert "| Split MNIST | 0.1 | 1 | 90.00 (1 of 2; 1 diverged) | 98.43 | -8.43 |" in text
    assert "| Split MNIST | 0.0001 | 0 | — (0 of 1; 1 diverged) | 98.43 | — |" in text
    grid = dhclib.run_grid("split_mnist", "dhp", "eta_init", [0.1, 0.0001], "0-1", "paper", "cpu", out_dir=out,
                           missing="skip", progress=False)
    table = report.eta_table(grid)  # the notebook's path: the grid's own diverged records
    assert table.set_index("eta_init").loc[0.1, "rests_on"] == "1 of 2; 1 diverged"
    ax = plots.eta_sweep(eta.reset_index(), paper.table4()).axes[0]
    assert [t.get_text() for t in ax.texts] == ["1 of 2"]
    assert "diverged (no result)" in [line.get_label() for line in ax.get_lines()]


def test_table4_sets_each_eta_against_0_001_on_the_same_seeds(tmp_path):
    """Table 4 paired by seed (App. A.5: "low values led to the best performance"): each initial η against DHP
    Softmax's own 0.001 (Table 1's run of the same seed) over the seeds both have only; REPORT.md and the findings
    block show the mean difference, the seeds on which the η is higher and both p-values."""
    from dhclib.paper.findings import table4_paired_table
    from dhclib.paper.report_data import eta_effects

    b = "split_mnist"
    r_mid = np.array([[0.95, np.nan], [0.8, 0.9]])  # avg 0.85
    for seed, R in ((0, R_LOW), (1, r_mid), (2, R_LOW), (3, R_HIGH)):  # eta 0.001: Table 1's dhp
        _store_run(tmp_path, b, "dhp", seed, R)
    for seed, R in ((0, R_HIGH), (1, R_HIGH), (2, r_mid)):  # 0.1: +0.15, +0.05, +0.10; seed 3 has no 0.1 run
        _store_run(tmp_path, b, "dhp", seed, R, eta_init=0.1)
    _store_run(tmp_path, b, "dhp", 3, R_LOW, eta_init=0.0001)  # one pair: no test
    e = eta_effects(classify_runs(dhclib.load_results(tmp_path))["eta"]).set_index("eta_init")
    assert e.loc[0.1, ["against", "pairs", "avg_acc_better"]].tolist() == [0.001, 3, 3]
    assert e.loc[0.1, "avg_acc_gain"] == pytest.approx(0.10)
    assert e.loc[0.1, "avg_acc_p"] == pytest.approx(stats.ttest_rel([0.9, 0.9, 0.85], [0.75, 0.85, 0.75]).pvalue)
    assert e.loc[0.0001, ["pairs", "avg_acc_better"]].tolist() == [1, 0] and np.isnan(e.loc[0.0001, "avg_acc_p"])
    text = write_report(tmp_path).read_text()
    p = e.loc[0.1, "avg_acc_p"]
    assert f"| 0.1 | +10.00 (higher on 3 of 3; p {p:.3f}, Wilcoxon 0.250) |" in text
    assert "| 0.0001 | −15.00 (higher on 0 of 1; p —, Wilcoxon —) |" in text
    assert table4_paired_table({"eta_paired": eta_effects(pd.DataFrame())}) == ""


def test_the_collapse_is_tested_one_change_at_a_time(tmp_path):
    """REPORT.md's "one change at a time": each labelled DHP + MAS row against MAS with the same setting where that
    row is stored (else plain MAS), DHP + MAS against MAS on exactly the same seeds, the forgotten tasks of both, the
    seeds that diverged; a row whose every run diverged stays in the table."""
    from dhclib.paper.findings import collapse_table
    from dhclib.paper.report_data import COLLAPSED_COLUMNS, collapse_tests

    b = "permuted_mnist"
    for seed in (0, 1, 2):
        _store_run(tmp_path, b, "mas", seed, R_HIGH)
        _store_run(tmp_path, b, "dhp+mas", seed, R_LOW)
    for seed in (0, 1):
        _store_run(tmp_path, b, "dhp+mas", seed, R_HIGH, eta_clamp=True)
        _store_run(tmp_path, b, "mas", seed, R_HIGH, mas_mode="batch")
        _store_run(tmp_path, b, "dhp+mas", seed, R_LOW, mas_mode="batch")
    _store_run(tmp_path, b, "dhp+mas", 5, R_LOW, importance_logits="slow")  # no seed shared with mas / dhp+mas
    kinds = classify_runs(dhclib.load_results(tmp_path))
    both = pd.concat([kinds["table1"], kinds["variants"]], ignore_index=True)
    collapsed = pd.DataFrame([[b, m, seed, 1, 0.9, 0.1, 500.0, True, "dhp+mas"]
                              for m, seed in (("dhp+mas", 0), ("dhp+mas", 2), ("dhp+mas [mas_mode=batch]", 1))],
                             columns=COLLAPSED_COLUMNS)
    diverged = [dict(method="dhp+mas [eta_clamp=True]", base_method="dhp+mas", variant="eta_clamp=True", seed=2),
                dict(method="dhp+mas [eta_grad_horizon=full]", base_method="dhp+mas",
                     variant="eta_grad_horizon=full", seed=0)]
    t = collapse_tests(both, collapsed, diverged).set_index("variant")
    clamp, batch = t.loc["dhp+mas [eta_clamp=True]"], t.loc["dhp+mas [mas_mode=batch]"]
    assert (clamp["against"], clamp["seeds"], clamp["diverged"]) == ("mas", "0, 1", "2")
    assert clamp["gap_with"] == pytest.approx(0.0) and clamp["gap_without"] == pytest.approx(-0.15)
    assert (clamp["forgotten_with"], clamp["forgotten_without"]) == (0, 1)  # seed 2 is not among the pairs
    assert (batch["against"], batch["lower_with"], batch["forgotten_with"]) == ("mas [mas_mode=batch]", 2, 1)
    assert t.loc["dhp+mas [eta_grad_horizon=full]", "pairs"] == 0
    text = collapse_table({"collapse": t.reset_index().assign(benchmark=b), "table1": pd.DataFrame(),
                           "variants": pd.DataFrame()})
    rows = {line.split(" | ")[1]: line for line in text.splitlines()[2:]}
    assert rows["dhp+mas [eta_clamp=True]"].endswith("| 0 / 1 | removed (and 1 run diverged) |")
    assert rows["dhp+mas [mas_mode=batch]"].endswith("| 1 / 1 | stays |")
    assert rows["dhp+mas [eta_grad_horizon=full]"].endswith("| 0 diverged | — | — | — | every run diverged |")
    assert rows["dhp+mas [importance_logits=slow]"].endswith("| — | — | — | no seed shared with DHP + MAS and MAS |")


def test_write_report_tables_and_text(tmp_path):
    out = tmp_path / "paper"
    for s, R in enumerate((R_LOW, R_HIGH)):
        _store_run(out, "split_mnist", "finetune", s, R)
        _store_run(out, "split_mnist", "dhp", s, R_HIGH)
    _store_run(out, "split_mnist", "ewc", 0, R_LOW)
    _store_run(out, "split_mnist", "ewc", 0, R_HIGH, lam=800.0)
    _store_run(out, "split_mnist", "ewc", 0, R_HIGH, fisher_mode="batch")
    _write_atomic(out / "diverged" / "split_mnist" / "ewc" / "seed0-x.json",
                  dict(benchmark="split_mnist", method="ewc", seed=0, config_key="x", message="loss | nan"))
    tables = report_tables(out)
    t1 = tables["table1"].set_index("method")
    assert t1.loc["finetune", "trials"] == 2 and t1.loc["finetune", "avg_acc_mean"] == pytest.approx(0.825)
    assert t1.loc["si", "trials"] == 0
    assert tables["search"].iloc[0]["best_lam"] == 800.0
    hw = tables["hardware"].iloc[0]  # 7 runs of an hour each, one machine
    assert (hw["runs"], hw["wall_time_h"], hw["median_run_min"]) == (7, 7.0, 60.0)
    path = write_report(out)
    text = path.read_text()
    assert path == out / "REPORT.md" and "`paper`-profile" in text
    assert "| finetune | 2 | 82.50 ± 7.50 | 90.43 | -7.93 |" in text
    assert "| dhp | 2 | 90.00 ± 0.00 | 98.23 | -8.23 |" in text  # two equal trials: SEM 0 shown
    assert "ewc [fisher_mode=batch]" in text and "loss / nan" in text and "cpu: test" in text
    for name in ("table1", "paired", "search", "variants", "diverged", "hardware"):
        assert (out / f"report_{name}.csv").is_file()
    assert write_report(out).read_text() == text  # deterministic: regenerating changes nothing


def test_the_report_says_which_code_made_the_runs(tmp_path):
    """REPORT.md's "Which code made the runs": per benchmark the commit each run recorded, "with local changes"
    where its checkout had any, and "unknown" for runs stored before runs recorded their code."""
    out = tmp_path / "paper"
    for seed, code in enumerate(({"commit": "a" * 40, "dirty": False}, {"commit": "a" * 40, "dirty": False},
                                 {"commit": "b" * 40, "dirty": True}, {})):
        cfg = dhclib.resolve_config("split_mnist", "finetune", seed, "paper", "cpu")
        r = RunResult(config=dict(cfg.to_dict(), key=cfg.key()), R=R_LOW, traces=pd.DataFrame(),
                      epochs=pd.DataFrame(), tasks=pd.DataFrame(), wall_time=1.0, versions={}, device_name="cpu",
                      code=code)
        _write_atomic(result_path(out, cfg), r.to_json())
    _store_run(out, "permuted_mnist", "finetune", 0, R_LOW)  # an older record: no code
    text = write_report(out).read_text()
    section = text[text.index("## Which code made the runs"):]
    assert "| permuted_mnist | unknown | 1 |" in section
    rows = [line for line in section.splitlines() if line.startswith("| split_mnist")]
    assert rows == ["| split_mnist | aaaaaaaaaaaa | 2 |", "| split_mnist | bbbbbbbbbbbb with local changes | 1 |",
                    "| split_mnist | unknown | 1 |"]
    assert section.index("| permuted_mnist") < section.index("| split_mnist")  # the registry's order


def test_readme_tables_are_rendered_from_the_store_and_written_between_their_markers(tmp_path, capsys):
    """The README's results tables (`scripts/readme_tables.py`, called by `make report PROFILE=paper`): each cell with its trials and diverged runs, "diverged (k)"
    where every run of a row diverged, "not run" where none is stored, a variant's paper value in parentheses; the
    text between the markers is replaced, the rest kept; a README without the markers is one clear error."""
    from dhclib.paper.report_md import README_TABLES, with_readme_tables

    out = tmp_path / "paper"
    for seed, R in enumerate((R_LOW, R_HIGH)):
        _store_run(out, "permuted_mnist", "finetune", seed, R)
    _store_run(out, "permuted_mnist", "dhp+mas", 0, R_HIGH, eta_clamp=True)
    _store_run(out, "split_mnist", "finetune", 0, R_LOW)
    clamp = dhclib.resolve_config("permuted_mnist", "dhp+mas", 1, "paper", "cpu", eta_clamp=True)
    ewc = dhclib.resolve_config("imbalanced_permuted_mnist", "ewc", 0, "paper", "cpu")
    horizon = dhclib.resolve_config("imbalanced_permuted_mnist", "dhp", 0, "paper", "cpu", eta_grad_horizon="full")
    for cfg, purpose in ((clamp, {"variant": {"eta_clamp": True}}), (ewc, {}), (horizon, {})):
        _write_atomic(result_path(out, cfg, "diverged"),
                      dict(benchmark=cfg.benchmark, method=cfg.method, seed=cfg.seed, config_key=cfg.key(),
                           message="loss nan", config=cfg.to_dict(), purpose=purpose))
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    marks = {n: (f"<!-- generated: {n} (make report PROFILE=paper) -->",
                 f"<!-- end generated: {n} -->") for n in README_TABLES}
    readme = tmp_path / "README.md"
    readme.write_text("intro\n" + "".join(f"{a}\nold table\n{b}\ntext\n" for a, b in marks.values()))
    assert main(["report", "--out", str(out)]) == 0
    assert script.main(["--store", str(out), str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.count("text\n") == len(README_TABLES) and "old table" not in text
    assert "| finetune | 75.00 | 90.43 | −15.43 | −0.200 | −0.13 |" in text
    assert "| finetune | 82.50 ± 7.50 (2) | 76.73 | not run | 76.44 |" in text
    assert "| ewc | not run | 86.24 | diverged (1) | 87.18 |" in text
    assert "| dhp+mas [eta_clamp=True] | 90.00 (1 of 2; 1 diverged) | (89.53) | not run | (88.80) |" in text
    assert "| dhp [eta_grad_horizon=full] | not run | (78.49) | diverged (1) | (80.85) |" in text  # never dropped
    # REPORT.md too: a survivors-only mean says what it rests on, in its cell and in report_*.csv
    report = (out / "REPORT.md").read_text()
    assert "| dhp+mas [eta_clamp=True] | 1 | 90.00 (1 of 2; 1 diverged) | 89.53 |" in report
    assert "| finetune | 2 | 82.50 ± 7.50 | 76.73 |" in report
    variants = pd.read_csv(out / "report_variants.csv").set_index("method")
    assert tuple(variants.loc["dhp+mas [eta_clamp=True]", ["trials", "diverged", "rests_on"]]) == (
        1, 1, "1 of 2; 1 diverged")
    assert script.main(["--store", str(out), str(readme)]) == 0 and readme.read_text() == text
    with pytest.raises(dhclib.DhcError, match="no place for the generated table 'split_mnist'"):
        with_readme_tables("no markers here", {"split_mnist": "| a |"})
    assert script.main(["--store", str(out), str(tmp_path / "missing.md")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_notebooks_table1_says_what_a_survivors_only_mean_rests_on(tmp_path, capsys):
    """A notebook's Table 1 (`notebook.train`, then `notebook.table1`) joins Table 1's runs and the labelled rows;
    the diverged runs of both reach the table, so a mean of fewer runs than were started reads "2 of 3; 1 diverged",
    also in the saved CSV (pandas drops a frame's attrs when two frames' differ, which once lost them)."""
    from dhclib.paper import notebook

    store, out = tmp_path / "paper", tmp_path / "nb"
    for seed, R in enumerate((R_LOW, R_HIGH)):
        _store_run(store, "permuted_mnist", "finetune", seed, R)
    _store_run(store, "permuted_mnist", "finetune", 2, R_HIGH)
    _store_run(store, "permuted_mnist", "dhp+mas", 0, R_HIGH, eta_clamp=True)
    ewc = [dhclib.resolve_config("permuted_mnist", "ewc", s, "paper", "cpu") for s in (0, 1)]
    clamp = dhclib.resolve_config("permuted_mnist", "dhp+mas", 1, "paper", "cpu", eta_clamp=True)
    _store_run(store, "permuted_mnist", "ewc", 2, R_LOW)
    for cfg, purpose in ((ewc[0], {}), (ewc[1], {}), (clamp, {"variant": {"eta_clamp": True}})):
        _write_atomic(result_path(store, cfg, "diverged"),
                      dict(benchmark=cfg.benchmark, method=cfg.method, seed=cfg.seed, config_key=cfg.key(),
                           message="loss nan", config=cfg.to_dict(), purpose=purpose))
    variants = [{"methods": ["dhp+mas"], "overrides": {"eta_clamp": True}}]
    df, diverged = notebook.train("permuted_mnist", ["finetune", "ewc"], 3, "paper", "cpu", store, out, variants,
                                  missing="skip")
    printed = capsys.readouterr().out
    assert len(diverged) == 3 and "5 runs, 3 diverged" in printed
    assert "1 run is not in the store and was not trained" in printed and "[eta_clamp=True]: seed 2" in printed
    table = notebook.table1(df, "permuted_mnist", out).set_index("method")
    rows = table.loc[["finetune", "ewc", "dhp+mas [eta_clamp=True]"], ["trials", "diverged", "rests_on"]]
    assert [tuple(r) for r in rows.itertuples(index=False)] == [
        (3, 0, ""), (1, 2, "1 of 3; 2 diverged"), (1, 1, "1 of 2; 1 diverged")]
    saved = pd.read_csv(out / "table1.csv", keep_default_na=False).set_index("method")
    assert saved.loc["ewc", "rests_on"] == "1 of 3; 2 diverged"


def test_cli_report_and_grid_errors(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path)]) == 2
    assert "no stored runs under" in capsys.readouterr().err
    assert main(["grid", "--benchmark", "split_mnist", "--method", "dhp", "--param", "lam", "--out",
                 str(tmp_path)]) == 2
    assert "accepted: si, ewc, mas" in capsys.readouterr().err
    assert main(["grid", "--benchmark", "split_mnist", "--method", "si", "--param", "lam", "--values", "a,b",
                 "--out", str(tmp_path)]) == 2
    assert "comma-separated numbers" in capsys.readouterr().err


def test_cli_grid_runs_each_value(idx_root, tmp_path, capsys):
    out = tmp_path / "store"
    args = ["grid", "--benchmark", "split_mnist", "--method", "si", "--param", "lam", "--values", "0.5,1",
            "--profile", "quick", "--out", str(out), "--data-dir", str(idx_root), "--no-progress",
            "--set", "n_tasks=2", "--set", "train_size=100"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "paper_choice" in printed and len(printed.strip().splitlines()) == 3
    stored = [json.loads(p.read_text())["config"]["lam"] for p in (out / "runs").rglob("*.json")]
    assert sorted(stored) == [0.5, 1.0]


def test_run_search_runs_the_papers_grids_and_gathers_failures(idx_root, tmp_path, monkeypatch):
    """run_search: each regulariser's grid (given or the paper's) on one seed, one frame with a lam column, the
    diverged runs of every grid in attrs; with missing='skip', the absent points of the paper's grids listed."""
    out = tmp_path / "store"
    df = dhclib.run_search("split_mnist", {"mas": [0.5, 1.0], "si": [1.0]}, 0, "quick", "cpu", idx_root, out,
                           progress=False, **SMALL)
    assert set(map(tuple, df[["method", "lam"]].drop_duplicates().to_numpy().tolist())) == {
        ("mas", 0.5), ("mas", 1.0), ("si", 1.0)}
    assert df["seed"].eq(0).all() and df.attrs["diverged"] == []
    _forbid_training(monkeypatch)
    skipped = dhclib.run_search("split_mnist", ["si"], 0, "quick", "cpu", idx_root, out, progress=False,
                                missing="skip", **SMALL)
    assert set(skipped["lam"]) == {1.0}
    assert len(skipped.attrs["missing"]) == len(paper.search_grid("split_mnist", "si")) - 1
    with pytest.raises(dhclib.ConfigError, match="at least one regulariser"):
        dhclib.run_search("split_mnist", {}, out_dir=out)


def test_concat_runs_keeps_every_failure():
    a, b = pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [2]})
    a.attrs["diverged"], b.attrs["diverged"] = [{"m": 1}], [{"m": 2}]
    b.attrs["missing"] = [{"m": 3}]
    c = dhclib.runs.runner.concat_runs([a, b])
    assert list(c["x"]) == [1, 2] and c.attrs["diverged"] == [{"m": 1}, {"m": 2}] and c.attrs["missing"] == [{"m": 3}]


def test_lambda_search_shades_values_beyond_the_papers_grid():
    t = report.grid_table(_grid({0.1: R_LOW, 1.0: R_LOW, 10.0: R_HIGH}, method="si", benchmark="permuted_mnist"))
    fig = plots.lambda_search(t, grid_end={"si": 1.0})
    ax = fig.axes[0]
    assert "beyond the paper's grid" in [x.get_text() for x in ax.get_legend().get_texts()]
    (span,) = [p for p in ax.patches if p.get_label() == "beyond the paper's grid"]
    assert span.get_x() == pytest.approx(1.0)


def test_variant_curves_take_their_methods_colour_dotted():
    curves = pd.DataFrame({"method": ["si", "si", "si [lam=50.0]", "si [lam=50.0]"], "base_method": "si",
                           "variant": ["", "", "lam=50.0", "lam=50.0"], "seed": 0,
                           "tasks_learned": [1, 2, 1, 2], "avg_acc": [0.9, 0.8, 0.9, 0.85]})
    ax = plots.accuracy_curves(curves).axes[0]
    base, variant = ax.get_lines()
    assert base.get_color() == variant.get_color() == plots.method_color("si")
    assert base.get_linestyle() == "--" and variant.get_linestyle() == ":"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SI (80.00%)", "SI [lam=50.0] (85.00%)"]


def test_dhp_verdicts_say_in_words_whether_the_gain_reproduces():
    """Split MNIST: the paper reports a DHP gain for every pair. Here dhp beats finetune clearly (reproduced), dhp+si
    equals si (no significant difference), ewc has no runs, mas has one trial a side."""
    runs = {("finetune", s): R_LOW for s in range(3)} | {("dhp", s): R_HIGH for s in range(3)}
    runs[("dhp", 2)] = np.array([[1.0, np.nan], [0.95, 0.9]])  # variance, so that t is defined
    runs |= {("si", s): R_HIGH for s in range(3)} | {("dhp+si", s): R_HIGH for s in range(3)}
    runs[("si", 0)] = R_LOW
    runs |= {("mas", 0): R_LOW, ("dhp+mas", 0): R_HIGH}
    v = report.dhp_verdicts(_tidy(runs, "split_mnist"), "split_mnist").set_index("baseline")
    assert v.loc["finetune", "verdict"] == "reproduced" and v.loc["finetune", "avg_acc_p"] < 0.05
    assert v.loc["finetune", "paper_avg_acc_gain"] == pytest.approx(0.9823 - 0.9043)
    assert v.loc["si", "verdict"] == "not reproduced: no significant difference"
    assert v.loc["ewc", "verdict"].startswith("no result")
    assert v.loc["mas", "verdict"] == "too few trials to test"


def test_figure3_checks_read_the_trace_summary():
    summary = pd.DataFrame({"task": [1, 2, 3, 4], "eta_end": [0.02, 0.03, 0.01, 0.005],
                            "eta_max": [0.024, 0.031, 0.03, 0.01], "eta_negative_share": [0.0, 0.2, 0.4, 0.3],
                            "hebb_norm_end": [10.0, 12.0, 13.0, 15.0], "hebb_norm_max": [10.0, 230.0, 13.0, 15.0],
                            "alpha_norm_end": [0.3, 0.4, 0.35, 0.5]})
    c = report.figure3_checks(summary).set_index("claim")["ours"]
    assert list(c) == ["0.0240", "0.30", "23.00", "yes", "1.50", "0.67"]  # the runaway of task 2 shows


def test_readme_paired_and_instability_blocks():
    """The README's paired and instability tables: rows in REPORT.md's order (benchmarks as registered; Table 1's
    rows before the labelled ones), gains in signed points with the seeds DHP wins, no p and no gain for a pair with
    no seeds, the runaway ratio's range (one value when there is one) and the collapsed tasks counted per row."""
    from dhclib.paper.findings import _instability_table, _paired_table

    table1 = pd.DataFrame({"benchmark": ["split_mnist", "permuted_mnist", "permuted_mnist"],
                           "method": ["dhp", "dhp", "dhp+mas"]})
    variants = pd.DataFrame({"benchmark": ["permuted_mnist"], "method": ["dhp [eta_clamp=True]"]})
    nan = float("nan")
    paired = pd.DataFrame({
        "benchmark": ["split_mnist", "permuted_mnist", "permuted_mnist", "permuted_mnist"],
        "baseline": ["finetune", "dhp", "mas", "finetune"],
        "dhp_variant": ["dhp", "dhp [eta_clamp=True]", "dhp+mas", "dhp"],
        "pairs": [10, 3, 0, 3], "avg_acc_gain": [-0.00076, 0.0123, nan, -0.004],
        "avg_acc_better": [1, 2, 0, 0], "avg_acc_p": [0.00204, 0.5, nan, 0.3093],
        "avg_acc_wilcoxon_p": [0.0039, 0.75, nan, 0.25], "avg_acc_welch_p": [0.514, 0.8, nan, 0.48]})
    runaway = pd.DataFrame({"benchmark": ["permuted_mnist"] * 4 + ["split_mnist"],
                            "method": ["dhp [eta_clamp=True]", "dhp", "dhp", "dhp+mas", "dhp"],
                            "seed": [0, 0, 1, 0, 0], "ratio": [1.1, 73.94, 107.4, 64.0, 4.4],
                            "runaway_tasks": ["-", "3", "2, 5", "4", "-"], "eta_negative_share": 0.1})
    collapsed = pd.DataFrame({"benchmark": ["permuted_mnist"] * 3, "method": ["dhp", "dhp", "dhp+mas"],
                              "runaway_at_restore": [True, False, True]})
    tables = {"table1": table1, "variants": variants, "paired": paired, "runaway": runaway, "collapsed": collapsed}
    blocks = {"paired": _paired_table(tables), "instability": _instability_table(tables)}
    rows = blocks["paired"].splitlines()[2:]
    assert rows == ["| Permuted MNIST | dhp | finetune | 3 | −0.40 | 0 of 3 | 0.309 | 0.250 | 0.480 |",
                    "| Permuted MNIST | dhp+mas | mas | 0 | — | — | — | — | — |",
                    "| Permuted MNIST | dhp [eta_clamp=True] | dhp | 3 | +1.23 | 2 of 3 | 0.500 | 0.750 | 0.800 |",
                    "| Split MNIST | dhp | finetune | 10 | −0.08 | 1 of 10 | 0.002 | 0.004 | 0.514 |"]
    rows = blocks["instability"].splitlines()[2:]
    assert rows == ["| Permuted MNIST | dhp | 2 | 2 | 73.9–107.4 | 2 | 1 |",
                    "| Permuted MNIST | dhp+mas | 1 | 1 | 64.0 | 1 | 1 |",
                    "| Permuted MNIST | dhp [eta_clamp=True] | 1 | 0 | 1.1 | 0 | 0 |",
                    "| Split MNIST | dhp | 1 | 0 | 4.4 | 0 | 0 |"]


def test_by_seed_block_of_a_dhp_pair():
    """The README's and REPORT.md's DHP + MAS table, seed by seed: both accuracies and their difference per seed
    either row has, the forgotten tasks with ‖Hebb‖_F at the restored epoch and the count of runaway ones; a dash
    where a run is not stored, "none" where a stored run forgot no task, and no table without runs. Any pair of
    registry.pairs() renders alike, under its own names."""
    from dhclib.paper.findings import by_seed_name, by_seed_note, by_seed_table

    seeds = pd.DataFrame({"benchmark": ["permuted_mnist"] * 4 + ["imbalanced_permuted_mnist", "split_mnist"],
                          "method": ["mas", "dhp+mas", "mas", "dhp+mas", "mas", "dhp+mas"],
                          "seed": [0, 0, 1, 1, 3, 0], "avg_acc": [0.8709, 0.7253, 0.8926, 0.8514, 0.8564, 0.98],
                          "bwt": 0.0})
    collapsed = pd.DataFrame({"benchmark": ["permuted_mnist"] * 3, "method": ["dhp+mas", "dhp+mas", "dhp"],
                              "seed": [0, 0, 1], "task": [5, 8, 2], "acc_after_learning": 0.95,
                              "acc_after_last": 0.3, "hebb_norm_at_restored_epoch": [1154.49, 27.6, 900.0],
                              "runaway_at_restore": [True, False, True], "base_method": "mas"})
    rows = by_seed_table({"seeds": seeds, "collapsed": collapsed}, ("mas", "dhp+mas")).splitlines()[2:]
    assert rows == ["| Permuted MNIST | 0 | 87.09 | 72.53 | −14.56 | 5 (1,154), 8 (28) | 1 |",
                    "| Permuted MNIST | 1 | 89.26 | 85.14 | −4.12 | none | 0 |",
                    "| Imbalanced Permuted MNIST | 3 | 85.64 | — | — | — | — |"]
    assert by_seed_table({"seeds": pd.DataFrame(), "collapsed": pd.DataFrame()}, ("mas", "dhp+mas")) == ""
    ewc = seeds.assign(method=seeds["method"].str.replace("mas", "ewc"))
    table = by_seed_table({"seeds": ewc, "collapsed": collapsed}, ("ewc", "dhp+ewc")).splitlines()
    assert "| ewc | dhp+ewc | dhp+ewc − ewc (points) |" in table[0]
    assert table[2] == "| Permuted MNIST | 0 | 87.09 | 72.53 | −14.56 | none | 0 |"  # dhp+mas's collapses are not its
    assert by_seed_name(("ewc", "dhp+ewc")) == "dhp_ewc_by_seed" and "DHP + Online EWC forgot" in by_seed_note(("ewc", "dhp+ewc"))


def test_each_labelled_setting_is_paired_with_its_method_in_the_papers_configuration(tmp_path):
    """REPORT.md's and the README's settings table: ``mas [mas_mode=batch]`` against ``mas`` over the seeds both
    have (the DHP-against-baseline table never compares these two), a setting whose method has no plain run left
    out."""
    from dhclib.paper.findings import settings_table as _settings_table
    from dhclib.paper.report_md import report_tables

    for seed, (plain, batch) in enumerate(((R_LOW, R_HIGH), (R_LOW, R_HIGH), (R_HIGH, None))):
        _store_run(tmp_path, "permuted_mnist", "mas", seed, plain)
        if batch is not None:
            _store_run(tmp_path, "permuted_mnist", "mas", seed, batch, mas_mode="batch")
    _store_run(tmp_path, "permuted_mnist", "dhp", 0, R_HIGH, eta_clamp=True)  # no plain dhp run: no pair
    text = _settings_table(report_tables(tmp_path))
    assert "| Permuted MNIST | mas [mas_mode=batch] | mas | 2 | +15.00 | 2 of 2 |" in text
    assert "eta_clamp" not in text


def test_table4_block_sets_each_initial_eta_beside_the_papers_and_says_what_it_rests_on():
    """docs/findings.md's generated Table 4 (issue #27, item 5): every η the paper reports, per benchmark, ours with
    the trials it rests on beside the paper's 5-trial mean; a value with diverged runs says how many, one whose every
    run diverged says so, one with no stored run is "not run" — never a survivors-only mean without its count."""
    from dhclib.paper.findings import table4_table

    eta = pd.DataFrame({"benchmark": ["permuted_mnist", "permuted_mnist", "split_mnist"],
                        "eta_init": [0.1, 0.01, 0.001], "trials": [2, 1, 0], "diverged": [1, 0, 1], "avg_acc_mean": [0.81, 0.78, np.nan],
                        "avg_acc_sem": [0.01, np.nan, np.nan],
                        "rests_on": [report.rests_on(2, 1), "", report.rests_on(0, 1)]})
    text = table4_table({"eta": eta})
    lines = text.splitlines()
    assert lines[0] == ("| initial η | Permuted MNIST: ours | Permuted MNIST: paper | Imbalanced Permuted MNIST: ours "
                        "| Imbalanced Permuted MNIST: paper | Split MNIST: ours | Split MNIST: paper |")
    assert lines[2] == "| 0.1 | 81.00 ± 1.00 (2 of 3; 1 diverged) | 77.43 | not run | 80.00 | not run | 98.43 |"
    assert lines[3] == "| 0.01 | 78.00 (1) | 78.60 | not run | 80.13 | not run | 98.47 |"
    assert lines[4] == "| 0.001 | not run | 78.49 | not run | 80.85 | diverged (1) | 98.32 |"
    assert len(lines) == 7  # the header, its rule and the paper's five values of η
    assert table4_table({"eta": pd.DataFrame()}) == ""
