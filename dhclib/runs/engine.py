"""Where and how runs train, as one value: :class:`Engine`, written as one short string (issue #29, item 1).

An engine says three things, none of which changes a run's numbers or its key: WHERE the runs train (this
process, worker processes, a Dask cluster, Slurm, with Slurm's job options), HOW MANY runs of one configuration
train together in lockstep (a stack, optionally replayed as CUDA graphs), and the LEASE of a claim held on another
host. It travels as one value from the drivers, the command line (``--engine``), the notebooks (``engine``) and
``make reproduce ENGINE=...`` down to :func:`dhclib.runs.execute.execute`.

The string is comma-separated parts, in any order, each at most once::

    here                        this process (the default)
    local:N                     N worker processes on this machine
    dask:local:N                a Dask LocalCluster of N one-thread workers, started and stopped here
    dask:tcp://HOST:PORT        a running Dask cluster (or tls://, ws://, wss://, ucx://)
    slurm                       one Slurm job per run or stack (submitit), its logs under <store>/slurm/
    partition=P time_min=M gpus=G mem=8G cpus=C    Slurm's job options (with slurm; "slurm:partition=gpu" too)
    stack:N  stack:auto         up to N runs of one configuration in lockstep; auto: 1 on a CPU, 80 on a GPU
    stack:N+graphs              ... each stacked step replayed as a CUDA graph where it can be captured
    lease=SECONDS               a claim of another host is taken over after this long without a heartbeat

e.g. ``"stack:auto"``, ``"local:2,stack:8"``, ``"dask:tcp://10.0.0.5:8786,lease=300"``,
``"slurm:partition=gpu,time_min=120,gpus=1,stack:auto+graphs"``. ``str(engine)`` writes the canonical string,
which parses back to an equal engine.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields

from dhclib.errors import ConfigError
from dhclib.runs.claims import STALE_AFTER

__all__ = ["Engine", "SlurmOptions", "ENGINE_GRAMMAR", "AUTO_STACK_GPU"]

ENGINE_GRAMMAR = ("here | local:N | dask:local:N | dask:tcp://HOST:PORT | slurm[:OPTION=VALUE], plus any of "
                  "stack:N|auto[+graphs], lease=SECONDS and, with slurm, partition=, time_min=, gpus=, mem=, cpus= "
                  "(comma-separated, e.g. 'local:2,stack:8')")

# issue #7's target size on a GPU (not yet measured); on a CPU stacking does not pay (benchmarks/stack_throughput.py)
AUTO_STACK_GPU = 80

# A Dask scheduler's address: PROTOCOL://HOST:PORT (tcp when the protocol is left out), HOST a name, an IPv4 address
# or an IPv6 one in brackets. Checked here because Dask answers a malformed one with a ValueError traceback (or
# waits for a port 0 to answer).
_SCHEDULER = re.compile(r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})")


def _bad(what: str) -> ConfigError:
    return ConfigError(f"engine: {what}; accepted: {ENGINE_GRAMMAR}")


@dataclass(frozen=True)
class SlurmOptions:
    """What a Slurm job asks for (submitit's parameters). One job trains one run or one stack."""

    partition: str | None = None
    time_min: int = 60
    gpus: int = 0
    mem: str | None = None  # Slurm's spelling, e.g. "8G"
    cpus: int = 1

    def __post_init__(self) -> None:
        for name in ("time_min", "gpus", "cpus"):
            value, least = getattr(self, name), 0 if name == "gpus" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise _bad(f"slurm option {name} must be an integer >= {least}, got {value!r}")
        for name in ("partition", "mem"):
            value = getattr(self, name)
            if not isinstance(value, (str, type(None))) or value == "" or (value and re.search(r"[,=\s]", value)):
                raise _bad(f"slurm option {name} must be a word (no comma, '=' or space), got "
                                  f"{value!r}")

    @classmethod
    def parse(cls, options: dict[str, str]) -> "SlurmOptions":
        """From the ``NAME=VALUE`` parts of an engine string: numbers where the field is a number."""
        numbers = {"time_min", "gpus", "cpus"}
        typed = {k: (int(v) if v.isdigit() else v) if k in numbers else v for k, v in options.items()}
        return cls(**typed)

    def __str__(self) -> str:
        """The options that differ from the defaults, ``NAME=VALUE`` comma-separated."""
        default = SlurmOptions()
        return ",".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                        if getattr(self, f.name) != getattr(default, f.name))

    def parameters(self) -> dict:
        """submitit's ``update_parameters`` keywords."""
        out: dict = dict(timeout_min=self.time_min, gpus_per_node=self.gpus, cpus_per_task=self.cpus, nodes=1,
                         tasks_per_node=1)
        if self.partition:
            out["slurm_partition"] = self.partition
        if self.mem:
            out["slurm_mem"] = self.mem
        return out


_SLURM_FIELDS = tuple(f.name for f in fields(SlurmOptions))


