"""dhclib: Differentiable Hebbian Consolidation for continual learning (Thangarasa et al., ICLR 2020 submission).

The public API: :func:`run`, :func:`run_many` and the other drivers (see the README). The package is layered, each
layer importing only those below it (docs/extending.md):

- ``errors``, ``registry``, ``plugins``, ``seeds``, ``numerics``, ``_version`` — the base: what dhclib knows, the user's
  modules that add to it, and how it draws random numbers;
- ``dhclib.method`` — DHP Softmax, networks, regularisers, importance, the training protocol, metrics;
- ``dhclib.data`` and ``dhclib.benchmarks`` — the datasets and the five continual-learning benchmarks;
- ``dhclib.runs`` — configs, plans, execution, the result store, the drivers;
- ``dhclib.paper`` — the paper's tables as data, our tables beside them (``report``), REPORT.md (``report_md``),
  figures (``plots``) and the notebooks' regression checks (``regression``); ``cli`` on top.

``from dhclib import paper, report, plots, regression`` works as the notebooks use it (the last three load on
first use, so that ``import dhclib`` does not import matplotlib).
"""

from __future__ import annotations

import importlib

from dhclib import registry
from dhclib._version import __version__
from dhclib.errors import ConfigError, DataNotFoundError, DhcError, PlasticInstabilityError
from dhclib.method.layers import DHPSoftmax, MatchedSoftmax
from dhclib.method.metrics import average_accuracy, average_accuracy_curve, bwt, mean_sem, summarize
from dhclib.runs.config import METHODS, PROFILES, RunConfig, resolve_config
from dhclib.runs.engine import Engine
from dhclib.runs.runner import concat_runs, load_runs, run, run_grid, run_many, run_search, run_variants
from dhclib.runs.store import RunResult, load_diverged, load_results, variant_label

__all__ = [
    "run", "run_many", "run_grid", "run_search", "concat_runs", "run_variants", "variant_label", "load_runs",
    "load_results", "load_diverged", "RunResult", "Engine", "RunConfig", "resolve_config", "METHODS", "PROFILES",
    "DHPSoftmax", "MatchedSoftmax", "average_accuracy", "average_accuracy_curve", "bwt", "mean_sem", "summarize",
    "DhcError", "ConfigError", "DataNotFoundError", "PlasticInstabilityError", "registry", "plugins",
]

# Last, once the package is whole: a plugin imports dhclib's parts to register its own (dhclib.plugins).
from dhclib import plugins  # noqa: E402

plugins.load_environment()

_PAPER_MODULES = ("report", "plots", "regression", "report_md")


def __getattr__(name: str):
    if name in _PAPER_MODULES:
        return importlib.import_module(f"dhclib.paper.{name}")
    raise AttributeError(f"module 'dhclib' has no attribute {name!r}")
