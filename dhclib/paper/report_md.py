"""``outputs/<profile>/REPORT.md``: every stored run of a result store, the paper beside ours (issue #3, item 8).

The report is generated, never written by hand: :func:`write_report` loads the store, writes its tables as CSV
(``report_<name>.csv``, one per table of :func:`dhclib.paper.report_data.report_tables`, e.g.
``report_table1.csv``, ``report_paired.csv``, ``report_seeds.csv``) and then renders REPORT.md from those frames
as read back (:mod:`dhclib.paper.report_render`). The README's finding tables are rendered from the same frames
(:mod:`dhclib.paper.findings`); ``scripts/readme_tables.py`` writes them into the README.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dhclib.errors import DhcError
from dhclib.paper.findings import README_TABLES, placed, readme_tables, with_readme_tables
from dhclib.paper.report_data import classify_runs, report_tables
from dhclib.paper.report_render import render_report
from dhclib.runs.outputs import save_table
from dhclib.runs.store import write_atomic

__all__ = ["classify_runs", "report_tables", "render_report", "report_text", "write_report", "readme_tables",
           "with_readme_tables", "readme_text", "pages_text", "README_TABLES"]


def _tables_as_read(store_dir, tables_dir=None) -> dict[str, pd.DataFrame]:
    """Write the report's CSV tables (``report_*.csv``) into ``tables_dir`` (default: the store) and return them as
    read back: what a reader of the CSV files sees, and what REPORT.md and the README's tables are rendered from."""
    tables_dir = Path(tables_dir or store_dir)
    tables = report_tables(store_dir)
    for name, frame in tables.items():
        save_table(frame, tables_dir, f"report_{name}")
    return {k: pd.read_csv(tables_dir / f"report_{k}.csv") if len(v) else v for k, v in tables.items()}


def report_text(store_dir, tables_dir=None, profile: str | None = None) -> str:
    """Write the report's CSV tables into ``tables_dir`` (default: the store) and return REPORT.md's text.
    ``profile`` (for the title) defaults to the store folder's name."""
    return render_report(_tables_as_read(store_dir, tables_dir), profile or Path(store_dir).resolve().name)


def readme_text(readme: str, store_dir, tables_dir=None, source: str = "README.md") -> str:
    """``readme`` with its generated tables (:func:`readme_tables`) rendered from the runs under ``store_dir``."""
    return with_readme_tables(readme, readme_tables(_tables_as_read(store_dir, tables_dir)), source)


def pages_text(pages: dict[str, str], store_dir, tables_dir=None) -> dict[str, str]:
    """The pages (source name -> text: the README and docs/findings.md) with their generated tables rendered from
    the runs under ``store_dir``; every table of :data:`README_TABLES` must have its place on exactly one page."""
    blocks = readme_tables(_tables_as_read(store_dir, tables_dir))
    where = {name: [page for page, text in pages.items() if name in placed(text)] for name in blocks}
    if wrong := {name: found for name, found in where.items() if len(found) != 1}:
        raise DhcError("each generated table needs its markers on exactly one page; "
                       + "; ".join(f"{name!r} on {len(found)} ({', '.join(found) or 'none'})"
                                   for name, found in wrong.items()))
    return {page: with_readme_tables(text, blocks, page, partial=True) for page, text in pages.items()}


def write_report(store_dir, profile: str | None = None) -> Path:
    """Write the report's CSV tables and ``<store_dir>/REPORT.md`` (atomically); returns the REPORT.md path."""
    tables = _tables_as_read(store_dir)
    path = Path(store_dir) / "REPORT.md"
    write_atomic(path, render_report(tables, profile or Path(store_dir).resolve().name))
    return path
