"""dhclib's version, a leaf of the base layer: every module that records it (a run's ``versions``) imports it from
here, and the package metadata reads it too (pyproject.toml), so it is written once."""

__version__ = "0.1.0"
