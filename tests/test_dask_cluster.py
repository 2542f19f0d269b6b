"""``--engine dask:tcp://…`` against a real Dask cluster: a scheduler and two one-thread workers, each its own
process on 127.0.0.1 (``dask scheduler`` / ``dask worker``, as the README's cluster section starts them). Runs
through the command line come back bitwise equal to the same runs trained in this process; a worker killed with
SIGKILL mid-run costs about the lost run, not the claims' lease, and each run is stored once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dhclib
from dhclib.runs.claims import holder

ROOT = Path(__file__).resolve().parent.parent
DASK = Path(sys.executable).with_name("dask")

pytestmark = [pytest.mark.skipif(not DASK.exists(), reason="the cluster extra (dask) is not installed"),
              pytest.mark.usefixtures("mnist_root"), pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two workers (nanny and one thread each) on 127.0.0.1; yields the scheduler's address."""
    info = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(info)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        address = _wait_for("the scheduler file", lambda: info.exists() and json.loads(info.read_text())["address"])
        for _ in range(2):
            procs.append(subprocess.Popen([str(DASK), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                           "--host", "127.0.0.1", "--no-dashboard"], cwd=tmp_path,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        from dask.distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _wait_for(what: str, check, seconds: float = 120):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if (value := check()):
                return value
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {seconds:.0f} s")


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dhclib", "run", "--profile", "quick", "--no-progress", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _stored(out: Path) -> dict[str, dict]:
    return {str(p.relative_to(out / "runs")): json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/*/*.json"))}


def test_runs_over_tcp_are_bitwise_the_in_process_runs(cluster, tmp_path):
    out = tmp_path / "dask"
    done = _cli("--benchmark", "split_mnist", "--method", "finetune,dhp", "--seeds", "0-1", "--engine",
                f"dask:{cluster}", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    here = tmp_path / "here"
    dhclib.run_many("split_mnist", "finetune,dhp", "0-1", "quick", "cpu", None, here, progress=False)
    theirs, mine = _stored(out), _stored(here)
    assert theirs.keys() == mine.keys() and len(theirs) == 4
    for name, record in theirs.items():
        assert np.array_equal(np.array(record["R"], dtype=float), np.array(mine[name]["R"], dtype=float),
                              equal_nan=True), name


def test_a_worker_killed_mid_run_costs_its_run_not_the_lease(cluster, tmp_path):
    """SIGKILL the worker process that holds a run's claim: Dask hands the run to the other worker, which takes
    the claim over at once (its holder is gone from this host), and the batch ends long before the 600 s lease."""
    out = tmp_path / "store"
    args = ("--benchmark", "split_mnist", "--method", "finetune", "--seeds", "0-1", "--engine", f"dask:{cluster}",
            "--set", "max_epochs=20", "--set", "min_epochs=20", "--out", str(out))
    t0 = time.monotonic()
    driver = subprocess.Popen([sys.executable, "-m", "dhclib", "run", "--profile", "quick", "--no-progress", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        claims = _wait_for("a claim", lambda: list((out / "claims").glob("*/*/*.claim")))
        victim = holder(claims[0])["pid"]
        os.kill(victim, signal.SIGKILL)
        _, err = driver.communicate(timeout=500)
    finally:
        driver.kill()
    took = time.monotonic() - t0
    assert driver.returncode == 0, err[-2000:]
    assert took < 300, f"{took:.0f} s: the killed worker's claim waited for its lease"
    stored = _stored(out)
    assert len(stored) == 2 and not list((out / "claims").glob("*/*/*.claim"))
