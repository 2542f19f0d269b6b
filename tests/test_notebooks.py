"""The committed notebooks: each paired with its percent script (notebooks/jupytext.toml), papermill-parameterised,
executed, and free of library logic (issue #3, items 1, 2 and 7). nbval itself (``make nbval``) re-executes them;
these checks are static, except the pipeline checks at the end, which execute the CNN notebooks (04, 06) on
generated data (issue #4)."""

from __future__ import annotations

import ast
import json
import importlib.util
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import find_jupytext_configuration_file, load_jupytext_config

from dhclib.paper.regression import MEASURED_SPREAD, RELATIVE_TOLERANCE, TOLERANCE

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
PAIRING = "ipynb,py:percent"  # notebooks/jupytext.toml: NN_name.ipynb with the percent script NN_name.py


def _names() -> list[str]:
    """The committed notebooks (NN_name), found in notebooks/ so that a new one is checked without editing this file."""
    names = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:  # every parametrised test below would pass on nothing
        raise RuntimeError(f"no notebook NN_name.ipynb in {NOTEBOOKS}")
    return names


NAMES = _names()
# Committed without outputs: this workplace has no CIFAR data (docs/data.md); make nbval skips it with the reason.
UNEXECUTED = {"06_split_cifar"}


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _config(name: str):
    """The jupytext configuration that jupytext (its command line, and JupyterLab's contents manager) applies."""
    return load_jupytext_config(str(NOTEBOOKS / f"{name}.ipynb"))


def _cells(path: Path, fmt: str) -> list[tuple[str, str]]:
    """``(cell_type, source)`` of every cell, as jupytext reads the file."""
    return [(c.cell_type, c.source) for c in jupytext.read(path, fmt=fmt).cells]


def test_every_notebook_is_in_the_makefile_and_one_lane():
    makefile = (ROOT / "Makefile").read_text()
    (line,) = [line for line in makefile.splitlines() if line.startswith("NOTEBOOKS := ")]
    assert line.split()[2:] == NAMES
    assert UNEXECUTED <= set(NAMES)
    line = next(line for line in makefile.splitlines() if line.startswith("LANES := "))
    lanes = [lane.split() for lane in re.findall(r'"([^"]+)"', line)]
    assert sorted(n for lane in lanes for n in lane) == NAMES  # each notebook in exactly one lane
    (with_01,) = [lane for lane in lanes if "01_permuted_mnist" in lane]
    assert with_01.index("05_ablation") > with_01.index("01_permuted_mnist")  # 05 reuses 01's runs: after it


def test_jupytext_pairs_every_notebook_with_its_percent_script():
    """notebooks/jupytext.toml is the configuration jupytext finds for every notebook, and every script has its
    notebook (a script left behind by a renamed notebook would be paired with nothing)."""
    assert Path(find_jupytext_configuration_file(NOTEBOOKS)) == NOTEBOOKS / "jupytext.toml"
    for name in NAMES:
        assert _config(name).formats == [PAIRING], name
    scripts = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.py")}
    assert scripts == set(NAMES), (f"scripts without their notebook: {sorted(scripts - set(NAMES))}; notebooks without "
                                   f"their script: {sorted(set(NAMES) - scripts)} (jupytext --sync writes it)")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_and_its_script_are_in_sync(name):
    """The .py is what diffs show: it must hold exactly the cells of the .ipynb."""
    fix = f"run `jupytext --sync notebooks/{name}.ipynb` (the more recently modified of the two files wins)"
    script = NOTEBOOKS / f"{name}.py"
    assert script.is_file(), f"notebooks/{name}.py is missing: {fix}"
    notebook, text = _cells(NOTEBOOKS / f"{name}.ipynb", "ipynb"), _cells(script, "py:percent")
    first = next((i for i, (a, b) in enumerate(zip(notebook, text)) if a != b), min(len(notebook), len(text)))
    assert notebook == text, (f"notebooks/{name}.ipynb ({len(notebook)} cells) and its .py ({len(text)} cells) "
                              f"differ, first at cell {first}: {fix}")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_records_the_pairing_filters(name):
    """jupytext takes the metadata filters from the .ipynb when it combines a newer .py with the .ipynb's outputs:
    without them `jupytext --sync` after an edit of the .py drops the papermill cell metadata, and JupyterLab's first
    save rewrites the .ipynb to add them."""
    config = _config(name)
    recorded = _read(name).metadata.get("jupytext", {})
    assert {k: recorded.get(k) for k in ("notebook_metadata_filter", "cell_metadata_filter")} == {
        "notebook_metadata_filter": config.notebook_metadata_filter,
        "cell_metadata_filter": config.cell_metadata_filter,
    }


