"""Removes what changes from one execution of a notebook to the next, so that re-executing it on the same numeric
path rewrites it byte for byte (issue #5, item 6); `notebooks/lanes.sh execute` runs it after papermill.

    python scripts/normalize_notebook.py NOTEBOOK.ipynb [...]

Dropped: papermill's and Jupyter's timestamps and durations (notebook and cell metadata), and progress-bar output
(stderr stream text drawn with carriage returns: its rates and times differ on every run); cell ids are set to
their position (``cell-<i>``: nbformat draws random ones). Everything else, every result and figure included, is
kept as executed, and so is the notebook's ``jupytext`` metadata (the filters of its pairing with the .py:
notebooks/jupytext.toml).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

_TIMING = ("start_time", "end_time", "duration")


def normalize(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for key in _TIMING:
        nb.metadata.get("papermill", {}).pop(key, None)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
        cell.metadata.pop("execution", None)
        for key in _TIMING:
            cell.metadata.get("papermill", {}).pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.output_type == "stream" and o.name == "stderr" and "\r" in o.text)]
    return nb


def main(paths: list[str]) -> None:
    for p in paths:
        path = Path(p)
        nb = normalize(nbformat.read(path, as_version=4))
        tmp = path.with_name(f".{path.name}.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(path)


if __name__ == "__main__":
    main(sys.argv[1:])
