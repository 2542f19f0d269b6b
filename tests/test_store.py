"""The runner split by job (issue #6, item 3): plans resolve configs and labels, execute trains what the store
lacks, the store records why each run exists and sets damaged files aside."""

from __future__ import annotations

import json

import pytest

import dhclib
import dhclib.runs.unit
from dhclib.runs import execute, plan
from dhclib.paper.report_md import classify_runs
from dhclib.runs.difference import config_difference
from dhclib.runs.store import load_results, variant_of

SMALL = dict(n_tasks=2, train_size=100)


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("run_config called although the run is stored")

    monkeypatch.setattr(dhclib.runs.unit, "run_config", refuse)


def test_plans_are_resolved_configs_with_labels_and_purposes():
    """Nothing is trained to make a plan; every config is validated; labels and a grid's column are data."""
    t1 = plan.table1("split_mnist", "finetune,dhp", "0-1", "quick", "cpu", **SMALL)
    assert [(p.label, p.config.seed, p.plan) for p in t1] == [("finetune", 0, "table1"), ("finetune", 1, "table1"),
                                                               ("dhp", 0, "table1"), ("dhp", 1, "table1")]
    assert t1[0].purpose == {"plan": "table1", "variant": {"n_tasks": 2, "train_size": 100}}
    var = plan.variants("split_mnist", [{"methods": ["ewc"], "overrides": {"fisher_mode": "batch"}}], "0", "quick",
                        "cpu")
    assert [p.label for p in var] == ["ewc [fisher_mode=batch]"] and var[0].purpose["variant"] == {"fisher_mode": "batch"}
    g = plan.grid("split_mnist", "dhp", "eta_init", [0.1, 0.01], "0", "quick", "cpu")
    assert [p.columns for p in g] == [{"eta_init": 0.1}, {"eta_init": 0.01}] and {p.plan for p in g} == {"grid"}
    s = plan.search("split_mnist", {"si": [0.5, 1.0]}, 0, "quick", "cpu")
    assert [(p.label, p.columns["lam"]) for p in s] == [("si", 0.5), ("si", 1.0)]
    with pytest.raises(dhclib.ConfigError, match="n_tasks"):  # the batch fails before anything runs
        plan.table1(["permuted_mnist", "split_mnist"], "finetune", "0", "quick", "cpu", n_tasks=6)


def test_execute_stores_the_purpose_and_reloads(idx_root, tmp_path, monkeypatch):
    planned = plan.variants("split_mnist", [{"methods": ["ewc"], "overrides": {"fisher_mode": "batch"}}], "0",
                            "quick", "cpu", **SMALL)
    done = execute.execute(planned, tmp_path, data_dir=idx_root, progress=False)
    ((p, result),) = done.results
    stored = json.loads(next((tmp_path / "runs").rglob("seed0-*.json")).read_text())
    assert stored["purpose"] == {"plan": "variants", "variant": {"fisher_mode": "batch", "n_tasks": 2, "train_size": 100}}
    assert set(done.frame["method"]) == {"ewc [fisher_mode=batch]"}
    _no_training(monkeypatch)
    again = execute.execute(planned, tmp_path, data_dir=idx_root, progress=False)
    assert again.frame.equals(done.frame)
    (loaded,) = load_results(tmp_path)
    assert variant_of(loaded) == stored["purpose"]["variant"]
    assert set(classify_runs([loaded])["variants"]["method"]) == {"ewc [fisher_mode=batch, n_tasks=2, train_size=100]"}


def test_a_run_stored_without_its_purpose_gets_it_derived(idx_root, tmp_path):
    dhclib.run_many("split_mnist", "dhp", "0", "quick", "cpu", idx_root, tmp_path, progress=False, eta_init=0.1,
                    **SMALL)
    path = next((tmp_path / "runs").rglob("seed0-*.json"))
    record = json.loads(path.read_text())
    record.pop("purpose")  # as every run stored before the record existed
    path.write_text(json.dumps(record))
    (legacy,) = load_results(tmp_path)
    assert legacy.purpose == {} and variant_of(legacy) == config_difference(legacy.config) == dict(eta_init=0.1, **SMALL)


def test_a_damaged_file_is_named_set_aside_and_trained_again(idx_root, tmp_path):
    dhclib.run_many("split_mnist", "finetune", "0-1", "quick", "cpu", idx_root, tmp_path, progress=False, **SMALL)
    path = sorted((tmp_path / "runs").rglob("seed1-*.json"))[0]
    path.write_text('{"config": {"benchmark": "split_mn')  # a write cut short, e.g. a disk that filled up
    with pytest.warns(UserWarning, match=f"damaged result file {path}"):
        assert len(load_results(tmp_path)) == 1
    aside = tmp_path / "damaged" / path.relative_to(tmp_path).with_name(path.name + ".corrupt")
    assert aside.is_file() and not path.exists()
    df = dhclib.run_many("split_mnist", "finetune", "0-1", "quick", "cpu", idx_root, tmp_path, progress=False, **SMALL)
    assert sorted(df["seed"].unique()) == [0, 1] and path.is_file()  # trained again, stored again
    path.write_text("")  # damaged a second time: the first evidence is kept beside the second
    with pytest.warns(UserWarning, match="damaged result file"):
        assert len(load_results(tmp_path)) == 1
    assert aside.is_file() and aside.with_name(aside.name + ".1").is_file()


def test_a_legacy_record_is_described_without_resolving_its_config(idx_root, tmp_path, monkeypatch):
    """The store reads its own records alone: deriving a legacy record's variant resolves nothing (a record stays
    readable whatever today's validation says of its settings)."""
    dhclib.run_many("split_mnist", "ewc", "0", "quick", "cpu", idx_root, tmp_path, progress=False, lam=3.0,
                    **SMALL)
    path = next((tmp_path / "runs").rglob("seed0-*.json"))
    record = json.loads(path.read_text())
    record.pop("purpose")
    path.write_text(json.dumps(record))

    def refuse(*args, **kwargs):
        raise AssertionError("the store resolved a config to read its own record")

    monkeypatch.setattr(dhclib.runs.config, "resolve_config", refuse)
    (legacy,) = load_results(tmp_path)
    assert variant_of(legacy) == dict(lam=3.0, **SMALL)


def test_declared_values_are_the_resolved_paper_configuration():
    """What the store derives a legacy record's variant against is what resolve_config builds, for every
    registered benchmark, profile and method that can run there."""
    from dhclib import registry
    from dhclib.runs.config import resolve_config
    from dhclib.runs.difference import declared_values

    checked = 0
    for b, spec in registry.BENCHMARKS.items():
        for profile in spec.profiles:
            for m in registry.methods():
                try:
                    cfg = resolve_config(b, m, 0, profile).to_dict()
                except dhclib.ConfigError:  # a method the paper gives no lambda for there
                    continue
                declared = declared_values(b, m, profile)
                assert {k: v for k, v in cfg.items() if k in declared} == {
                    k: list(v) if isinstance(v, tuple) else v for k, v in declared.items() if k in cfg}, (b, profile, m)
                checked += 1
    assert checked > 20
