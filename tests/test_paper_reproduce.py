"""`make reproduce PROFILE=paper MISSING=skip` trains nothing and rewrites the committed executed paper notebooks,
their tables and figures byte for byte from the stored runs. Run here on notebook 03 (Split MNIST: its 80 stored
runs, under a minute); the other notebooks take the same path with more runs.

The test asks for another output root (``DHC_OUTPUT_ROOT``, whose store links to the committed runs) and compares
what it wrote with the committed files, so the working tree is never written to: other tests read it meanwhile
(tests/test_site.py builds the site from these notebooks, in the other shard)."""

from __future__ import annotations

import json
import os
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


def _without_output_path(notebook: Path) -> dict:
    """The executed notebook, less papermill's record of where it was written (the one field that names the
    output root)."""
    nb = json.loads(notebook.read_text())
    nb["metadata"]["papermill"].pop("output_path")
    return nb


def test_reproducing_the_paper_notebooks_from_the_store_changes_no_file(tmp_path):
    if not (ROOT / ".venv" / ".installed").is_file():
        pytest.skip("needs the repository's environment (.venv, `make install`): the test runs `make reproduce`")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to compare with")
    if _status(FOLDER):
        pytest.skip(f"{FOLDER} has local changes: reproducing it would not say whether it reproduces")
    store = tmp_path / "paper"
    store.mkdir()
    for part in ("runs", "diverged"):  # read only: missing="skip" trains, and so writes, nothing
        (store / part).symlink_to(ROOT / "outputs" / "paper" / part)
    before = _status()
    done = subprocess.run(["make", "-s", "reproduce", "PROFILE=paper", "MISSING=skip", f"LANES={NOTEBOOK}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, DHC_OUTPUT_ROOT=str(tmp_path)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _status() == before, "make reproduce with DHC_OUTPUT_ROOT set wrote into the working tree"
    committed = sorted(p.relative_to(ROOT / FOLDER) for p in (ROOT / FOLDER).rglob("*") if p.is_file())
    written = sorted(p.relative_to(store / NOTEBOOK) for p in (store / NOTEBOOK).rglob("*") if p.is_file())
    assert written == committed
    differ = [str(p) for p in committed if p.suffix != ".ipynb"
              and (ROOT / FOLDER / p).read_bytes() != (store / NOTEBOOK / p).read_bytes()]
    assert differ == [], f"make reproduce PROFILE=paper MISSING=skip wrote other bytes to {differ}"
    notebook = Path(f"{NOTEBOOK}.ipynb")
    assert _without_output_path(store / NOTEBOOK / notebook) == _without_output_path(ROOT / FOLDER / notebook)
