"""Where a notebook's runs and artefacts go, and saving tables.

Runs go to one result store per profile, ``<root>/<profile>/runs/...``, shared by all notebooks so that a run
needed twice (e.g. DHP on Permuted MNIST in 01 and in the ablation) is trained once. A store only ever gains files
(a run is written once, under its key), so the committed store can be shared by every run of a notebook.

A notebook's tables, figures and executed copy are another matter: ``outputs/<profile>/<notebook>/`` holds the
committed ones, which only an asked-for run may rewrite. Asking is setting ``$DHC_OUTPUT_ROOT`` (``make notebooks``
and ``make reproduce`` set it to ``outputs``; the tests point it at a temporary folder so that nbval trains
afresh): artefacts then go to ``<root>/<profile>/<notebook>/``. A notebook run without it (JupyterLab, a plain
papermill call) reads and adds to the repository's store, ``outputs/<profile>/``, and writes its artefacts to the
untracked ``outputs/scratch/<profile>/<notebook>/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from dhclib.runs.store import write_atomic

__all__ = ["output_dirs", "store_root", "save_table"]

SCRATCH = "scratch"  # outputs/scratch/: git-ignored, for the artefacts of runs nobody asked to commit


def output_dirs(notebook: str, profile: str) -> tuple[Path, Path]:
    """``(output_dir, store_dir)`` of a notebook, as the module docstring says. Neither is made here: the first
    table or run written makes its folder, so a notebook stopped by a bad parameter leaves no folder behind."""
    root = os.environ.get("DHC_OUTPUT_ROOT")
    out = Path(root) / profile / notebook if root else _repo_outputs() / SCRATCH / profile / notebook
    return out, store_root(profile)


def store_root(profile: str) -> Path:
    """The result store of ``profile``: ``<root>/<profile>``, ``<root>`` being ``$DHC_OUTPUT_ROOT`` or the
    repository's ``outputs``."""
    return Path(os.environ.get("DHC_OUTPUT_ROOT") or _repo_outputs()) / profile


def _repo_outputs() -> Path:
    # The notebooks run with their own folder as working directory (JupyterLab, papermill --cwd); outputs/ is its
    # sibling. From the repository root, it is ./outputs.
    here = Path.cwd()
    return here.parent / "outputs" if here.name == "notebooks" else here / "outputs"


def save_table(df: pd.DataFrame, out_dir, name: str) -> Path:
    """Write ``df`` to ``<out_dir>/<name>.csv`` atomically (:func:`~dhclib.runs.store.write_atomic`); returns the
    path."""
    path = Path(out_dir) / f"{name}.csv"
    write_atomic(path, df.to_csv(index=False))
    return path
