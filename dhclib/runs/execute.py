"""Execute a plan: load each stored run, train the others on the engine's workers, store each atomically.

This is the seam where engines plug in (issues #7, #8, #29): a list of planned configs in
(:class:`dhclib.runs.plan.Planned`), one :class:`~dhclib.runs.engine.Engine` saying where and how they train, stored
results out. The runs to train are grouped into stacks (:func:`stacks`) and each stack is one unit of work
(:func:`dhclib.runs.unit.train_and_store`), in this process or on a worker. An interrupted batch loses at most
the run, or the stack, in progress; the next call trains only what is missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from dhclib._progress import tqdm
from dhclib.errors import ConfigError, DhcError, PlasticInstabilityError
from dhclib.runs import unit
from dhclib.runs.build import check_data
from dhclib.runs.engine import Engine
from dhclib.runs.executors import submit_all, workers
from dhclib.runs.plan import Planned
from dhclib.runs.store import TIDY_COLUMNS, RunResult, check_store, read_record, result_path

__all__ = ["execute", "Executed", "stacks"]


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


def execute(plan: list[Planned], out_dir, engine: Engine | str | None = None, data_dir=None,
            progress: bool | str = True, on_diverge: str = "raise", missing: str = "train") -> Executed:
    """Run ``plan`` into the store at ``out_dir`` on ``engine`` (:class:`~dhclib.runs.engine.Engine` or its string;
    None: this process, one run at a time): load each stored run, train and store the others.

    ``progress``: True shows a bar over the runs and one over each run's tasks; ``"runs"`` only the first; False
    none. A run whose loss becomes NaN/inf is never stored as a result: ``on_diverge="raise"`` stops with the
    :class:`~dhclib.errors.PlasticInstabilityError` (after storing the rest of its stack), ``"record"`` writes the
    failure to ``<out_dir>/diverged/`` and goes on (a stored failure is not retried: runs are deterministic).
    ``missing="skip"`` trains nothing and lists the runs not stored.

    Every run is claimed before it is trained (:mod:`dhclib.runs.claims`), so drivers and workers sharing a store
    train it once; a run held by another worker is waited for until it is stored, its holder is gone from this
    host, or its claim is the engine's lease old, then taken over. The runs this process trains are kept in
    memory; those a worker trained are read back from the store, the source of truth.
    """
    if on_diverge not in ("raise", "record"):
        raise ConfigError(f"on_diverge must be 'raise' or 'record', got {on_diverge!r}")
    if missing not in ("train", "skip"):
        raise ConfigError(f"missing must be 'train' or 'skip', got {missing!r}")
    engine = Engine.of(engine)
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
    if todo and engine.here:  # workers on other machines read their own data root, at their job's start
        check_data([plan[i].config for i in todo], data_dir)
    if missing == "train":  # after the data: a batch that cannot train leaves no empty store folder behind
        check_store(out_dir)
    if todo:
        if progress:  # before the bar, which counts runs but cannot say where they train
            kept = [f"{len(plan) - len(todo) - len(out.diverged)} already stored"]
            kept += [f"{len(out.diverged)} recorded as diverged"] if out.diverged else []
            print(f"training {len(todo)} of {len(plan)} runs ({', '.join(kept)}) on engine '{engine}'", flush=True)
        with workers(engine, out_dir) as executor:
            _train(plan, todo, done, out, executor, out_dir, engine, data_dir, progress, on_diverge == "record")
    for i in sorted(done):
        out.results.append((plan[i], done[i]))
    if out.results:
        out.frame = pd.concat([r.tidy(p.variant).assign(**p.columns) for p, r in out.results], ignore_index=True)
    return out


def _train(plan: list[Planned], todo: list[int], done: dict[int, RunResult], out: Executed, executor, out_dir,
           engine: Engine, data_dir, progress: bool | str, record_diverged: bool) -> None:
    """Train the runs ``todo`` of ``plan`` in stacks until each is stored, diverged or failed, waiting for those
    that other workers hold; adds each result to ``done`` and each recorded failure to ``out``."""
    size = engine.stack_size(plan[0].config.device)
    bar = tqdm(total=len(plan), initial=len(plan) - len(todo), desc="runs", disable=not progress)
    poll = min(5.0, engine.lease / 4)
    failed: list[tuple[Planned, str]] = []
    while todo:
        held = []
        for group, outcomes in _run_groups(plan, stacks(plan, todo, size), out_dir, data_dir, record_diverged,
                                           progress is True, engine, executor):
            for i, outcome in zip(group, outcomes):
                planned = plan[i]
                if outcome.status == "held":
                    held.append(i)
                    continue
                if outcome.status == "failed":
                    failed.append((planned, outcome.message))
                elif outcome.status == "diverged":
                    if not record_diverged:
                        raise PlasticInstabilityError(outcome.message)
                    record = read_record(result_path(out_dir, planned.config, "diverged"), out_dir)
                    out.diverged.append(dict(record or {"message": outcome.message}, **planned.identity,
                                             **planned.columns))
                elif outcome.result is not None:
                    done[i] = outcome.result
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
                       f"worker is taken over at once on its own host, elsewhere once it is {engine.lease:.0f} s old)")


def _run_groups(plan, groups, out_dir, data_dir, record_diverged, progress, engine, executor):
    """``(group, outcomes)`` of each stack as it finishes: in this process, one after the other, or on
    ``executor``'s workers."""
    if executor is None:
        for g in groups:
            yield g, unit.train_and_store([plan[i] for i in g], out_dir, engine, data_dir, record_diverged, progress,
                                          keep=True)
        return
    calls = [([plan[i] for i in g], str(out_dir), engine, None if data_dir is None else str(data_dir),
              record_diverged, False) for g in groups]
    jobs = list(zip(groups, submit_all(executor, unit.train_and_store, calls)))
    while jobs:
        finished = [(g, j) for g, j in jobs if j.done()]
        for g, j in finished:
            try:
                outcomes = j.result()
            except Exception as exc:  # the worker died or the job failed: its runs are not stored, retry later
                outcomes = [unit.Outcome("failed", f"{type(exc).__name__}: {exc}".splitlines()[0])] * len(g)
            yield g, outcomes
        jobs = [(g, j) for g, j in jobs if not any(j is f for _, f in finished)]
        if jobs and not finished:
            time.sleep(0.2)


def stacks(plan: list[Planned], todo: list[int], size: int) -> list[list[int]]:
    """The runs to train, in plan order, grouped into stacks of at most ``size`` runs of one configuration."""
    if size == 1:
        return [[i] for i in todo]
    groups: dict[object, list[int]] = {}
    for i in todo:
        key = unit.stack_key(plan[i].config)
        groups.setdefault(key if key is not None else ("alone", i), []).append(i)
    return [g[j:j + size] for g in groups.values() for j in range(0, len(g), size)]
