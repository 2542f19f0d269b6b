"""The unit of work of every engine, in this process or on a worker: one run, or one stack of runs, trained under
its claims and stored (:func:`train_and_store`).

A stack is up to N runs of one configuration that differ only in :data:`STACK_FREE` (issue #7), trained in
lockstep (:mod:`dhclib.method.stacked`); one run alone is :func:`run_config`. Every run is claimed first
(:mod:`dhclib.runs.claims`), so drivers and workers sharing a store train it once; its result is written
atomically, under the key it has alone, and records how it was trained (``engine``: never part of the key).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

from dhclib.errors import ConfigError, PlasticInstabilityError
from dhclib.method.stacked import Trial, train_stack
from dhclib.method.train import train_sequence
from dhclib.runs.build import build_model, build_regulariser, build_run, code_version, make_result
from dhclib.runs.claims import Claim, Heartbeat, claim, holder, release
from dhclib.runs.config import RunConfig
from dhclib.runs.engine import Engine
from dhclib.runs.executors import one_torch_thread
from dhclib.runs.plan import Planned
from dhclib.runs.store import RunResult, read_record, result_path, write_atomic

__all__ = ["Outcome", "train_and_store", "run_config", "run_stack", "stack_key", "STACK_FREE", "claim_path"]

# The fields in which the trials of one stack may differ: the seed and the elementwise hyperparameters
# (issue #7: a lambda grid or Table 4's eta sweep can be one stack). Everything else is one configuration.
STACK_FREE = ("seed", "lam", "si_xi", "eta_init")


class Outcome(NamedTuple):
    """What became of one run of a unit of work: ``status`` "stored", "diverged" (``message``: why), "held" (by
    another live worker: ``message`` names it) or, set by the driver, "failed" (its worker died). ``result``: the
    stored result, where this process trained it and was asked to keep it (the driver's own process need not read
    back what it has just written)."""

    status: str
    message: str = ""
    result: RunResult | None = None


def stack_key(cfg: RunConfig) -> str | None:
    """What the configs of one stack share (None: a config that never stacks, e.g. ``scratch``'s fresh network
    per task)."""
    if cfg.fresh_model_per_task:
        return None
    return json.dumps({k: v for k, v in cfg.to_dict().items() if k not in STACK_FREE}, sort_keys=True, default=str)


def claim_path(out_dir, cfg: RunConfig) -> Path:
    """Where a run's claim lives: beside the runs, ``<out_dir>/claims/...``."""
    return result_path(out_dir, cfg, "claims").with_suffix(".claim")


def run_config(cfg: RunConfig, data_dir=None, progress: bool = False) -> RunResult:
    """Train one resolved config (docs/method.md (benchmarks)) and return its result (not stored: :func:`train_and_store` stores), with
    one torch thread like every engine (:func:`~dhclib.runs.executors.one_torch_thread`)."""
    with one_torch_thread():
        t0 = time.perf_counter()
        tasks, model, reg = build_run(cfg, data_dir)

        def fresh(t: int):
            model = build_model(cfg, tasks[0].x_train.shape[1], max(k.head.stop for k in tasks), init_key=f"task{t}")
            return model, build_regulariser(model, cfg)

        log = train_sequence(model, tasks, reg, cfg.protocol, cfg.seed, progress=progress,
                             fresh_model=fresh if cfg.fresh_model_per_task else None,
                             desc=f"{cfg.benchmark} {cfg.method} seed {cfg.seed}")
        return make_result(cfg, log, time.perf_counter() - t0, {"engine": "single"}, data_dir)


