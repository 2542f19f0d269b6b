"""JupyterLab for this repository (`make lab` points JUPYTER_CONFIG_PATH here): before a notebook is saved it is
normalised exactly as the notebook lanes normalise an execution (scripts/normalize_notebook.py), so a save from
JupyterLab writes what `make notebooks` writes, and a save with no edit changes no byte. The jupytext pairing of
notebooks/ (notebooks/jupytext.toml) is active through jupytext's server extension, which the lock installs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from normalize_notebook import normalize  # noqa: E402

import nbformat  # noqa: E402
import warnings  # noqa: E402

# jupytext derives its contents manager from the configured one, so the hook is set twice: the same function
warnings.filterwarnings("ignore", message="Overriding existing pre_save_hook")


def normalize_before_save(model: dict, path: str, contents_manager, **kwargs) -> None:
    """A pre-save hook: the notebook model's content, normalised in place (other files pass unchanged)."""
    if model.get("type") == "notebook":
        model["content"] = normalize(nbformat.from_dict(model["content"]))


c = get_config()  # noqa: F821  (defined by Jupyter when it loads this file)
c.ContentsManager.pre_save_hook = normalize_before_save
