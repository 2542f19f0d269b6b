"""The result store: one JSON file per finished run, written atomically, read back, and why each run exists.

A run lives at ``<out_dir>/runs/<benchmark>/<method>/seed<seed>-<config key>.json`` (a diverged one's record under
``diverged/``). Stored with it: the full resolved config, R and the traces, the versions and numeric environment,
and its purpose (:attr:`RunResult.purpose`: the plan that asked for it and its variant, the settings that differ
from the paper's configuration). A record describes itself: its variant is its stored purpose's, or, for a run
stored before the purpose was recorded, derived from its stored config alone
(:func:`dhclib.runs.difference.config_difference`; nothing is resolved again). A file that cannot be read, or
holds something other than a record of its path's key, is named, moved aside to ``<out_dir>/damaged/``
(``*.corrupt``, ``*.foreign``) and skipped, never a crash.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dhclib.errors import DhcError
from dhclib.runs.claims import alive
from dhclib.runs.config import RunConfig
from dhclib.runs.difference import config_difference
from dhclib.runs.labels import label_of, label_parts, render_variant, variant_label
from dhclib.method.metrics import average_accuracy, average_accuracy_curve, bwt

__all__ = ["RunResult", "TIDY_COLUMNS", "result_path", "write_atomic", "load_results", "load_diverged",
           "read_record", "record_path", "variant_of", "record_variant", "record_identity", "label_as_stored",
           "check_store",
           # the labels' renderer, re-exported for the drivers (dhclib.runs.labels)
           "variant_label", "label_parts"]

# ``method`` is the label tables and figures show (:func:`dhclib.runs.labels.label_of`); ``base_method`` and
# ``variant`` are its parts (the composed method and the rendered overrides, "" for the paper's configuration), so
# that no consumer ever has to split a label back.
TIDY_COLUMNS = ["benchmark", "method", "base_method", "variant", "seed", "profile", "config_key", "after_task", "task",
                "accuracy"]


@dataclass
class RunResult:
    """One trial: R, the average-accuracy curve, BWT, the traces, wall time and the full resolved config."""

    config: dict
    R: np.ndarray
    traces: pd.DataFrame
    epochs: pd.DataFrame
    tasks: pd.DataFrame
    wall_time: float
    versions: dict
    device_name: str
    # What decided the floating-point path (dhclib.numerics); empty for runs stored before it was recorded.
    numeric_env: dict = field(default_factory=dict)
    # Why the run exists: {"plan": "table1" | "variants" | "grid" | "search", "variant": {field: value, ...}}, the
    # settings that differ from the paper's configuration (dhclib.runs.plan); empty for runs stored before it was.
    purpose: dict = field(default_factory=dict)
    # How it was trained: {"engine": "single"} or {"engine": "stacked", "stack": N, "stack_wall_time": s}
    # (dhclib.runs.unit.run_stack); never part of the key. Empty for runs stored before it was recorded.
    engine: dict = field(default_factory=dict)
    # The data it read: {dataset: {role: {"file", "bytes", "sha256"}}} (dhclib.runs.build.data_provenance).
    # Empty for runs stored before it was recorded.
    data: dict = field(default_factory=dict)
    # The code that made it: {"commit": sha, "dirty": bool} (dhclib.runs.build.code_version; None where unknown).
    # Empty for runs stored before it was recorded: their code is unknown.
    code: dict = field(default_factory=dict)

    @property
    def curve(self) -> np.ndarray:
        return average_accuracy_curve(self.R)

    @property
    def avg_acc(self) -> float:
        return average_accuracy(self.R)

    @property
    def bwt(self) -> float:
        return bwt(self.R)

    @property
    def key(self) -> str:
        c = self.config
        return f"{c['benchmark']}/{c['method']}/seed{c['seed']}-{c['key']}"

    def tidy(self, variant: dict | None = None) -> pd.DataFrame:
        """One row per tested entry of R, with the run's identity; ``variant`` (overrides, default none) names the
        rows (:func:`dhclib.runs.labels.label_of`)."""
        c = self.config
        text = render_variant(variant or {})
        ident = (c["benchmark"], label_of(c["method"], text), c["method"], text, c["seed"], c["profile"], c["key"])
        T = self.R.shape[0]
        rows = [ident + (t, i, self.R[t, i]) for t in range(T) for i in range(t + 1)]
        return pd.DataFrame(rows, columns=TIDY_COLUMNS)

    def to_json(self) -> dict:
        return {"config": self.config, "R": [[None if np.isnan(v) else v for v in row] for row in self.R.tolist()],
                "avg_acc": self.avg_acc, "bwt": self.bwt, "curve": self.curve.tolist(), "wall_time": self.wall_time,
                "versions": self.versions, "device_name": self.device_name, "numeric_env": self.numeric_env,
                "purpose": self.purpose, "engine": self.engine, "data": self.data, "code": self.code,
                "traces": self.traces.to_dict(orient="list"), "epochs": self.epochs.to_dict(orient="list"),
                "tasks": self.tasks.to_dict(orient="list")}

    @classmethod
    def from_json(cls, d: dict) -> "RunResult":
        R = np.array([[np.nan if v is None else v for v in row] for row in d["R"]], dtype=float)
        return cls(config=d["config"], R=R, traces=pd.DataFrame(d["traces"]), epochs=pd.DataFrame(d["epochs"]),
                   tasks=pd.DataFrame(d["tasks"]), wall_time=d["wall_time"], versions=d["versions"],
                   device_name=d["device_name"], numeric_env=d.get("numeric_env", {}),
                   purpose=d.get("purpose", {}), engine=d.get("engine", {}), data=d.get("data", {}),
                   code=d.get("code", {}))

    def __repr__(self) -> str:
        return (f"RunResult({self.key}: avg_acc={self.avg_acc:.4f}, bwt={self.bwt:+.4f}, "
                f"{self.wall_time:.1f}s on {self.device_name})")


def result_path(out_dir, cfg: RunConfig, kind: str = "runs") -> Path:
    """``<out_dir>/<kind>/<benchmark>/<method>/seed<seed>-<config key>.json``; kind "runs" or "diverged"."""
    return record_path(out_dir, cfg.benchmark, cfg.method, cfg.seed, cfg.key(), kind)


def record_path(out_dir, benchmark: str, method: str, seed: int, key: str, kind: str = "runs") -> Path:
    """:func:`result_path` of a run named by its identity (as a tidy row names it) rather than its config."""
    return Path(out_dir) / kind / benchmark / method.replace("+", "_") / f"seed{seed}-{key}.json"


def write_atomic(path: Path, payload: dict | str) -> None:
    """Write ``payload`` (a dict as JSON, a string as it is) so that a reader never sees half a file: a temporary
    file, synced, then renamed over ``path``. The one atomic writer of dhclib: results, tables, REPORT.md. A failed
    write (a full disk, a folder that cannot be written) raises one :class:`~dhclib.errors.DhcError` naming the
    path and the OS error, and leaves no temporary file behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")  # host: see check_store
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as f:
            if isinstance(payload, str):
                f.write(payload)
            else:
                json.dump(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DhcError(f"cannot write {path}: {exc.strerror or exc}") from None


def check_store(out_dir) -> None:
    """Before anything trains: the store's folder exists or can be made, and can be written (one
    :class:`~dhclib.errors.DhcError` naming it otherwise); temporary files that dead processes of this host left
    behind are removed (on a store several hosts share, a PID says nothing about another host's processes: their
    files, and those named without a host by earlier versions, are left alone)."""
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise DhcError(f"the result store {root} is a file, not a folder: give --out / out_dir a folder")
    probe = root / f".write-probe.{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise DhcError(f"the result store {root} cannot be written: {exc.strerror or exc}") from None
    here = socket.gethostname()
    for tmp in root.glob("*/*/*/.seed*.json.*.tmp"):
        host, _, pid = tmp.name.partition(".json.")[2].removesuffix(".tmp").rpartition(".")
        if host == here and pid.isdigit() and not alive(int(pid)):
            tmp.unlink(missing_ok=True)


def read_record(path: Path, out_dir=None) -> dict | None:
    """The record at ``path``, a run under ``runs/`` or a divergence record under ``diverged/``. A file that does not
    parse, or whose content is not a record of its path's key (a foreign file: another shape, another seed's or
    another key's run), is moved to ``<out_dir>/damaged/`` as ``<its path>.corrupt`` or ``.foreign`` (``.1``, ...
    if that run's was before: no evidence is overwritten) with a warning naming it, and None is returned: the run
    counts as not stored and is trained again."""
    path = Path(path)
    root = Path(out_dir) if out_dir is not None else path.parents[3]
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        aside = _set_aside(path, root, "corrupt")
        warnings.warn(f"damaged result file {path} ({type(exc).__name__}: {exc}); moved to {aside}", stacklevel=2)
        return None
    why = _foreign(record, path.relative_to(root).parts)
    if why is not None:
        aside = _set_aside(path, root, "foreign")
        warnings.warn(f"result file {path} is not a {why}; moved to {aside}", stacklevel=2)
        return None
    return record


# What every stored run has (RunResult.from_json reads them), and what every divergence record has (the command
# line and the report print them).
_RUN_FIELDS = {"config": dict, "R": list, "traces": dict, "epochs": dict, "tasks": dict, "wall_time": (int, float),
               "versions": dict, "device_name": str}
_DIVERGED_FIELDS = {"benchmark": str, "method": str, "seed": int, "config_key": str, "message": str}


def _foreign(record, parts: tuple[str, ...]) -> str | None:
    """Why ``record``, read at the store path of ``parts`` (``kind, benchmark, method, file``), is not a record of
    that path's key, e.g. ``"run of its key (it holds split_mnist finetune seed 0, key ...)"``; None when it is
    (and for a path outside that layout, which names no key)."""
    if len(parts) != 4 or parts[0] not in ("runs", "diverged"):
        return None
    what = "run" if parts[0] == "runs" else "divergence record"
    fields = _RUN_FIELDS if parts[0] == "runs" else _DIVERGED_FIELDS
    if not isinstance(record, dict):
        return f"{what} (a JSON {type(record).__name__}, not an object)"
    wrong = [k for k, kind in fields.items() if not isinstance(record.get(k), kind)]
    ident = record.get("config") if parts[0] == "runs" else dict(record, key=record.get("config_key"))
    if not wrong and parts[0] == "runs":
        wrong = [f"config.{k}" for k in ("benchmark", "method", "seed", "key") if k not in ident]
    if wrong:
        return f"{what} (missing or mistyped: {', '.join(wrong)})"
    held = (ident["benchmark"], str(ident["method"]).replace("+", "_"), f"seed{ident['seed']}-{ident['key']}.json")
    if held != parts[1:]:
        return (f"{what} of its key (it holds {ident['benchmark']} {ident['method']} seed {ident['seed']}, key "
                f"{ident['key']})")
    return None


def _set_aside(path: Path, root: Path, why: str) -> Path:
    """Move a store file to ``<root>/damaged/<its path>.<why>`` (numbered when taken) and say where."""
    aside = root / "damaged" / path.relative_to(root)
    aside = aside.with_name(f"{aside.name}.{why}")
    n = 0
    while aside.exists():
        n += 1
        aside = aside.with_name(f"{path.name}.{why}.{n}")
    aside.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, aside)
    return aside


