"""A run's variant: the settings of its config that differ from the paper's configuration (docs/method.md (benchmarks, strengths)).

A plan records it with each run it asks for (:attr:`dhclib.runs.store.RunResult.purpose`); a record stored before
the purpose was recorded holds only its full config, and the store derives its variant here from that config
alone. Both compare the config with the declared values of its parts (each part's field defaults, then the
benchmark's profile, then the regulariser's paper values), read from the registry's declarations: nothing is
resolved or validated, so a stored record stays readable whatever today's validation rules say of its settings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dhclib import registry
from dhclib.method.models import NetworkSettings
from dhclib.method.train import Protocol
import dhclib.runs.config  # noqa: F401  (registers the benchmarks, output layers and regularisers)

__all__ = ["declared_values", "config_difference", "IGNORED"]

# Fields that never change a result's numbers: left out of every variant.
IGNORED = frozenset({"key", "device", "eval_batch_size", "trace_every"})


def declared_values(benchmark: str, method: str, profile: str) -> dict[str, Any]:
    """The paper's configuration of ``method`` on ``benchmark`` under ``profile``, as its parts declare it (fields
    without a default are absent)."""
    bench, spec = registry.benchmark(benchmark), registry.method(method)
    reg = registry.regulariser(spec.regulariser)
    classes = [bench.settings, NetworkSettings, Protocol, registry.layer(spec.layer).settings, reg.Settings]
    fields = [f for cls in filter(None, classes) for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for f in fields:
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
    names = {f.name for f in fields}
    values.update({k: v for k, v in bench.profiles[profile].items() if k in names})
    values.update(reg.paper.get(benchmark, {}))
    return bench.settings.prepare(values, set())


def _same(a: Any, b: Any) -> bool:
    """Equal as stored: a tuple is stored as a list, an int given for a float field as a float."""
    norm = (lambda v: list(v) if isinstance(v, tuple) else v)
    return norm(a) == norm(b)


def config_difference(config: dict) -> dict[str, Any]:
    """The fields of a stored config that differ from its paper configuration (:func:`declared_values`), ignoring
    those that cannot change a number (:data:`IGNORED`)."""
    c = config
    declared = declared_values(c["benchmark"], c["method"], c["profile"])
    return {k: v for k, v in c.items() if k not in IGNORED and k in declared and not _same(declared[k], v)}
