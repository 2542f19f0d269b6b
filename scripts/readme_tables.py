"""Rewrite the generated findings of the README and of docs/findings.md from the paper store (``make report
PROFILE=paper`` calls it): the tables between their markers, ``<!-- generated: NAME (make report PROFILE=paper) -->``
and ``<!-- end generated: NAME -->`` (each table on exactly one of the pages: :func:`dhclib.paper.report_md.
pages_text`), and the headline figure ``<store>/dhp_gains.png`` (:func:`dhclib.paper.plots.dhp_gains`). Exit
status 2 with one line when a page or a marker is missing.

    python scripts/readme_tables.py --store outputs/paper README.md docs/findings.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a script: no display

from dhclib.errors import DhcError  # noqa: E402
from dhclib.paper import plots  # noqa: E402
from dhclib.paper.findings import HEADLINE_BENCHMARKS, paper_gain  # noqa: E402
from dhclib.paper.report_md import pages_text  # noqa: E402
from dhclib.runs.store import write_atomic  # noqa: E402

import pandas as pd  # noqa: E402


def rewrite(pages: list[Path], store: Path) -> list[Path]:
    """Rewrite the pages' generated tables in place (atomically) from ``store``; returns the pages that changed."""
    for page in pages:
        if not page.is_file():
            raise DhcError(f"{page}: no such file (give the pages whose generated tables to regenerate)")
    old = {str(page): page.read_text() for page in pages}
    new = pages_text(old, store)
    changed = [page for page in pages if new[str(page)] != old[str(page)]]
    for page in changed:
        write_atomic(page, new[str(page)])
    return changed


def figure(store: Path) -> Path:
    """The headline figure from the store's per-seed table (written by the report, ``report_seeds.csv``)."""
    seeds = pd.read_csv(store / "report_seeds.csv")
    present = [b for b in HEADLINE_BENCHMARKS if (seeds["benchmark"] == b).any()]
    fig = plots.dhp_gains(seeds, present, paper_gain)
    return plots.save(fig, store, "dhp_gains")[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pages", type=Path, nargs="+", help="the pages to rewrite: README.md docs/findings.md")
    p.add_argument("--store", type=Path, default=Path("outputs/paper"), help="the result store (outputs/paper)")
    args = p.parse_args(argv)
    try:
        changed = rewrite(args.pages, args.store)
        drawn = figure(args.store)
    except DhcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"rewrote the generated tables of {', '.join(map(str, changed))}" if changed
          else "unchanged: the generated tables of " + ", ".join(map(str, args.pages)))
    print(f"drew {drawn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