@dataclass(frozen=True)
class Engine:
    """Where and how runs train (module docstring); ``Engine.of("local:2,stack:8")`` or
    ``Engine(where="local:2", stack=8)``. Every field is checked on construction: a bad one is one
    :class:`~dhclib.errors.ConfigError` naming it and what is accepted."""

    where: str = "here"
    stack: int | str = 1
    graphs: bool = False
    lease: float = STALE_AFTER
    slurm: SlurmOptions = field(default_factory=SlurmOptions)

    def __post_init__(self) -> None:
        _check_where(self.where)
        if self.stack != "auto" and (isinstance(self.stack, bool) or not isinstance(self.stack, int) or self.stack < 1):
            raise _bad(f"the stack must be an integer >= 1 or 'auto', got {self.stack!r}")
        if not isinstance(self.graphs, bool):
            raise _bad(f"graphs must be True or False, got {self.graphs!r}")
        if self.graphs and self.stack == 1:
            raise _bad("+graphs applies to stacked runs: give stack:N (N > 1) or stack:auto")
        lease = self.lease
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 0 < lease < math.inf:
            raise _bad(f"the lease must be a finite number of seconds > 0 (default {STALE_AFTER:.0f}), got {lease!r}")
        object.__setattr__(self, "lease", float(lease))  # lease=30 and lease=30.0 are one engine
        if not isinstance(self.slurm, SlurmOptions):
            raise _bad(f"slurm must be a SlurmOptions, got {self.slurm!r}")
        if self.where != "slurm" and self.slurm != SlurmOptions():
            raise _bad(f"Slurm options ({self.slurm}) need slurm, not {self.where}")

    @classmethod
    def of(cls, value: "Engine | str | None") -> "Engine":
        """An engine from its string (``None``: the default, this process), or the engine itself."""
        if value is None:
            return cls()
        if isinstance(value, Engine):
            return value
        if not isinstance(value, str):
            raise _bad(f"expected a string or an Engine, got {value!r}")
        return _parse(value)

    @property
    def here(self) -> bool:
        """Whether the runs train in this process (else on workers, which may be other machines)."""
        return self.where == "here"

    def stack_size(self, device) -> int:
        """The largest stack of a batch on ``device`` (``"auto"``: 1 on a CPU, :data:`AUTO_STACK_GPU` on CUDA)."""
        if self.stack == "auto":
            return AUTO_STACK_GPU if str(device).startswith("cuda") else 1
        return self.stack

    def __str__(self) -> str:
        parts = []
        if self.where == "slurm" and str(self.slurm):
            parts.append(f"slurm:{self.slurm}")
        elif not self.here:
            parts.append(self.where)
        if self.stack != 1:
            parts.append(f"stack:{self.stack}" + ("+graphs" if self.graphs else ""))
        if self.lease != STALE_AFTER:
            parts.append(f"lease={repr(self.lease).removesuffix('.0')}")  # the shortest exact spelling
        return ",".join(parts) or "here"


def _positive(text: str, where: str) -> None:
    if not text.isdigit() or int(text) < 1:
        raise _bad(f"{where!r} needs N >= 1")


def _check_where(where: object) -> None:
    """``where`` must be one of the places of the grammar; a Dask address is checked here, not by Dask."""
    if not isinstance(where, str):
        raise _bad(f"where must be a string, got {where!r}")
    kind, _, rest = where.partition(":")
    if where in ("here", "slurm"):
        return
    if kind == "local":
        return _positive(rest, where)
    if kind == "dask" and rest.startswith("local:"):
        return _positive(rest.partition(":")[2], where)
    if kind == "dask" and rest:
        match = _SCHEDULER.fullmatch(rest)
        if match is None or not 1 <= int(match[1]) <= 65535:
            raise _bad(f"{rest!r} is not a Dask scheduler address (dask:tcp://HOST:PORT, or tls, ws, wss, ucx://; "
                       f"PORT 1 to 65535)")
        return
    raise _bad(f"unknown place {where!r}")


def _parse(text: str) -> Engine:
    where, stack, graphs, lease, slurm = None, None, False, None, {}
    for part in (p.strip() for p in text.split(",")):
        if part.startswith("slurm:") and "=" in part:  # "slurm:partition=gpu": the place and its first option
            where, part = _once(where, "slurm", text), part[len("slurm:"):]
        name, eq, value = part.partition("=")
        if eq and name == "lease":
            try:
                lease = _once(lease, float(value), text)
            except ValueError:
                raise _bad(f"lease={value!r} is not a number of seconds") from None
        elif eq and name in _SLURM_FIELDS:
            if name in slurm:
                raise _bad(f"{name} given twice in {text!r}")
            slurm[name] = value
        elif eq:
            raise _bad(f"unknown option {name!r} in {text!r}")
        elif part.startswith("stack:"):
            size, plus, extra = part[len("stack:"):].partition("+")
            if plus and extra != "graphs":
                raise _bad(f"unknown stack option {extra!r} in {text!r} (only +graphs)")
            stack, graphs = _once(stack, int(size) if size.isdigit() else size, text), bool(plus)
        elif part:
            where = _once(where, part, text)
        else:
            raise _bad(f"an empty part in {text!r}")
    return Engine(where=where or "here", stack=1 if stack is None else stack, graphs=graphs,
                  lease=STALE_AFTER if lease is None else lease, slurm=SlurmOptions.parse(slurm))


def _once(current, new, text: str):
    if current is not None:
        raise _bad(f"{text!r} names two values where one is accepted ({current!r} and {new!r})")
    return new
