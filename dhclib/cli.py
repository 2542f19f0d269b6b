"""Command line: ``python -m dhclib run|grid|summary|report|data|list`` (README: "Command line")."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from dhclib import plugins, registry
from dhclib.runs.config import ALL_METHODS, BENCHMARK_NAMES, PROFILES, check_reserved
from dhclib.errors import DhcError

__all__ = ["main", "parse_overrides"]


_PYTHON_WORDS = {"True": True, "False": False, "None": None}


def parse_overrides(items: list[str]) -> dict:
    """``key=value`` pairs; values are read as JSON where they parse (``20``, ``0.5``, ``true``, ``null``,
    ``[400,400]``), Python's ``True`` / ``False`` / ``None`` as themselves, and kept as strings otherwise
    (``full``, ``random``). A key that is an option of its own (``seed``, ``device``) is refused here, not by
    :func:`~dhclib.runs.config.resolve_config`: spread into a driver's call beside that option it would be a
    TypeError before dhclib could name it."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DhcError(f"--set expects key=value, got {item!r}")
        if value in _PYTHON_WORDS:
            out[key] = _PYTHON_WORDS[value]
            continue
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    check_reserved(out)
    return out


_COMMON = [
    ("--seeds", dict(default="0", help="'0-9', '3' or '0,2,5' (default 0)")),
    ("--profile", dict(default="paper", help=f"one of: {', '.join(PROFILES)} (default paper)")),
    ("--out", dict(required=True, help="output directory of the result store")),
    ("--device", dict(default="auto", help="auto (default), cpu, cuda or cuda:N")),
    ("--data-dir", dict(default=None, help="data root (default: $DHC_DATA_DIR)")),
    ("--set", dict(action="append", default=[], metavar="KEY=VALUE", help="override a config value")),
    ("--no-progress", dict(action="store_true", help="no progress bars")),
    ("--engine", dict(default="here", metavar="ENGINE",
                      help="where and how runs train, one string (dhclib.runs.engine): here (default), stack:N|auto"
                           "[+graphs], local:N, dask:local:N, dask:tcp://HOST:PORT, slurm[:partition=P,time_min=M,"
                           "gpus=G,mem=8G], lease=SECONDS, comma-separated, e.g. local:2,stack:8")),
]

# The flags --engine replaced (docs/engines.md, "What replaced what"): one line saying so, not argparse's "unrecognized".
_REPLACED = {"--stack": "stack:N", "--cuda-graphs": "stack:N+graphs", "--executor": "local:N (or dask:..., slurm)",
             "--lease": "lease=SECONDS", "--slurm-partition": "slurm:partition=P", "--slurm-time": "slurm:time_min=M",
             "--slurm-gpus": "slurm:gpus=G", "--slurm-mem": "slurm:mem=8G"}


class _Replaced(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} was replaced by --engine {_REPLACED[option_string]} (README, 'What replaced "
                     f"what')")


def _add_common(parser: argparse.ArgumentParser) -> None:
    for name, kw in _COMMON:
        parser.add_argument(name, **kw)
    for old in _REPLACED:
        parser.add_argument(old, nargs="?", action=_Replaced, help=argparse.SUPPRESS)


def grid_values(benchmark: str, method: str, param: str, values: str) -> list:
    """``--values``: ``paper`` (Appendix A's lambda grid, Table 4's eta_init values) or comma-separated numbers."""
    from dhclib.paper import PAPER_ETA_INITS, search_grid

    if values == "paper":
        if param == "lam":
            try:
                return list(search_grid(benchmark, method))
            except ValueError as exc:
                raise DhcError(f"--values paper: {exc}") from None
        if param == "eta_init":
            return list(PAPER_ETA_INITS)
        raise DhcError(f"--values paper is defined for --param lam or eta_init, not {param!r}; give the values")
    out = []
    for v in values.split(","):
        try:
            out.append(json.loads(v))
        except json.JSONDecodeError:
            raise DhcError(f"--values must be comma-separated numbers or 'paper', got {values!r}") from None
    return out


