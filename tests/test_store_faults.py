"""What a cluster does to a store, and what dhc does then (issue #8, item 3): a store that is a file or cannot be
written fails before anything trains; a failed write is one line and leaves no temporary file; dead processes'
temporary files are cleaned up; the command line says how many runs diverged, exits 3 on request, and Ctrl-C
says what was stored."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dhclib
import dhclib.runs.build
import dhclib.runs.unit
from dhclib.cli import main
from dhclib.errors import DhcError
from dhclib.runs import claims
from dhclib.runs.store import check_store, write_atomic

SMALL = dict(n_tasks=2, train_size=100, test_size=50, max_epochs=1, min_epochs=1)


def _forbid_training(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a run was trained although the store cannot take it")

    monkeypatch.setattr(dhclib.runs.unit, "run_stack", no_training)


def test_a_store_that_is_a_file_fails_before_anything_trains(idx_root, tmp_path, monkeypatch):
    _forbid_training(monkeypatch)
    out = tmp_path / "store"
    out.write_text("not a folder")
    with pytest.raises(DhcError, match=f"the result store {out} is a file, not a folder"):
        dhclib.run_many("split_mnist", "finetune", "0", "quick", "cpu", idx_root, out, progress=False, **SMALL)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_store_that_cannot_be_written_fails_before_anything_trains(idx_root, tmp_path, monkeypatch):
    _forbid_training(monkeypatch)
    out = tmp_path / "store"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(DhcError, match="cannot be written"):
            dhclib.run_many("split_mnist", "finetune", "0", "quick", "cpu", idx_root, out, progress=False, **SMALL)
    finally:
        out.chmod(0o700)


def test_a_data_error_leaves_no_store_folder_behind(tmp_path, capsys):
    """Issue #28: a data root without the data (an empty DHC_DATA_DIR) was one line, exit 2, but left the store's
    empty folder behind, made before the data was read. Nothing can train, so nothing is made."""
    empty, out = tmp_path / "empty", tmp_path / "store"
    empty.mkdir()
    assert main([*_cli_run(empty, out), "--set=download=false"]) == 2
    assert "train-images-idx3-ubyte" in capsys.readouterr().err
    assert not out.exists()


def test_a_failed_write_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "runs" / "b" / "m" / "seed0-k.json"

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(DhcError, match=f"cannot write {path}: No space left on device"):
        write_atomic(path, {"a": 1})
    assert list(path.parent.iterdir()) == []


def _cli_run(root, out, seeds: str = "0") -> list[str]:
    return ["run", "--benchmark", "split_mnist", "--method", "finetune", "--seeds", seeds, "--profile", "quick",
            "--device", "cpu", "--data-dir", str(root), "--out", str(out), "--no-progress",
            *[f"--set={k}={v}" for k, v in SMALL.items()]]


@pytest.mark.parametrize("step", ["write", "link"])
def test_a_full_disk_at_claim_time_is_one_line_exit_2_and_leaves_no_litter(idx_root, tmp_path, capsys, monkeypatch,
                                                                          step):
    """D5 (issue #28): the claim's unique file is half written, or its link finds no room: one line, exit 2, and
    no ``.claim.<token>`` file left (it was a raw OSError, exit 1, and the file stayed)."""
    _forbid_training(monkeypatch)
    real_write = Path.write_text

    def full_disk_write(self, data, *args, **kwargs):
        if ".claim." not in self.name:
            return real_write(self, data, *args, **kwargs)
        real_write(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    def full_disk_link(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if step == "write":
        monkeypatch.setattr(Path, "write_text", full_disk_write)
    else:
        monkeypatch.setattr(claims.os, "link", full_disk_link)
    assert main(_cli_run(idx_root, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot claim ") and "No space left on device" in err[0], err
    assert not [p for p in tmp_path.rglob("*") if ".claim." in p.name]


def test_dead_processes_temporary_files_are_removed_only_on_their_own_host(tmp_path):
    """On a store several hosts share, a PID means something only on its own host: a temporary file of another
    host is never removed (its writer may be alive there), one of this host only when its process is gone."""
    folder = tmp_path / "runs" / "split_mnist" / "dhp"
    folder.mkdir(parents=True)
    here = socket.gethostname()
    dead = folder / f".seed0-abc.json.{here}.999999.tmp"  # no such process
    alive = folder / f".seed1-abc.json.{here}.{os.getpid()}.tmp"  # a writer at work
    elsewhere = folder / ".seed2-abc.json.node-7.cluster.999999.tmp"  # a writer on another node
    for tmp in (dead, alive, elsewhere):
        tmp.write_text("{")
    check_store(tmp_path)
    assert not dead.exists() and alive.exists() and elsewhere.exists()


def test_a_temporary_file_is_named_by_its_host_and_process(tmp_path, monkeypatch):
    written = []
    real_replace = os.replace

    def replace(src, dst):
        written.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    write_atomic(tmp_path / "seed0-k.json", {"a": 1})
    assert written == [f".seed0-k.json.{socket.gethostname()}.{os.getpid()}.tmp"]


def test_the_command_line_counts_the_diverged_and_can_fail_on_them(idx_root, tmp_path, capsys):
    args = ["run", "--benchmark", "split_mnist", "--method", "finetune", "--seeds", "0", "--profile", "quick",
            "--device", "cpu", "--data-dir", str(idx_root), "--out", str(tmp_path), "--no-progress",
            "--set", "lr=1e4", *[f"--set={k}={v}" for k, v in SMALL.items()]]  # lr far too large: it diverges
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"1 run(s) diverged; their records are under {Path(tmp_path) / 'diverged'}" in err
    assert main([*args, "--fail-on-diverge"]) == 3


def test_ctrl_c_says_what_is_stored_and_how_to_resume(idx_root, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dhclib.runs.unit, "run_stack", interrupted)
    args = ["run", "--benchmark", "split_mnist", "--method", "finetune", "--seeds", "0", "--profile", "quick",
            "--device", "cpu", "--data-dir", str(idx_root), "--out", str(tmp_path), "--no-progress",
            *[f"--set={k}={v}" for k, v in SMALL.items()]]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"interrupted: 0 run(s) are stored under {tmp_path}; run the same command "
                                        "again to resume (the run in progress is lost, nothing else)"]


@pytest.mark.slow
def test_a_result_damaged_after_it_was_stored_is_trained_again(idx_root, tmp_path, monkeypatch):
    """A worker stores a run, then its file is damaged before the driver reads it back: the driver sets it aside
    (named) and trains the run again instead of silently leaving it out of the frame."""
    from dhclib.runs import unit

    out = tmp_path / "store"
    real = unit.train_and_store
    calls = []

    def store_then_damage(plans, out_dir, *args, **kwargs):  # as a worker does: results stay in the store
        outcomes = [o._replace(result=None) for o in real(plans, out_dir, *args, **kwargs)]
        if not calls:
            next(Path(out_dir).glob("runs/*/*/*.json")).write_text("{ truncated")
        calls.append(len(plans))
        return outcomes

    monkeypatch.setattr(unit, "train_and_store", store_then_damage)
    with pytest.warns(UserWarning, match="damaged result file"):
        df = dhclib.run_many("split_mnist", "finetune", "0", "quick", "cpu", idx_root, out, progress=False, **SMALL)
    assert calls == [1, 1] and df.groupby(["method", "seed"]).ngroups == 1
    assert len(list(out.glob("damaged/**/*.json*"))) == 1


def test_the_data_of_every_benchmark_is_read_before_anything_trains(idx_root, tmp_path, monkeypatch):
    """A batch over Split MNIST (data here) and the Vision Mixture (no notMNIST here) stops at its start, naming
    notMNIST's missing files, instead of training Split MNIST first and failing at the Vision Mixture."""
    _forbid_training(monkeypatch)
    with pytest.raises(dhclib.DataNotFoundError, match="notMNIST data not found in .*Missing: "):
        dhclib.run_many("split_mnist,vision_mixture", "finetune", "0", "quick", "cpu", idx_root, tmp_path,
                        progress=False, download=False, **SMALL)
    assert not list(tmp_path.glob("runs/*/*/*.json"))


def test_the_vision_mixture_reads_only_the_datasets_of_its_tasks(idx_root, tmp_path, monkeypatch):
    """``vision_tasks=["mnist"]`` needs MNIST alone: the check reads what the builder reads, no more."""
    read = []
    from dhclib.data import vision

    monkeypatch.setitem(vision.VISION_DATASETS, "mnist", lambda *a: read.append("mnist") or {})
    monkeypatch.setitem(vision.VISION_DATASETS, "notmnist", lambda *a: read.append("notmnist") or {})
    cfg = dhclib.runs.config.resolve_config("vision_mixture", "finetune", 0, "quick", "cpu", vision_tasks=["mnist"])
    dhclib.runs.build.check_data([cfg, cfg], idx_root)
    assert read == ["mnist"]


# --- foreign files (issue #28, D3 and D10) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine(idx_root, tmp_path_factory) -> Path:
    """A store of two quick Split MNIST runs, seeds 0 and 1, that each test below copies and spoils."""
    out = tmp_path_factory.mktemp("pristine")
    dhclib.run_many("split_mnist", "finetune", "0-1", "quick", "cpu", idx_root, out, progress=False, **SMALL)
    return out


def _seed_path(store: Path, seed: int, kind: str = "runs") -> Path:
    return next((store / kind / "split_mnist" / "finetune").glob(f"seed{seed}-*.json"))


def _spoil(store: Path, case: str) -> Path:
    """Put a file at seed 1's run (or divergence record) that parses but is not a run of that path's key."""
    seed0, seed1 = _seed_path(store, 0), _seed_path(store, 1)
    if case == "wrong shape":
        seed1.write_text(json.dumps({"hello": 1}))
        return seed1
    if case == "another seed":
        seed1.write_text(seed0.read_text())
        return seed1
    if case == "another key":
        record = json.loads(seed1.read_text())
        record["config"]["key"] = "0123456789abcdef"
        seed1.write_text(json.dumps(record))
        return seed1
    failed = store / "diverged" / seed1.relative_to(store / "runs")  # an empty divergence record
    failed.parent.mkdir(parents=True)
    failed.write_text("{}")
    seed1.unlink()
    return failed


CASES = ["wrong shape", "another seed", "another key", "empty divergence record"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["summary", "report", "run"])
def test_a_foreign_file_is_named_set_aside_and_its_run_trained_again(pristine, idx_root, tmp_path, case, command):
    """D3 (issue #28): valid JSON that is not a run of its path's key crashed summary, report and run with a
    KeyError; D10: another seed's run at this seed's name was trusted (seed 0 twice, seed 1 absent). Now it is
    named in a warning, moved to damaged/ and its run counts as missing: ``run`` trains it again."""
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    spoilt = _spoil(store, case)
    args = {"summary": ["summary", "--out", str(store)], "report": ["report", "--out", str(store)],
            "run": _cli_run(idx_root, store, seeds="0-1")}[command]
    with pytest.warns(UserWarning, match=f"{spoilt} is not a"):
        assert main(args) == 0
    assert len(list(store.glob("damaged/**/seed1-*.json.foreign"))) == 1
    if command != "run" or case == "empty divergence record":
        assert not spoilt.exists()
    if command == "run":  # the run trained again in its place
        rerun = json.loads(_seed_path(store, 1).read_text())
        assert rerun["config"]["seed"] == 1 and rerun["config"]["key"] == _seed_path(pristine, 1).stem.split("-")[1]


def test_another_seeds_run_at_this_seeds_name_counts_as_missing(pristine, idx_root, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    _spoil(store, "another seed")
    with pytest.warns(UserWarning, match="holds split_mnist finetune seed 0"):
        df = dhclib.run_many("split_mnist", "finetune", "0-1", "quick", "cpu", idx_root, store, progress=False,
                             missing="skip", **SMALL)
    assert sorted(df["seed"].unique()) == [0] and [m["seed"] for m in df.attrs["missing"]] == [1]


def test_sigterm_releases_the_claims_says_so_and_a_resume_does_not_wait(idx_root, tmp_path):
    """D1 (issue #28): ``timeout``, Slurm's time limit and ``docker stop`` send SIGTERM; it used to kill the run
    like SIGKILL, leaving its claim, and the resume then waited 10 minutes for it. Now it is Ctrl-C's clean-up:
    the claim released, one line, exit 143, and the same command again finishes at once."""
    out = tmp_path / "store"
    args = [sys.executable, "-m", "dhclib", *_cli_run(idx_root, out, seeds="0-3")[:-len(SMALL)],
            "--set=n_tasks=2", "--set=max_epochs=3"]  # quick runs of a few seconds, long enough to be caught
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), OMP_NUM_THREADS="1")
    driver = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(out.glob("claims/*/*/*.claim")) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 143, err
    stored = len(list(out.glob("runs/*/*/*.json")))
    assert err.strip().splitlines() == [f"terminated: {stored} run(s) are stored under {out}; run the same command "
                                        "again to resume (the run in progress is lost, nothing else)"]
    assert stored < 4 and not [p for p in out.glob("claims/**/*") if p.is_file()]
    t0 = time.monotonic()
    resume = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert resume.returncode == 0, resume.stderr
    assert time.monotonic() - t0 < 60  # it waited for no claim (a left one held it for 600 s)
    assert len(list(out.glob("runs/*/*/*.json"))) == 4
