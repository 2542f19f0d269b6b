"""Where a notebook's runs and artefacts go (issue #3: ``outputs/<profile>/<notebook>/``), and saving tables.

Runs go to one result store per profile, ``<root>/<profile>/runs/...``, shared by all notebooks so that a run
needed twice (e.g. DHP on Permuted MNIST in 01 and in the ablation) is trained once; a notebook's tables, figures
and executed copy go to ``<root>/<profile>/<notebook>/``. ``<root>`` is ``outputs`` beside the notebooks, or
``$DHC_OUTPUT_ROOT`` (the tests point it at a temporary folder so that nbval trains afresh).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from dhclib.runs.store import write_atomic

__all__ = ["output_dirs", "store_root", "save_table"]


def output_dirs(notebook: str, profile: str, output_dir=None, store_dir=None) -> tuple[Path, Path]:
    """``(output_dir, store_dir)`` for a notebook: explicit values win, else the defaults above."""
    root = Path(os.environ.get("DHC_OUTPUT_ROOT") or _repo_outputs())
    out = Path(output_dir) if output_dir else root / profile / notebook
    out.mkdir(parents=True, exist_ok=True)
    return out, store_root(profile, store_dir)


def store_root(profile: str, store_dir=None) -> Path:
    """The result store of ``profile`` (``<root>/<profile>``), unless ``store_dir`` is given."""
    if store_dir:
        return Path(store_dir)
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
