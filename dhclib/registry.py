"""The one table of what dhclib knows: output layers, regularisers and benchmarks, each declared beside its code.

- An output layer (``layers.py``) and a regulariser (``consolidation.py``, or any module of a user's) register
  themselves with :func:`register_layer` / :func:`register_regulariser`; a regulariser class carries its name, its
  settings (a :class:`Settings` dataclass), its paper values per benchmark (docs/method.md (strengths)), its search grids (Appendix A)
  and its label.
- A benchmark module (``dhclib/benchmarks/``) registers a :class:`Benchmark`: its builder, settings, profiles,
  task count, datasets, input kind, title and paper table.
- A method is composed, never parsed: :class:`Method` = an output layer × a regulariser; its name (``"dhp+mas"``)
  is rendered from the two and looked up in :func:`methods`.

Config, runner, CLI, report and plots read these tables; nothing else lists methods or benchmarks. This module
imports nothing else of dhclib, so every layer may import it (imports run downwards).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dhclib.errors import ConfigError

__all__ = ["Settings", "added", "key_omits", "OutputLayer", "Benchmark", "Method", "LAYERS", "REGULARISERS", "BENCHMARKS",
           "register_layer", "register_regulariser", "register_benchmark", "layer", "regulariser", "benchmark",
           "method", "methods", "compositions", "pairs", "SCRATCH", "search_grids", "search_grid", "paper_lambdas"]


class Settings:
    """Base of the frozen settings dataclasses (a protocol, a network, a layer, a regulariser, a benchmark).

    On construction an int given for a ``float`` field becomes a float (``lam=400`` and ``lam=400.0`` are one run,
    one store key) and a list given for a ``tuple`` field a tuple; a ``bool`` field takes only ``True`` or
    ``False`` (never the string ``"False"``, which Python counts as true) and a ``float`` field only a finite
    number; then :meth:`validate` raises :class:`~dhclib.errors.ConfigError` saying what is accepted.
    """

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, kinds = getattr(self, f.name), _kinds(f.type)
            if "float" in kinds and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
            elif any(k.startswith("tuple") for k in kinds) and isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
            value = getattr(self, f.name)
            if kinds == ["bool"] or (set(kinds) == {"bool", "None"} and value is not None):
                need(isinstance(value, bool), f"{f.name} must be true or false, got {value!r}")
            if "float" in kinds and value is not None:  # before validate: 'inf' (--set lr=inf) is no "lr <= 0"
                need(_is_finite_number(value), f"{f.name} must be a finite number, got {value!r}")
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for a value out of range (subclasses; the base accepts everything)."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def prepare(cls, values: dict[str, Any], overridden: set[str]) -> dict[str, Any]:
        """Adjust the resolved values before construction (e.g. a shorthand); ``overridden``: the keys the user
        set. The base returns them unchanged."""
        return values


def added(default: Any) -> Any:
    """A settings field added after runs were stored: at ``default`` (which must be what the code did before the
    field existed) it is left out of the store key, so no stored run changes its key; any other value is hashed
    as usual, and the field is always stored and shown with the config (:meth:`RunConfig.key`)."""
    return field(default=default, metadata={"key_omits_default": True})


def key_omits(settings: "Settings") -> set[str]:
    """The fields of ``settings`` that :func:`added` declared and that hold their default: not part of the key."""
    return {f.name for f in dataclasses.fields(settings)
            if f.metadata.get("key_omits_default") and getattr(settings, f.name) == f.default}


def _kinds(annotation: Any) -> list[str]:
    """``"float | None"`` (or the type itself, where a module does not postpone annotations) -> its parts."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return text.replace(" ", "").split("|")


def _is_finite_number(value: Any) -> bool:
    """A real number (a NumPy one too: grids may come as arrays), not a bool, neither infinite nor NaN."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def need(ok: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``ok``: the settings' validation, one line per rule."""
    if not ok:
        raise ConfigError(message)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class OutputLayer:
    """An output layer: ``name`` as in method names (``"dhp"``; ``"matched"`` is the baseline and is left out of
    them), the label methods carry, its settings (None: it has none) and its module class, built as
    ``module(width, out_features, **settings.layer_kwargs())`` on top of a network's body."""

    name: str
    label: str
    settings: type[Settings] | None = None
    module: Any = None


