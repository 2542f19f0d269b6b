"""`make site`: the static site of docs/, the report and the executed paper notebooks, built and opened in headless
Chromium. Every navigation link must load, every image must decode, every notebook page must show the tables and
figures its notebook holds, and the console must stay free of errors. The build must leave the tree unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from browser import ROOT, chromium, console_errors, need_chromium, screenshot_dir, serve

pytestmark = pytest.mark.slow


def _outputs(notebook: Path) -> tuple[int, int]:
    """(figures, HTML tables) among a notebook's stored outputs."""
    figures = tables = 0
    for cell in json.loads(notebook.read_text())["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            figures += "image/png" in data
            tables += "<table" in "".join(data.get("text/html", ""))
    return figures, tables


def _status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, text=True,
                          capture_output=True).stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    need_chromium()  # skip (or fail in CI) before spending the build
    out = tmp_path_factory.mktemp("site") / "site"
    before = _status()
    done = subprocess.run([sys.executable, "scripts/site.py", "--out", str(out)], cwd=ROOT, text=True,
                          capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _status() == before, "building the site changed the working tree"
    return out


def test_every_page_loads_with_its_images_tables_and_figures(site):
    shots = screenshot_dir() / "site"
    shots.mkdir(exist_ok=True)
    notebooks = {nb.stem: nb for nb in sorted((ROOT / "outputs" / "paper").glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb"))}
    assert notebooks, "no executed paper notebooks under outputs/paper"
    problems, seen = [], set()
    with serve(site) as base, chromium() as browser:
        browser.get(base)
        nav = "nav.md-nav--primary a.md-nav__link[href]"
        WebDriverWait(browser, 20).until(lambda b: b.find_elements("css selector", nav))
        links = [a.get_attribute("href") for a in browser.find_elements("css selector", nav)]
        pages = sorted({link.split("#")[0] for link in links if link.startswith(base)})
        assert base in pages and len(pages) >= 2 + len(notebooks), pages
        for url in pages:
            browser.get(url)
            name = url[len(base):].strip("/") or "index"
            browser.save_screenshot(str(shots / (name.replace("/", "__") + ".png")))
            title = browser.title
            if "404" in title or not browser.find_elements("css selector", "article"):
                problems.append(f"{name}: not a page ({title!r})")
            broken = browser.execute_script(
                "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            problems += [f"{name}: image does not load: {src[:80]}" for src in broken]
            problems += [f"{name}: console: {msg[:200]}" for msg in console_errors(browser)]
            stem = name.rsplit("/", 1)[-1]
            if stem in notebooks:
                seen.add(stem)
                figures, tables = _outputs(notebooks[stem])
                shown = browser.execute_script(
                    "const a = document.querySelector('article');"
                    "return [a.querySelectorAll('img').length, a.querySelectorAll('table').length]")
                if tables == 0:
                    problems.append(f"{name}: the notebook holds no rendered (HTML) table")
                if shown[0] < figures or shown[1] < tables:
                    problems.append(f"{name}: shows {shown[0]} figures and {shown[1]} tables of its "
                                    f"{figures} and {tables}")
    assert seen == set(notebooks), f"notebooks missing from the navigation: {sorted(set(notebooks) - seen)}"
    assert not problems, "\n".join(problems) + f"\n(screenshots: {shots})"
