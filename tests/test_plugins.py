"""Extensions from outside the tree (issue #29, item 4): docs/extending.md's "Adding a regulariser" and "Adding a benchmark"
followed literally, in an empty folder outside the repository. Their code blocks, read from docs/extending.md (so this test
breaks when the page drifts), become ``toyplugin.py``; the commands of "Using a plugin" then train the new method
and benchmark from the command line (in this process and through ``--engine local:2``), report on them and run a
notebook through papermill with ``DHC_PLUGINS``. Each command is a subprocess, as a user would run it: nothing of
the plugin is registered in the test's own process."""

from __future__ import annotations

import os
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import dhclib
from dhclib import plugins, registry
from dhclib.errors import ConfigError

REPO = Path(dhclib.__file__).resolve().parent.parent
README = REPO / "docs" / "extending.md"  # the page "Adding a regulariser" and "Adding a benchmark" are on


def _section(title: str) -> str:
    """The README's text under ``### title``, up to the next heading of that level or above."""
    text = README.read_text()
    start = text.index(f"### {title}\n")
    end = re.search(r"^#{2,3} ", text[start + 4:], re.MULTILINE)
    return text[start:start + 4 + end.start()] if end else text[start:]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def _env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell in ``folder``: the plugin beside them, dhclib from this checkout (not from
    whatever checkout the virtual environment was installed from), one thread per process (two shared cores)."""
    env = {k: v for k, v in os.environ.items() if k != plugins.ENV}
    env.update(PYTHONPATH=os.pathsep.join([str(folder), str(REPO)]), OMP_NUM_THREADS="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]), **extra)
    return env


def _run(line: str, folder: Path) -> subprocess.CompletedProcess:
    """One line of the README's shell block, as a shell would run it: ``VAR=value`` prefixes set the environment,
    ``python`` and ``papermill`` are this interpreter's, a trailing comment is dropped."""
    words = shlex.split(line, comments=True)
    assignments = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        assignments[key] = value
    program = {"python": [sys.executable], "papermill": [sys.executable, "-m", "papermill", "--no-progress-bar"]}
    command = program[words[0]] + words[1:]
    return subprocess.run(command, cwd=folder, env=_env(folder, **assignments), capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """An empty folder outside the repository holding ``toyplugin.py``: the README's two code blocks, in order."""
    folder = tmp_path / "user"
    folder.mkdir()
    code = _blocks(_section("Adding a regulariser"), "python") + _blocks(_section("Adding a benchmark"), "python")
    assert len(code) == 2, "each of the README's two sections shows one code block"
    (folder / "toyplugin.py").write_text("\n\n".join(code))
    return folder


def _notebook(path: Path) -> None:
    """The README's ``my_notebook.ipynb``: a notebook that trains the plugin's method on its benchmark."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import dhclib\n"
        "df = dhclib.run_many('toy_blobs', 'dhp+l2', seeds='4', profile='quick', device='cpu', out_dir='outputs/toy',\n"
        "                     progress=False)\n"
        "assert set(df['method']) == {'dhp+l2'} and df['accuracy'].notna().all()")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_the_readme_plugin_trains_from_the_cli_a_pool_and_a_notebook(user_folder):
    commands = [line for line in _blocks(_section("Using a plugin"), "bash")[0].splitlines() if line.strip()]
    assert any("--engine local:2" in c for c in commands) and any(c.startswith("DHC_PLUGINS=") for c in commands)
    _notebook(user_folder / "my_notebook.ipynb")
    for line in commands:
        done = _run(line, user_folder)
        assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"

    runs = user_folder / "outputs" / "toy" / "runs" / "toy_blobs"
    stored = {f"{p.parent.name}/{p.name.partition('-')[0]}" for p in runs.glob("*/seed*.json")}
    # dhp+l2 seed 0 in the command line's own process; then --method all through the pool: the four compositions
    # that can run on the toy (SI, EWC and MAS have no lambda there), seeds 0-1; then the notebook's seed 4
    assert stored == {f"{m}/seed{s}" for m in ("finetune", "dhp", "l2", "dhp_l2") for s in (0, 1)} | {"dhp_l2/seed4"}
    report = (user_folder / "outputs" / "toy" / "REPORT.md").read_text()
    assert "## Toy blobs" in report and "dhp+l2" in report
    executed = nbformat.read(user_folder / "my_notebook.out.ipynb", as_version=4)
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("how", ["--plugin", "DHC_PLUGINS"])
def test_a_plugin_that_cannot_be_imported_is_one_line(user_folder, how):
    """A misspelt module, named on the command line or in the environment: exit 2 and one line naming it and why."""
    line = ("python -m dhclib list --plugin toyplugn" if how == "--plugin" else
            "DHC_PLUGINS=toyplugin,toyplugn python -m dhclib list")
    done = _run(line, user_folder)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"error: plugin 'toyplugn' (named by {how}) cannot be imported: "
                                        "ModuleNotFoundError: No module named 'toyplugn'"]


def test_module_names_and_loading_in_this_process(monkeypatch):
    """--plugin's and DHC_PLUGINS' spellings; a module's own import error is reported as one line; loading is
    idempotent (a module registers its parts once)."""
    monkeypatch.setattr(plugins, "_loaded", [])  # this process's list, left as it was
    assert plugins.module_names(["a,b", " c ", "a"], "--plugin") == ("a", "b", "c")
    assert plugins.module_names(None, plugins.ENV) == ()
    with pytest.raises(ConfigError, match=r"DHC_PLUGINS: 'a b' is not a module name; accepted: dotted"):
        plugins.module_names("a b", plugins.ENV)
    monkeypatch.setenv(plugins.ENV, "json")
    assert "json" in plugins.load_plugins()
    monkeypatch.setenv(plugins.ENV, "dhclib._no_such_module")
    with pytest.raises(ConfigError, match=r"^plugin 'dhclib._no_such_module' \(named by DHC_PLUGINS\) cannot be "
                                          r"imported: ModuleNotFoundError: No module named 'dhclib._no_such_module'$"):
        plugins.load_plugins()
    plugins.load_environment()  # what import dhclib does: kept, then named by the lookup that fails
    try:
        with pytest.raises(ConfigError, match=r"unknown benchmark 'toy_blobs'; .*\(plugin 'dhclib._no_such_module'"):
            registry.benchmark("toy_blobs")
    finally:
        monkeypatch.delenv(plugins.ENV)
        plugins.load_environment()
    assert plugins.failure() is None


def test_a_worker_loads_the_plugins_of_the_driver_that_submitted_its_work(user_folder, monkeypatch):
    """A unit of work submitted to any engine (:func:`dhclib.runs.executors.submit_all` wraps it with
    :func:`plugins.carrying`) imports the driver's plugins before it runs: a worker whose environment names none (a
    Dask or Slurm node) still knows the plugin's benchmark."""
    monkeypatch.setattr(plugins, "_loaded", ["toyplugin"])  # as in a driver started with --plugin toyplugin
    work = pickle.dumps(plugins.carrying(registry.benchmark))
    worker = ("import pickle, sys\n"
              "print(pickle.loads(sys.stdin.buffer.read())('toy_blobs').title)")
    done = subprocess.run([sys.executable, "-c", worker], input=work, cwd=user_folder, env=_env(user_folder),
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip() == "Toy blobs"


def test_an_installed_package_s_entry_point_is_loaded_by_every_process(user_folder):
    """A package that declares ``[project.entry-points."dhclib.plugins"] toy = "toyplugin"`` (as the README shows):
    its metadata on the path is enough, with neither --plugin nor DHC_PLUGINS."""
    info = user_folder / "toyplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dhclib.plugins]\ntoy = toyplugin\n")
    done = _run("python -m dhclib list", user_folder)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "toy_blobs" in done.stdout and "dhp+l2" in done.stdout
