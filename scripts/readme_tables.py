"""Rewrite the README's generated results tables from the paper store (``make report PROFILE=paper`` calls it).

Each table lies between its markers, ``<!-- generated: NAME (make report PROFILE=paper) -->`` and
``<!-- end generated: NAME -->``; the tables are rendered by :func:`dhclib.paper.report_md.readme_text` from the
runs stored under ``--store``. Exit status 2 with one line when the README or a marker is missing.

    python scripts/readme_tables.py --store outputs/paper README.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dhclib.errors import DhcError
from dhclib.paper.report_md import readme_text


def rewrite(readme: Path, store: Path) -> bool:
    """Rewrite ``readme``'s generated tables in place (atomically) from ``store``; True when its text changed."""
    if not readme.is_file():
        raise DhcError(f"{readme}: no such file (give the README whose tables to regenerate)")
    old = readme.read_text()
    new = readme_text(old, store, source=str(readme))
    if new != old:
        tmp = readme.with_name(f".{readme.name}.tmp")
        tmp.write_text(new)
        os.replace(tmp, readme)
    return new != old


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("readme", type=Path, help="the README to rewrite, e.g. README.md")
    p.add_argument("--store", type=Path, default=Path("outputs/paper"), help="the result store (outputs/paper)")
    args = p.parse_args(argv)
    try:
        changed = rewrite(args.readme, args.store)
    except DhcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'rewrote' if changed else 'unchanged:'} the generated tables of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
