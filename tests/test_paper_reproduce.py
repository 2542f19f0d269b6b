"""`make reproduce PROFILE=paper MISSING=skip` trains nothing and rewrites the committed executed paper notebooks,
their tables and figures byte for byte from the stored runs: afterwards `git status` shows nothing. Run here on
notebook 03 (Split MNIST: its 80 stored runs, under a minute); the other notebooks take the same path with more runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "03_split_mnist"
FOLDER = f"outputs/paper/{NOTEBOOK}"

pytestmark = pytest.mark.slow


def _status(*paths: str) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *paths], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def test_reproducing_the_paper_notebooks_from_the_store_changes_no_file():
    if not (ROOT / ".venv" / ".installed").is_file():
        pytest.skip("needs the repository's environment (.venv, `make install`): the test runs `make reproduce`")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to compare with")
    if _status(FOLDER):
        pytest.skip(f"{FOLDER} has local changes: reproducing it would not say whether it reproduces")
    done = subprocess.run(["make", "-s", "reproduce", "PROFILE=paper", "MISSING=skip", f"LANES={NOTEBOOK}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    changed = _status(FOLDER)
    if changed:  # leave the tree as it was, and say what differed
        subprocess.run(["git", "checkout", "--", FOLDER], cwd=ROOT, check=True)
        subprocess.run(["git", "clean", "-fdq", "--", FOLDER], cwd=ROOT, check=True)
    assert changed == "", f"make reproduce PROFILE=paper MISSING=skip changed:\n{changed}"
