"""The drivers researchers call: ``run``, ``run_many``, ``run_variants``, ``run_grid``, ``run_search``.

Each is a plan (:mod:`dhclib.runs.plan`: the resolved configs and their labels) executed into a result store
(:mod:`dhclib.runs.execute`, :mod:`dhclib.runs.store`), returned as one tidy DataFrame: one row per tested entry of R
(columns benchmark, method, seed, profile, config_key, after_task, task, accuracy, plus a grid's value), with
``attrs["diverged"]`` and ``attrs["missing"]``. Every finished run is one JSON file, written atomically, under
``<out_dir>/runs/<benchmark>/<method>/seed<seed>-<config key>.json``; stored runs are loaded instead of trained,
so an interrupted batch resumes where it stopped and loses at most the run in progress.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from dhclib.errors import ConfigError
from dhclib.runs import execute, plan, unit
from dhclib.runs.build import resolve_device
from dhclib.runs.config import parse_seeds, resolve_config
from dhclib.runs.engine import Engine
from dhclib.runs.store import RunResult, read_record, result_path

__all__ = ["run", "run_many", "run_variants", "run_grid", "run_search", "concat_runs", "load_runs"]


def run(benchmark: str, method: str, seed: int = 0, profile: str = "paper", device: str = "auto",
        data_dir=None, progress: bool = False, **overrides) -> RunResult:
    """Run one trial of ``method`` on ``benchmark`` (see the README for every option).

    ``overrides`` replace the profile's values (e.g. ``lam=50``, ``max_epochs=20``, ``eta_init=0.01``); unknown or
    inapplicable keys and out-of-range values raise :class:`~dhclib.errors.ConfigError`. A loss that becomes NaN/inf
    raises :class:`~dhclib.errors.PlasticInstabilityError` naming the task and epoch.
    """
    cfg = resolve_config(benchmark, method, seed, profile, str(resolve_device(device)), **overrides)
    return unit.run_config(cfg, data_dir, progress)


def _drive(planned: list[plan.Planned], engine: Engine, out_dir, data_dir, progress, on_diverge: str,
           missing: str) -> pd.DataFrame:
    return execute.execute(planned, out_dir, engine, data_dir, progress, on_diverge, missing).tidy()


def _keys_device(device: str, engine: Engine) -> str:
    """The device in the runs' keys: this machine's, or on workers the workers' (not looked for here)."""
    return str(resolve_device(device, here=engine.here))


def run_many(benchmarks: str | Iterable[str], methods: str | Iterable[str], seeds="0", profile: str = "paper",
             device: str = "auto", data_dir=None, out_dir="outputs/runs", progress: bool | str = True,
             on_diverge: str = "raise", missing: str = "train", engine: Engine | str | None = None,
             **overrides) -> pd.DataFrame:
    """Run every (benchmark, method, seed), storing each finished run atomically and skipping stored ones.

    ``benchmarks`` and ``methods`` are names, comma-separated strings or ``"all"``; ``seeds`` as :func:`parse_seeds`.
    All configs are resolved and validated before any training starts (:func:`dhclib.runs.plan.table1`).

    ``progress``: True shows a bar over the runs and one over each run's tasks; ``"runs"`` only the first (short
    notebook and papermill logs); False none.

    A run whose loss becomes NaN/inf is never stored as a result. ``on_diverge="raise"`` (default) stops the batch
    with the :class:`~dhclib.errors.PlasticInstabilityError`; ``"record"`` writes the failure (message and config)
    to ``<out_dir>/diverged/...`` instead, goes on with the batch, and lists the failures (stored ones included:
    a run is deterministic, so it is not retried) in the frame's ``attrs["diverged"]``.

    ``missing="skip"`` trains nothing: runs not in the store are left out and listed in ``attrs["missing"]`` (to
    tabulate the paper-profile runs that exist without training the rest, e.g. on a CPU).

    ``engine``: where and how the runs train, one :class:`~dhclib.runs.engine.Engine` or its string (default
    ``"here"``: this process, one run at a time). ``"stack:8"`` trains up to 8 runs of one configuration (different
    seeds; in the grid drivers, different ``lam``, ``si_xi`` or ``eta_init`` too) together in lockstep
    (:mod:`dhclib.method.stacked`), ``"stack:auto"`` sizes the stack by device, ``+graphs`` replays each stacked
    step as a CUDA graph; ``"local:2"``, ``"dask:local:2"``, ``"dask:tcp://HOST:PORT"`` or ``"slurm:gpus=1,..."``
    train on other processes or machines into the shared store, each run claimed first so that concurrent drivers
    and workers train it once; ``lease=SECONDS``: how long a claim of another host may go without a heartbeat
    before it is taken over. Every run is stored under the key it has alone; its result records the engine and the
    stack size. On workers, ``device`` is the workers' (``"cuda"`` from a CPU login node; ``"auto"`` means this
    machine's device). Only how the runs train is the engine's: what to run and store (``missing``,
    ``on_diverge``, ``data_dir``, ``out_dir``, ``progress``) stays an option of its own.
    """
    engine = Engine.of(engine)
    planned = plan.table1(benchmarks, methods, seeds, profile, _keys_device(device, engine), **overrides)
    return _drive(planned, engine, out_dir, data_dir, progress, on_diverge, missing)


