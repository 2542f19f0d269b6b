"""The small text pieces REPORT.md and the README's generated tables are made of: pipe tables and numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["md", "pm", "pval", "signed"]


def md(df: pd.DataFrame) -> str:
    """A pipe table (no extra dependency): NaN shown as an em dash."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in df.itertuples(index=False):
        cells = ["—" if isinstance(v, float) and np.isnan(v) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pm(mean: float, sem: float, scale: float = 100.0, digits: int = 2) -> str:
    if np.isnan(mean):
        return "—"
    return f"{scale * mean:.{digits}f}" + ("" if np.isnan(sem) else f" ± {scale * sem:.{digits}f}")


def pval(value: float) -> str:
    """A p-value to 3 decimals; one that would round to 0.000 reads "< 0.001" (a p-value is never zero)."""
    if np.isnan(value):
        return "—"
    return "< 0.001" if value < 0.0005 else f"{value:.3f}"


def signed(value: float, digits: int, plus: bool = False) -> str:
    """A number as the README prints it: the minus sign typeset (U+2212), an explicit plus where asked."""
    text = f"{value:+.{digits}f}" if plus else f"{value:.{digits}f}"
    return text.replace("-", "\u2212")
