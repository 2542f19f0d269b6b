"""Execute a plan: train each planned config that the store lacks, store it atomically, and load the rest.

This is the seam where other engines plug in (issues #7, #8): a list of planned configs in
(:class:`dhclib.runs.plan.Planned`), stored results out. :func:`execute` runs them one after the other in this process;
an interrupted batch loses at most the run in progress, and the next call trains only what is missing. The module
also builds what a run needs from its config: the tasks, the network and the regulariser.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dhclib import registry
from dhclib._version import __version__
from dhclib._progress import tqdm
from dhclib.seeds import rng
from dhclib.runs.config import RunConfig
from dhclib.method.consolidation import Consolidation
from dhclib.errors import ConfigError, DhcError, PlasticInstabilityError
from dhclib.numerics import cpu_model, numeric_environment
from dhclib.runs.claims import STALE_AFTER, Claim, Heartbeat, claim, holder, release
from dhclib.runs.executors import one_torch_thread, submit_all
from dhclib.runs.plan import Planned
from dhclib.runs.store import TIDY_COLUMNS, RunResult, check_store, read_record, result_path, write_atomic
from dhclib.method.stacked import Trial, train_stack
from dhclib.method.train import train_sequence

__all__ = ["execute", "Executed", "run_config", "run_stack", "build_run", "stack_key", "resolve_stack", "STACK_FREE",
           "train_and_store", "claim_path", "check_lease", "check_data", "build_tasks", "build_model",
           "build_regulariser", "resolve_device", "device_description", "versions", "code_version"]


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


def build_tasks(cfg: RunConfig, data_dir=None):
    """The task sequence of the config: its benchmark's builder with the benchmark's settings (SPEC §4)."""
    return registry.benchmark(cfg.benchmark).build(cfg.seed, cfg.task_settings, data_dir=data_dir, device=cfg.device,
                                                   download=cfg.download)


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


def _result(cfg: RunConfig, log, wall_time: float, engine: dict, data_dir=None) -> RunResult:
    return RunResult(config=dict(cfg.to_dict(), key=cfg.key()), R=log.R, traces=pd.DataFrame(log.traces),
                     epochs=pd.DataFrame(log.epochs), tasks=pd.DataFrame(log.tasks), wall_time=wall_time,
                     versions=versions(), device_name=device_description(cfg.device),
                     numeric_env=numeric_environment(cfg.device), engine=engine,
                     data=data_provenance(cfg, data_dir), code=code_version())


def build_run(cfg: RunConfig, data_dir=None, init_key: object = 0):
    """The tasks, network and regulariser of a config, each from the trial's seed."""
    tasks = build_tasks(cfg, data_dir)
    model = build_model(cfg, tasks[0].x_train.shape[1], max(t.head.stop for t in tasks), init_key=init_key)
    return tasks, model, build_regulariser(model, cfg)


def run_config(cfg: RunConfig, data_dir=None, progress: bool = False) -> RunResult:
    """Train one resolved config (SPEC §4) and return its result (not stored: :func:`execute` stores), with one
    torch thread like every engine (:func:`~dhclib.runs.executors.one_torch_thread`)."""
    with one_torch_thread():
        return _run_config(cfg, data_dir, progress)


def _run_config(cfg: RunConfig, data_dir, progress: bool) -> RunResult:
    t0 = time.perf_counter()
    tasks, model, reg = build_run(cfg, data_dir)

    def fresh(t: int):
        model = build_model(cfg, tasks[0].x_train.shape[1], max(k.head.stop for k in tasks), init_key=f"task{t}")
        return model, build_regulariser(model, cfg)

    log = train_sequence(model, tasks, reg, cfg.protocol, cfg.seed, progress=progress,
                         fresh_model=fresh if cfg.fresh_model_per_task else None,
                         desc=f"{cfg.benchmark} {cfg.method} seed {cfg.seed}")
    return _result(cfg, log, time.perf_counter() - t0, {"engine": "single"}, data_dir)


# The fields in which the trials of one stack may differ: the seed and the elementwise hyperparameters
# (issue #7: a lambda grid or Table 4's eta sweep can be one stack). Everything else is one configuration.
STACK_FREE = ("seed", "lam", "si_xi", "eta_init")


def stack_key(cfg: RunConfig) -> str | None:
    """What the configs of one stack share (None: a config that never stacks, e.g. ``scratch``'s fresh network
    per task)."""
    if cfg.fresh_model_per_task:
        return None
    return json.dumps({k: v for k, v in cfg.to_dict().items() if k not in STACK_FREE}, sort_keys=True, default=str)


