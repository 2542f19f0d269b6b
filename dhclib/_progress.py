"""tqdm.auto, without its warning when ipywidgets is absent (the text bars it falls back to are what papermill
logs show, so ipywidgets is deliberately not a dependency)."""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
