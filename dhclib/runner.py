"""``run`` and ``run_many``: resolve a config, build benchmark + model + regulariser, train, store the result.

Every finished run is one JSON file, written atomically, under
``<out_dir>/runs/<benchmark>/<method>/seed<seed>-<config key>.json``; ``run_many`` skips runs already stored, so an
interrupted batch resumes where it stopped and loses at most the run in progress.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import torch
from ._progress import tqdm

from . import __version__
from . import registry
from .benchmarks import rng
from .config import BENCHMARK_NAMES, RunConfig, benchmark_methods, check_reserved, parse_seeds, resolve_config
from .consolidation import Consolidation
from .errors import ConfigError, PlasticInstabilityError
from .metrics import average_accuracy, average_accuracy_curve, bwt
from .numerics import cpu_model, numeric_environment
from .train import train_sequence

__all__ = ["run", "run_many", "run_grid", "run_search", "concat_runs", "run_variants", "variant_label", "base_method", "RunResult", "load_results",
           "load_runs", "load_diverged", "build_model", "build_regulariser", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA if available, else CPU. Anything else must name an available device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}; accepted: 'auto', 'cpu', 'cuda', 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here; use 'cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported; accepted: 'auto', 'cpu', 'cuda', 'cuda:N'")
    return dev


def build_tasks(cfg: RunConfig, data_dir=None):
    """The task sequence of the config: its benchmark's builder with the benchmark's settings (SPEC §4)."""
    settings = {k: getattr(cfg.task_settings, k) for k in cfg.task_settings.field_names()}
    return registry.benchmark(cfg.benchmark).build(cfg.seed, data_dir=data_dir, device=cfg.device,
                                                   download=cfg.download, **settings)


def build_model(cfg: RunConfig, in_features: int = 784, out_features: int = 10, init_key: object = 0) -> torch.nn.Module:
    """The network of SPEC §4 for the config, initialised from the trial's seed (``init_key``: which of the
    ``scratch`` method's fresh networks, one per task)."""
    layer_kwargs = cfg.layer_settings.layer_kwargs() if cfg.layer_settings is not None else {}
    torch.manual_seed(rng(cfg.seed, "init", *([init_key] if init_key else [])).initial_seed())
    model = cfg.network_settings.build(in_features, out_features, cfg.output_layer, **layer_kwargs)
    return model.to(cfg.device)


def build_regulariser(model: torch.nn.Module, cfg: RunConfig) -> Consolidation:
    """The config's regulariser, built from its settings by its class (``dhclib.registry``)."""
    return registry.regulariser(cfg.regulariser).from_settings(model, cfg.regulariser_settings, cfg.protocol)


def device_description(device: str | torch.device) -> str:
    """A human-readable name of the device, e.g. ``"cpu: AMD EPYC, 2 threads"`` or ``"cuda: NVIDIA H100"``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return f"cpu: {cpu_model()}, {torch.get_num_threads()} threads"


def versions() -> dict[str, str]:
    import torchvision

    return {"dhclib": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "platform": platform.platform()}


@dataclass
class RunResult:
    """One trial: R, the average-accuracy curve, BWT, the traces, wall time and the full resolved config."""

    config: dict
    R: np.ndarray
    traces: pd.DataFrame
    epochs: pd.DataFrame
    tasks: pd.DataFrame
    wall_time: float
    versions: dict
    device_name: str
    # What decided the floating-point path (dhclib.numerics); empty for runs stored before it was recorded.
    numeric_env: dict = field(default_factory=dict)

    @property
    def curve(self) -> np.ndarray:
        return average_accuracy_curve(self.R)

    @property
    def avg_acc(self) -> float:
        return average_accuracy(self.R)

    @property
    def bwt(self) -> float:
        return bwt(self.R)

    @property
    def key(self) -> str:
        c = self.config
        return f"{c['benchmark']}/{c['method']}/seed{c['seed']}-{c['key']}"

    def tidy(self) -> pd.DataFrame:
        """One row per tested entry of R, with the run's identity."""
        c = self.config
        ident = (c["benchmark"], c["method"], c["seed"], c["profile"], c["key"])
        T = self.R.shape[0]
        rows = [ident + (t, i, self.R[t, i]) for t in range(T) for i in range(t + 1)]
        return pd.DataFrame(rows, columns=_TIDY_COLUMNS)

    def to_json(self) -> dict:
        return {"config": self.config, "R": [[None if np.isnan(v) else v for v in row] for row in self.R.tolist()],
                "avg_acc": self.avg_acc, "bwt": self.bwt, "curve": self.curve.tolist(), "wall_time": self.wall_time,
                "versions": self.versions, "device_name": self.device_name, "numeric_env": self.numeric_env,
                "traces": self.traces.to_dict(orient="list"), "epochs": self.epochs.to_dict(orient="list"),
                "tasks": self.tasks.to_dict(orient="list")}

    @classmethod
    def from_json(cls, d: dict) -> "RunResult":
        R = np.array([[np.nan if v is None else v for v in row] for row in d["R"]], dtype=float)
        return cls(config=d["config"], R=R, traces=pd.DataFrame(d["traces"]), epochs=pd.DataFrame(d["epochs"]),
                   tasks=pd.DataFrame(d["tasks"]), wall_time=d["wall_time"], versions=d["versions"],
                   device_name=d["device_name"], numeric_env=d.get("numeric_env", {}))

    def __repr__(self) -> str:
        return (f"RunResult({self.key}: avg_acc={self.avg_acc:.4f}, bwt={self.bwt:+.4f}, "
                f"{self.wall_time:.1f}s on {self.device_name})")