def resolve_stack(stack: int | str, device: str | torch.device) -> int:
    """The largest stack of a batch: an integer >= 1, or ``"auto"``: 1 on a CPU (stacking does not pay there:
    ``benchmarks/stack_throughput.py``), 80 on a GPU (issue #7's target size; not yet measured here)."""
    if stack == "auto":
        return 80 if torch.device(device).type == "cuda" else 1
    if isinstance(stack, bool) or not isinstance(stack, int) or stack < 1:
        raise ConfigError(f"stack must be an integer >= 1 or 'auto', got {stack!r}")
    return stack


def run_stack(cfgs: list[RunConfig], data_dir=None, progress: bool = False,
              cuda_graphs: bool = False) -> list[RunResult | PlasticInstabilityError]:
    """Train the configs of one stack in lockstep (:mod:`dhclib.method.stacked`); per config its result, or the
    error that ended it. Each result records the engine and the stack size (never in the key); its wall time is
    its share of the stack's. ``cuda_graphs``: see :func:`~dhclib.method.stacked.train_stack` (recorded in the
    engine when asked for). One torch thread, as :func:`run_config`."""
    with one_torch_thread():
        return _run_stack(cfgs, data_dir, progress, cuda_graphs)


def _run_stack(cfgs: list[RunConfig], data_dir, progress: bool,
               cuda_graphs: bool) -> list[RunResult | PlasticInstabilityError]:
    if len(cfgs) == 1:
        try:
            return [run_config(cfgs[0], data_dir, progress)]
        except PlasticInstabilityError as exc:
            return [exc]
    if len({stack_key(c) for c in cfgs}) != 1 or stack_key(cfgs[0]) is None:
        raise ConfigError(f"a stack's configs may differ only in {', '.join(STACK_FREE)}")
    t0 = time.perf_counter()
    trials = [_trial(c, data_dir) for c in cfgs]
    first = cfgs[0]
    logs = train_stack(trials, first.protocol, progress,
                       desc=f"{first.benchmark} {first.method} stack of {len(cfgs)}", cuda_graphs=cuda_graphs)
    wall = time.perf_counter() - t0
    engine = {"engine": "stacked", "stack": len(cfgs), "stack_wall_time": wall}
    if cuda_graphs:
        engine["cuda_graphs"] = True
    return [log if isinstance(log, PlasticInstabilityError) else _result(c, log, wall / len(cfgs), engine, data_dir)
            for c, log in zip(cfgs, logs)]


