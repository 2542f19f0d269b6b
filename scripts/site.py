"""Build the static site: the README as its home page, docs/, the paper-profile report and the committed executed
paper notebooks.

    python scripts/site.py [--out build/site]

The pages are staged in a scratch folder (build/site-src, or beside --out) so the tree stays unchanged: the
notebooks are the committed executions under outputs/paper/, rendered by mkdocs-jupyter and never re-executed, so
the site shows exactly what the repository stores. MkDocs builds strictly: a broken link or a page missing from
the navigation fails the build. Nothing is downloaded (fonts are the browser's own; no CDN scripts).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "outputs" / "paper"


def paper_notebooks() -> list[Path]:
    """The committed executed notebooks of the paper profile, in their numbered order."""
    return sorted(PAPER.glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb"))


# The README's links, as the site lays the same files out: docs/ is the site's root, the report and the figure
# sit beside the pages.
HOME_LINKS = {"](docs/": "](", "](outputs/paper/REPORT.md)": "](report.md)", "](outputs/paper/dhp_gains.png)": "](dhp_gains.png)"}


def stage(src: Path) -> None:
    """Copy docs/, the README (as index.md), REPORT.md, the headline figure and the executed notebooks into
    ``src``, the folder MkDocs reads."""
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(ROOT / "docs", src)
    home = (ROOT / "README.md").read_text()
    for old, new in HOME_LINKS.items():
        home = home.replace(old, new)
    (src / "index.md").write_text(home)
    shutil.copy2(PAPER / "REPORT.md", src / "report.md")
    shutil.copy2(PAPER / "dhp_gains.png", src / "dhp_gains.png")
    (src / "notebooks").mkdir()
    for nb in paper_notebooks():
        shutil.copy2(nb, src / "notebooks" / nb.name)


def nav() -> list:
    """docs/'s pages in the order of docs/nav.txt, then the report and every executed notebook."""
    pages = []
    for line in (ROOT / "docs" / "nav.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            title, _, path = line.partition(":")
            pages.append({title.strip(): path.strip()})
    pages.append({"Report (paper profile)": "report.md"})
    pages.append({"Notebooks (paper profile)": [f"notebooks/{nb.name}" for nb in paper_notebooks()]})
    return pages


def build(out: Path) -> Path:
    """Stage the pages and build the site into ``out``; returns ``out``."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    src = out.parent / (out.name + "-src")
    stage(src)
    config = load_config(str(ROOT / "mkdocs.yml"), docs_dir=str(src), site_dir=str(out), nav=nav(), strict=True)
    mkdocs_build(config)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="where the site is written")
    args = parser.parse_args(argv)
    print(f"site: {build(args.out.resolve())}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
