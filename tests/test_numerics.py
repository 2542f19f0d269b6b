"""The numeric environment recorded with every run, and the lock check (issue #5, items 1, 5 and 8)."""

from __future__ import annotations

import importlib.util
import json
from importlib import metadata
from pathlib import Path

import pytest
import torch

import dhclib
from dhclib.numerics import PINNED_ENV, numeric_environment

REPO = Path(__file__).resolve().parent.parent
SMALL = dict(n_tasks=2, max_epochs=1, min_epochs=1, train_size=60, test_size=20)


def _check_lock():
    spec = importlib.util.spec_from_file_location("check_lock", REPO / "scripts" / "check_lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numeric_environment_names_the_path(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    env = numeric_environment("cpu")
    assert env["torch"] == torch.__version__
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["threads"] == torch.get_num_threads()
    assert env["device"] == "cpu" and env["env"]["MKL_CBWR"] == "AVX2"
    assert env["torch_blas"] and env["cpu"]
    json.dumps(env)  # stored in the run's JSON


def test_pinned_env_is_what_the_lanes_set():
    lanes = (REPO / "notebooks" / "lanes.sh").read_text()
    for key in ("ATEN_CPU_CAPABILITY", "MKL_CBWR"):
        assert f"{key}=${{{key}:-{PINNED_ENV[key].lower() if key == 'ATEN_CPU_CAPABILITY' else PINNED_ENV[key]}}}" \
            in lanes


def test_every_stored_run_records_its_numeric_environment(idx_root, tmp_path):
    out = tmp_path / "store"
    dhclib.run_many("split_mnist", "finetune", "0", "quick", "cpu", data_dir=idx_root, out_dir=out, progress=False,
                    **SMALL)
    (path,) = out.glob("runs/*/*/*.json")
    stored = json.loads(path.read_text())
    assert stored["numeric_env"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert dhclib.RunResult.from_json(stored).numeric_env == stored["numeric_env"]
    del stored["numeric_env"]  # runs stored before it was recorded still load
    assert dhclib.RunResult.from_json(stored).numeric_env == {}


def test_check_lock_accepts_the_lock_and_names_every_difference(tmp_path):
    check_lock = _check_lock()
    have = metadata.version("pytest")
    ok = tmp_path / "ok.txt"
    ok.write_text(f"pytest=={have} \\\n    --hash=sha256:00\n"
                  "not-a-real-package==1.0 ; sys_platform == 'no-such-platform' \\\n    --hash=sha256:00\n")
    assert check_lock.check(ok) == []
    bad = tmp_path / "bad.txt"
    bad.write_text("pytest==0.0.1 \\\n    --hash=sha256:00\nnot-a-real-package==1.0 \\\n    --hash=sha256:00\n")
    assert check_lock.check(bad) == [f"pytest: {have} installed, lock: 0.0.1",
                                     "not-a-real-package: missing (lock: 1.0)"]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing pinned\n")
    assert "no pinned requirement applies here" in check_lock.check(empty)[0]


@pytest.mark.skipif(not (REPO / ".venv" / ".installed").exists(), reason="not the project's .venv (make install)")
def test_the_project_venv_matches_the_lock():
    """`make test` installs the lock; this interpreter must then have exactly its versions."""
    import sys

    if not sys.prefix.startswith(str(REPO / ".venv")):
        pytest.skip("tests run outside the project's .venv")
    assert _check_lock().check(REPO / "requirements-lock.txt") == []