# What the notebooks' markdown says about the regression checks, in words: each statement's pattern, for each of its
# numbers the values of dhclib.paper.regression it states (in the statement's unit: points or percent), and the notebooks
# that must make it (so that rewording it cannot leave the check with nothing to check).
STATEMENTS = [
    (r"accuracy and BWT (?:must lie )?within ([\d.]+) and ([\d.]+) points",
     [[100 * TOLERANCE["avg_acc"]], [100 * TOLERANCE["bwt"]]], {"01", "02", "03", "04", "07"}),
    (r"across numeric paths on the quick profile was ([\d.]+) points", [[100 * MEASURED_SPREAD]],
     {"01", "02", "03", "04"}),
    (r"η, ‖Hebb‖_F and ‖α‖_F within ([\d.]+)%",
     [[100 * RELATIVE_TOLERANCE[k] for k in ("eta", "hebb_norm", "alpha_norm")]], {"05"}),
    (r"Table 4's means within ([\d.]+) points", [[100 * TOLERANCE["avg_acc"]]], {"05"}),
]


def _states(written: str, value: float) -> bool:
    """Whether ``written`` is ``value`` to the precision it is written with ("1.39" for 1.3900001)."""
    decimals = len(written.partition(".")[2])
    return abs(float(written) - value) <= 0.5 * 10**-decimals + 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_markdown_states_the_tolerances_of_dhclib_regression(name):
    """The tolerances are written out in the notebooks' text: they must be the ones the checked cells apply."""
    text = "\n".join(c.source for c in _read(name).cells if c.cell_type == "markdown")
    for pattern, held, required_in in STATEMENTS:
        found = re.findall(pattern, text)
        assert found or name[:2] not in required_in, f"{name}: its markdown no longer says /{pattern}/"
        for numbers in found:
            for written, values in zip(numbers if isinstance(numbers, tuple) else (numbers,), held):
                assert all(_states(written, v) for v in values), (
                    f"{name} says {written} where dhclib.paper.regression holds {values} (/{pattern}/)")


@pytest.mark.parametrize("name", NAMES)
def test_first_code_cell_is_the_papermill_parameters(name):
    nb = _read(name)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.metadata.get("tags") == ["parameters"]
    names = {t.id for node in ast.parse(first.source).body if isinstance(node, ast.Assign) for t in node.targets}
    required = {"profile", "device", "overrides", "missing", "engine"}
    required |= {"seed"} if name == "07_lambda_search" else {"trials"}
    required |= {"methods", "variants"} if name[:2] in ("01", "02", "03", "04") else set()
    required |= {"methods"} if name[:2] == "06" else set()
    required |= {"vision_tasks", "notmnist_split"} if name[:2] == "04" else set()
    assert required <= names, required - names
    plumbing = {"stack", "executor", "slurm", "data_dir", "output_dir", "store_dir"}  # folded (issue #29)
    assert not names & plumbing, names & plumbing
    scope: dict = {}
    exec(first.source, scope)  # noqa: S102 - the defaults must be plain values
    assert scope["profile"] == "quick" and scope["device"] == "auto" and scope["missing"] == "train"
    assert scope["engine"] == "stack:auto"  # in the kernel; stacks on a GPU only (dhclib.runs.engine)


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_only_orchestrate(name):
    """No function or class is defined in a notebook: reusable code lives in dhclib."""
    for cell in _read(name).cells:
        if cell.cell_type == "code":
            tree = ast.parse(cell.source)
            assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))], cell.source