def load_diverged(out_dir) -> list[dict]:
    """The failure records of runs that diverged under ``out_dir`` (``run_many(..., on_diverge="record")``)."""
    paths = sorted((Path(out_dir) / "diverged").glob("*/*/seed*.json"))
    return [r for r in (read_record(p, out_dir) for p in paths) if r is not None]


def load_results(out_dir, benchmark: str | None = None) -> list[RunResult]:
    """Every run stored under ``out_dir`` (by :func:`dhclib.run_many` or the CLI); with ``benchmark``, only its
    runs (the others are not read)."""
    paths = sorted((Path(out_dir) / "runs").glob(f"{benchmark or '*'}/*/seed*.json"))
    return [RunResult.from_json(r) for r in (read_record(p, out_dir) for p in paths) if r is not None]


def variant_of(result: RunResult) -> dict:
    """A run's variant: the settings that differ from the paper's configuration, as stored with it (derived from
    its stored config for a run stored before its purpose was recorded)."""
    return record_variant(result.purpose, result.config)


def record_variant(purpose: dict | None, config: dict | None) -> dict:
    """:func:`variant_of` for any stored record, a result's or a divergence's, from its ``purpose`` and ``config``
    (a record with neither is the paper's configuration)."""
    if purpose and "variant" in purpose:
        return dict(purpose["variant"])
    return config_difference(config) if config else {}