@dataclass(frozen=True)
class Benchmark:
    """A continual-learning benchmark, declared in its own module of ``dhclib/benchmarks/`` (or a plugin's).

    ``build(seed, settings, data_dir=..., device=..., download=...)`` returns the task list; ``settings`` is a
    :class:`Settings` dataclass (a :class:`~dhclib.benchmarks.TaskSettings`) whose fields are the builder's options
    (n_tasks, val_fraction, ...) with their defaults, and whose ``max_tasks`` bounds ``n_tasks``; ``profiles`` maps
    ``"paper"`` (the drivers' default; required) / ``"quick"`` / ... to the config values that differ from the
    defaults (any field: protocol, network, settings, eta...); ``inputs`` is ``"vector"`` (flat) or ``"image"``
    (3x32x32): the networks that fit; ``paper_table`` names the paper's result table its rows sit beside
    (``dhclib.paper``), None for none; ``methods`` the methods ``"all"`` means on it: the paper's (a regulariser a
    plugin adds does not join them), or None, every registered composition that can run there.
    """

    name: str
    title: str
    build: Callable[..., list]
    settings: type[Settings]
    profiles: Mapping[str, Mapping[str, Any]]
    datasets: tuple[str, ...]
    inputs: str
    paper_table: str | None = "table1"
    methods: tuple[str, ...] | None = None
    # ``read_data(settings, data_dir, download)``: read what a run with these settings reads, as its builder does
    # (the Vision Mixture's task list and notMNIST split); None: every dataset of ``datasets``. Called before
    # anything trains (:func:`dhclib.runs.build.check_data`), so missing data stops a batch at its start.
    read_data: Callable[[Any, Any, bool], None] | None = None


LAYERS: dict[str, OutputLayer] = {}
REGULARISERS: dict[str, type] = {}  # name -> Consolidation subclass (``name``, ``label``, ``Settings``, ...)
BENCHMARKS: dict[str, Benchmark] = {}

_REGULARISER_ATTRS = ("name", "label", "Settings", "paper", "search_grid", "from_settings")


def register_layer(spec: OutputLayer) -> OutputLayer:
    LAYERS[spec.name] = spec
    return spec


def register_regulariser(cls: type) -> type:
    """Class decorator: make a :class:`~dhclib.method.consolidation.Consolidation` subclass a regulariser of dhclib.

    The class declares ``name`` (as in method names), ``label`` (tables and figures), ``Settings`` (its config
    fields, with defaults and validation), ``paper`` (benchmark -> the paper's values of its settings, docs/method.md (strengths)),
    ``search_grid`` (benchmark -> Appendix A's grid of its strength ``lam``) and ``from_settings(model, settings,
    protocol)``. Its settings' field names must not clash with another part's (the stored config is flat).
    """
    missing = [a for a in _REGULARISER_ATTRS if not hasattr(cls, a)]
    if missing:
        raise TypeError(f"regulariser {cls.__name__} lacks {', '.join(missing)}")
    if "+" in cls.name or not cls.name:
        raise TypeError(f"a regulariser's name is one word without '+', got {cls.name!r}")
    REGULARISERS[cls.name] = cls
    return cls


def register_benchmark(spec: Benchmark) -> Benchmark:
    """Make ``spec`` a benchmark of dhclib; it must declare the ``paper`` profile, which the drivers default to."""
    if "paper" not in spec.profiles:
        raise ConfigError(f"benchmark {spec.name!r} declares the profiles {', '.join(spec.profiles) or 'none'}; it "
                          "must declare 'paper' (the drivers' default profile), and may declare others")
    BENCHMARKS[spec.name] = spec
    return spec


def _lookup(table: Mapping[str, Any], name: str, what: str):
    try:
        return table[name]
    except (KeyError, TypeError):
        from dhclib.plugins import failure  # a plugin that did not load may be why the name is unknown

        why = f" ({failure()})" if failure() is not None else ""
        raise ConfigError(f"unknown {what} {name!r}; accepted: {', '.join(table)}{why}") from None


def layer(name: str) -> OutputLayer:
    return _lookup(LAYERS, name, "output layer")


def regulariser(name: str) -> type:
    return _lookup(REGULARISERS, name, "regulariser")


