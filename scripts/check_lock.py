"""Checks that the running interpreter has exactly the lock's versions installed (issue #5; `make test` runs it).

    python scripts/check_lock.py [requirements-lock.txt]

Reads the lock written by ``uv pip compile --universal`` (``name==version ; marker``, hashes on the lines after),
keeps the entries whose environment marker holds here, and compares each with ``importlib.metadata``. Exit 0 with
one summary line when all match; exit 1 listing every package that is missing or at another version.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker

ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def lock_entries(path: Path) -> list[tuple[str, str, str | None]]:
    """``(name, version, marker)`` for every pinned requirement of the lock."""
    out = []
    for line in path.read_text().splitlines():
        m = ENTRY.match(line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3)))
    return out


def applicable(path: Path) -> list[tuple[str, str]]:
    """``(name, version)`` of the lock's entries whose environment marker holds here."""
    return [(n, v) for n, v, marker in lock_entries(path) if not marker or Marker(marker).evaluate()]


def check(path: Path) -> list[str]:
    """The mismatches between the lock and this environment (empty when all match)."""
    entries = applicable(path)
    if not entries:
        return [f"{path}: no pinned requirement applies here; is it a lock?"]
    problems = []
    for name, version in entries:
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}: missing (lock: {version})")
            continue
        # a local version label (torch's "+cu130") is the same release as the lock's
        if have.split("+")[0] != version.split("+")[0]:
            problems.append(f"{name}: {have} installed, lock: {version}")
    return problems


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else Path(__file__).resolve().parents[1] / "requirements-lock.txt")
    if not path.is_file():
        print(f"check_lock: no lock file at {path}", file=sys.stderr)
        return 2
    problems = check(path)
    if problems:
        print(f"check_lock: this environment does not match {path.name} ({len(problems)} differences; "
              f"reinstall with `make clean install`):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"check_lock: all {len(applicable(path))} packages of {path.name} that apply here are installed at the lock's "
          "versions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
