"""dhclib.runs.config: profiles (docs/method.md (benchmarks, strengths)) and validation. Every bad input is a ConfigError (or DataNotFoundError)
whose message says what was wrong and what is accepted (dhclib.errors)."""

from __future__ import annotations

import pytest

import dhclib
import dhclib.runs.unit
from dhclib.errors import ConfigError
from dhclib.runs.config import BENCHMARK_NAMES, METHODS, PROFILES, RunConfig, parse_seeds, resolve_config


def _resolve(benchmark="permuted_mnist", method="finetune", **overrides):
    return resolve_config(benchmark, method, 0, "quick", "cpu", **overrides)


# ---------------------------------------------------------------------------------------------------------------
# the paper's protocol (docs/method.md (benchmarks), §5)
# ---------------------------------------------------------------------------------------------------------------
def test_methods_are_table1s_eight():
    """Table 1's eight methods, each an (output layer, regulariser) pair (docs/method.md (baseline, consolidation))."""
    assert set(METHODS) == {"finetune", "dhp", "si", "dhp+si", "ewc", "dhp+ewc", "mas", "dhp+mas"}
    assert all(layer == ("dhp" if m.startswith("dhp") else "matched") for m, (layer, _) in METHODS.items())
    assert set(BENCHMARK_NAMES) == {"permuted_mnist", "imbalanced_permuted_mnist", "split_mnist", "vision_mixture",
                                    "split_cifar10_100"}
    assert set(PROFILES) >= {"paper", "quick"}
    # the paper's order (Table 1's columns, then Figure 8): listings, "all" and REPORT.md follow it
    assert list(BENCHMARK_NAMES) == ["permuted_mnist", "imbalanced_permuted_mnist", "split_mnist", "vision_mixture",
                                     "split_cifar10_100"]
    assert list(METHODS) == ["finetune", "dhp", "si", "dhp+si", "ewc", "dhp+ewc", "mas", "dhp+mas"]


@pytest.mark.parametrize("benchmark, n_tasks, hidden, early, min_epochs, max_epochs, val", [
    ("permuted_mnist", 10, (400, 400), True, 10, None, 0.1),
    ("imbalanced_permuted_mnist", 10, (400, 400), True, 10, None, 0.1),
    ("split_mnist", 5, (256, 256), False, 10, 10, 0.0),
])
def test_paper_profile_follows_spec_table(benchmark, n_tasks, hidden, early, min_epochs, max_epochs, val):
    """docs/method.md (benchmarks)'s table: tasks, MLP widths, batch 64, SGD lr 0.01, at least 10 epochs with early stopping on a 10%
    validation split (patience 5) for the permuted benchmarks, exactly 10 epochs for Split MNIST; eta 0.001."""
    cfg = resolve_config(benchmark, "dhp", 0, "paper", "cpu")
    assert (cfg.n_tasks, cfg.hidden, cfg.early_stopping, cfg.min_epochs) == (n_tasks, hidden, early, min_epochs)
    assert cfg.batch_size == 64 and cfg.lr == 0.01 and cfg.val_fraction == val and cfg.eta_init == 1e-3
    assert cfg.train_size is None and cfg.test_size is None
    if max_epochs is not None:
        assert cfg.max_epochs == max_epochs
    if early:
        assert cfg.patience == 5 and cfg.select_on == "val" and cfg.max_epochs >= 10
    assert cfg.imbalance == ("table2" if benchmark.startswith("imbalanced") else None)


@pytest.mark.parametrize("benchmark, ewc, si, xi, mas", [
    ("permuted_mnist", 100, 0.1, 0.1, 0.1),
    ("imbalanced_permuted_mnist", 400, 1.0, 0.1, 0.1),
    ("split_mnist", 400, 1.0, 0.001, 1.5),
])
def test_consolidation_strengths_follow_spec5(benchmark, ewc, si, xi, mas):
    """docs/method.md (strengths): the same lambda (and SI's xi) with and without DHP."""
    for prefix in ("", "dhp+"):
        assert resolve_config(benchmark, prefix + "ewc").lam == ewc
        assert resolve_config(benchmark, prefix + "si").lam == si
        assert resolve_config(benchmark, prefix + "si").si_xi == xi
        assert resolve_config(benchmark, prefix + "mas").lam == mas
    assert resolve_config(benchmark, "ewc").ewc_gamma == 1.0  # docs/method.md (consolidation): gamma = 1 unless set


