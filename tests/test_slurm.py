"""``--engine slurm`` against a real Slurm: a one-node cluster on this machine (``.ci/cluster.sh``, which CI
starts before the tests). Quick Split MNIST runs go through the command line as a user's would, as one job array
(submitit), and come back bitwise equal to the same runs trained in this process; a job cancelled mid-run with
``scancel`` is re-claimed and trained by the next submission, each run stored once.

Skipped, with the reason, where ``sinfo`` does not answer (a laptop without Slurm); CI sets ``DHC_REQUIRE_SLURM=1``,
under which a missing cluster fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dhclib

ROOT = Path(__file__).resolve().parent.parent


def _no_slurm() -> str | None:
    """Why the Slurm tests cannot run here, or None."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no Slurm here (no sbatch on PATH); CI starts one with .ci/cluster.sh"
    try:
        info = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 30 s"
    if info.returncode != 0 or not info.stdout.strip():
        return f"sinfo failed: {(info.stderr or info.stdout).strip()[:200]}"
    return None


REASON = _no_slurm()
if REASON and os.environ.get("DHC_REQUIRE_SLURM") == "1":
    raise RuntimeError(f"DHC_REQUIRE_SLURM=1 but {REASON}")
pytestmark = [pytest.mark.skipif(REASON is not None, reason=REASON or ""), pytest.mark.usefixtures("mnist_root"),
              pytest.mark.slow]


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dhclib", "run", "--profile", "quick", "--no-progress", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _stored(out: Path) -> dict[str, dict]:
    return {str(p.relative_to(out / "runs")): json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/*/*.json"))}


def test_a_job_array_trains_every_run_once_bitwise_as_in_process(tmp_path):
    out = tmp_path / "slurm"
    done = _cli("--benchmark", "split_mnist", "--method", "finetune,dhp", "--seeds", "0-1", "--engine", "slurm",
                "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    stored = _stored(out)
    assert len(stored) == 4
    assert not list((out / "claims").glob("*/*/*.claim")), "every claim released"
    tasks = _array_tasks(out)
    assert len(tasks) == 4 and len({t.split("_")[0] for t in tasks}) == 1, f"one array of four tasks: {tasks}"

    def states() -> list[str]:  # as submitit reads them; a task may still be exiting after its result is written
        return sorted(subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", tasks[0].split("_")[0]],
                                     capture_output=True, text=True, timeout=30).stdout.split())

    _wait_for("COMPLETED state of every task in sacct", lambda: states() == [f"{t}|COMPLETED" for t in tasks], 60)
    here = tmp_path / "here"
    dhclib.run_many("split_mnist", "finetune,dhp", "0-1", "quick", "cpu", None, here, progress=False)
    mine = _stored(here)
    assert mine.keys() == stored.keys()
    for name, record in stored.items():
        assert np.array_equal(np.array(record["R"], dtype=float), np.array(mine[name]["R"], dtype=float),
                              equal_nan=True), name
        assert record["engine"] == mine[name]["engine"] == {"engine": "single"}


def _array_tasks(out: Path) -> list[str]:
    """The Slurm array tasks submitit ran for a store, ``<job>_<task>``, from their log folders."""
    return sorted(p.name for p in (out / "slurm").iterdir() if p.name.replace("_", "").isdigit() and "_" in p.name)


def _wait_for(what: str, check, seconds: float = 120):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if (value := check()):
            return value
        time.sleep(0.5)
    raise AssertionError(f"no {what} within {seconds:.0f} s")


def test_a_cancelled_job_is_reclaimed_by_the_next_submission(tmp_path):
    """scancel while the runs train: the driver says which runs failed (exit 2); the next submission takes over
    the dead jobs' claims at once (their holders are gone on this host) and stores each run once."""
    out = tmp_path / "store"
    args = ("--benchmark", "split_mnist", "--method", "finetune", "--seeds", "0-1", "--engine", "slurm",
            "--set", "max_epochs=20", "--set", "min_epochs=20", "--out", str(out))
    driver = subprocess.Popen([sys.executable, "-m", "dhclib", "run", "--profile", "quick", "--no-progress", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        _wait_for("claim of a running job", lambda: list((out / "claims").glob("*/*/*.claim")))
        tasks = _wait_for("array task", lambda: _array_tasks(out))
        subprocess.run(["scancel", tasks[0].split("_")[0]], check=True, timeout=30)
        _, err = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 2, err[-2000:]
    assert "failed on their workers" in err
    assert not _stored(out), "a cancelled run is not stored"
    t0 = time.monotonic()
    again = _cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert time.monotonic() - t0 < 240, "the dead jobs' claims were taken over at once, not after their lease"
    assert len(_stored(out)) == 2