def benchmark(name: str) -> Benchmark:
    return _lookup(BENCHMARKS, name, "benchmark")


@dataclass(frozen=True)
class Method:
    """A method of Table 1 = an output layer × a regulariser (docs/method.md (baseline, consolidation)); ``fresh_per_task``: Figure 8's
    ``scratch`` reference, a new network for every task. The name and label are rendered from the parts."""

    layer: str = "matched"
    regulariser: str = "none"
    fresh_per_task: bool = field(default=False)

    @property
    def name(self) -> str:
        if self.fresh_per_task:
            return "scratch"
        reg = "" if self.regulariser == "none" else self.regulariser
        if self.layer == "matched":
            return reg or "finetune"
        return self.layer + (f"+{reg}" if reg else "")

    @property
    def label(self) -> str:
        if self.fresh_per_task:
            return "Scratch (a new network per task)"
        reg = REGULARISERS[self.regulariser].label if self.regulariser != "none" else ""
        if self.layer == "matched":
            return reg or "Finetune"
        return LAYERS[self.layer].label + (f" + {reg}" if reg else "")

    @property
    def baseline(self) -> "Method":
        """The same regulariser with the matched softmax: what a DHP variant is compared with."""
        return Method("matched", self.regulariser)

    @property
    def plastic(self) -> bool:
        return self.layer != "matched"

    def __str__(self) -> str:
        return self.name


SCRATCH = Method(fresh_per_task=True)


def compositions() -> list[Method]:
    """Every composition of a registered layer and regulariser, a plugin's too, in Table 1's order: per regulariser
    (registration order), baseline then each layer. (What "all" runs on a benchmark is its declared ``methods``.)"""
    return [Method(lay, reg) for reg in REGULARISERS for lay in ["matched", *(n for n in LAYERS if n != "matched")]]


def methods() -> dict[str, Method]:
    """Every method by name: :func:`compositions`, then ``scratch``."""
    return {m.name: m for m in [*compositions(), SCRATCH]}


def method(name: str) -> Method:
    return _lookup(methods(), name, "method")


def pairs() -> list[tuple[str, str]]:
    """Each DHP variant and the baseline it is compared with: (baseline, variant) names, Table 1's order."""
    return [(m.baseline.name, m.name) for m in compositions() if m.plastic]


# The paper's facts that the regularisers declare (docs/method.md (strengths), Appendix A), gathered over every registered one.
def search_grids() -> dict[str, dict[str, tuple[float, ...]]]:
    """Appendix A's consolidation-strength grids, searched on one seed with the baseline methods: benchmark ->
    regulariser -> lambda values, as each regulariser declares them (``search_grid``, beside its class: our
    expansions of the grids the paper prints with ellipses, each containing the paper's choice). Split
    CIFAR-10/100 has none (Appendix D searched nothing)."""
    out: dict[str, dict[str, tuple[float, ...]]] = {}
    for name, cls in REGULARISERS.items():
        for bench, grid in cls.search_grid.items():
            out.setdefault(bench, {})[name] = tuple(grid)
    return out


def paper_lambdas() -> dict[str, dict[str, float]]:
    """The lambdas the paper chose (docs/method.md (strengths)), the same for a baseline and its DHP variant: benchmark ->
    regulariser -> lam, from each regulariser's declared paper values."""
    out: dict[str, dict[str, float]] = {}
    for name, cls in REGULARISERS.items():
        for bench, values in cls.paper.items():
            if "lam" in values:
                out.setdefault(bench, {})[name] = values["lam"]
    return out


def search_grid(benchmark: str, regulariser: str) -> tuple[float, ...]:
    """The lambda grid of Appendix A for ``benchmark`` and ``regulariser`` (a regulariser's name, or a method
    such as 'dhp+si': its regulariser's grid), as declared beside the regulariser's class."""
    grids = search_grids()
    reg = methods()[regulariser].regulariser if regulariser in methods() else regulariser
    if benchmark not in grids:
        raise ValueError(f"no search grid for benchmark {benchmark!r}; known: {', '.join(grids)}")
    if reg not in grids[benchmark]:
        raise ValueError(f"no search grid for {regulariser!r}; accepted: {', '.join(grids[benchmark])} "
                         "(or a DHP variant of one)")
    return grids[benchmark][reg]