def _trial(cfg: RunConfig, data_dir) -> Trial:
    tasks, model, reg = build_run(cfg, data_dir)
    return Trial(model, tasks, reg, cfg.seed)


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
            missing: str = "train", stack: int | str = 1, executor=None, stale_after: float = STALE_AFTER,
            cuda_graphs: bool = False) -> Executed:
    """Run ``plan`` into the store at ``out_dir``: load each stored run, train and store the others.

    ``progress``: True shows a bar over the runs and one over each run's tasks; ``"runs"`` only the first; False
    none. A run whose loss becomes NaN/inf is never stored as a result: ``on_diverge="raise"`` stops with the
    :class:`~dhclib.errors.PlasticInstabilityError` (after storing the rest of its stack), ``"record"`` writes the
    failure to ``<out_dir>/diverged/`` and goes on (a stored failure is not retried: runs are deterministic).
    ``missing="skip"`` trains nothing and lists the runs not stored. ``stack``: train up to this many runs of one
    configuration together (:func:`run_stack`; ``"auto"``: :func:`resolve_stack`); each is stored as it would be
    alone, with the same key. An interrupted batch loses at most the run, or the stack, in progress.
    ``cuda_graphs``: a stack's steps on CUDA replayed as a CUDA graph (:func:`run_stack`).

    ``executor``: where the work runs (:func:`train_and_store` per stack): None, this process; else any object
    with ``submit(fn, *args)`` returning something with ``result()`` and ``done()`` — a
    ``concurrent.futures.Executor`` (a process pool, Dask's ``Client.get_executor()``) or a submitit executor.
    Every run is claimed before it is trained (:mod:`dhclib.runs.claims`), so drivers and workers sharing a store
    train it once; a run held by another worker is waited for until it is stored, its holder is gone from this host,
    or its claim is ``stale_after`` seconds old (the lease of a holder elsewhere), then taken over. The store is the
    source of truth: the frame is read back from it.
    """
    if on_diverge not in ("raise", "record"):
        raise ConfigError(f"on_diverge must be 'raise' or 'record', got {on_diverge!r}")
    if missing not in ("train", "skip"):
        raise ConfigError(f"missing must be 'train' or 'skip', got {missing!r}")
    check_lease(stale_after)
    size = resolve_stack(stack, plan[0].config.device if plan else "cpu")
    out = Executed(frame=pd.DataFrame(columns=TIDY_COLUMNS))
    done: dict[int, RunResult] = {}
    todo: list[int] = []
    for i, planned in enumerate(plan):
        cfg = planned.config
        path, failed = result_path(out_dir, cfg), result_path(out_dir, cfg, "diverged")
        stored = read_record(path, out_dir) if path.is_file() else None
        if stored is not None:
            done[i] = RunResult.from_json(stored)
        elif on_diverge == "record" and failed.is_file() and (record := read_record(failed, out_dir)) is not None:
            out.diverged.append(dict(record, **planned.identity, **planned.columns))
        elif missing == "skip":
            out.missing.append(dict(benchmark=cfg.benchmark, **planned.identity, seed=cfg.seed,
                                    config_key=cfg.key(), **planned.columns))
        else:
            todo.append(i)
    if todo and executor is None:  # workers on other machines read their own data root, at their job's start
        check_data([plan[i].config for i in todo], data_dir)
    if missing == "train":  # after the data: a batch that cannot train leaves no empty store folder behind
        check_store(out_dir)
    bar = tqdm(total=len(plan), initial=len(plan) - len(todo), desc="runs", disable=not progress)
    poll = min(5.0, stale_after / 4)
    failed: list[tuple[Planned, str]] = []
    while todo:
        held = []
        for group, outcomes in _run_groups(plan, _stacks(plan, todo, size), out_dir, data_dir,
                                           on_diverge == "record", progress is True, stale_after, executor,
                                           cuda_graphs):
            for i, (status, message) in zip(group, outcomes):
                planned = plan[i]
                if status == "held":
                    held.append(i)
                    continue
                if status == "failed":
                    failed.append((planned, message))
                    bar.update(1)
                    continue
                if status == "diverged":
                    if on_diverge == "raise":
                        raise PlasticInstabilityError(message)
                    record = read_record(result_path(out_dir, planned.config, "diverged"), out_dir)
                    out.diverged.append(dict(record or {"message": message}, **planned.identity, **planned.columns))
                else:
                    stored = read_record(result_path(out_dir, planned.config), out_dir)
                    if stored is None:  # damaged since (and moved aside by read_record): train it again
                        held.append(i)
                        continue
                    done[i] = RunResult.from_json(stored)
                bar.update(1)
        todo = held
        if todo:  # held by a live worker elsewhere: wait for its result, or for its claim to go stale
            bar.set_postfix_str(f"{len(todo)} runs held by other workers")
            time.sleep(poll)
    bar.close()
    if failed:
        first, why = failed[0]
        raise DhcError(f"{len(failed)} of {len(plan)} runs failed on their workers and are not stored (first: "
                       f"{first.config.benchmark} {first.label} seed {first.config.seed}: {why}); the others are "
                       f"stored: run the same command again to train the missing ones (a claim left by a killed "
                       f"worker is taken over at once on its own host, elsewhere once it is {stale_after:.0f} s old)")
    frames = []
    for i in sorted(done):
        out.results.append((plan[i], done[i]))
        frames.append(done[i].tidy(plan[i].variant).assign(**plan[i].columns))
    if frames:
        out.frame = pd.concat(frames, ignore_index=True)
    return out


def check_lease(seconds: float) -> None:
    """A claim's lease (``stale_after``, ``--lease``) must be a finite number of seconds > 0: 0 would take every
    live worker's claim over, infinity would wait forever for a dead one's."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < float("inf"):
        raise ConfigError(f"the lease must be a finite number of seconds > 0 (default {STALE_AFTER:.0f}), got "
                          f"{seconds!r}")


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


def claim_path(out_dir, cfg: RunConfig) -> Path:
    """Where a run's claim lives: beside the runs, ``<out_dir>/claims/...``."""
    return result_path(out_dir, cfg, "claims").with_suffix(".claim")


