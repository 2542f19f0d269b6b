"""Where the runs are trained: this process, worker processes, a Dask cluster or Slurm (issue #8, item 1).

:func:`submit_all` is the one adapter the engine needs: it hands each unit of work (one run, or one stack: issue
#7) to a ``concurrent.futures.Executor`` (a process pool, Dask's ``Client.get_executor()``) one by one, or to a
submitit executor as one Slurm job array. Every future-like it returns has ``done()`` and ``result()``.
:func:`open_executor` turns an engine's place (:class:`dhclib.runs.engine.Engine`) into one of these and shuts it
down afterwards; :func:`hold` keeps one open for the process's life (a notebook's kernel), :func:`workers` hands a
batch the held one or a fresh one.

Every engine trains with one torch thread, this process included (:func:`one_torch_thread`; a worker keeps it,
:func:`on_worker`): a key has one set of numbers whichever engine trained it and whatever the core count (torch's
default, one thread per core, gave the command line's own runs other numbers than its workers' on some CPUs). Workers share the result store (a shared filesystem on a cluster): they claim each run before they
train it (:mod:`dhclib.runs.claims`), write it atomically, and the driver reads its frame back from the store.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from dhclib import plugins
from dhclib.errors import DhcError
from dhclib.runs.engine import Engine

__all__ = ["open_executor", "hold", "workers", "submit_all", "on_worker", "one_thread", "one_torch_thread",
           "watch_parent"]


def one_thread() -> None:
    """A worker process's initializer: one torch thread, as the notebooks' lanes and the tests run."""
    torch.set_num_threads(1)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Train with one torch thread, then give the caller its own count back: a run's numbers must not depend on
    the engine or the core count, and a Python session that trains a run keeps its thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def watch_parent(parent: int, every: float = 0.5) -> None:
    """A ``local:N`` worker's initializer: one torch thread, Ctrl-C left to the driver, and exit as soon as the
    driver ``parent`` is gone.

    A driver killed with SIGKILL (the OOM killer, ``kill -9``) cannot stop its pool, whose workers would live on
    under PID 1, a gigabyte each, holding their claims. Each worker polls its parent instead: re-parented, it
    exits at once. Linux's PR_SET_PDEATHSIG is not used: it follows the thread that started the worker, not the
    process, and the pool may start a worker from a thread that ends (a replacement, a caller's thread) long before
    the driver does, which would kill a live run."""
    one_thread()
    _thread_lock_for_tqdm()
    # Interrupting is the driver's: Ctrl-C reaches a terminal's whole process group, and a Jupyter kernel's
    # shutdown interrupts the kernel's, workers included; the driver then stops its workers itself, so a worker's
    # own KeyboardInterrupt would only print a traceback (two at every notebook's end, before this).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() != parent:  # the driver died while this worker was starting
        os._exit(1)

    def poll() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)  # its claims are taken over at once on this host: their holder is gone

    threading.Thread(target=poll, name="dhc-watch-parent", daemon=True).start()


def _thread_lock_for_tqdm() -> None:
    """tqdm guards its bars with a multiprocessing lock, a named semaphore: a worker terminated by :func:`_stop_workers`
    never frees it, and multiprocessing's resource tracker then warns of leaked semaphores under the driver's one
    line. A worker draws no bars (the driver does), so a thread lock is all it needs."""
    from dhclib._progress import tqdm

    tqdm.set_lock(threading.RLock())


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Shut the pool down without waiting for the runs in progress: a driver stopped by Ctrl-C or SIGTERM should
    exit in seconds, not when its workers' current runs end (minutes), nor leave them behind. The workers are
    terminated; their claims are taken over at once on this host, so a resume loses only the runs in progress."""
    processes = list((pool._processes or {}).values())  # no public way before Python 3.14's terminate_workers
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()
    pool.shutdown(cancel_futures=True)  # prompt now (the pool is broken): its queues' semaphores freed, not leaked


def on_worker(fn: Callable, *args: Any) -> Any:
    """Run one unit of work on a worker with one torch thread (a Dask or Slurm worker has no initializer)."""
    one_thread()
    return fn(*args)


def submit_all(executor, fn: Callable, calls: Sequence[tuple]) -> list:
    """Submit ``fn(*call)`` for every call, each on a worker of one torch thread: a submitit executor gets them as
    one job array (one ``sbatch``, not thousands), any other executor one ``submit`` each."""
    if not calls:
        return []
    fn = plugins.carrying(fn)  # a worker loads the driver's plugins before it runs the work
    if hasattr(executor, "map_array"):  # submitit: Slurm, its local and debug executors
        return executor.map_array(on_worker, *zip(*[(fn, *call) for call in calls]))
    return [executor.submit(on_worker, fn, *call) for call in calls]


def _cluster_extra(what: str):
    raise DhcError(f"engine {what} needs the cluster extra: pip install -e '.[cluster]' (make install has it)")


@contextmanager
def open_executor(engine: Engine, out_dir=None) -> Iterator[Any]:
    """The executor of ``engine``'s place, shut down on leaving (None: ``here``, train in this process).

    - ``local:N``: N spawned worker processes on this machine;
    - ``dask:local:N``: a Dask ``LocalCluster`` of N worker processes of one thread each, started and stopped here;
    - ``dask:tcp://HOST:PORT`` (or any Dask scheduler address): a running Dask cluster;
    - ``slurm``: one Slurm job per run or stack through submitit (the engine's Slurm options), its logs under
      ``<out_dir>/slurm/``.
    """
    where = engine.where
    kind, _, rest = where.partition(":")
    if engine.here:
        yield None
    elif kind == "local":
        pool = ProcessPoolExecutor(int(rest), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=watch_parent, initargs=(os.getpid(),))
        try:
            yield pool
        except BaseException:
            _stop_workers(pool)
            raise
        pool.shutdown(cancel_futures=True)
    elif kind == "dask":
        with _dask(rest, where) as executor:
            yield executor
    else:
        yield _slurm(engine, out_dir)


@contextmanager
def _dask(rest: str, where: str) -> Iterator[Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        _cluster_extra(where)
    cluster = None
    if rest.startswith("local:"):
        cluster = LocalCluster(n_workers=int(rest.partition(":")[2]), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(rest, timeout=30)
        except OSError as exc:
            raise DhcError(f"engine {where}: cannot reach the Dask scheduler at {rest}: {exc}") from None
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _slurm(engine: Engine, out_dir) -> Any:
    try:
        import submitit
    except ImportError:
        _cluster_extra("slurm")
    if shutil.which("sbatch") is None:
        raise DhcError("engine slurm needs Slurm (no sbatch on PATH); on one machine use local:N or dask:local:N")
    if out_dir is None:
        raise DhcError("engine slurm needs an output directory on a filesystem the nodes share")
    executor = submitit.AutoExecutor(folder=Path(out_dir) / "slurm" / "%j", cluster="slurm")
    executor.update_parameters(name="dhc", **engine.slurm.parameters())
    return executor


# Executors held open for this process's life (hold()), by what opened them: a notebook's cells, or a script's
# several drivers, then train on one pool or cluster instead of starting one per call.
_HELD: dict[tuple, Any] = {}
_OPENED = ExitStack()
atexit.register(_OPENED.close)


def _held_key(engine: Engine, out_dir) -> tuple:
    # Slurm writes its jobs' logs under the store, so a Slurm executor is one store's; a pool serves any store.
    return engine.where, engine.slurm, str(out_dir) if engine.where == "slurm" else None


def hold(engine: Engine | str | None, out_dir=None) -> Engine:
    """Open ``engine``'s executor now and keep it open until this process exits, so that every later call with
    this engine and store reuses it (a notebook's kernel: a cell run again starts no second cluster). Returns the
    engine, parsed."""
    engine = Engine.of(engine)
    key = _held_key(engine, out_dir)
    if not engine.here and key not in _HELD:
        _HELD[key] = _OPENED.enter_context(open_executor(engine, out_dir))
    return engine


@contextmanager
def workers(engine: Engine, out_dir=None) -> Iterator[Any]:
    """The executor ``engine``'s runs are submitted to for one batch (None: this process): a held one
    (:func:`hold`), else one opened for the batch and shut down after it. A held process pool that a batch leaves
    by an error (Ctrl-C, SIGTERM) is stopped and forgotten, as an unheld one would be: its workers would otherwise
    go on training the interrupted runs for minutes (a later batch starts a new pool)."""
    key = _held_key(engine, out_dir)
    if key not in _HELD:
        with open_executor(engine, out_dir) as executor:
            yield executor
        return
    executor = _HELD[key]
    try:
        yield executor
    except BaseException:
        if isinstance(executor, ProcessPoolExecutor):
            del _HELD[key]
            _stop_workers(executor)
        raise