def run_variants(benchmark: str, variants: Iterable[dict], seeds="0", profile: str = "paper", device: str = "auto",
                 data_dir=None, out_dir="outputs/runs", progress: bool | str = True, on_diverge: str = "record",
                 missing: str = "train", engine: Engine | str | None = None, **overrides) -> pd.DataFrame:
    """Extra, clearly labelled rows beside Table 1's: each variant is ``{"methods": [...], "overrides": {...}}``
    and its runs are named by :func:`~dhclib.runs.store.variant_label` in the ``method`` column (e.g. Online EWC
    with the mini-batch Fisher where the paper's lambda diverges, or a baseline with the lambda of our search).
    ``overrides`` apply to every variant (a profile-wide setting such as ``max_epochs``) and do not enter the
    label. ``engine``: as :func:`run_many`."""
    engine = Engine.of(engine)
    planned = plan.variants(benchmark, variants, seeds, profile, _keys_device(device, engine), **overrides)
    return _drive(planned, engine, out_dir, data_dir, progress, on_diverge, missing)


def run_grid(benchmark: str, method: str, param: str, values: Iterable, seeds="0", profile: str = "paper",
             device: str = "auto", data_dir=None, out_dir="outputs/runs", progress: bool | str = True,
             on_diverge: str = "record", missing: str = "train", engine: Engine | str | None = None,
             **overrides) -> pd.DataFrame:
    """:func:`run_many` for each value of one config field (``eta_init`` for Table 4, ``lam`` or ``si_xi`` for the
    search of Appendix A); the tidy frame gains a column named ``param``. Diverged runs are recorded (by default)
    and listed in ``attrs["diverged"]`` with their value; with ``missing="skip"``, runs not stored are listed in
    ``attrs["missing"]``. ``engine``: as :func:`run_many`."""
    engine = Engine.of(engine)
    planned = plan.grid(benchmark, method, param, values, seeds, profile, _keys_device(device, engine), **overrides)
    return _drive(planned, engine, out_dir, data_dir, progress, on_diverge, missing)


def run_search(benchmark: str, grids: dict[str, Iterable] | Iterable[str] = ("ewc", "si", "mas"), seed: int = 0,
               profile: str = "paper", device: str = "auto", data_dir=None, out_dir="outputs/runs",
               progress: bool | str = True, missing: str = "train", engine: Engine | str | None = None,
               **overrides) -> pd.DataFrame:
    """The consolidation-strength search of Appendix A: :func:`run_grid` over ``lam`` for each regulariser, on one
    seed as the paper did. ``grids``: regulariser names (each gets the paper's grid, :func:`dhclib.paper.search_grid`)
    or a dict ``{regulariser: values}``. One tidy frame with a ``lam`` column; ``attrs["diverged"]`` and
    ``attrs["missing"]`` gather those of every grid. ``engine``: as :func:`run_many`."""
    engine = Engine.of(engine)
    planned = plan.search(benchmark, grids, seed, profile, _keys_device(device, engine), **overrides)
    return _drive(planned, engine, out_dir, data_dir, progress, "record", missing)


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
        record = read_record(path, out_dir) if path.is_file() else None  # a damaged file: set aside, not stored
        if record is None and missing == "skip":
            continue
        if record is None:
            raise FileNotFoundError(f"no stored run {benchmark} {method} seed {s} ({path}); run run_many first")
        out.append(RunResult.from_json(record))
    return out


