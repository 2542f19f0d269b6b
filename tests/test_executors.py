"""Runs fanned out to worker processes into one store, each trained exactly once (issue #8, items 1, 2 and 5).

The claim protocol on its own (link, link count, stale takeover, release, heartbeat), then the engines with real
processes: a spawned process pool gives the one-at-a-time numbers bit for bit; two drivers started together on one
store train every run once (the trainings are counted); a run whose holder died is trained once its claim is stale.
"""

from __future__ import annotations

import contextlib
import errno
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import dhclib
from dhclib.errors import DhcError
from dhclib.runs.claims import (Claim, Heartbeat, alive, claim, holder, pid_namespace, release,
                                 start_token)
from dhclib.runs.config import resolve_config
from dhclib.runs import execute, executors, plan, unit
from dhclib.runs.engine import Engine, SlurmOptions
from dhclib.runs.executors import open_executor, submit_all
from dhclib.runs.unit import claim_path

SMALL = dict(n_tasks=2, train_size=100, test_size=50, max_epochs=2, min_epochs=1)
ROOT = Path(__file__).resolve().parent.parent


# --- the claim protocol -----------------------------------------------------------------------------------
def test_a_claim_is_held_once_until_released(tmp_path):
    path = tmp_path / "c" / "seed0-k.claim"
    first = claim(path)
    assert isinstance(first, Claim) and claim(path) is None
    who = holder(path)
    assert who["pid"] == os.getpid() and who["token"] == first.token
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the unique file is gone
    release(first)
    assert not path.exists() and claim(path) is not None


def test_a_stale_claim_is_taken_over_and_the_old_holder_cannot_release_it(tmp_path):
    path = tmp_path / "seed0-k.claim"
    dead = claim(path, stale_after=60)
    assert claim(path, stale_after=60) is None
    old = time.time() - 120
    os.utime(path, (old, old))
    taker = claim(path, stale_after=60)
    assert taker is not None and holder(path)["token"] == taker.token
    release(dead)  # the dead worker wakes up: the claim is no longer its own
    assert holder(path)["token"] == taker.token
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # the stale claim was not left aside


def test_a_heartbeat_keeps_a_claim_fresh(tmp_path):
    path = tmp_path / "seed0-k.claim"
    c = claim(path)
    old = time.time() - 1000
    os.utime(path, (old, old))
    with Heartbeat([c], every=0.05):
        time.sleep(0.3)
    assert time.time() - path.stat().st_mtime < 5
    assert claim(path, stale_after=60) is None


