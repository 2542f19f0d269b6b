"""The progress bars: ipywidgets in a Jupyter kernel (JupyterLab), text elsewhere (a terminal, a log).

``DHC_PROGRESS=text`` asks for text bars in a kernel too: papermill's ``--log-output`` shows a kernel's stderr but
not a widget's updates, so the notebook lanes (notebooks/lanes.sh) set it, and so should anyone who runs papermill
to watch a log."""

from __future__ import annotations

import os

if os.environ.get("DHC_PROGRESS") == "text":
    from tqdm.std import tqdm
else:
    from tqdm.auto import tqdm  # widgets where a kernel and ipywidgets are present (the lock installs ipywidgets)

__all__ = ["tqdm"]
