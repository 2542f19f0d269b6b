"""Run configuration: a :class:`RunConfig` resolved once from (benchmark, method, seed, profile, overrides).

Everything that decides a run's numbers comes from the declarations of its parts (``dhclib.registry``): the
benchmark's settings and profiles (``dhclib/benchmarks/``), the training :class:`~dhclib.method.train.Protocol`, the
network (:class:`~dhclib.method.models.NetworkSettings`), the output layer's settings (DHP Softmax's eta, docs/method.md (DHP Softmax)) and
the regulariser's (its λ and options, with the paper's values per benchmark, docs/method.md (strengths)). A config holds one typed
settings object per part and is stored flat (:meth:`RunConfig.to_dict`); a field that does not apply to the run
(eta for a non-DHP method, xi for a non-SI method...) is not part of it, and overriding one is an error, so the
store key depends only on what the run used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Iterator

from dhclib import registry
import dhclib.benchmarks  # noqa: F401  (registers the built-in benchmarks)
from dhclib.method.consolidation import Consolidation  # noqa: F401  (registers the built-in regularisers)
from dhclib.errors import ConfigError
from dhclib.method.layers import DHPSettings  # noqa: F401  (registers the output layers)
from dhclib.method.models import NETWORKS, NetworkSettings
from dhclib.registry import Method, Settings
from dhclib.method.train import Protocol

__all__ = ["RunConfig", "METHODS", "ALL_METHODS", "benchmark_methods", "PROFILES", "BENCHMARK_NAMES",
           "resolve_config", "parse_seeds", "check_reserved", "RESERVED"]

# The typed parts of a run config, in the order its flat form lists them.
PARTS = ("task_settings", "network_settings", "protocol", "layer_settings", "regulariser_settings")


class _MethodsView(Mapping):
    """Method name -> (output layer, regulariser), live from the registry (``with_scratch``: Figure 8's too)."""

    def __init__(self, with_scratch: bool) -> None:
        self._with_scratch = with_scratch

    def _table(self) -> dict[str, Method]:
        table = registry.methods()
        return table if self._with_scratch else {n: m for n, m in table.items() if not m.fresh_per_task}

    def __getitem__(self, name: str) -> tuple[str, str]:
        m = self._table()[name]
        return m.layer, m.regulariser

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


class _NamesView(Sequence):
    """The registered benchmarks' names, live."""

    def __getitem__(self, i):
        return list(registry.BENCHMARKS)[i]

    def __len__(self) -> int:
        return len(registry.BENCHMARKS)


class _ProfilesView(Mapping):
    """Profile name -> {benchmark: its values}, live; a profile exists where any benchmark declares it."""

    def __getitem__(self, profile: str) -> dict[str, Mapping]:
        out = {b: spec.profiles[profile] for b, spec in registry.BENCHMARKS.items() if profile in spec.profiles}
        if not out:
            raise KeyError(profile)
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(p for spec in registry.BENCHMARKS.values() for p in spec.profiles))

    def __len__(self) -> int:
        return len(list(iter(self)))


METHODS: Mapping[str, tuple[str, str]] = _MethodsView(with_scratch=False)  # Table 1's compositions
ALL_METHODS: Mapping[str, tuple[str, str]] = _MethodsView(with_scratch=True)  # ... and Figure 8's scratch
BENCHMARK_NAMES: Sequence[str] = _NamesView()
PROFILES: Mapping[str, dict] = _ProfilesView()


def benchmark_methods(benchmark: str) -> tuple[str, ...]:
    """The methods ``"all"`` means on a benchmark (run_many, the CLI): its declared list (the paper's: Table 1's
    eight; Split CIFAR-10/100: Figure 8's finetune, dhp, si, dhp+si and scratch), else (a benchmark of a user's)
    every composition whose regulariser has the values it needs there (from the paper, or its own defaults)."""
    spec = registry.benchmark(benchmark)
    if spec.methods is not None:
        return tuple(spec.methods)
    return tuple(m for m, (_, reg) in METHODS.items() if not _missing_values(reg, benchmark))