def record_identity(record: dict) -> dict[str, str]:
    """The columns that name a stored divergence record's rows (as :data:`TIDY_COLUMNS` name a result's):
    ``method`` (its label), ``base_method`` and ``variant``, from the record alone."""
    text = render_variant(record_variant(record.get("purpose"), record.get("config")))
    return {"method": label_of(record["method"], text), "base_method": record["method"], "variant": text}


def label_as_stored(frame: pd.DataFrame, out_dir) -> pd.DataFrame:
    """``frame``'s tidy rows named as their stored records describe themselves (:func:`record_variant`): each row's
    ``method`` and ``variant`` from the record of its (benchmark, base_method, seed, config_key) under ``out_dir``
    (a row whose record cannot be read keeps its names)."""
    out = frame.copy()
    runs = out[["benchmark", "base_method", "seed", "config_key"]].drop_duplicates()
    names = {}
    for b, m, seed, key in runs.itertuples(index=False):
        record = read_record(record_path(out_dir, b, m, int(seed), key), out_dir)
        if record is not None:
            names[(b, m, seed, key)] = render_variant(record_variant(record.get("purpose"), record["config"]))
    ident = list(zip(out["benchmark"], out["base_method"], out["seed"], out["config_key"]))
    out["variant"] = [names.get(i, v) for i, v in zip(ident, out["variant"])]
    out["method"] = [label_of(m, v) for m, v in zip(out["base_method"], out["variant"])]
    return out
