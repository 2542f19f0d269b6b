"""The resumable result store (dhclib.run_many, load_results) and the command line (``python -m dhclib``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dhclib
import dhclib.runs.unit
from dhclib.cli import main

TIDY_COLUMNS = ["benchmark", "method", "base_method", "variant", "seed", "profile", "config_key", "after_task", "task",
                "accuracy"]
SMALL = dict(n_tasks=2, train_size=100)


def _all_files(root: Path) -> list[Path]:
    return sorted(Path(d) / f for d, _, files in os.walk(root) for f in files) if root.exists() else []


def _json_files(root: Path) -> list[Path]:
    return [p for p in _all_files(root) if p.suffix == ".json"]


def _run_many(out, data_dir, methods="finetune,dhp", seeds="0-1", **overrides):
    return dhclib.run_many("split_mnist", methods, seeds, "quick", "cpu", data_dir=data_dir, out_dir=out,
                           progress=False, **dict(SMALL, **overrides))


def _forbid_training(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("run_config called: a stored run was trained again")

    monkeypatch.setattr(dhclib.runs.unit, "run_config", no_training)


# ---------------------------------------------------------------------------------------------------------------
# run_many: the result store
# ---------------------------------------------------------------------------------------------------------------
def test_run_many_stores_one_json_per_run(idx_root, tmp_path):
    """2 methods x 2 seeds -> 4 JSON files, written atomically (no leftover .tmp), and a tidy frame with one row
    per tested entry of R (T=2: 3 entries per run)."""
    out = tmp_path / "store"
    df = _run_many(out, idx_root)
    files = _json_files(out)
    assert len(files) == 4 and _all_files(out) == files
    assert not [p for p in _all_files(out) if ".tmp" in p.name]
    names = {(p.parent.name, p.name.split("-")[0]) for p in files}
    assert names == {("finetune", "seed0"), ("finetune", "seed1"), ("dhp", "seed0"), ("dhp", "seed1")}
    assert all(p.parent.parent.name == "split_mnist" for p in files)

    assert list(df.columns) == TIDY_COLUMNS
    assert len(df) == 4 * 3
    assert set(map(tuple, df[["method", "seed"]].drop_duplicates().to_numpy().tolist())) == {
        ("finetune", 0), ("finetune", 1), ("dhp", 0), ("dhp", 1)}
    assert set(map(tuple, df[["after_task", "task"]].drop_duplicates().to_numpy().tolist())) == {(0, 0), (1, 0), (1, 1)}
    assert (df["benchmark"] == "split_mnist").all() and (df["profile"] == "quick").all()
    assert df["accuracy"].between(0, 1).all()
    # the frame agrees with the stored files
    for p in files:
        stored = json.loads(p.read_text())
        c = stored["config"]
        assert p.name == f"seed{c['seed']}-{c['key']}.json"
        rows = df[(df.method == c["method"]) & (df.seed == c["seed"])]
        assert (rows["config_key"] == c["key"]).all()
        for row in rows.itertuples():
            assert row.accuracy == stored["R"][row.after_task][row.task]
        assert stored["R"][0][1] is None  # untested entries stored as null
        assert {"avg_acc", "bwt", "curve", "traces", "epochs", "tasks", "versions", "wall_time"} <= set(stored)


def test_second_call_trains_nothing_and_returns_the_same_frame(idx_root, tmp_path, monkeypatch):
    """A second run_many over stored runs trains nothing and returns the same frame (read from the store)."""
    out = tmp_path / "store"
    first = _run_many(out, idx_root)
    before = {p: p.stat().st_mtime_ns for p in _json_files(out)}
    _forbid_training(monkeypatch)
    second = _run_many(out, idx_root)
    pd.testing.assert_frame_equal(first, second)
    assert {p: p.stat().st_mtime_ns for p in _json_files(out)} == before


def test_load_results_round_trip(idx_root, tmp_path):
    """load_results reads every stored run back with its R, config and traces."""
    out = tmp_path / "store"
    _run_many(out, idx_root, methods="dhp", seeds="0")
    direct = dhclib.run("split_mnist", "dhp", 0, "quick", "cpu", data_dir=idx_root, **SMALL)
    (loaded,) = dhclib.load_results(out)
    np.testing.assert_array_equal(loaded.R, direct.R)
    assert loaded.config == direct.config
    assert loaded.key == direct.key
    assert list(loaded.traces.columns) == list(direct.traces.columns)
    assert loaded.traces["loss"].tolist() == direct.traces["loss"].tolist()


def test_interrupted_batch_resumes(idx_root, tmp_path, monkeypatch):
    """A batch interrupted during its second run keeps the first stored run; the next call trains only the three
    missing runs and returns the full frame."""
    out = tmp_path / "store"
    real = dhclib.runs.unit.run_config
    calls = []

    def interrupted(cfg, *args, **kwargs):
        calls.append((cfg.method, cfg.seed))
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(dhclib.runs.unit, "run_config", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run_many(out, idx_root)
    assert len(_json_files(out)) == 1
    assert not [p for p in _all_files(out) if ".tmp" in p.name]

    calls.clear()

    def counting(cfg, *args, **kwargs):
        calls.append((cfg.method, cfg.seed))
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(dhclib.runs.unit, "run_config", counting)
    df = _run_many(out, idx_root)
    assert len(calls) == 3 and ("finetune", 0) not in calls
    assert len(_json_files(out)) == 4 and len(df) == 12
    fresh = _run_many(tmp_path / "fresh", idx_root)
    pd.testing.assert_frame_equal(df, fresh)


def test_changed_override_is_a_new_run(idx_root, tmp_path, monkeypatch):
    """Another config (here max_epochs) has another key: it is trained and stored beside the first, not skipped."""
    out = tmp_path / "store"
    _run_many(out, idx_root, methods="finetune", seeds="0")
    _run_many(out, idx_root, methods="finetune", seeds="0", max_epochs=4, min_epochs=4)
    assert len(_json_files(out)) == 2
    assert len(dhclib.load_results(out)) == 2


def test_run_many_validates_everything_first(idx_root, tmp_path, monkeypatch):
    """A bad method or seed anywhere in the batch fails before any run starts."""
    _forbid_training(monkeypatch)
    with pytest.raises(dhclib.ConfigError, match="unknown method 'bogus'"):
        _run_many(tmp_path, idx_root, methods="finetune,bogus")
    with pytest.raises(dhclib.ConfigError, match="seed"):
        _run_many(tmp_path, idx_root, seeds="9-3")
    with pytest.raises(dhclib.ConfigError, match="lr"):
        _run_many(tmp_path, idx_root, lr=-1)
    assert _all_files(tmp_path / "runs") == []


# ---------------------------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------------------------
def _cli_run_args(out, data_dir, *extra):
    return ["run", "--benchmark", "split_mnist", "--method", "finetune,dhp", "--seeds", "0-1", "--profile", "quick",
            "--out", str(out), "--set", "n_tasks=2", "--set", "train_size=300", "--no-progress",
            "--data-dir", str(data_dir), *extra]


def test_cli_run_stores_runs_and_prints_summary(idx_root, tmp_path, capsys, monkeypatch):
    """docs/guide.md, "Command line": ``python -m dhclib run ...`` exits 0, prints the mean ± SEM summary per method and
    stores the 4 runs; run again, it trains nothing and prints the same summary; ``summary`` prints it too."""
    out = tmp_path / "cli-store"
    assert main(_cli_run_args(out, idx_root)) == 0
    printed = capsys.readouterr()
    assert len(_json_files(out)) == 4
    lines = printed.out.strip().splitlines()
    assert len(lines) == 3  # header + one row per method
    assert "avg_acc_mean" in lines[0] and "bwt_mean" in lines[0] and "trials" in lines[0]
    assert any(ln.split()[:2] == ["split_mnist", "finetune"] for ln in lines[1:])
    assert any(ln.split()[:2] == ["split_mnist", "dhp"] for ln in lines[1:])
    assert all("0,1" in ln for ln in lines[1:])  # the seeds of each row

    _forbid_training(monkeypatch)
    assert main(_cli_run_args(out, idx_root)) == 0
    assert capsys.readouterr().out == printed.out
    assert main(["summary", "--out", str(out)]) == 0
    assert sorted(capsys.readouterr().out.strip().splitlines()[1:]) == sorted(lines[1:])


def test_cli_summary_keeps_grid_points_apart_from_table1_rows(idx_root, tmp_path, capsys):
    """``summary`` gives each configuration its own row, named by what differs from the profile: a lambda-grid
    point is never averaged into the method's row (as it was: Split MNIST's ewc showed 22 "trials")."""
    out = tmp_path / "store"
    small = ["--set", "n_tasks=2", "--set", "train_size=300", "--profile", "quick", "--out", str(out),
             "--no-progress", "--data-dir", str(idx_root), "--seeds", "0"]
    assert main(["run", "--benchmark", "split_mnist", "--method", "ewc", *small]) == 0
    assert main(["grid", "--benchmark", "split_mnist", "--method", "ewc", "--param", "lam", "--values", "1.0",
                 *small]) == 0
    capsys.readouterr()
    assert main(["summary", "--out", str(out)]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(rows) == 2
    assert any("ewc [lam=1.0, n_tasks=2, train_size=300]" in r for r in rows)
    assert any("ewc [n_tasks=2, train_size=300]" in r for r in rows)


def test_module_entry_point_lists_names():
    """``python -m dhclib list`` (the module entry point) prints the benchmarks, methods and profiles."""
    proc = subprocess.run([sys.executable, "-m", "dhclib", "list"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("permuted_mnist", "imbalanced_permuted_mnist", "split_mnist", "dhp+ewc", "finetune", "quick",
                 "paper"):
        assert name in proc.stdout
    assert "Traceback" not in proc.stderr


def _expect_cli_error(argv, capsys, *fragments):
    """The CLI exits 2 with one line ``error: ...`` on stderr (no traceback) containing every fragment."""
    try:
        code = main(argv)
    except SystemExit:
        raise
    except BaseException as exc:  # would be a traceback on the command line
        pytest.fail(f"uncaught {type(exc).__name__}: {exc} (the command line would print a traceback)")
    captured = capsys.readouterr()
    assert code == 2, (code, captured.err)
    err = captured.err.strip()
    assert "Traceback" not in captured.err
    assert err.startswith("error: "), err
    assert len(err.splitlines()) == 1, f"error message spans several lines:\n{err}"
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


@pytest.mark.parametrize("change, fragments", [
    (("--method", "finetune,bogus"), ("unknown method 'bogus'", "accepted", "dhp+mas")),
    (("--benchmark", "cifar"), ("unknown benchmark 'cifar'", "split_mnist")),
    (("--profile", "fast"), ("unknown profile 'fast'", "quick")),
    (("--seeds", "9-3"), ("seed range",)),
    (("--seeds", "a-b"), ("'0-9'",)),
    (("--seeds", "1-"), ("'0-9'",)),
    (("--seeds", "-1"), ("seeds",)),
    (("--set", "lr=-1"), ("lr must be > 0",)),
    (("--set", "lr=abc"), ("lr must be a finite number, got 'abc'",)),
    (("--set", "lr=inf"), ("lr must be a finite number, got 'inf'",)),  # issue #28: was "must be > 0"
    (("--set", "min_epochs=0"), ("min_epochs must be an integer >= 1",)),
    (("--set", "max_epochs=1"), ("max_epochs must be an integer >= min_epochs",)),
    (("--set", "learning_rate=0.1"), ("unknown override 'learning_rate'", "accepted")),
    (("--set", "eta_init=0.01"), ("eta_init", "does not apply")),
    (("--set", "lr"), ("--set expects key=value",)),
    (("--device", "tpu"), ("unknown device",)),
])
def test_cli_bad_input_exits_2_with_one_line(idx_root, tmp_path, capsys, monkeypatch, change, fragments):
    """Every bad input exits 2 with a one-line ``error: ...`` on stderr naming what is accepted, and trains
    nothing."""
    _forbid_training(monkeypatch)
    argv = _cli_run_args(tmp_path / "out", idx_root)
    flag, value = change
    if flag != "--set" and flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    if change == ("--set", "eta_init=0.01"):
        argv[argv.index("--method") + 1] = "finetune"
    _expect_cli_error(argv, capsys, *fragments)
    assert _json_files(tmp_path / "out") == []


@pytest.mark.parametrize("value", ["hidden=400", "seed=3", "device=cpu"])
def test_cli_bad_set_values_that_are_not_config_errors_yet(idx_root, tmp_path, capsys, monkeypatch, value):
    """``--set hidden=400`` (a number, not a list), ``--set seed=3`` and ``--set device=cpu`` (options of their
    own, not overrides) must also exit 2 with one line, not a TypeError traceback."""
    _forbid_training(monkeypatch)
    _expect_cli_error(_cli_run_args(tmp_path / "out", idx_root, "--set", value), capsys, value.split("=")[0])


def test_cli_missing_data_without_download(tmp_path, capsys):
    """A data dir without the files (download off): exit 2, one line naming the directory and the files."""
    missing = tmp_path / "no-data"
    argv = _cli_run_args(tmp_path / "out", missing, "--set", "download=false")
    _expect_cli_error(argv, capsys, str(missing / "MNIST" / "raw"), "train-images-idx3-ubyte")
    assert _json_files(tmp_path / "out") == []


def test_cli_missing_data_offline(tmp_path, capsys, offline):
    """A missing data dir with download on (the default) on a machine without network: exit 2 with ONE line
    naming the directory and the files (torchvision's multi-line download error folded into it)."""
    missing = tmp_path / "no-data"
    _expect_cli_error(_cli_run_args(tmp_path / "out", missing), capsys, str(missing / "MNIST" / "raw"),
                      "t10k-labels-idx1-ubyte")


def test_cli_summary_of_an_empty_store(tmp_path, capsys):
    """``summary`` over a store without runs: exit 2, one line."""
    _expect_cli_error(["summary", "--out", str(tmp_path)], capsys, "no stored runs")