@pytest.mark.parametrize("name", sorted(set(NAMES) - UNEXECUTED))
def test_checked_cells_are_committed_with_outputs(name):
    """nbval compares the cells marked NBVAL_CHECK_OUTPUT: they must hold the outputs of an executed run, with no
    error, and the notebook must have run top to bottom."""
    nb = _read(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "not executed top to bottom"
    checked = [c for c in code if c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked
    for c in checked:
        assert c.outputs and all(o.output_type != "error" for o in c.outputs), c.source


@pytest.mark.parametrize("name", sorted(UNEXECUTED))
def test_notebooks_without_data_here_are_committed_without_outputs(name):
    """Never a result from generated data in a committed notebook: those without their data here have no outputs."""
    assert all(not c.get("outputs") for c in _read(name).cells if c.cell_type == "code")


def _normalizer():
    """scripts/normalize_notebook.py, which `make notebooks` runs after papermill (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("normalize_notebook", ROOT / "scripts" / "normalize_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_normalizing_a_committed_notebook_changes_no_byte(name, tmp_path):
    """The committed notebooks are normalised, and normalising keeps what jupytext's pairing wrote."""
    committed = (NOTEBOOKS / f"{name}.ipynb").read_bytes()
    copy = tmp_path / f"{name}.ipynb"
    copy.write_bytes(committed)
    _normalizer().main([str(copy)])
    assert copy.read_bytes() == committed


def test_normalizing_drops_progress_bars_and_joins_a_streams_pieces():
    """What varies between two executions of one cell goes: the bar's text, the bare newline a closing bar leaves
    wherever the flushes put it, and the split of one stream into pieces; what the cell printed stays, in order."""
    out = nbformat.v4.new_output
    cell = nbformat.v4.new_code_cell("train()", outputs=[
        out("stream", name="stderr", text="\n"),
        out("stream", name="stdout", text="41 runs"), out("stream", name="stdout", text=", 8 diverged\n"),
        out("stream", name="stderr", text="runs:  50%|#   | 1/2\rruns: 100%|####| 2/2\n"),
        out("stream", name="stderr", text="\n"),
        out("stream", name="stderr", text="UserWarning: real\n"),
        out("execute_result", data={"text/plain": "1"}, execution_count=1),
        out("stream", name="stdout", text="after\n")])
    nb = _normalizer().normalize(nbformat.v4.new_notebook(cells=[cell]))
    assert [(o.output_type, o.get("name"), o.get("text")) for o in nb.cells[0].outputs] == [
        ("stream", "stdout", "41 runs, 8 diverged\n"), ("stream", "stderr", "UserWarning: real\n"),
        ("execute_result", None, None), ("stream", "stdout", "after\n")]


# ---------------------------------------------------------------------------------------------------------------
# pipeline checks: notebooks 04 and 06 top to bottom with papermill on generated files (not results)
# ---------------------------------------------------------------------------------------------------------------
TINY = {"train_size": 40, "test_size": 30, "min_epochs": 1, "max_epochs": 1}


@pytest.mark.parametrize("name, params", [
    ("04_vision_mixture", {"vision_tasks": ["mnist", "notmnist", "fashion_mnist", "svhn", "cifar10"],
                           "notmnist_split": "official"}),
    ("06_split_cifar", {}),
    ("06_split_cifar", {"engine": "local:2"}),
], ids=["04", "06", "06-executor"])
@pytest.mark.slow
def test_pipeline_check_cnn_notebook_runs_on_generated_data(name, params, tmp_path, capfd, monkeypatch):
    """A pipeline check, not a result: the notebook runs top to bottom on generated files in each dataset's real
    format, with a tiny protocol, and writes its tables and figures; with a process pool, the kernel's exit leaves
    no worker's traceback in the log."""
    papermill = pytest.importorskip("papermill")
    from dhclib.data.fake import write_fake_data_root

    root = write_fake_data_root(tmp_path / "data", n_train=100, n_test=100)
    monkeypatch.setenv("DHC_DATA_DIR", str(root))  # the kernel's data root and outputs: by environment
    monkeypatch.setenv("DHC_OUTPUT_ROOT", str(tmp_path / "outputs"))
    store, out = tmp_path / "outputs" / "quick", tmp_path / "outputs" / "quick" / name
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"), cwd=str(NOTEBOOKS), progress_bar=False,
        kernel_name="python3", parameters=dict(params, trials=2, device="cpu", overrides=TINY))
    written = {p.name for p in out.iterdir()}
    assert {"results_tidy.csv", "average_accuracy.png", "average_accuracy.pdf"} <= written
    assert ("table1.csv" if name.startswith("04") else "figure8.csv") in written
    runs = list((store / "runs").glob("*/*/seed*.json"))
    assert len(runs) == (8 if name.startswith("04") else 5) * 2
    if "engine" in params:  # trained by the pool's workers, one torch thread each (dhclib.runs.executors)
        assert all(json.loads(p.read_text())["device_name"].endswith(", 1 threads") for p in runs)
        assert "Traceback" not in capfd.readouterr().err  # the workers' KeyboardInterrupt at the kernel's exit
    # as after `make notebooks`: executed and normalised, the notebook is still paired with its unchanged script
    executed = _normalizer().normalize(nbformat.read(tmp_path / f"{name}.ipynb", as_version=4))
    assert executed.metadata["jupytext"] == _read(name).metadata["jupytext"]
    ran = [(c.cell_type, c.source) for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    assert ran == _cells(NOTEBOOKS / f"{name}.py", "py:percent")


def test_a_notebooks_engine_is_checked_and_its_workers_held_for_the_kernel(tmp_path, monkeypatch):
    """``notebook.setup``: the ``engine`` parameter is checked before anything trains (one line naming what is
    accepted); its workers are started once and held while the kernel lives, so every cell, and a cell run again,
    trains on the same pool."""
    from concurrent.futures import ProcessPoolExecutor

    from dhclib.errors import ConfigError
    from dhclib.paper import notebook
    from dhclib.runs import executors
    from dhclib.runs.engine import Engine

    monkeypatch.setenv("DHC_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.setattr(executors, "_HELD", {})
    notebook.setup("01_x", "quick", "stack:auto")
    assert executors._HELD == {}  # in the kernel: nothing to start
    _, store, _ = notebook.setup("01_x", "quick", "local:1")
    with executors.workers(Engine.of("local:1,stack:4"), store) as pool:  # a stack size is no other pool
        assert isinstance(pool, ProcessPoolExecutor) and pool.submit(abs, -3).result() == 3
    notebook.setup("01_x", "quick", "local:1")
    with executors.workers(Engine.of("local:1"), store) as again:
        assert again is pool  # a cell run again reuses it
    processes = list(pool._processes.values())
    with pytest.raises(KeyboardInterrupt):  # an interrupted cell stops the pool's workers, not leaves them training
        with executors.workers(Engine.of("local:1"), store):
            raise KeyboardInterrupt
    assert executors._HELD == {} and processes and not any(p.is_alive() for p in processes)
    with pytest.raises(ConfigError, match=r"^engine: slurm option time_min must be an integer >= 1, got 'x'"):
        notebook.setup("01_x", "quick", "slurm:time_min=x")
    with pytest.raises(ConfigError, match=r"^engine: 'local:0' needs N >= 1; accepted: "):
        notebook.setup("01_x", "quick", "local:0")

@pytest.mark.parametrize("params, message", [
    ({"profile": "fast"}, "ConfigError: unknown profile 'fast'; accepted: 'paper', 'quick'"),
    ({"trials": 0}, "ConfigError: trials must be a whole number >= 1 (seeds 0 .. trials-1), got 0"),
    ({"methods": '["finetune", "dhp"]'}, "ConfigError: methods given as the text '[\"finetune\", \"dhp\"]': write "
                                         "comma-separated names"),
    ({"methods": ["nope"]}, "ConfigError: unknown method 'nope'; accepted: finetune, dhp, "),
    ({"engine": "local:0"}, "ConfigError: engine: 'local:0' needs N >= 1; accepted: "),
], ids=["profile", "trials", "methods-as-text", "method", "engine"])
def test_a_bad_notebook_parameter_is_one_line_and_leaves_nothing_behind(params, message, tmp_path, monkeypatch):
    """Papermill with a bad parameter, as a user types it: the failing cell's output is the error's one line
    (dhclib.errors.DhcError renders no stack in IPython), raised before the notebook writes anything: no output or
    store folder appears."""
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("DHC_OUTPUT_ROOT", str(tmp_path / "outputs"))
    executed = tmp_path / "03.ipynb"
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(str(NOTEBOOKS / "03_split_mnist.ipynb"), str(executed), cwd=str(NOTEBOOKS),
                                   progress_bar=False, kernel_name="python3", parameters=params)
    errors = [o for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == 1 and len(errors[0].traceback) == 1, errors
    assert errors[0].traceback[0].startswith(message)
    assert not (tmp_path / "outputs").exists()