def test_fields_that_do_not_apply_are_none():
    """A non-DHP method has no eta fields, a method without SI has no xi: the config key depends only on what
    the run used."""
    fine = _resolve(method="finetune")
    assert fine.eta_init is None and fine.lam is None and fine.si_xi is None and fine.importance_samples is None
    ewc = _resolve(method="ewc")
    assert ewc.si_xi is None and ewc.eta_init is None and ewc.fisher_mode == "exact"


def test_config_key_tracks_what_matters():
    """Same config -> same key; another value -> another key; download is not part of the key."""
    assert _resolve().key() == _resolve().key()
    assert _resolve(lr=0.02).key() != _resolve().key()
    assert resolve_config("permuted_mnist", "finetune", 1, "quick", "cpu").key() != _resolve().key()
    assert _resolve(download=False).key() == _resolve().key()
    assert "download" not in _resolve().to_dict()


# ---------------------------------------------------------------------------------------------------------------
# errors: unknown names
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, bad, accepted", [
    (("permuted", "finetune", 0, "quick"), "permuted", BENCHMARK_NAMES),
    (("permuted_mnist", "dhp+lwf", 0, "quick"), "dhp+lwf", tuple(METHODS)),
    (("permuted_mnist", "finetune", 0, "fast"), "fast", tuple(PROFILES)),
])
def test_unknown_names(args, bad, accepted):
    """Unknown benchmark, method or profile: ConfigError naming the bad value and listing every accepted one."""
    with pytest.raises(dhclib.ConfigError) as info:
        resolve_config(*args)
    msg = str(info.value)
    assert "accepted" in msg and repr(bad) in msg, msg
    assert all(name in msg for name in accepted), msg


def test_unknown_names_through_run(idx_root):
    """dhclib.run reports them the same way, before reading any data."""
    with pytest.raises(dhclib.ConfigError, match="unknown method 'nope'; accepted: finetune"):
        dhclib.run("permuted_mnist", "nope", 0, "quick", "cpu", data_dir=idx_root)
    with pytest.raises(dhclib.ConfigError, match="unknown device"):
        dhclib.run("permuted_mnist", "finetune", 0, "quick", "tpu", data_dir=idx_root)


def test_config_key_ignores_fields_that_are_none(monkeypatch):
    """A field added later with default None (not applicable) must not change the keys of stored results."""
    cfg = _resolve()
    before = cfg.key()
    original = RunConfig.to_dict
    monkeypatch.setattr(RunConfig, "to_dict", lambda self: dict(original(self), some_future_option=None))
    assert cfg.key() == before
    monkeypatch.setattr(RunConfig, "to_dict", lambda self: dict(original(self), some_future_option=3))
    assert cfg.key() != before


def test_unknown_override_key():
    """An unknown override key: ConfigError naming it and listing the accepted keys."""
    with pytest.raises(dhclib.ConfigError) as info:
        _resolve(learning_rate=0.1)
    msg = str(info.value)
    assert "'learning_rate'" in msg and "accepted" in msg
    for key in ("lr", "max_epochs", "min_epochs", "train_size", "trace_every"):
        assert key in msg


@pytest.mark.parametrize("method, key, value", [
    ("finetune", "eta_init", 0.01),
    ("ewc", "si_xi", 0.1),
    ("finetune", "lam", 1.0),
    ("si", "fisher_mode", "true"),
    ("mas", "ewc_gamma", 0.9),
])
def test_override_that_does_not_apply_to_the_method(method, key, value):
    """An override of a field the method does not have (eta for a non-DHP method, xi for a non-SI method, ...)
    is a ConfigError naming the key and the method."""
    with pytest.raises(dhclib.ConfigError) as info:
        _resolve(method=method, **{key: value})
    msg = str(info.value)
    assert repr(key) in msg and repr(method) in msg


@pytest.mark.parametrize("method, key, value", [("finetune", "eta_init", 0.01), ("ewc", "si_xi", 0.1)])
def test_inapplicable_override_message_lists_what_is_accepted(method, key, value):
    """dhclib.errors: each error says what is accepted. The inapplicable-override message should list the keys
    that do apply to the method, as the unknown-key message does."""
    with pytest.raises(dhclib.ConfigError) as info:
        _resolve(method=method, **{key: value})
    msg = str(info.value)
    assert "accepted" in msg and "lr" in msg, msg


def test_imbalance_on_another_benchmark():
    """imbalance applies to imbalanced_permuted_mnist only."""
    with pytest.raises(dhclib.ConfigError, match="imbalanced_permuted_mnist only"):
        _resolve(imbalance="random")
    with pytest.raises(dhclib.ConfigError, match="'table2' or 'random'"):
        _resolve(benchmark="imbalanced_permuted_mnist", imbalance="fresh")


