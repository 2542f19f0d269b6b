"""The papermill arguments that apply to one notebook: `-p NAME VALUE` only where NAME is one of the notebook's
parameters (the assignments of its cell tagged "parameters"), every other argument as given. `make reproduce`
passes one list to every notebook (e.g. the Vision Mixture's `vision_tasks`); papermill would inject a parameter a
notebook does not declare into it anyway, where it means nothing to a reader.

    python scripts/notebook_args.py NOTEBOOK.ipynb [papermill arguments...]   # prints them shell-quoted
"""

from __future__ import annotations

import ast
import shlex
import sys

import nbformat


def parameters(path: str) -> set[str]:
    """The names the notebook's parameters cell assigns."""
    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return set()
    return {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def applicable(path: str, args: list[str]) -> list[str]:
    names, out, i = parameters(path), [], 0
    while i < len(args):
        if args[i] in ("-p", "--parameters") and i + 2 < len(args) + 1:
            if args[i + 1] in names:
                out += args[i:i + 3]
            i += 3
        else:
            out.append(args[i])
            i += 1
    return out


if __name__ == "__main__":
    print(shlex.join(applicable(sys.argv[1], sys.argv[2:])))