_PLUGIN = dict(action="append", default=[], metavar="MODULE",
               help="import this module first: it registers its regularisers and benchmarks (repeatable or "
                    "comma-separated; also $DHC_PLUGINS and the dhclib.plugins entry points)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dhclib", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run benchmarks x methods x seeds into a resumable result store")
    r.add_argument("--benchmark", required=True, help=f"comma-separated, or all; from: {', '.join(BENCHMARK_NAMES)}")
    r.add_argument("--method", required=True, help=f"comma-separated, or all; from: {', '.join(ALL_METHODS)}")
    _add_common(r)
    r.add_argument("--fail-on-diverge", action="store_true",
                   help="exit with status 3 when any run diverged (default: 0, the failures listed)")
    r.add_argument("--on-diverge", default="record", choices=("record", "raise"),
                   help="a run whose loss becomes NaN/inf: record the failure and go on (default), or stop")
    g = sub.add_parser("grid", help="one method on one benchmark for each value of one config field "
                                    "(Appendix A's lambda search, Table 4's eta_init)")
    g.add_argument("--benchmark", required=True, help=f"one of: {', '.join(BENCHMARK_NAMES)}")
    g.add_argument("--method", required=True, help=f"one of: {', '.join(ALL_METHODS)}")
    g.add_argument("--param", required=True, help="the config field to vary, e.g. lam, si_xi, eta_init")
    g.add_argument("--values", default="paper",
                   help="comma-separated values, or 'paper': Appendix A's grid (lam) or Table 4's values (eta_init)")
    _add_common(g)
    s = sub.add_parser("summary", help="mean ± SEM of the runs stored in a result store")
    s.add_argument("--out", required=True, help="output directory of the result store")
    rep = sub.add_parser("report", help="write <out>/REPORT.md and its CSV tables: every stored run beside the paper")
    rep.add_argument("--out", required=True, help="output directory of the result store, e.g. outputs/paper")
    d = sub.add_parser("data", help="which datasets the data root has, and the files missing for each; with "
                                    "--check BENCHMARK, exit 3 (and say why) if that benchmark's data is missing")
    d.add_argument("--data-dir", default=None, help="data root (default: $DHC_DATA_DIR)")
    d.add_argument("--check", default=None, metavar="BENCHMARK", help=f"one of: {', '.join(BENCHMARK_NAMES)}")
    lst = sub.add_parser("list", help="benchmarks, methods and profiles")
    for parser in (r, g, s, rep, d, lst):
        parser.add_argument("--plugin", **_PLUGIN)
    return p


def data_status(data_dir=None, check: str | None = None) -> int:
    """Print each dataset's files missing from the data root. With ``check``: load that benchmark's datasets
    (downloading what is missing when online, as a run would) and return 3 with the reason if one cannot be."""
    from dhclib.data.idx import resolve_data_dir
    from dhclib.errors import DataNotFoundError
    from dhclib.data.vision import VISION_DATASETS, missing_files

    if check is not None and check not in BENCHMARK_NAMES:
        raise DhcError(f"unknown benchmark {check!r}; accepted: {', '.join(BENCHMARK_NAMES)}")
    needed = registry.benchmark(check).datasets if check else ()
    root = resolve_data_dir(data_dir)
    print(f"data root: {root if root is not None else 'none (pass --data-dir or set DHC_DATA_DIR)'}")
    for n in needed or VISION_DATASETS:
        files = missing_files(n, data_dir)
        print(f"  {n}: " + ("complete" if not files else "missing " + ", ".join(files)))
    if check:
        for n in needed:
            try:
                VISION_DATASETS[n](data_dir, True)
            except DataNotFoundError as exc:
                print(f"{check} cannot run: {exc}")
                return 3
        print(f"{check}: all its data can be read")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, Slurm's time limit, ``docker stop``), raised where Ctrl-C would be, so that it gets the
    same clean-up: the claims of the runs in progress are released and a resume need not wait for them."""


def _terminate(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the (short) clean-up short
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set a handler
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return _command(args)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _command(args: argparse.Namespace) -> int:
    """Run the parsed command: its exit status (2: bad input or a failed run, one line on stderr; 130 after Ctrl-C,
    143 after SIGTERM, with what is stored)."""
    try:
        plugins.load_plugins(args.plugin)  # before any name is looked up; workers get them with their work
        if args.command == "list":
            print("benchmarks:", ", ".join(BENCHMARK_NAMES))
            print("methods:   ", ", ".join(ALL_METHODS))
            print("profiles:  ", ", ".join(PROFILES))
            return 0
        if args.command == "data":
            return data_status(args.data_dir, args.check)
        import pandas as pd

        from dhclib.method.metrics import summarize
        from dhclib.runs.runner import run_grid, run_many
        from dhclib.runs.store import label_as_stored, load_diverged, load_results, variant_of

        if args.command == "report":
            from dhclib.paper.report_md import write_report

            path = write_report(args.out)
            print(f"wrote {path} and its tables (report_*.csv) beside it")
            return 0
        if args.command == "grid":
            values = grid_values(args.benchmark, args.method, args.param, args.values)
            df = run_grid(args.benchmark, args.method, args.param, values, args.seeds, profile=args.profile,
                          device=args.device, data_dir=args.data_dir, out_dir=args.out, progress=not args.no_progress,
                          engine=args.engine, **parse_overrides(args.set))
            from dhclib.paper.report import grid_table

            with pd.option_context("display.width", 200, "display.max_columns", 20):
                print(grid_table(df, args.param).to_string(index=False))
            return 0
        if args.command == "run":
            overrides = parse_overrides(args.set)
            df = run_many(args.benchmark, args.method, args.seeds, profile=args.profile, device=args.device,
                          data_dir=args.data_dir, out_dir=args.out, progress=not args.no_progress,
                          on_diverge=args.on_diverge, engine=args.engine, **overrides)
            diverged = df.attrs.get("diverged", [])
            if len(df):  # the same labels as `summary`: each run named as its stored record describes it
                df = label_as_stored(df, args.out)
        else:
            results = load_results(args.out)
            diverged = load_diverged(args.out)
            if not results and not diverged:
                raise DhcError(f"no stored runs under {args.out}/runs")
            # one row per configuration: a grid point or a variant is never averaged into its method's row
            df = pd.concat([r.tidy(variant_of(r)) for r in results], ignore_index=True) if results else None
        if df is not None and len(df):
            with pd.option_context("display.width", 200, "display.max_columns", 20):
                print(summarize(df, by=("benchmark", "method", "profile")).to_string(index=False))
        for d in diverged:
            print(f"diverged (no result): {d['benchmark']} {d['method']} seed {d['seed']}: {d['message']}",
                  file=sys.stderr)
        if diverged:
            print(f"{len(diverged)} run(s) diverged; their records are under {Path(args.out) / 'diverged'}",
                  file=sys.stderr)
        return 3 if diverged and getattr(args, "fail_on_diverge", False) else 0
    except DhcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what, status = ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        out = getattr(args, "out", None)
        stored = len(list(Path(out).glob("runs/*/*/*.json"))) if out else 0
        print(f"{what}: {stored} run(s) are stored under {out}; run the same command again to resume (the run in "
              "progress is lost, nothing else)" if out else what, file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
