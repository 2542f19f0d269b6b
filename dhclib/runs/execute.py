"""Execute a plan: train each planned config that the store lacks, store it atomically, and load the rest.

This is the seam where other engines plug in (issues #7, #8): a list of planned configs in
(:class:`dhclib.runs.plan.Planned`), stored results out. :func:`execute` runs them one after the other in this process;
an interrupted batch loses at most the run in progress, and the next call trains only what is missing. The module
also builds what a run needs from its config: the tasks, the network and the regulariser.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from dhclib import __version__, registry
from dhclib._progress import tqdm
from dhclib.seeds import rng
from dhclib.runs.config import RunConfig
from dhclib.method.consolidation import Consolidation
from dhclib.errors import ConfigError, PlasticInstabilityError
from dhclib.numerics import cpu_model, numeric_environment
from dhclib.runs.plan import Planned
from dhclib.runs.store import TIDY_COLUMNS, RunResult, read_record, result_path, write_atomic
from dhclib.method.train import train_sequence

__all__ = ["execute", "Executed", "run_config", "build_tasks", "build_model", "build_regulariser",
           "resolve_device", "device_description", "versions"]


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


def run_config(cfg: RunConfig, data_dir=None, progress: bool = False) -> RunResult:
    """Train one resolved config (SPEC §4) and return its result (not stored: :func:`execute` stores)."""
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


@dataclass
class Executed:
    """What :func:`execute` gives back: the tidy rows of every result (named by the planned label and its parts,
    plus the plan's columns), the results themselves, the diverged runs' records and the runs left out (``missing="skip"``)."""

    frame: pd.DataFrame
    results: list[tuple[Planned, RunResult]] = field(default_factory=list)
    diverged: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)

    def tidy(self) -> pd.DataFrame:
        """The frame with ``attrs["diverged"]`` and ``attrs["missing"]`` set (what the drivers return)."""
        df = self.frame
        df.attrs["diverged"], df.attrs["missing"] = self.diverged, self.missing
        return df


def execute(plan: list[Planned], out_dir, data_dir=None, progress: bool | str = True, on_diverge: str = "raise",
            missing: str = "train") -> Executed:
    """Run ``plan`` into the store at ``out_dir``: load each stored run, train and store the others.

    ``progress``: True shows a bar over the runs and one over each run's tasks; ``"runs"`` only the first; False
    none. A run whose loss becomes NaN/inf is never stored as a result: ``on_diverge="raise"`` stops with the
    :class:`~dhclib.errors.PlasticInstabilityError`, ``"record"`` writes the failure to ``<out_dir>/diverged/``
    and goes on (a stored failure is not retried: runs are deterministic). ``missing="skip"`` trains nothing and
    lists the runs not stored.
    """
    if on_diverge not in ("raise", "record"):
        raise ConfigError(f"on_diverge must be 'raise' or 'record', got {on_diverge!r}")
    if missing not in ("train", "skip"):
        raise ConfigError(f"missing must be 'train' or 'skip', got {missing!r}")
    out = Executed(frame=pd.DataFrame(columns=TIDY_COLUMNS))
    frames = []
    bar = tqdm(plan, desc="runs", disable=not progress)
    for planned in bar:
        cfg = planned.config
        path, failed = result_path(out_dir, cfg), result_path(out_dir, cfg, "diverged")
        bar.set_postfix_str(f"{cfg.benchmark} {cfg.method} seed {cfg.seed}")
        stored = read_record(path, out_dir) if path.is_file() else None
        if stored is not None:
            result = RunResult.from_json(stored)
        elif on_diverge == "record" and failed.is_file() and (record := read_record(failed, out_dir)) is not None:
            out.diverged.append(dict(record, **planned.identity, **planned.columns))
            continue
        elif missing == "skip":
            out.missing.append(dict(benchmark=cfg.benchmark, **planned.identity, seed=cfg.seed,
                                    config_key=cfg.key(), **planned.columns))
            continue
        else:
            try:
                result = run_config(cfg, data_dir, progress is True)
            except PlasticInstabilityError as exc:
                if on_diverge == "raise":
                    raise
                record = dict(benchmark=cfg.benchmark, method=cfg.method, seed=cfg.seed, profile=cfg.profile,
                              config_key=cfg.key(), message=str(exc), config=cfg.to_dict(), purpose=planned.purpose)
                write_atomic(failed, record)
                out.diverged.append(dict(record, **planned.identity, **planned.columns))
                continue
            result.purpose = planned.purpose
            write_atomic(path, result.to_json())
        out.results.append((planned, result))
        frames.append(result.tidy(planned.variant).assign(**planned.columns))
    bar.close()
    if frames:
        out.frame = pd.concat(frames, ignore_index=True)
    return out
