"""dhclib: Differentiable Hebbian Consolidation for continual learning (Thangarasa et al., ICLR 2020 submission).

The public API: :func:`run` and :func:`run_many` (see the README), and the building blocks in ``dhclib.layers``,
``dhclib.models``, ``dhclib.consolidation``, ``dhclib.benchmarks`` (with ``dhclib.data`` and
``dhclib.vision_data``), ``dhclib.train`` and ``dhclib.metrics``.
"""

__version__ = "0.1.0"

from . import registry  # noqa: E402
from .config import METHODS, PROFILES, RunConfig, resolve_config  # noqa: E402
from .errors import ConfigError, DataNotFoundError, DhcError, PlasticInstabilityError  # noqa: E402
from .layers import DHPSoftmax, MatchedSoftmax  # noqa: E402
from .metrics import average_accuracy, average_accuracy_curve, bwt, mean_sem, summarize  # noqa: E402
from .runner import (RunResult, concat_runs, load_diverged, load_results, load_runs, run, run_grid, run_many,  # noqa: E402
                     run_search, run_variants, variant_label)

__all__ = [
    "run", "run_many", "run_grid", "run_search", "concat_runs", "run_variants", "variant_label", "load_runs", "load_results", "load_diverged", "RunResult", "RunConfig", "resolve_config", "METHODS", "PROFILES",
    "DHPSoftmax", "MatchedSoftmax", "average_accuracy", "average_accuracy_curve", "bwt", "mean_sem", "summarize",
    "DhcError", "ConfigError", "DataNotFoundError", "PlasticInstabilityError",
]