def train_and_store(plans: list[Planned], out_dir, data_dir=None, record_diverged: bool = True,
                    progress: bool = False, stale_after: float = STALE_AFTER,
                    cuda_graphs: bool = False) -> list[tuple[str, str]]:
    """The unit of work of every engine, in this process or on a worker: claim each run of one stack, train the
    claimed ones that are still neither stored nor, when failures are recorded, recorded as diverged
    (:func:`run_stack`, with the claims refreshed meanwhile), store each
    result, or its divergence record when ``record_diverged``, and release the claims. Per run: ``("stored", "")``,
    ``("diverged", message)`` or ``("held", who)`` when another live worker holds it."""
    outcomes: dict[int, tuple[str, str]] = {}
    mine: list[tuple[int, Claim]] = []
    try:
        for i, p in enumerate(plans):
            if (done := _finished(out_dir, p.config, record_diverged)) is not None:
                outcomes[i] = done
                continue
            c = claim(claim_path(out_dir, p.config), stale_after)
            if c is None:
                outcomes[i] = ("held", str(holder(claim_path(out_dir, p.config))))
            elif (done := _finished(out_dir, p.config, record_diverged)) is not None:  # by its last holder meanwhile
                release(c)
                outcomes[i] = done
            else:
                mine.append((i, c))
        if mine:
            with Heartbeat([c for _, c in mine], every=stale_after / 4):
                results = run_stack([plans[i].config for i, _ in mine], data_dir, progress, cuda_graphs)
            for (i, _), result in zip(mine, results):
                planned, cfg = plans[i], plans[i].config
                if isinstance(result, PlasticInstabilityError):
                    if record_diverged:
                        write_atomic(result_path(out_dir, cfg, "diverged"),
                                     dict(benchmark=cfg.benchmark, method=cfg.method, seed=cfg.seed,
                                          profile=cfg.profile, config_key=cfg.key(), message=str(result),
                                          config=cfg.to_dict(), purpose=planned.purpose, code=code_version()))
                    outcomes[i] = ("diverged", str(result))
                    continue
                result.purpose = planned.purpose
                write_atomic(result_path(out_dir, cfg), result.to_json())
                outcomes[i] = ("stored", "")
    finally:
        for _, c in mine:
            release(c)
    return [outcomes[i] for i in range(len(plans))]


def _finished(out_dir, cfg: RunConfig, record_diverged: bool) -> tuple[str, str] | None:
    """A run's outcome if another worker has already written it: ``("stored", "")``, or, where failures are
    recorded, ``("diverged", message)`` (a recorded failure is not trained again: runs are deterministic, and two
    drivers on one store would otherwise each train every run that diverges, the second after waiting for the
    first); None when it is still to train."""
    if result_path(out_dir, cfg).is_file():
        return ("stored", "")
    failed = result_path(out_dir, cfg, "diverged")
    if record_diverged and failed.is_file() and (record := read_record(failed, out_dir)) is not None:
        return ("diverged", str(record.get("message", "")))
    return None


def _run_groups(plan, groups, out_dir, data_dir, record_diverged, progress, stale_after, executor, cuda_graphs):
    """``(group, outcomes)`` of each stack as it finishes: in this process, one after the other, or on
    ``executor``'s workers."""
    if executor is None:
        for g in groups:
            yield g, train_and_store([plan[i] for i in g], out_dir, data_dir, record_diverged, progress, stale_after,
                                     cuda_graphs)
        return
    calls = [([plan[i] for i in g], str(out_dir), None if data_dir is None else str(data_dir), record_diverged,
              False, stale_after, cuda_graphs) for g in groups]
    jobs = list(zip(groups, submit_all(executor, train_and_store, calls)))
    while jobs:
        finished = [(g, j) for g, j in jobs if j.done()]
        for g, j in finished:
            try:
                outcomes = j.result()
            except Exception as exc:  # the worker died or the job failed: its runs are not stored, retry later
                outcomes = [("failed", f"{type(exc).__name__}: {exc}".splitlines()[0])] * len(g)
            yield g, outcomes
        jobs = [(g, j) for g, j in jobs if not any(j is f for _, f in finished)]
        if jobs and not finished:
            time.sleep(0.2)


def _stacks(plan: list[Planned], todo: list[int], size: int) -> list[list[int]]:
    """The runs to train, in plan order, grouped into stacks of at most ``size`` runs of one configuration."""
    if size == 1:
        return [[i] for i in todo]
    groups: dict[object, list[int]] = {}
    for i in todo:
        key = stack_key(plan[i].config)
        groups.setdefault(key if key is not None else ("alone", i), []).append(i)
    return [g[j:j + size] for g in groups.values() for j in range(0, len(g), size)]
