"""The committed result store survives the redesign of the outer layer (issue #6, item 4): every stored run and
divergence record re-resolves to its stored key from its stored config, and REPORT.md regenerates from the paper
store as committed. (The quick store, ``outputs/quick/runs``, is not committed: nbval trains it afresh; where a
checkout has one, it is checked too.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dhclib.paper.report_md import pages_text, report_text
from dhclib.runs.config import resolve_config

ROOT = Path(__file__).resolve().parent.parent / "outputs"
IDENTITY = ("benchmark", "method", "seed", "profile", "device")


def _stored(kind: str) -> list[Path]:
    return sorted(ROOT.glob(f"*/{kind}/*/*/seed*.json"))


def test_the_committed_stores_are_there():
    paper = [p for p in _stored("runs") if p.relative_to(ROOT).parts[0] == "paper"]
    assert len(paper) > 150 and _stored("diverged")  # a test of nothing would pass on an empty glob


@pytest.mark.parametrize("kind", ["runs", "diverged"])
def test_every_stored_config_resolves_to_its_key(kind):
    wrong = []
    for path in _stored(kind):
        record = json.loads(path.read_text())
        config = record["config"]
        key = config.get("key") or record["config_key"]
        given = {k: v for k, v in config.items() if k not in IDENTITY and k != "key" and v is not None}
        cfg = resolve_config(*(config[k] for k in IDENTITY), **given)
        if cfg.key() != key or not path.name.endswith(f"-{key}.json"):
            wrong.append(f"{path.relative_to(ROOT)}: resolves to {cfg.key()}")
    assert not wrong, "\n".join(wrong)


def test_report_regenerates_as_committed(tmp_path):
    """REPORT.md of the paper store, rendered afresh from its runs, is the committed file (`make report
    PROFILE=paper` after committing new runs keeps it so)."""
    store = ROOT / "paper"
    assert report_text(store, tmp_path, "paper") == (store / "REPORT.md").read_text()


def test_readme_tables_regenerate_as_committed(tmp_path):
    """The generated findings of the README and of docs/findings.md, rendered afresh from the paper store, are the
    committed ones (`make report PROFILE=paper` rewrites them between their markers)."""
    pages = {name: (ROOT.parent / name).read_text() for name in ("README.md", "docs/findings.md")}
    assert pages_text(pages, ROOT / "paper", tmp_path) == pages
