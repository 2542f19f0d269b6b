"""Plans: what to run, as a list of resolved configs, each with the label its rows carry and why it exists.

Every experiment of the paper is a plan: Table 1 (benchmarks × methods × seeds), the labelled variants beside it,
a grid over one config field (Table 4's eta_init, Appendix A's lam) and the lambda search (a grid per
regulariser). A plan only resolves and validates configs (:func:`dhclib.runs.config.resolve_config`): nothing is
trained, so a bad value anywhere fails before the first run starts. :mod:`dhclib.runs.execute` runs a plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from dhclib.runs.config import BENCHMARK_NAMES, RunConfig, benchmark_methods, parse_seeds, resolve_config
from dhclib.errors import ConfigError
from dhclib.registry import search_grid
from dhclib.runs.difference import config_difference
from dhclib.runs.labels import label_of, render_variant

__all__ = ["Planned", "table1", "variants", "grid", "search", "as_names"]


@dataclass(frozen=True)
class Planned:
    """One run of a plan: its config, the overrides that name its rows (a labelled variant's own, else none), the
    extra columns its rows carry (a grid's value), and its purpose, stored with the result."""

    config: RunConfig
    variant: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)
    plan: str = "table1"

    @property
    def label(self) -> str:
        """The method label of its rows, rendered (``"ewc [fisher_mode=batch]"`` for a variant)."""
        return self.identity["method"]

    @property
    def identity(self) -> dict[str, str]:
        """The columns that name its rows: the label and its parts (:data:`dhclib.runs.store.TIDY_COLUMNS`)."""
        text = render_variant(self.variant)
        return {"method": label_of(self.config.method, text), "base_method": self.config.method, "variant": text}

    @property
    def purpose(self) -> dict:
        return {"plan": self.plan, "variant": config_difference(self.config.to_dict())}


def as_names(value, what: str, everything: Iterable[str]) -> list[str]:
    """A comma-separated string or an iterable of names; ``"all"`` means every one of ``everything``."""
    if isinstance(value, str):
        if value.lstrip().startswith(("[", "(")):  # a list typed as text, e.g. papermill's -p (which passes text)
            two = list(everything)[:2]
            raise ConfigError(f"{what} given as the text {value!r}: write comma-separated names (e.g. "
                              f"'{','.join(two)}') or pass a real list (papermill: -y '{what}: [{', '.join(two)}]')")
        value = list(everything) if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    value = list(value)
    if not value:
        raise ConfigError(f"no {what} given")
    return value


def table1(benchmarks, methods, seeds="0", profile: str = "paper", device: str = "cpu", **overrides) -> list[Planned]:
    """Every (benchmark, method, seed); ``overrides`` apply to all and do not enter the label (run_many's rows
    are named by their method)."""
    return [Planned(resolve_config(b, m, s, profile, device, **overrides))
            for b in as_names(benchmarks, "benchmarks", BENCHMARK_NAMES)
            for m in as_names(methods, "methods", benchmark_methods(b)) for s in parse_seeds(seeds)]


def variants(benchmark: str, specs: Iterable[dict], seeds="0", profile: str = "paper", device: str = "cpu",
             **overrides) -> list[Planned]:
    """Extra, clearly labelled rows beside Table 1's: each spec is ``{"methods": [...], "overrides": {...}}``; its
    runs are labelled by their own overrides (:func:`dhclib.runs.labels.label_of`); ``overrides`` apply to every
    variant (a profile-wide setting such as ``max_epochs``) and do not enter the label. A spec's optional
    ``"seeds"`` (e.g. ``"0-4"``) keeps only those of ``seeds``: a row run on fewer seeds than Table 1's."""
    out, wanted = [], parse_seeds(seeds)
    for v in specs:
        if not isinstance(v, dict) or set(v) - {"methods", "overrides", "seeds"} or "methods" not in v:
            raise ConfigError(f"a variant is {{'methods': [...], 'overrides': {{...}}[, 'seeds': '0-4']}}, got {v!r}")
        own = dict(v.get("overrides") or {})
        if not own:
            raise ConfigError(f"variant {v!r} has no overrides: it would repeat Table 1's runs")
        own_seeds = set(parse_seeds(v["seeds"])) if "seeds" in v else None
        mine = wanted if own_seeds is None else [s for s in wanted if s in own_seeds]
        out += [Planned(p.config, own, plan="variants")
                for p in (table1(benchmark, v["methods"], mine, profile, device, **dict(overrides, **own))
                          if mine else [])]
    return out


def grid(benchmark: str, method: str, param: str, values: Iterable, seeds="0", profile: str = "paper",
         device: str = "cpu", **overrides) -> list[Planned]:
    """One method for each value of one config field (``eta_init`` for Table 4, ``lam`` or ``si_xi`` for the
    search of Appendix A); its rows gain a column named ``param``."""
    values = list(values)
    if not values:
        raise ConfigError(f"run_grid needs at least one value of {param!r}")
    if param in overrides:
        raise ConfigError(f"{param!r} is the grid's parameter; it cannot also be an override")
    return [Planned(p.config, columns={param: value}, plan="grid")
            for value in values for p in table1(benchmark, method, seeds, profile, device, **dict(overrides, **{param: value}))]


def search(benchmark: str, grids: dict[str, Iterable] | Iterable[str] = ("ewc", "si", "mas"), seed: int = 0,
           profile: str = "paper", device: str = "cpu", **overrides) -> list[Planned]:
    """The consolidation-strength search of Appendix A: a grid over ``lam`` for each regulariser, on one seed as
    the paper did. ``grids``: regulariser names (each gets the paper's grid, :func:`dhclib.paper.search_grid`) or
    a dict ``{regulariser: values}``."""
    if not isinstance(grids, dict):
        grids = {reg: search_grid(benchmark, reg) for reg in grids}
    if not grids:
        raise ConfigError("run_search needs at least one regulariser ('ewc', 'si', 'mas')")
    return [Planned(p.config, columns=p.columns, plan="search")
            for reg, values in grids.items() for p in grid(benchmark, reg, "lam", values, seed, profile, device, **overrides)]
