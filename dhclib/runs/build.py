"""Build a run from its config: the device, the tasks, the network and the regulariser, and what its result
records about where it came from (the versions, the data files read, the code's commit).

Everything here is a function of the config alone (plus the data root), so an engine anywhere, this process or a
worker on another node, builds the same run from the same config. Training it is :mod:`dhclib.runs.unit`'s job.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dhclib import registry
from dhclib._version import __version__
from dhclib.errors import ConfigError
from dhclib.method.consolidation import Consolidation
from dhclib.numerics import cpu_model, numeric_environment
from dhclib.runs.config import RunConfig
from dhclib.runs.store import RunResult
from dhclib.seeds import rng

__all__ = ["resolve_device", "device_description", "build_tasks", "build_model", "build_regulariser", "build_run",
           "versions", "code_version", "data_provenance", "check_data", "make_result"]


def resolve_device(device: str | torch.device = "auto", here: bool = True) -> torch.device:
    """``"auto"``: CUDA if available, else CPU. Anything else must name an available device; with ``here=False``
    a device of the workers (a CPU login node submits CUDA runs to GPU nodes): its name is checked, its presence is
    left to the worker, which fails with this message if it lacks it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}; accepted: 'auto', 'cpu', 'cuda', 'cuda:N'") from exc
    if here and dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here; use 'cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported; accepted: 'auto', 'cpu', 'cuda', 'cuda:N'")
    return dev


def device_description(device: str | torch.device) -> str:
    """A human-readable name of the device, e.g. ``"cpu: AMD EPYC, 2 threads"`` or ``"cuda: NVIDIA H100"``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return f"cpu: {cpu_model()}, {torch.get_num_threads()} threads"


def build_tasks(cfg: RunConfig, data_dir=None):
    """The task sequence of the config: its benchmark's builder with the benchmark's settings (docs/method.md (benchmarks))."""
    return registry.benchmark(cfg.benchmark).build(cfg.seed, cfg.task_settings, data_dir=data_dir, device=cfg.device,
                                                   download=cfg.download)


def build_model(cfg: RunConfig, in_features: int = 784, out_features: int = 10, init_key: object = 0) -> torch.nn.Module:
    """The network of docs/method.md (benchmarks) for the config, initialised from the trial's seed (``init_key``: which of the
    ``scratch`` method's fresh networks, one per task)."""
    layer_kwargs = cfg.layer_settings.layer_kwargs() if cfg.layer_settings is not None else {}
    torch.manual_seed(rng(cfg.seed, "init", *([init_key] if init_key else [])).initial_seed())
    model = cfg.network_settings.build(in_features, out_features, cfg.output_layer, **layer_kwargs)
    return model.to(cfg.device)


def build_regulariser(model: torch.nn.Module, cfg: RunConfig) -> Consolidation:
    """The config's regulariser, built from its settings by its class (``dhclib.registry``)."""
    return registry.regulariser(cfg.regulariser).from_settings(model, cfg.regulariser_settings, cfg.protocol)


def build_run(cfg: RunConfig, data_dir=None, init_key: object = 0):
    """The tasks, network and regulariser of a config, each from the trial's seed."""
    tasks = build_tasks(cfg, data_dir)
    model = build_model(cfg, tasks[0].x_train.shape[1], max(t.head.stop for t in tasks), init_key=init_key)
    return tasks, model, build_regulariser(model, cfg)


def versions() -> dict[str, str]:
    import torchvision

    return {"dhclib": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "platform": platform.platform()}


def code_version() -> dict:
    """The code a run ran: ``{"commit": the HEAD commit of the git checkout dhclib is imported from, "dirty":
    whether its tracked files outside ``outputs/`` differ from that commit}``; both None where dhclib is not in a
    git checkout or git cannot be run. Asked afresh for every run, not cached: a worker outlives commits."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)outputs")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0 or status.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def data_provenance(cfg: RunConfig, data_dir=None) -> dict:
    """``{dataset: {role: {"file", "bytes", "sha256"}}}`` of the files a run of ``cfg`` read: what its benchmark's
    data check reads (:func:`check_data`, the builder's own reads), from the in-process
    cache, so nothing is decoded twice (issue #8, item 4)."""
    from dhclib.data.cache import recording

    with recording() as read:
        _read_data(cfg, data_dir)
    return dict(sorted(read.items()))


def check_data(cfgs: list[RunConfig], data_dir=None) -> None:
    """Read the data of every benchmark these configs train on, once per distinct setting, before anything trains:
    a batch over several benchmarks stops at its start, naming what is missing, not after hours at the first
    benchmark without its data (issue #8, item 4). The arrays are cached, so the runs read them again for free."""
    seen = set()
    for cfg in cfgs:
        key = (cfg.benchmark, cfg.task_settings, cfg.download)
        if key not in seen:
            seen.add(key)
            _read_data(cfg, data_dir)


def _read_data(cfg: RunConfig, data_dir) -> None:
    """Read the datasets a run of ``cfg`` reads: its benchmark's ``read_data``, else each of its ``datasets``."""
    from dhclib.data.vision import VISION_DATASETS

    bench = registry.benchmark(cfg.benchmark)
    if bench.read_data is not None:
        bench.read_data(cfg.task_settings, data_dir, cfg.download)
        return
    for name in bench.datasets:
        VISION_DATASETS[name](data_dir, cfg.download)


def make_result(cfg: RunConfig, log, wall_time: float, engine: dict, data_dir=None) -> RunResult:
    """A trained run's result: its log (:class:`~dhclib.method.train.SequenceLog`) with the config, how it was
    trained (``engine``) and where it came from."""
    return RunResult(config=dict(cfg.to_dict(), key=cfg.key()), R=log.R, traces=pd.DataFrame(log.traces),
                     epochs=pd.DataFrame(log.epochs), tasks=pd.DataFrame(log.tasks), wall_time=wall_time,
                     versions=versions(), device_name=device_description(cfg.device),
                     numeric_env=numeric_environment(cfg.device), engine=engine,
                     data=data_provenance(cfg, data_dir), code=code_version())
