"""The errors dhclib raises on purpose: each says what was wrong and what is accepted."""

from __future__ import annotations

__all__ = ["DhcError", "ConfigError", "DataNotFoundError", "PlasticInstabilityError"]


class DhcError(Exception):
    """Base of every error dhclib raises for bad input or a failed run."""

    def _render_traceback_(self) -> list[str]:
        # IPython (JupyterLab, papermill) shows these lines instead of the stack: the message is the whole story,
        # and a notebook user should not have to find it at the end of dhclib's frames.
        return [f"{type(self).__name__}: {self}"]


class ConfigError(DhcError, ValueError):
    """An unknown benchmark, method, profile or override key, or a value out of range."""


class DataNotFoundError(DhcError, FileNotFoundError):
    """A dataset's files are missing (or unreadable) and could not be downloaded."""


class PlasticInstabilityError(DhcError, FloatingPointError):
    """The training loss became NaN or infinite; the run is not stored."""