def _dead_pid() -> int:
    """The PID of a process of this host that has exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(child.stdout)
    assert not alive(pid)
    return pid


def _claim_of(path: Path, **who) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    here = {"host": socket.gethostname(), "pidns": pid_namespace(), "time": time.time(), "token": "theirs"}
    path.write_text(json.dumps(dict(here, **who)))


def test_a_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path):
    """D1 (issue #28): a claim left by a killed process of this host is taken over at once, not after 10 minutes."""
    path = tmp_path / "seed0-k.claim"
    _claim_of(path, pid=_dead_pid())
    taker = claim(path)  # the default lease: 10 minutes
    assert taker is not None and holder(path)["token"] == taker.token
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no guard or unique file left


@pytest.mark.skipif(start_token(os.getpid()) is None, reason="no /proc here: a recycled PID cannot be told apart")
def test_a_claim_whose_pid_another_process_reuses_is_taken_over_at_once(tmp_path):
    path = tmp_path / "seed0-k.claim"
    _claim_of(path, pid=os.getpid(), start=start_token(os.getpid()))  # this very process: held
    assert claim(path) is None
    _claim_of(path, pid=os.getpid(), start="another boot:1")  # a process before this one, with its PID
    assert claim(path) is not None


def test_a_claim_of_another_pid_namespace_on_this_host_keeps_its_lease(tmp_path):
    """A container with the host's name (``--network host``) numbers its processes apart: its PIDs say nothing
    here, so its claim is leased like another host's."""
    path = tmp_path / "seed0-k.claim"
    _claim_of(path, pid=_dead_pid(), pidns="pid:[1]")
    assert claim(path) is None


def test_a_claim_of_another_host_keeps_its_lease_until_it_is_stale(tmp_path):
    path = tmp_path / "seed0-k.claim"
    _claim_of(path, host="another-node", pid=_dead_pid())  # its PID means nothing here
    assert claim(path, stale_after=60) is None
    old = time.time() - 120
    os.utime(path, (old, old))
    assert claim(path, stale_after=60) is not None


def test_a_release_on_a_full_disk_does_not_hide_the_error_that_ended_the_run(tmp_path, monkeypatch):
    """Releasing writes a guard file; on a full disk that must not raise from a ``finally`` over the error that
    stopped the run (the command line would name the guard, not the run's file). The claim stays, to be taken over
    at once on this host once this process is gone."""
    path = tmp_path / "seed0-k.claim"
    c = claim(path)

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    release(c)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def _racer(path: Path, start, done, results) -> None:
    """One taker of the race below: each round, wait for the stale claim, try to take it, say whether it won."""
    try:
        while True:
            start.wait()
            if not path.parent.exists():
                return
            c = claim(path, stale_after=60)
            results.put(c.token if c is not None else None)
            done.wait()
    except threading.BrokenBarrierError:  # the test failed: stop
        return


@pytest.mark.parametrize("abandoned", ["stale, of another host", "of a dead process of this host"])
def test_an_abandoned_claim_has_exactly_one_taker_among_racing_processes(tmp_path, abandoned):
    """D9 (issue #28): four processes race on one abandoned claim, 1000 times; each time exactly one takes it over
    and nothing but its claim is left (the probe saw two winners twice in 300 rounds: a second taker renamed the
    first one's fresh claim aside)."""
    path = tmp_path / "c" / "seed0-k.claim"
    old = {"host": "elsewhere", "pid": 1} if abandoned.startswith("stale") else {
        "host": socket.gethostname(), "pidns": pid_namespace(), "pid": _dead_pid()}
    ctx = multiprocessing.get_context("fork")
    n, start, done, results = 4, ctx.Barrier(5), ctx.Barrier(5), ctx.Queue()
    racers = [ctx.Process(target=_racer, args=(path, start, done, results)) for _ in range(n)]
    for r in racers:
        r.start()
    try:
        for round_ in range(1000):
            path.parent.mkdir(parents=True, exist_ok=True)
            for p in path.parent.iterdir():
                p.unlink()
            path.write_text(json.dumps(dict(old, time=0, token=f"old{round_}")))
            if abandoned.startswith("stale"):
                os.utime(path, (0, 0))
            start.wait()
            won = [t for t in (results.get(timeout=30) for _ in range(n)) if t is not None]
            assert len(won) == 1, f"round {round_}: {len(won)} winners"
            assert holder(path)["token"] == won[0] and [p.name for p in path.parent.iterdir()] == [path.name]
            done.wait()
        path.parent.rename(tmp_path / "gone")
        start.wait()
    finally:
        start.abort(), done.abort()  # a failed round frees the racers at once
        for r in racers:
            r.join(timeout=30)
            if r.is_alive():
                r.kill()


# --- engines ----------------------------------------------------------------------------------------------
def _frame(out, root, methods="finetune,dhp+si", **kw):
    return dhclib.run_many("split_mnist", methods, "0-1", "quick", "cpu", root, out, progress=False,
                           **dict(SMALL, **kw))


def _workers_are(monkeypatch, executor) -> str:
    """Make the place ``local:1`` stand for ``executor`` (a submitit executor, a failing one): the engine's path
    through any ``submit``/``map_array`` executor, without a cluster. Returns the engine to pass."""
    @contextlib.contextmanager
    def opened(engine, out_dir=None):
        yield executor

    monkeypatch.setattr(executors, "open_executor", opened)
    return "local:1"


@pytest.mark.slow
def test_a_spawned_process_pool_gives_the_one_at_a_time_runs_bitwise(idx_root, tmp_path):
    alone = _frame(tmp_path / "alone", idx_root)
    pooled = _frame(tmp_path / "pool", idx_root, engine="local:2")
    assert pooled.equals(alone)
    a = sorted(p.relative_to(tmp_path / "alone") for p in (tmp_path / "alone").glob("runs/*/*/*.json"))
    b = sorted(p.relative_to(tmp_path / "pool") for p in (tmp_path / "pool").glob("runs/*/*/*.json"))
    assert a == b and len(a) == 4
    for rel in a:
        ra, rb = (json.loads((tmp_path / d / rel).read_text()) for d in ("alone", "pool"))
        assert ra["R"] == rb["R"] and ra["traces"] == rb["traces"]
    assert not list((tmp_path / "pool").glob("claims/*/*/*"))  # every claim released


DRIVER = """
import sys, dhclib, dhclib.runs.unit as ex
log, root, out = sys.argv[1:4]
inner = ex.run_stack
def counted(cfgs, *a, **k):
    with open(log, "a") as f:
        f.writelines(f"{c.method} {c.seed}\\n" for c in cfgs)
    return inner(cfgs, *a, **k)
ex.run_stack = counted
dhclib.run_many("split_mnist", "finetune,dhp,si,ewc", "0-2", "quick", "cpu", root, out, progress=False,
                n_tasks=2, train_size=100, test_size=50, max_epochs=2, min_epochs=1)
"""


@pytest.mark.slow
def test_two_drivers_on_one_store_train_every_run_once(idx_root, tmp_path):
    log, out = tmp_path / "trained.txt", tmp_path / "store"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    drivers = [subprocess.Popen([sys.executable, "-c", DRIVER, str(log), str(idx_root), str(out)], env=env)
               for _ in range(2)]
    assert [d.wait(timeout=600) for d in drivers] == [0, 0]
    trained = log.read_text().splitlines()
    assert len(trained) == 12 and len(set(trained)) == 12, trained  # 4 methods x 3 seeds, each once
    assert len(list(out.glob("runs/*/*/*.json"))) == 12


def test_a_run_held_by_a_dead_worker_is_trained_once_its_claim_is_stale(idx_root, tmp_path):
    out = tmp_path / "store"
    cfg = resolve_config("split_mnist", "finetune", 0, "quick", "cpu", **SMALL)
    path = claim_path(out, cfg)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": "gone", "pid": 999999, "time": 0, "token": "dead"}))  # fresh, but dead
    planned = plan.table1("split_mnist", "finetune", "0", "quick", "cpu", **SMALL)
    t0 = time.perf_counter()
    done = execute.execute(planned, out, "lease=1", idx_root, progress=False)  # (default: a minute)
    assert time.perf_counter() - t0 >= 1.0  # it waited for the claim to go stale
    assert len(done.results) == 1 and not path.exists()
    assert np.isfinite(done.results[0][1].avg_acc)


def test_a_run_another_worker_recorded_as_diverged_is_not_trained_again(tmp_path, monkeypatch):
    """Two drivers on one store: one trains a run that diverges while the other waits for its claim. The waiting
    driver then takes the freed claim, finds the failure recorded and trains nothing (it used to train the run
    again, only to diverge again); the same when the record appears between its look and its claim. Without
    recording (``record_diverged=False``) a recorded failure is trained again, as ``on_diverge="raise"`` asks."""
    out = tmp_path / "store"
    planned = plan.table1("split_mnist", "ewc", "0", "quick", "cpu", **SMALL)
    cfg = planned[0].config
    record = dict(benchmark=cfg.benchmark, method=cfg.method, seed=cfg.seed, config_key=cfg.key(),
                  message="training diverged on task 2", config=cfg.to_dict())
    trained = []

    def run_stack(cfgs, *args, **kwargs):
        trained.extend(cfgs)
        return [dhclib.PlasticInstabilityError("training diverged again") for _ in cfgs]

    monkeypatch.setattr(unit, "run_stack", run_stack)
    real_claim = unit.claim

    def claim_after_the_other_finished(path, stale_after):
        unit.write_atomic(unit.result_path(out, cfg, "diverged"), record)
        return real_claim(path, stale_after)

    monkeypatch.setattr(unit, "claim", claim_after_the_other_finished)
    assert unit.train_and_store(planned, out) == [("diverged", "training diverged on task 2", None)]
    assert trained == [] and not claim_path(out, cfg).exists()  # the claim taken is given back
    monkeypatch.setattr(unit, "claim", real_claim)
    assert unit.train_and_store(planned, out) == [("diverged", "training diverged on task 2", None)]
    assert trained == []
    assert unit.train_and_store(planned, out, record_diverged=False) == [("diverged", "training diverged again", None)]
    assert trained == [cfg]


@pytest.mark.slow
def test_the_command_line_runs_on_worker_processes(idx_root, tmp_path):
    from dhclib.cli import main

    args = ["run", "--benchmark", "split_mnist", "--method", "finetune", "--seeds", "0-1", "--profile", "quick",
            "--device", "cpu", "--data-dir", str(idx_root), "--out", str(tmp_path), "--no-progress",
            "--engine", "local:2", *[f"--set={k}={v}" for k, v in SMALL.items()]]
    assert main(args) == 0
    assert len(list(tmp_path.glob("runs/*/*/*.json"))) == 2
    for bad in ("local", "local:0", "dask", "dask:local:0", "pool:2", "slurm:4"):
        with pytest.raises(dhclib.ConfigError, match=r"^engine: .*; accepted: here \| local:N \| dask:local:N"):
            Engine.of(bad)
    slurm_only = [*args[:-len(SMALL) - 2], "--engine", "local:2,gpus=1"]
    assert main(slurm_only) == 2  # Slurm options without slurm: one line, nothing trained


def test_the_lease_of_another_hosts_claim_is_set_on_the_command_line(idx_root, tmp_path, capsys):
    """A worker killed on another node costs its run the lease, which a cluster sets shorter than the default 10
    minutes: ``--engine lease=1`` trains the run here once its claim is a second old; a lease that is not a finite
    number of seconds > 0 is one line, exit 2."""
    from dhclib.cli import main

    out = tmp_path / "store"
    cfg = resolve_config("split_mnist", "finetune", 0, "quick", "cpu", **SMALL)
    _claim_of(claim_path(out, cfg), host="another-node", pid=1)  # fresh, its holder killed there
    args = ["run", "--benchmark", "split_mnist", "--method", "finetune", "--profile", "quick", "--device", "cpu",
            "--data-dir", str(idx_root), "--out", str(out), "--no-progress",
            *[f"--set={k}={v}" for k, v in SMALL.items()]]
    assert main([*args, "--engine", "lease=1"]) == 0
    assert len(list(out.glob("runs/*/*/*.json"))) == 1 and not claim_path(out, cfg).exists()
    for bad in ("0", "-5", "inf", "nan"):
        capsys.readouterr()
        assert main([*args, "--engine", f"lease={bad}"]) == 2
        assert capsys.readouterr().err.startswith("error: engine: the lease must be a finite number of seconds > 0")


@pytest.mark.parametrize("spec", ["dask:tcp://127.0.0.1", "dask:foo", "dask:tcp://127.0.0.1:0",
                                  "dask:tcp://127.0.0.1:99999", "dask:http://127.0.0.1:8786", "dask:tcp://:8786"])
def test_a_malformed_dask_address_is_one_line_and_exit_2(tmp_path, capsys, spec):
    """D4 (issue #28): a scheduler address without a port, or not an address at all, is named with what is
    accepted, before anything is reached (it was a ValueError traceback, exit 1)."""
    from dhclib.cli import main

    args = ["run", "--benchmark", "split_mnist", "--method", "finetune", "--profile", "quick", "--device", "cpu",
            "--out", str(tmp_path), "--no-progress", "--engine", spec]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: engine: ") and "is not a Dask scheduler address" in err[0]


def test_a_well_formed_dask_address_passes_the_check():
    for address in ("tcp://127.0.0.1:8786", "127.0.0.1:8786", "tls://node-1.cluster:8786", "tcp://[::1]:8786"):
        assert Engine.of(f"dask:{address}").where == f"dask:{address}"


def _same_runs(a, b):
    rels = sorted(p.relative_to(a) for p in a.glob("runs/*/*/*.json"))
    assert rels == sorted(p.relative_to(b) for p in b.glob("runs/*/*/*.json")) and rels
    for rel in rels:
        ra, rb = (json.loads((d / rel).read_text()) for d in (a, b))
        assert ra["R"] == rb["R"] and ra["traces"] == rb["traces"]


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_one_at_a_time_runs_bitwise(idx_root, tmp_path):
    alone = _frame(tmp_path / "alone", idx_root)
    dasked = _frame(tmp_path / "dask", idx_root, engine="dask:local:2")
    assert dasked.equals(alone)
    _same_runs(tmp_path / "alone", tmp_path / "dask")


@pytest.mark.slow
def test_submitits_local_executor_gives_the_one_at_a_time_runs_bitwise(idx_root, tmp_path, monkeypatch):
    import submitit

    alone = _frame(tmp_path / "alone", idx_root)
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs" / "%j")
    executor.update_parameters(timeout_min=10)
    jobs = submit_all(executor, sum, [([1, 2],), ([3],)])  # one job array
    assert [j.result() for j in jobs] == [3, 3]
    submitted = _frame(tmp_path / "submitit", idx_root, engine=_workers_are(monkeypatch, executor))
    assert submitted.equals(alone)
    _same_runs(tmp_path / "alone", tmp_path / "submitit")


class _LosesFirstJob:
    """An executor whose first job's node is lost; the others train in this process."""

    def __init__(self):
        self.jobs = 0

    def submit(self, fn, *args):
        from concurrent.futures import Future

        job, self.jobs = Future(), self.jobs + 1
        if self.jobs == 1:
            job.set_exception(RuntimeError("node lost\nsecond line"))
        else:
            job.set_result(fn(*args))
        return job


def test_a_failed_job_is_named_and_the_other_runs_are_stored(idx_root, tmp_path, monkeypatch):
    engine = _workers_are(monkeypatch, _LosesFirstJob())
    with pytest.raises(DhcError, match=r"^1 of 2 runs failed on their workers .*RuntimeError: node lost\)"):
        _frame(tmp_path, idx_root, engine=engine, methods="finetune")
    assert len(list(tmp_path.glob("runs/*/*/*.json"))) == 1
    assert len(_frame(tmp_path, idx_root, methods="finetune")) > 0  # the same command again trains the missing one
    assert len(list(tmp_path.glob("runs/*/*/*.json"))) == 2


def test_slurm_needs_sbatch_and_the_options_become_submitits_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(DhcError, match="engine slurm needs Slurm"):
        with open_executor(Engine.of("slurm"), tmp_path):
            pass
    options = SlurmOptions(partition="gpu", time_min=30, gpus=1, mem="8G")
    assert options.parameters() == dict(timeout_min=30, gpus_per_node=1, cpus_per_task=1, nodes=1,
                                         tasks_per_node=1, slurm_partition="gpu", slurm_mem="8G")


def test_with_an_executor_the_device_is_the_workers(idx_root, tmp_path):
    """A CPU login node plans CUDA runs for its GPU workers: the key says cuda; only a worker looks for the GPU."""
    from dhclib.runs.runner import _keys_device

    workers, here = Engine.of("local:2"), Engine.of("here")
    assert _keys_device("cuda:0", workers) == "cuda:0" and _keys_device("cpu", here) == "cpu"
    if not __import__("torch").cuda.is_available():
        with pytest.raises(DhcError, match="CUDA is not available here"):
            _keys_device("cuda", here)
    with pytest.raises(DhcError, match="unknown device"):
        _keys_device("gpu", workers)


# --- a killed local:N driver ------------------------------------------------------------------------------
def _children(pid: int) -> set[int]:
    """The processes ``pid`` started (Linux's /proc; the test is skipped elsewhere)."""
    return {int(c) for task in Path(f"/proc/{pid}/task").glob("*")
            for c in (task / "children").read_text().split()}


def _running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (an orphan that died waits for PID 1 to reap it, which may never come)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads a process's children from Linux's /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
def test_a_killed_local_driver_leaves_no_worker_behind(idx_root, tmp_path, sig):
    """D6 (issue #28): a ``local:2`` driver killed while its workers train (``timeout``, Slurm's time limit, the
    OOM killer) left the pool's processes running under PID 1, a gigabyte each. Now every process it started is
    gone within seconds: on TERM the driver terminates them instead of waiting for their runs (exit 143, its one
    line); on KILL they notice their parent is gone. Their claims are taken over at once on this host."""
    out = tmp_path / "store"
    args = [sys.executable, "-m", "dhclib", "run", "--benchmark", "split_mnist", "--method", "finetune,dhp",
            "--seeds", "0-3", "--profile", "quick", "--device", "cpu", "--data-dir", str(idx_root), "--out",
            str(out), "--no-progress", "--engine", "local:2", "--set=n_tasks=2", "--set=max_epochs=2000",
            "--set=min_epochs=2000"]  # runs of minutes: the workers are caught training
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    driver = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while len(list(out.glob("claims/*/*/*.claim"))) < 2 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert driver.poll() is None, driver.stderr.read()
        workers = _children(driver.pid)
        assert len(workers) >= 2  # the two workers (and multiprocessing's resource tracker)
        driver.send_signal(sig)
        deadline = time.monotonic() + 15
        while any(map(_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [w for w in workers if _running(w)]
        _, err = driver.communicate(timeout=60)
        if sig == signal.SIGTERM:  # one line, no warning of semaphores the terminated workers left
            assert driver.returncode == 143 and err.strip().splitlines()[0].startswith("terminated: "), err
            assert len(err.strip().splitlines()) == 1, err
        else:
            assert driver.returncode == -signal.SIGKILL, err
    finally:
        for pid in [driver.pid, *workers]:  # never leave them to the next test
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        driver.wait(timeout=60)


# --- one key, one numeric path ----------------------------------------------------------------------------
@pytest.mark.slow
def test_every_engine_gives_bitwise_the_same_numbers_with_torchs_default_threads(mnist_root, tmp_path):
    """D8 (issue #28): the command line trained in its own process with torch's default thread count (the cores),
    its workers with one thread, so one key got two sets of numbers (finetune seed 1: R[4][2] 0.982 vs 0.983) and
    a store filled partly each way mixed them silently. Every engine now trains with one torch thread: with
    OMP_NUM_THREADS and MKL_NUM_THREADS unset, this process, local:2 and dask:local:2 store the same R, each
    trained with one thread. (On the 2-core machine it was written on, 1 and 2 threads happen to give the same R,
    so the recorded thread count is what fails without the fix: the command line's own runs recorded 2.)"""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    stored = {}
    for engine in ("in-process", "local:2", "dask:local:2"):
        out = tmp_path / engine.replace(":", "-")
        args = [sys.executable, "-m", "dhclib", "run", "--benchmark", "split_mnist", "--method", "finetune,dhp",
                "--seeds", "0-1", "--profile", "quick", "--device", "cpu", "--data-dir", str(mnist_root), "--out",
                str(out), "--no-progress", *([] if engine == "in-process" else ["--engine", engine])]
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        runs = {p.relative_to(out): json.loads(p.read_text()) for p in out.glob("runs/*/*/*.json")}
        stored[engine] = {p: (r["R"], r["numeric_env"]["threads"], r["device_name"]) for p, r in runs.items()}
    assert len(stored["in-process"]) == 4
    assert {threads for runs in stored.values() for _, threads, _ in runs.values()} == {1}
    assert stored["in-process"] == stored["local:2"] == stored["dask:local:2"]


def test_a_run_in_this_process_trains_with_one_thread_and_gives_the_session_its_count_back(idx_root):
    """D8: a Python user's run trains as the workers do, and their session keeps the thread count it had."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = dhclib.run("split_mnist", "finetune", 0, "quick", "cpu", idx_root, **SMALL)
        assert result.numeric_env["threads"] == 1 and result.device_name.endswith(", 1 threads")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
