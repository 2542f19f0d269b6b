"""JupyterLab as a person uses it, driven in headless Chromium: the repository's own server settings
(.jupyter/, as `make lab` starts it), notebook 03 opened from a copy of notebooks/.

It must open unmodified; a save with no edit changes no byte (neither the .ipynb nor its paired .py); run on a tiny
setting it shows tqdm's progress as a widget, its tables rendered as HTML and no error; and after a markdown edit
and a save, the paired .py carries the edit and the .ipynb is normalised as the notebook lanes write it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from selenium.webdriver.support.ui import WebDriverWait

from browser import ROOT, chromium, console_errors, need_chromium, screenshot_dir

sys.path.insert(0, str(ROOT / "scripts"))
from normalize_notebook import normalize  # noqa: E402

pytestmark = pytest.mark.slow

NOTEBOOK = "03_split_mnist"
TOKEN = "dhc-test"
TINY = '\ntrials = 1\nmethods = ["finetune", "dhp"]\nvariants = []'  # appended to the parameters cell
EDIT = "An edit made in JupyterLab."
CURRENT = "const w = jupyterapp.shell.currentWidget;"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path, mnist_root):
    """A JupyterLab server on 127.0.0.1 over a copy of notebooks/; yields (base URL, copy's notebooks folder)."""
    need_chromium()
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in (f"{NOTEBOOK}.ipynb", f"{NOTEBOOK}.py", "jupytext.toml"):
        shutil.copy2(ROOT / "notebooks" / name, folder / name)
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(ROOT / ".jupyter"), DHC_DATA_DIR=str(mnist_root),
               DHC_OUTPUT_ROOT=str(tmp_path / "outputs"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               OMP_NUM_THREADS="1")
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}", "--expose-app-in-browser"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "lab.log").read_text()
                time.sleep(0.5)
        yield base, folder
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _wait(browser, script: str, seconds: float = 300) -> None:
    WebDriverWait(browser, seconds).until(lambda b: b.execute_script(script))


def _command(browser, name: str) -> None:
    browser.execute_async_script(f"const done = arguments[0]; jupyterapp.commands.execute({name!r}).then(() => done())")


def test_open_run_edit_and_save_in_jupyterlab(lab):
    base, folder = lab
    ipynb, py = folder / f"{NOTEBOOK}.ipynb", folder / f"{NOTEBOOK}.py"
    committed = ipynb.read_bytes(), py.read_bytes()
    shots = screenshot_dir() / "jupyterlab"
    shots.mkdir(exist_ok=True)
    with chromium() as browser:
        try:
            browser.get(f"{base}lab/tree/notebooks/{NOTEBOOK}.ipynb?token={TOKEN}")
            _wait(browser, "const w = window.jupyterapp && jupyterapp.shell.currentWidget; return !!(w && w.context"
                           " && w.context.isReady && w.sessionContext.session && w.sessionContext.session.kernel"
                           " && w.sessionContext.session.kernel.status === 'idle')", 180)
            assert not browser.execute_script(f"{CURRENT} return w.context.model.dirty"), \
                "the committed notebook opens modified"
            _command(browser, "docmanager:save")
            assert (ipynb.read_bytes(), py.read_bytes()) == committed, "a save with no edit changed the files"

            browser.execute_script(
                f"{CURRENT} const cell = w.content.widgets.find(c => (c.model.getMetadata('tags') || [])"
                ".includes('parameters')); const s = cell.model.sharedModel; s.setSource(s.getSource() + arguments[0]);",
                TINY)
            _command(browser, "notebook:run-all-cells")
            _wait(browser, f"{CURRENT} return w.sessionContext.session.kernel.status === 'idle' && !w.content.widgets"
                           ".some(c => c.model.type === 'code' && c.model.executionCount === null)")
            browser.save_screenshot(str(shots / "ran.png"))
            errors = browser.execute_script(
                f"{CURRENT} return w.content.widgets.flatMap(c => c.model.type !== 'code' ? [] : c.model.outputs"
                ".toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue))")
            assert errors == [], errors
            widgets = browser.execute_script("return document.querySelectorAll('.jp-OutputArea-output .widget-hprogress').length")
            assert widgets > 0, "no progress widget: tqdm drew text bars"
            tables = browser.execute_script("return document.querySelectorAll('.jp-OutputArea-output table').length")
            assert tables > 0, "no rendered table"

            browser.execute_script(
                f"{CURRENT} const cell = w.content.widgets.find(c => c.model.type === 'markdown');"
                "const s = cell.model.sharedModel; s.setSource(s.getSource() + '\\n\\n' + arguments[0]);", EDIT)
            _command(browser, "docmanager:save")
            assert EDIT in py.read_text(), "the paired .py does not carry the edit"
            saved = ipynb.read_text()
            assert nbformat.writes(normalize(nbformat.reads(saved, as_version=4))) + "\n" == saved, \
                "the saved notebook is not normalised as the lanes write it"
            assert console_errors(browser) == []
        except BaseException:
            browser.save_screenshot(str(shots / "failed.png"))
            raise
