"""Where the runs are trained: this process, worker processes, a Dask cluster or Slurm (issue #8, item 1).

:func:`submit_all` is the one adapter the engine needs: it hands each unit of work (one run, or one stack: issue
#7) to a ``concurrent.futures.Executor`` (a process pool, Dask's ``Client.get_executor()``) one by one, or to a
submitit executor as one Slurm job array. Every future-like it returns has ``done()`` and ``result()``.
:func:`open_executor` turns the CLI's ``--executor`` spec into one of these and shuts it down afterwards.

Every engine trains with one torch thread, this process included (:func:`one_torch_thread`; a worker keeps it,
:func:`on_worker`): a key has one set of numbers whichever engine trained it and whatever the core count (torch's
default, one thread per core, gave the command line's own runs other numbers than its workers' on some CPUs). Workers share the result store (a shared filesystem on a cluster): they claim each run before they
train it (:mod:`dhclib.runs.claims`), write it atomically, and the driver reads its frame back from the store.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from dhclib import plugins
from dhclib.errors import ConfigError, DhcError

__all__ = ["SlurmOptions", "open_executor", "submit_all", "on_worker", "one_thread", "one_torch_thread",
           "watch_parent", "EXECUTOR_SPECS"]

EXECUTOR_SPECS = "local:N, dask:local:N, dask:tcp://HOST:PORT or slurm"


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


@dataclass(frozen=True)
class SlurmOptions:
    """What a Slurm job asks for (``--slurm-*``; submitit's parameters). One job trains one run or one stack."""

    partition: str | None = None
    time_min: int = 60
    gpus: int = 0
    mem: str | None = None  # Slurm's spelling, e.g. "8G"
    cpus: int = 1

    @classmethod
    def of(cls, options: dict | None) -> "SlurmOptions":
        """From a dict of these fields (a notebook's ``slurm`` parameter), each checked: one clear error otherwise."""
        options = dict(options or {})
        accepted = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise DhcError(f"slurm options: unknown {unknown}; accepted: {', '.join(accepted)}")
        for name in ("time_min", "gpus", "cpus"):
            value = options.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "gpus" else 1):
                raise DhcError(f"slurm option {name} must be an integer >= {0 if name == 'gpus' else 1}, got {value!r}")
        for name in ("partition", "mem"):
            if not isinstance(options.get(name), (str, type(None))):
                raise DhcError(f"slurm option {name} must be a string or None, got {options[name]!r}")
        return cls(**options)

    def parameters(self) -> dict:
        out: dict = dict(timeout_min=self.time_min, gpus_per_node=self.gpus, cpus_per_task=self.cpus, nodes=1,
                         tasks_per_node=1)
        if self.partition:
            out["slurm_partition"] = self.partition
        if self.mem:
            out["slurm_mem"] = self.mem
        return out


def _positive(text: str, spec: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise DhcError(f"--executor must be one of {EXECUTOR_SPECS} with N >= 1, got {spec!r}")
    return int(text)


# A Dask scheduler's address: PROTOCOL://HOST:PORT (tcp when the protocol is left out), HOST a name, an IPv4 address
# or an IPv6 one in brackets.
_SCHEDULER = re.compile(r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})")


def _scheduler(address: str, spec: str) -> str:
    """``address`` if it is a Dask scheduler's address; checked here because Dask answers a malformed one with a
    ValueError traceback (or waits for a port 0 to answer)."""
    match = _SCHEDULER.fullmatch(address)
    if match is None or not 1 <= int(match[1]) <= 65535:
        raise ConfigError(f"--executor {spec}: {address!r} is not a Dask scheduler address; accepted: dask:local:N "
                          f"or dask:tcp://HOST:PORT (or tls, ws, wss, ucx://; PORT 1 to 65535)")
    return address


def _cluster_extra(what: str):
    raise DhcError(f"--executor {what} needs the cluster extra: pip install -e '.[cluster]' (make install has it)")


@contextmanager
def open_executor(spec: str | None, out_dir=None, slurm: SlurmOptions | None = None) -> Iterator[Any]:
    """The executor of an ``--executor`` spec, shut down on leaving (None: train in this process).

    - ``local:N``: N spawned worker processes on this machine;
    - ``dask:local:N``: a Dask ``LocalCluster`` of N worker processes of one thread each, started and stopped here;
    - ``dask:tcp://HOST:PORT`` (or any Dask scheduler address): a running Dask cluster;
    - ``slurm``: one Slurm job per run or stack through submitit (``slurm`` options), its logs under
      ``<out_dir>/slurm/``.
    """
    if spec is None:
        yield None
        return
    kind, _, rest = spec.partition(":")
    if kind == "local":
        pool = ProcessPoolExecutor(_positive(rest, spec), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=watch_parent, initargs=(os.getpid(),))
        try:
            yield pool
        except BaseException:
            _stop_workers(pool)
            raise
        pool.shutdown(cancel_futures=True)
        return
    if kind == "dask" and rest:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            _cluster_extra(spec)
        if rest.startswith("local:"):
            cluster = LocalCluster(n_workers=_positive(rest.partition(":")[2], spec), threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            cluster = None
            try:
                client = Client(_scheduler(rest, spec), timeout=30)
            except OSError as exc:
                raise DhcError(f"--executor {spec}: cannot reach the Dask scheduler at {rest}: {exc}") from None
        try:
            yield client.get_executor()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if spec == "slurm":
        try:
            import submitit
        except ImportError:
            _cluster_extra(spec)
        if shutil.which("sbatch") is None:
            raise DhcError("--executor slurm needs Slurm (no sbatch on PATH); on one machine use local:N or "
                           "dask:local:N")
        if out_dir is None:
            raise DhcError("--executor slurm needs an output directory on a filesystem the nodes share")
        executor = submitit.AutoExecutor(folder=Path(out_dir) / "slurm" / "%j", cluster="slurm")
        executor.update_parameters(name="dhc", **(slurm or SlurmOptions()).parameters())
        yield executor
        return
    raise DhcError(f"--executor must be one of {EXECUTOR_SPECS}, got {spec!r}")