def _run_config(cfg: RunConfig, data_dir=None, progress: bool = False) -> RunResult:
    t0 = time.perf_counter()
    tasks = build_tasks(cfg, data_dir)
    out_features = max(t.head.stop for t in tasks)
    in_features = tasks[0].x_train.shape[1]

    def fresh(t: int):
        model = build_model(cfg, in_features, out_features, init_key=f"task{t}")
        return model, build_regulariser(model, cfg)

    model = build_model(cfg, in_features, out_features)
    reg = build_regulariser(model, cfg)
    log = train_sequence(model, tasks, reg, cfg.protocol, cfg.seed, progress=progress,
                         fresh_model=fresh if cfg.fresh_model_per_task else None,
                         desc=f"{cfg.benchmark} {cfg.method} seed {cfg.seed}")
    config = dict(cfg.to_dict(), key=cfg.key())
    return RunResult(config=config, R=log.R, traces=pd.DataFrame(log.traces), epochs=pd.DataFrame(log.epochs),
                     tasks=pd.DataFrame(log.tasks), wall_time=time.perf_counter() - t0, versions=versions(),
                     device_name=device_description(cfg.device), numeric_env=numeric_environment(cfg.device))


def run(benchmark: str, method: str, seed: int = 0, profile: str = "paper", device: str = "auto",
        data_dir=None, progress: bool = False, **overrides) -> RunResult:
    """Run one trial of ``method`` on ``benchmark`` (see the README for every option).

    ``overrides`` replace the profile's values (e.g. ``lam=50``, ``max_epochs=20``, ``eta_init=0.01``); unknown or
    inapplicable keys and out-of-range values raise :class:`~dhclib.errors.ConfigError`. A loss that becomes NaN/inf
    raises :class:`~dhclib.errors.PlasticInstabilityError` naming the task and epoch.
    """
    check_reserved(overrides)
    cfg = resolve_config(benchmark, method, seed, profile, str(resolve_device(device)), **overrides)
    return _run_config(cfg, data_dir, progress)


_TIDY_COLUMNS = ["benchmark", "method", "seed", "profile", "config_key", "after_task", "task", "accuracy"]


def result_path(out_dir, cfg: RunConfig, kind: str = "runs") -> Path:
    """``<out_dir>/<kind>/<benchmark>/<method>/seed<seed>-<config key>.json``; kind "runs" or "diverged"."""
    return Path(out_dir) / kind / cfg.benchmark / cfg.method.replace("+", "_") / f"seed{cfg.seed}-{cfg.key()}.json"


def _write_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _as_list(value, what: str, everything: Iterable[str]) -> list[str]:
    """A comma-separated string or an iterable of names; ``"all"`` means every one of ``everything``."""
    if isinstance(value, str):
        value = list(everything) if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    value = list(value)
    if not value:
        raise ConfigError(f"no {what} given")
    return value