def run_stack(cfgs: list[RunConfig], data_dir=None, progress: bool = False,
              engine: Engine | str | None = None) -> list[RunResult | PlasticInstabilityError]:
    """Train the configs of one stack in lockstep (:mod:`dhclib.method.stacked`); per config its result, or the
    error that ended it. A stack of one is :func:`run_config` (the one place a single run is trained). Each result
    records the engine and the stack size (never in the key); its wall time is its share of the stack's. The
    engine's ``+graphs``: see :func:`~dhclib.method.stacked.train_stack` (recorded when asked for). One torch
    thread, as :func:`run_config`."""
    if len(cfgs) == 1:
        try:
            return [run_config(cfgs[0], data_dir, progress)]
        except PlasticInstabilityError as exc:
            return [exc]
    if len({stack_key(c) for c in cfgs}) != 1 or stack_key(cfgs[0]) is None:
        raise ConfigError(f"a stack's configs may differ only in {', '.join(STACK_FREE)}")
    graphs = Engine.of(engine).graphs
    with one_torch_thread():
        t0 = time.perf_counter()
        trials = []
        for c in cfgs:
            tasks, model, reg = build_run(c, data_dir)
            trials.append(Trial(model, tasks, reg, c.seed))
        first = cfgs[0]
        logs = train_stack(trials, first.protocol, progress,
                           desc=f"{first.benchmark} {first.method} stack of {len(cfgs)}", cuda_graphs=graphs)
        wall = time.perf_counter() - t0
        how = {"engine": "stacked", "stack": len(cfgs), "stack_wall_time": wall}
        if graphs:
            how["cuda_graphs"] = True
        share = wall / len(cfgs)
        return [log if isinstance(log, PlasticInstabilityError) else make_result(c, log, share, how, data_dir)
                for c, log in zip(cfgs, logs)]


def train_and_store(plans: list[Planned], out_dir, engine: Engine | str | None = None, data_dir=None,
                    record_diverged: bool = True, progress: bool = False, keep: bool = False) -> list[Outcome]:
    """Claim each run of one stack, train the claimed ones that are still neither stored nor, when failures are
    recorded, recorded as diverged (:func:`run_stack`, the claims refreshed meanwhile, every ``lease / 4``
    seconds), store each result, or its divergence record when ``record_diverged``, and release the claims.
    ``keep``: each :class:`Outcome` this process trained carries its result (the in-process engine; a worker's
    results are read back from the store instead of being shipped to the driver)."""
    engine = Engine.of(engine)
    outcomes: dict[int, Outcome] = {}
    mine: list[tuple[int, Claim]] = []
    try:
        for i, p in enumerate(plans):
            if (done := _finished(out_dir, p.config, record_diverged)) is not None:
                outcomes[i] = done
                continue
            c = claim(claim_path(out_dir, p.config), engine.lease)
            if c is None:
                outcomes[i] = Outcome("held", str(holder(claim_path(out_dir, p.config))))
            elif (done := _finished(out_dir, p.config, record_diverged)) is not None:  # by its last holder meanwhile
                release(c)
                outcomes[i] = done
            else:
                mine.append((i, c))
        if mine:
            with Heartbeat([c for _, c in mine], every=engine.lease / 4):
                results = run_stack([plans[i].config for i, _ in mine], data_dir, progress, engine)
            for (i, _), result in zip(mine, results):
                outcomes[i] = _store(out_dir, plans[i], result, record_diverged, keep)
    finally:
        for _, c in mine:
            release(c)
    return [outcomes[i] for i in range(len(plans))]


def _store(out_dir, planned: Planned, result: RunResult | PlasticInstabilityError, record_diverged: bool,
           keep: bool) -> Outcome:
    """Write one trained run's result, or its divergence record when ``record_diverged``."""
    cfg = planned.config
    if isinstance(result, PlasticInstabilityError):
        if record_diverged:
            write_atomic(result_path(out_dir, cfg, "diverged"),
                         dict(benchmark=cfg.benchmark, method=cfg.method, seed=cfg.seed, profile=cfg.profile,
                              config_key=cfg.key(), message=str(result), config=cfg.to_dict(),
                              purpose=planned.purpose, code=code_version()))
        return Outcome("diverged", str(result))
    result.purpose = planned.purpose
    write_atomic(result_path(out_dir, cfg), result.to_json())
    return Outcome("stored", "", result if keep else None)


def _finished(out_dir, cfg: RunConfig, record_diverged: bool) -> Outcome | None:
    """A run's outcome if another worker has already written it: stored, or, where failures are recorded,
    diverged (a recorded failure is not trained again: runs are deterministic, and two drivers on one store would
    otherwise each train every run that diverges, the second after waiting for the first); None when it is still
    to train."""
    if result_path(out_dir, cfg).is_file():
        return Outcome("stored")
    failed = result_path(out_dir, cfg, "diverged")
    if record_diverged and failed.is_file() and (record := read_record(failed, out_dir)) is not None:
        return Outcome("diverged", str(record.get("message", "")))
    return None