# ---------------------------------------------------------------------------------------------------------------
# errors: values out of range
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, overrides, expect", [
    ("finetune", dict(lr=0), "lr must be > 0"),
    ("finetune", dict(lr=-1), "lr must be > 0"),
    ("finetune", dict(lr="fast"), "lr must be a finite number, got 'fast'"),
    ("finetune", dict(lr=True), "lr must be a finite number, got True"),
    ("finetune", dict(min_epochs=0), "min_epochs must be an integer >= 1"),
    ("finetune", dict(min_epochs=0, max_epochs=0), "min_epochs must be an integer >= 1"),
    ("finetune", dict(min_epochs=5, max_epochs=3), "max_epochs must be an integer >= min_epochs (5)"),
    ("dhp", dict(eta_init=0), "eta_init must be > 0"),
    ("dhp", dict(eta_init=-0.001), "eta_init must be > 0"),
    ("finetune", dict(n_tasks=0), "n_tasks must be an integer"),
    ("finetune", dict(val_fraction=1.0), "val_fraction must be in [0, 1)"),
    ("finetune", dict(batch_size=0), "batch_size must be an integer >= 1"),
    ("finetune", dict(patience=0), "patience must be an integer >= 1"),
    ("finetune", dict(train_size=0), "train_size must be a positive integer or None"),
    ("finetune", dict(train_size=True), "train_size must be a positive integer or None"),
    ("finetune", dict(select_on="train"), "select_on must be 'val' or 'test'"),
    ("finetune", dict(val_fraction=0.0), "needs val_fraction > 0"),
    ("finetune", dict(hidden=[400, 0]), "hidden must be a non-empty list of positive integers"),
    ("dhp", dict(eta_grad_horizon=0), "eta_grad_horizon must be an integer >= 1 or 'full'"),
    ("si", dict(si_xi=0), "si_xi must be > 0"),
    ("ewc", dict(lam=-1), "lam must be >= 0"),
    ("ewc", dict(ewc_gamma=1.5), "ewc_gamma must be in [0, 1]"),
    ("ewc", dict(fisher_mode="empirical"), "unknown fisher_mode 'empirical'; accepted: exact, sample, true, batch"),
    ("mas", dict(importance_samples=0), "importance_samples must be a positive integer or 'all'"),
    ("finetune", dict(trace_every=0), "trace_every must be an integer >= 1"),
])
def test_values_out_of_range(method, overrides, expect):
    """Out-of-range values: ConfigError saying what is accepted."""
    with pytest.raises(dhclib.ConfigError) as info:
        _resolve(method=method, **overrides)
    assert expect in str(info.value)


@pytest.mark.parametrize("hidden", [5, None])
def test_hidden_not_a_list_is_a_config_error(hidden):
    """hidden given as a single number (e.g. ``--set hidden=400``) is a ConfigError, not a TypeError."""
    with pytest.raises(dhclib.ConfigError, match="hidden"):
        _resolve(hidden=hidden)


def test_seed_as_override_is_a_config_error(monkeypatch, tmp_path):
    """run_many's keyword arguments are overrides; ``seed`` is not one (seeds are run_many's ``seeds`` argument,
    the CLI's ``--seeds``). Passing it (as ``--set seed=3`` does) must be a ConfigError naming seeds, not a
    TypeError from resolve_config's signature."""

    def no_training(*args, **kwargs):
        raise AssertionError("a run was started")

    monkeypatch.setattr(dhclib.runs.unit, "run_config", no_training)
    with pytest.raises(dhclib.ConfigError, match="seed"):
        dhclib.run_many("permuted_mnist", "finetune", "0", "quick", "cpu", data_dir=tmp_path, out_dir=tmp_path,
                        progress=False, seed=3)


def test_n_tasks_beyond_the_benchmark_is_caught_before_any_run(monkeypatch, tmp_path):
    """run_many: "all configs are resolved and validated before any training starts". Split MNIST has 5 tasks,
    so n_tasks=6 must fail before the Permuted MNIST runs of the same batch are trained."""

    def no_training(*args, **kwargs):
        raise AssertionError("a run was started although a config of the batch is invalid")

    monkeypatch.setattr(dhclib.runs.unit, "run_config", no_training)
    with pytest.raises(dhclib.ConfigError, match="n_tasks"):
        dhclib.run_many(["permuted_mnist", "split_mnist"], "finetune", "0", "quick", "cpu", data_dir=tmp_path,
                        out_dir=tmp_path / "out", progress=False, n_tasks=6)