def run_many(benchmarks: str | Iterable[str], methods: str | Iterable[str], seeds="0", profile: str = "paper",
             device: str = "auto", data_dir=None, out_dir="outputs/runs", progress: bool | str = True,
             on_diverge: str = "raise", missing: str = "train", **overrides) -> pd.DataFrame:
    """Run every (benchmark, method, seed), storing each finished run atomically and skipping stored ones.

    ``benchmarks`` and ``methods`` are names, comma-separated strings or ``"all"``; ``seeds`` as :func:`parse_seeds`.

    Returns one tidy DataFrame: one row per tested entry of R (columns benchmark, method, seed, profile, config_key,
    after_task, task, accuracy). All configs are resolved and validated before any training starts.

    ``progress``: True shows a bar over the runs and one over each run's tasks; ``"runs"`` only the first (short
    notebook and papermill logs); False none.

    A run whose loss becomes NaN/inf is never stored as a result. ``on_diverge="raise"`` (default) stops the batch
    with the :class:`~dhclib.errors.PlasticInstabilityError`; ``"record"`` writes the failure (message and config)
    to ``<out_dir>/diverged/...`` instead, goes on with the batch, and lists the failures (stored ones included:
    a run is deterministic, so it is not retried) in the frame's ``attrs["diverged"]``.

    ``missing="skip"`` trains nothing: runs not in the store are left out and listed in ``attrs["missing"]`` (to
    tabulate the paper-profile runs that exist without training the rest, e.g. on a CPU).
    """
    check_reserved(overrides)
    if on_diverge not in ("raise", "record"):
        raise ConfigError(f"on_diverge must be 'raise' or 'record', got {on_diverge!r}")
    if missing not in ("train", "skip"):
        raise ConfigError(f"missing must be 'train' or 'skip', got {missing!r}")
    dev = str(resolve_device(device))
    configs = [resolve_config(b, m, s, profile, dev, **overrides)
               for b in _as_list(benchmarks, "benchmarks", BENCHMARK_NAMES)
               for m in _as_list(methods, "methods", benchmark_methods(b)) for s in parse_seeds(seeds)]
    frames, diverged, absent = [], [], []
    bar = tqdm(configs, desc="runs", disable=not progress)
    for cfg in bar:
        path, failed = result_path(out_dir, cfg), result_path(out_dir, cfg, "diverged")
        bar.set_postfix_str(f"{cfg.benchmark} {cfg.method} seed {cfg.seed}")
        if path.is_file():
            result = RunResult.from_json(json.loads(path.read_text()))
        elif on_diverge == "record" and failed.is_file():
            diverged.append(json.loads(failed.read_text()))
            continue
        elif missing == "skip":
            absent.append(dict(benchmark=cfg.benchmark, method=cfg.method, seed=cfg.seed, config_key=cfg.key()))
            continue
        else:
            try:
                result = _run_config(cfg, data_dir, progress is True)
            except PlasticInstabilityError as exc:
                if on_diverge == "raise":
                    raise
                record = dict(benchmark=cfg.benchmark, method=cfg.method, seed=cfg.seed, profile=cfg.profile,
                              config_key=cfg.key(), message=str(exc), config=cfg.to_dict())
                _write_atomic(failed, record)
                diverged.append(record)
                continue
            _write_atomic(path, result.to_json())
        frames.append(result.tidy())
    bar.close()
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=_TIDY_COLUMNS)
    df.attrs["diverged"] = diverged
    df.attrs["missing"] = absent
    return df


def variant_label(method: str, overrides: dict) -> str:
    """The name a method run with non-default settings gets in tables and figures, e.g.
    ``"ewc [fisher_mode=batch]"``, so that it can never be mistaken for the paper's configuration."""
    if not overrides:
        return method
    return f"{method} [{', '.join(f'{k}={v}' for k, v in sorted(overrides.items()))}]"


def base_method(label: str) -> str:
    """The method of a :func:`variant_label` (``"ewc [fisher_mode=batch]"`` -> ``"ewc"``)."""
    return label.split(" [", 1)[0]


def run_variants(benchmark: str, variants: Iterable[dict], seeds="0", profile: str = "paper", device: str = "auto",
                 data_dir=None, out_dir="outputs/runs", progress: bool | str = True, on_diverge: str = "record",
                 missing: str = "train", **overrides) -> pd.DataFrame:
    """Extra, clearly labelled rows beside Table 1's: each variant is ``{"methods": [...], "overrides": {...}}``
    and its runs are named by :func:`variant_label` in the ``method`` column (e.g. Online EWC with the mini-batch
    Fisher where the paper's lambda diverges, or a baseline with the lambda of our search). ``overrides`` apply to
    every variant (a profile-wide setting such as ``max_epochs``) and do not enter the label."""
    frames, diverged, absent = [], [], []
    for v in variants:
        if not isinstance(v, dict) or set(v) - {"methods", "overrides"} or "methods" not in v:
            raise ConfigError(f"a variant is {{'methods': [...], 'overrides': {{...}}}}, got {v!r}")
        own = dict(v.get("overrides") or {})
        if not own:
            raise ConfigError(f"variant {v!r} has no overrides: it would repeat Table 1's runs")
        df = run_many(benchmark, v["methods"], seeds, profile, device, data_dir, out_dir, progress, on_diverge,
                      missing, **dict(overrides, **own))
        df["method"] = df["method"].map(lambda m: variant_label(m, own))
        frames.append(df)
        diverged += [dict(d, method=variant_label(d["method"], own)) for d in df.attrs["diverged"]]
        absent += [dict(d, method=variant_label(d["method"], own)) for d in df.attrs["missing"]]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=_TIDY_COLUMNS)
    out.attrs["diverged"], out.attrs["missing"] = diverged, absent
    return out


