"""The package layout shows the architecture (issue #6, item 6): each module belongs to one layer and imports only
from its own layer or those below it, so the folders read as the flow: base -> method -> data -> benchmarks ->
runs -> paper -> the command line."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dhclib"
LAYERS = ["base", "method", "data", "benchmarks", "runs", "paper", "top"]
BASE = {"errors", "registry", "seeds", "numerics", "_progress"}
TOP = {"cli", "__main__", "__init__"}


def _layer(module: str) -> str:
    """``dhclib.runs.plan`` -> ``runs``; ``dhclib.registry`` -> ``base``."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in TOP:
        return "top"
    if parts[0] in BASE:
        return "base"
    return parts[0]


def _imports(path: Path) -> set[str]:
    """The dhclib modules a file imports (absolute, as dhclib writes them), wherever the import statement is."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dhclib"):
            assert node.level == 0, f"{path}: relative import"
            names = {f"{node.module}.{a.name}" for a in node.names if not a.name.startswith("__")}
            out |= names if node.module == "dhclib" else {node.module}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("dhclib")}
    return out


def test_every_module_sits_in_a_known_layer():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 25
    for path in modules:
        module = ".".join(("dhclib", *path.relative_to(PACKAGE).with_suffix("").parts))
        assert _layer(module.removesuffix(".__init__")) in LAYERS, module


def test_imports_run_downwards():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("dhclib", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        here = LAYERS.index(_layer(module))
        for imported in _imports(path):
            layer = _layer(imported)
            if layer in LAYERS and LAYERS.index(layer) > here:
                upward.append(f"{module} ({LAYERS[here]}) imports {imported} ({layer})")
    assert not upward, "\n".join(upward)