# ---------------------------------------------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seeds, expected", [
    ("0-9", list(range(10))), ("3", [3]), ("0,2,5", [0, 2, 5]), ("1-3,7", [1, 2, 3, 7]), ("4-4", [4]),
    (2, [2]), ([0, 1], [0, 1]), (range(3), [0, 1, 2]),
])
def test_parse_seeds(seeds, expected):
    """Seeds as an int, a list, or '0-9' / '3' / '0,2,5' (README)."""
    assert parse_seeds(seeds) == expected


@pytest.mark.parametrize("seeds", ["9-3", "a-b", "1-", "-1", "", "0,,1", "1.5", -1, [0, -2], [True], True, "0-x"])
def test_bad_seeds(seeds):
    """A seed range that is not a range, or a negative seed: ConfigError showing the accepted forms."""
    with pytest.raises(dhclib.ConfigError) as info:
        parse_seeds(seeds)
    msg = str(info.value)
    assert "seed" in msg
    assert any(s in msg for s in ("'0-9'", ">=", "non-negative", "integers")), msg


def test_empty_seed_range_says_why():
    """'9-3' is an empty range: the message says the end must be >= the start."""
    with pytest.raises(dhclib.ConfigError, match="end must be >= the start"):
        parse_seeds("9-3")


@pytest.mark.parametrize("seed", [-1, 1.0, "0", True])
def test_bad_single_seed(seed, idx_root):
    """dhclib.run with a negative (or non-integer) seed: ConfigError."""
    with pytest.raises(dhclib.ConfigError, match="seed must be a non-negative integer"):
        dhclib.run("permuted_mnist", "finetune", seed, "quick", "cpu", data_dir=idx_root)


# ---------------------------------------------------------------------------------------------------------------
# missing data
# ---------------------------------------------------------------------------------------------------------------
def test_missing_data_through_run(tmp_path):
    """dhclib.run against a root without the files and download=False: DataNotFoundError naming the directory."""
    with pytest.raises(dhclib.DataNotFoundError) as info:
        dhclib.run("permuted_mnist", "finetune", 0, "quick", "cpu", data_dir=tmp_path, download=False)
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)


def test_missing_data_offline_with_download_on(tmp_path, offline):
    """With download on but no network, the run fails with DataNotFoundError (not a torchvision RuntimeError)."""
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(dhclib.DataNotFoundError, match="download"):
        dhclib.run("split_mnist", "finetune", 0, "quick", "cpu", data_dir=root)
    assert list(root.iterdir()) == []  # nothing written into the data root


# --- inputs a user mistypes (issue #8, item 4) ------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("eta_per_connection", "False"), ("early_stopping", "False"),
                                          ("eta_clamp", 1), ("download", "maybe")])
def test_a_boolean_takes_only_true_or_false(field, value):
    with pytest.raises(ConfigError, match=f"{field} must be true or false, got {value!r}"):
        resolve_config("split_mnist", "dhp", 0, "quick", "cpu", **{field: value})


@pytest.mark.parametrize("field, method", [("lr", "dhp"), ("eta_init", "dhp"), ("lam", "ewc"), ("si_xi", "si"),
                                           ("ewc_gamma", "ewc")])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_an_infinite_or_nan_value_is_rejected(field, method, value):
    with pytest.raises(ConfigError, match=f"{field} must be a finite number"):
        resolve_config("split_mnist", method, 0, "quick", "cpu", **{field: value})


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
def test_an_infinite_number_spelled_as_text_is_refused_as_not_finite(value):
    """``--set lr=inf`` reaches the settings as the text 'inf' (JSON spells it Infinity): it was refused as
    "lr must be > 0", which says nothing of what was wrong with it."""
    with pytest.raises(ConfigError, match=f"^lr must be a finite number, got {value!r}$"):
        resolve_config("split_mnist", "dhp", 0, "quick", "cpu", lr=value)


def test_equivalent_spellings_give_one_key():
    key = resolve_config("split_mnist", "ewc", 0, "quick", "cpu").key()
    assert resolve_config("split_mnist", "ewc", 0, "quick", "cpu:0").key() == key
    assert resolve_config("split_mnist", "ewc", 0, "quick", "cpu", optimizer="sgd").key() == key
    assert resolve_config("split_mnist", "ewc", 0, "quick", "cpu", optimizer="adam").key() != key


def test_python_spellings_on_the_command_line():
    from dhclib.cli import parse_overrides

    assert parse_overrides(["eta_clamp=False", "early_stopping=True", "x=None", "y=false", "z=full"]) == {
        "eta_clamp": False, "early_stopping": True, "x": None, "y": False, "z": "full"}
