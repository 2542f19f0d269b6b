"""The errors dhclib raises on purpose: each says what was wrong and what is accepted."""

from __future__ import annotations

__all__ = ["DhcError", "ConfigError", "DataNotFoundError", "PlasticInstabilityError"]


class DhcError(Exception):
    """Base of every error dhclib raises for bad input or a failed run."""


class ConfigError(DhcError, ValueError):
    """An unknown benchmark, method, profile or override key, or a value out of range."""


class DataNotFoundError(DhcError, FileNotFoundError):
    """A dataset's files are missing (or unreadable) and could not be downloaded."""


class PlasticInstabilityError(DhcError, FloatingPointError):
    """The training loss became NaN or infinite; the run is not stored."""
