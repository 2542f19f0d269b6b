"""Removes what changes from one execution of a notebook to the next, so that re-executing it on the same numeric
path rewrites it byte for byte (issue #5, item 6); `notebooks/lanes.sh execute` runs it after papermill.

    python scripts/normalize_notebook.py NOTEBOOK.ipynb [...]

JupyterLab runs the same normalisation before every save (.jupyter/jupyter_server_config.py, `make lab`), so a
notebook saved from JupyterLab is the one the lanes write, and saving it without an edit changes no byte.

Dropped: papermill's and Jupyter's timestamps and durations (notebook and cell metadata), and progress-bar output
(stderr stream text drawn with carriage returns: its rates and times differ on every run; and the bare newline a
closing bar leaves, whose place among the cell's printed lines depends on when each stream was flushed; in
JupyterLab the bars are ipywidgets, dropped with the widget state: these notebooks show no other widget); cell ids
are set to their position (``cell-<i>``: nbformat draws random ones); a stream printed in several pieces in a row is
kept as one output (the kernel splits it where a flush happened to fall; nbval joins the pieces before comparing).
The kernelspec is set to the one the lock's ipykernel installs ("Python 3 (ipykernel)"), so JupyterLab opens the
notebook unmodified. Everything else, every result and figure included, is kept as executed, and so is the
notebook's ``jupytext`` metadata (the filters of its pairing with the .py: notebooks/jupytext.toml).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

_TIMING = ("start_time", "end_time", "duration")
_WIDGET = "application/vnd.jupyter.widget-view+json"


def kernelspec() -> dict:
    """The kernelspec JupyterLab finds installed (ipykernel's own), as a notebook's metadata names it."""
    from ipykernel.kernelspec import KERNEL_NAME, get_kernel_dict

    spec = get_kernel_dict()
    return {"display_name": spec["display_name"], "language": spec["language"], "name": KERNEL_NAME}


def normalize(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata["kernelspec"] = kernelspec()
    nb.metadata.pop("widgets", None)
    for key in _TIMING:
        nb.metadata.get("papermill", {}).pop(key, None)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
        cell.metadata.pop("execution", None)
        for key in _TIMING:
            cell.metadata.get("papermill", {}).pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = _joined([o for o in cell.outputs if not _progress_bar(o)])
    return nb


def _progress_bar(output: nbformat.NotebookNode) -> bool:
    if output.output_type == "display_data" and _WIDGET in output.get("data", {}):
        return True
    return (output.output_type == "stream" and output.name == "stderr"
            and ("\r" in output.text or not output.text.strip()))


def _joined(outputs: list) -> list:
    """Consecutive pieces of one stream as one output."""
    out: list = []
    for o in outputs:
        if out and o.output_type == "stream" and out[-1].output_type == "stream" and out[-1].name == o.name:
            out[-1].text += o.text
        else:
            out.append(o)
    return out


def main(paths: list[str]) -> None:
    for p in paths:
        path = Path(p)
        nb = normalize(nbformat.read(path, as_version=4))
        tmp = path.with_name(f".{path.name}.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(path)


if __name__ == "__main__":
    main(sys.argv[1:])
