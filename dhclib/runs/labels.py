"""How a run's rows are named: a method, or a method run as a labelled variant (``"ewc [fisher_mode=batch]"``).

A label is rendered here and nowhere else (:func:`label_of`), from its two parts: the composed method and the
variant, the settings that differ from the paper's configuration rendered as text (:func:`render_variant`).
Tidy frames carry both parts beside the label (``base_method``, ``variant``: :data:`dhclib.runs.store.TIDY_COLUMNS`),
so that no consumer ever splits a label back into them.
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

__all__ = ["render_variant", "label_of", "variant_label", "LABEL_COLUMNS", "label_rows", "label_parts"]

# A row label and its two parts, as tidy frames carry them.
LABEL_COLUMNS = ["method", "base_method", "variant"]


def render_variant(overrides: Mapping[str, Any]) -> str:
    """A variant's overrides as the text its label carries (``"fisher_mode=batch, lam=50.0"``; "" for none)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))


def label_of(method: str, variant: str = "") -> str:
    """The one renderer of a row's label: ``method`` alone for the paper's configuration, else ``"method
    [variant]"`` (``variant`` rendered by :func:`render_variant`), so that a variant is never mistaken for the
    paper's configuration. ``method`` may be a display name (:func:`dhclib.paper.plots.method_label`)."""
    return f"{method} [{variant}]" if variant else method


def variant_label(method: str, overrides: Mapping[str, Any]) -> str:
    """The label of ``method`` run with ``overrides`` (:func:`label_of` of its rendered variant), e.g.
    ``variant_label("ewc", {"fisher_mode": "batch"}) == "ewc [fisher_mode=batch]"``."""
    return label_of(method, render_variant(overrides))


def label_rows(frame: pd.DataFrame | None) -> pd.DataFrame:
    """One row per label of ``frame``, in the order it first appears: ``method`` (the label), ``base_method`` and
    ``variant``, read from the frame's columns (never from the label's text); a frame without the parts (e.g. one
    written by hand) names only plain methods."""
    if frame is None or "method" not in frame or not len(frame):
        return pd.DataFrame(columns=LABEL_COLUMNS)
    if {"base_method", "variant"} <= set(frame.columns):
        rows = frame[LABEL_COLUMNS].drop_duplicates("method")
        return rows.assign(variant=rows["variant"].fillna("").astype(str)).reset_index(drop=True)
    methods = list(frame["method"].unique())
    return pd.DataFrame({"method": methods, "base_method": methods, "variant": ""})


def label_parts(frame: pd.DataFrame | None) -> dict[str, tuple[str, str]]:
    """``{label: (base_method, variant)}`` of :func:`label_rows`, for callers that look one label up."""
    rows = label_rows(frame)
    return {m: (b, v) for m, b, v in rows[LABEL_COLUMNS].itertuples(index=False)}
