"""The package layout shows the architecture (issue #6, item 6): each module belongs to one layer and imports only
from its own layer or those below it, so the folders read as the flow: base -> method -> data -> benchmarks ->
runs -> paper -> the command line. Relative imports count as the modules they name, and a name taken from a package
that is no module of it (``from dhclib import __version__``) as an import of the package itself."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dhclib"
LAYERS = ["base", "method", "data", "benchmarks", "runs", "paper", "top"]
BASE = {"errors", "registry", "plugins", "seeds", "numerics", "_progress", "_version"}
TOP = {"cli", "__main__", "__init__"}


def _layer(module: str) -> str:
    """``dhclib.runs.plan`` -> ``runs``; ``dhclib.registry`` -> ``base``."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in TOP:
        return "top"
    if parts[0] in BASE:
        return "base"
    return parts[0]


def _module_of(path: Path) -> str:
    """``dhclib/runs/plan.py`` -> ``dhclib.runs.plan``; a package's ``__init__.py`` -> the package."""
    return ".".join(("dhclib", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def _is_module(name: str) -> bool:
    """Whether ``dhclib.x.y`` is a module or package of dhclib (not a name defined in one)."""
    where = PACKAGE.joinpath(*name.split(".")[1:])
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def _imports(path: Path, module: str | None = None) -> set[str]:
    """The dhclib modules a file imports, wherever the import statement is: absolute ones as written, relative ones
    resolved against ``module`` (the file's own name, by default from its path). ``from P import name`` imports
    ``P.name`` where that is a module, else ``P`` itself (``from dhclib import __version__`` is the top package)."""
    module = module or _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from ..runs import y: resolved against the file's package
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "dhclib":
                continue
            for alias in node.names:
                out.add(f"{source}.{alias.name}" if _is_module(f"{source}.{alias.name}") else source)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "dhclib"}
    return out


def test_imports_are_resolved_relative_ones_and_names_included(tmp_path):
    """The checker sees what a module really imports: relative imports, and a name such as __version__ taken from a
    package (the top one, above every layer), not only ``from dhclib.x import y``."""
    source = tmp_path / "permuted.py"
    source.write_text("from . import tasks\nfrom .tasks import rng\nfrom ..runs import config\n"
                      "from ..runs.store import read_record\nfrom dhclib import __version__, registry\n"
                      "import dhclib.method.train\nimport numpy\n")
    assert _imports(source, "dhclib.benchmarks.permuted") == {
        "dhclib.benchmarks.tasks", "dhclib.runs.config", "dhclib.runs.store", "dhclib", "dhclib.registry",
        "dhclib.method.train"}
    package = tmp_path / "__init__.py"
    package.write_text("from .permuted import x\nfrom . import tasks\n")
    assert _imports(package, "dhclib.benchmarks") == {"dhclib.benchmarks.permuted", "dhclib.benchmarks.tasks"}


def test_every_module_sits_in_a_known_layer():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 25
    for path in modules:
        module = ".".join(("dhclib", *path.relative_to(PACKAGE).with_suffix("").parts))
        assert _layer(module.removesuffix(".__init__")) in LAYERS, module


def test_imports_run_downwards():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_of(path)
        here = LAYERS.index(_layer(module))
        for imported in _imports(path):
            layer = _layer(imported)
            if layer in LAYERS and LAYERS.index(layer) > here:
                upward.append(f"{module} ({LAYERS[here]}) imports {imported} ({layer})")
    assert not upward, "\n".join(upward)