def _missing_values(regulariser: str, benchmark: str, given: dict | None = None) -> list[str]:
    """The regulariser's settings without a default that neither the paper (for the benchmark) nor ``given``
    supplies: such a method cannot run there as declared."""
    cls = registry.regulariser(regulariser)
    known = {**cls.paper.get(benchmark, {}), **(given or {})}
    return [f.name for f in dataclasses.fields(cls.Settings) if f.default is None and known.get(f.name) is None]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's numbers (docs/method.md (benchmarks, strengths)): the run's identity and one settings object per
    part. Each part's fields read as attributes (``cfg.lr``, ``cfg.lam``); a field another part would have reads
    None (``cfg.eta_init`` of a non-DHP method). See the README's table for each field."""

    benchmark: str
    method: str
    seed: int
    profile: str
    device: str  # "cpu" or "cuda[:i]": part of the key, since numbers differ between devices
    task_settings: Settings
    network_settings: NetworkSettings
    protocol: Protocol
    layer_settings: Settings | None
    regulariser_settings: Settings
    download: bool = field(default=True, compare=False)

    def parts(self) -> list[Settings]:
        d = self.__dict__  # not getattr: __getattr__ below must not recurse while the object is being built
        return [d[p] for p in PARTS if d.get(p) is not None]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        for part in self.parts():
            if name in part.field_names():
                return getattr(part, name)
        if name in _known_fields():
            return None
        raise AttributeError(f"RunConfig has no field {name!r}")

    @property
    def method_spec(self) -> Method:
        return registry.method(self.method)

    @property
    def output_layer(self) -> str:
        return self.method_spec.layer

    @property
    def regulariser(self) -> str:
        return self.method_spec.regulariser

    @property
    def fresh_model_per_task(self) -> bool:
        """``scratch``: every task is learned by a new network (Figure 8's reference), never a continual learner."""
        return self.method_spec.fresh_per_task

    def to_dict(self) -> dict:
        """The flat record stored with every result: identity, then every field of every part (tuples as lists)."""
        d: dict[str, Any] = {k: getattr(self, k) for k in ("benchmark", "method", "seed", "profile", "device")}
        for part in self.parts():
            for k in part.field_names():
                v = getattr(part, k)
                d[k] = list(v) if isinstance(v, tuple) else v
        return d

    def key(self) -> str:
        """Short hash of the resolved config: the result store's key, with benchmark, method and seed.

        Fields that are None (not applicable to the method) are left out of the hash, and so are fields added
        after runs were stored while they hold the default that reproduces the earlier code
        (:func:`dhclib.registry.added`): the keys of results already stored never change.
        """
        omit = {name for part in self.parts() for name in registry.key_omits(part)}
        blob = json.dumps({k: v for k, v in self.to_dict().items() if v is not None and k not in omit},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _part_classes(bench: registry.Benchmark, method: Method) -> dict[str, type[Settings] | None]:
    return {"task_settings": bench.settings, "network_settings": NetworkSettings, "protocol": Protocol,
            "layer_settings": registry.layer(method.layer).settings,
            "regulariser_settings": registry.regulariser(method.regulariser).Settings}


def _known_fields() -> set[str]:
    """Every field some registered part declares."""
    classes = [NetworkSettings, Protocol, *(s.settings for s in registry.BENCHMARKS.values()),
               *(s.settings for s in registry.LAYERS.values() if s.settings), *(r.Settings for r in registry.REGULARISERS.values())]
    return {f for cls in classes for f in cls.field_names()}


# Options that have an argument of their own in run()/run_many()/the CLI, never an override.
RESERVED = {"benchmark": "benchmarks", "method": "methods", "seed": "seeds (--seeds)", "seeds": "seeds (--seeds)",
            "profile": "profile (--profile)", "device": "device (--device)", "data_dir": "data_dir (--data-dir)",
            "out_dir": "out_dir (--out)", "engine": "engine (--engine)",
            # the options one engine replaced (issue #29; docs/engines.md, "What replaced what")
            "stack": "engine='stack:N' (--engine)", "cuda_graphs": "engine='stack:N+graphs' (--engine)",
            "executor": "engine='local:N' or another place (--engine)", "lease": "engine='lease=SECONDS' (--engine)"}


def check_reserved(overrides: dict) -> None:
    """Raise ConfigError when an override names an option that has its own argument."""
    for k in overrides:
        if k in RESERVED:
            raise ConfigError(f"{k!r} is not an override: pass it as {RESERVED[k]}")


def _inapplicable(key: str, benchmark: str, method: str, applicable: set[str]) -> ConfigError:
    accepted = ", ".join(sorted(applicable))
    owners = [b for b, spec in registry.BENCHMARKS.items() if key in spec.settings.field_names()]
    if owners and benchmark not in owners:
        return ConfigError(f"override {key!r} applies to {', '.join(owners)} only, not {benchmark}; "
                           f"accepted: {accepted}")
    if key in _known_fields():
        return ConfigError(f"override {key!r} does not apply to method {method!r} on {benchmark}; accepted: {accepted}")
    return ConfigError(f"unknown override {key!r}; accepted: {accepted}")


def canonical_device(device) -> str:
    """One spelling per device, so that one run has one key: ``cpu:0`` is ``cpu``, ``cuda:0`` is ``cuda``."""
    text = str(device)
    if text.startswith("cpu"):
        return "cpu"
    return "cuda" if text == "cuda:0" else text


def resolve_config(
    benchmark: str, method: str, seed: int = 0, profile: str = "paper", device: str = "cpu", /, **overrides
) -> RunConfig:
    """Build and validate a :class:`RunConfig`: each part's defaults, then the benchmark's profile, then the
    paper's values of the regulariser for the benchmark (docs/method.md (strengths)), then ``overrides``."""
    check_reserved(overrides)
    bench = registry.benchmark(benchmark)
    spec = registry.method(method)
    if profile not in bench.profiles:
        raise ConfigError(f"unknown profile {profile!r}; accepted: {', '.join(bench.profiles)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    overrides = dict(overrides)
    download = overrides.pop("download", True)
    if not isinstance(download, bool):
        raise ConfigError(f"download must be true or false, got {download!r}")
    classes = _part_classes(bench, spec)
    applicable = {f for cls in classes.values() if cls for f in cls.field_names()}
    reg = registry.regulariser(spec.regulariser)
    values = {k: v for k, v in bench.profiles[profile].items() if k in applicable}
    values.update(reg.paper.get(benchmark, {}))
    for k, v in overrides.items():
        if k not in applicable:
            raise _inapplicable(k, benchmark, method, applicable)
        values[k] = v
    values = bench.settings.prepare(values, set(overrides))
    for name in _missing_values(spec.regulariser, benchmark, values):
        there = [m.name for m in registry.methods().values() if not _missing_values(m.regulariser, benchmark)]
        what = "lambda" if name == "lam" else name
        raise ConfigError(f"the paper gives no {what} for {method!r} on {benchmark} (its methods there: "
                          f"{', '.join(there)}); pass {name}= to run it anyway")
    try:
        parts = {p: cls(**{k: values[k] for k in cls.field_names() if k in values}) if cls else None
                 for p, cls in classes.items()}
    except TypeError as exc:  # a field the profile must give and does not: a declaration error, said plainly
        raise ConfigError(f"benchmark {benchmark!r}, profile {profile!r}: {exc}") from None
    cfg = RunConfig(benchmark=benchmark, method=method, seed=seed, profile=profile,
                    device=canonical_device(device), download=download, **parts)
    _check_across_parts(cfg, bench)
    return cfg


def _check_across_parts(c: RunConfig, bench: registry.Benchmark) -> None:
    """The rules that involve two parts: the validation split early stopping needs, whether the network takes the
    benchmark's inputs, and that importance on slow-only logits has a plastic term to leave out (the task count is
    the benchmark's settings' own rule)."""
    registry.need(not (c.early_stopping and c.select_on == "val" and c.val_fraction == 0),
                  "early stopping on the validation set needs val_fraction > 0 (or select_on='test')")
    plastic = [m.name for m in registry.methods().values() if m.plastic and c.importance_logits is not None
               and "importance_logits" in registry.regulariser(m.regulariser).Settings.field_names()]
    registry.need(c.importance_logits != "slow" or c.method_spec.plastic,
                  f"importance_logits='slow' leaves DHP Softmax's plastic term out of the logits, and {c.method!r} "
                  f"has none; accepted for {', '.join(plastic)}")
    fit = [n for n, cls in NETWORKS.items() if cls.inputs == bench.inputs]
    registry.need(c.network_settings.inputs == bench.inputs,
                  f"network {c.network or 'mlp'!r} does not fit {c.benchmark}'s inputs; accepted: "
                  + ", ".join("mlp (None)" if n == "mlp" else n for n in fit))


def parse_seeds(seeds) -> list[int]:
    """Seeds from an int, an iterable of ints, or a string like ``"0-9"``, ``"3"`` or ``"0,2,5"``."""
    if isinstance(seeds, bool):
        raise ConfigError(f"seeds must be integers, got {seeds!r}")
    if isinstance(seeds, int):
        out = [seeds]
    elif isinstance(seeds, str):
        out = []
        for part in seeds.replace(" ", "").split(","):
            lo, sep, hi = part.partition("-")
            if not lo.isdigit() or (sep and not hi.isdigit()):
                raise ConfigError(f"seeds must look like '0-9', '3' or '0,2,5', got {seeds!r}")
            if sep and int(hi) < int(lo):
                raise ConfigError(f"seed range {part!r} is empty: the end must be >= the start")
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    else:
        try:
            out = list(seeds)
        except TypeError:
            raise ConfigError(f"seeds must be an int, a list of ints or a range string like '0-9', got {seeds!r}")
    if not out or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in out):
        raise ConfigError(f"seeds must be non-negative integers, got {seeds!r}")
    return out