def run_grid(benchmark: str, method: str, param: str, values: Iterable, seeds="0", profile: str = "paper",
             device: str = "auto", data_dir=None, out_dir="outputs/runs", progress: bool | str = True,
             on_diverge: str = "record", missing: str = "train", **overrides) -> pd.DataFrame:
    """:func:`run_many` for each value of one config field (``eta_init`` for Table 4, ``lam`` or ``si_xi`` for the
    search of Appendix A); the tidy frame gains a column named ``param``. Diverged runs are recorded (by default)
    and listed in ``attrs["diverged"]`` with their value; with ``missing="skip"``, runs not stored are listed in
    ``attrs["missing"]``."""
    values = list(values)
    if not values:
        raise ConfigError(f"run_grid needs at least one value of {param!r}")
    if param in overrides:
        raise ConfigError(f"{param!r} is the grid's parameter; it cannot also be an override")
    frames, diverged, absent = [], [], []
    for value in values:
        df = run_many(benchmark, method, seeds, profile, device, data_dir, out_dir, progress, on_diverge, missing,
                      **dict(overrides, **{param: value}))
        frames.append(df.assign(**{param: value}))
        diverged += [dict(d, **{param: value}) for d in df.attrs.get("diverged", [])]
        absent += [dict(d, **{param: value}) for d in df.attrs.get("missing", [])]
    out = pd.concat(frames, ignore_index=True)
    out.attrs["diverged"], out.attrs["missing"] = diverged, absent
    return out


def run_search(benchmark: str, grids: dict[str, Iterable] | Iterable[str] = ("ewc", "si", "mas"), seed: int = 0,
               profile: str = "paper", device: str = "auto", data_dir=None, out_dir="outputs/runs",
               progress: bool | str = True, missing: str = "train", **overrides) -> pd.DataFrame:
    """The consolidation-strength search of Appendix A: :func:`run_grid` over ``lam`` for each regulariser, on one
    seed as the paper did. ``grids``: regulariser names (each gets the paper's grid, :func:`dhclib.paper.search_grid`)
    or a dict ``{regulariser: values}``. One tidy frame with a ``lam`` column; ``attrs["diverged"]`` and
    ``attrs["missing"]`` gather those of every grid."""
    from .paper import search_grid

    if not isinstance(grids, dict):
        grids = {reg: search_grid(benchmark, reg) for reg in grids}
    frames = [run_grid(benchmark, reg, "lam", values, seed, profile, device, data_dir, out_dir, progress,
                       missing=missing, **overrides) for reg, values in grids.items()]
    if not frames:
        raise ConfigError("run_search needs at least one regulariser ('ewc', 'si', 'mas')")
    return concat_runs(frames)


def concat_runs(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate tidy frames, keeping the union of their ``attrs["diverged"]`` and ``attrs["missing"]``."""
    out = pd.concat(frames, ignore_index=True)
    out.attrs["diverged"] = [d for f in frames for d in f.attrs.get("diverged", [])]
    out.attrs["missing"] = [d for f in frames for d in f.attrs.get("missing", [])]
    return out


def load_runs(out_dir, benchmark: str, method: str, seeds="0", profile: str = "paper", device: str = "auto",
              missing: str = "raise", **overrides) -> list[RunResult]:
    """The stored runs of exactly these configs (e.g. to read their traces after :func:`run_many`); a run that is
    not stored raises FileNotFoundError naming it (``missing="skip"``: it is left out)."""
    if missing not in ("raise", "skip"):
        raise ConfigError(f"missing must be 'raise' or 'skip', got {missing!r}")
    dev = str(resolve_device(device))
    out = []
    for s in parse_seeds(seeds):
        cfg = resolve_config(benchmark, method, s, profile, dev, **overrides)
        path = result_path(out_dir, cfg)
        if not path.is_file() and missing == "skip":
            continue
        if not path.is_file():
            raise FileNotFoundError(f"no stored run {benchmark} {method} seed {s} ({path}); run run_many first")
        out.append(RunResult.from_json(json.loads(path.read_text())))
    return out


def load_diverged(out_dir) -> list[dict]:
    """The failure records of runs that diverged under ``out_dir`` (``run_many(..., on_diverge="record")``)."""
    return [json.loads(p.read_text()) for p in sorted((Path(out_dir) / "diverged").glob("*/*/seed*.json"))]


def load_results(out_dir) -> list[RunResult]:
    """Every run stored under ``out_dir`` (by :func:`run_many` or the CLI)."""
    paths = sorted((Path(out_dir) / "runs").glob("*/*/seed*.json"))
    return [RunResult.from_json(json.loads(p.read_text())) for p in paths]

