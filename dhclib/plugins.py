"""Plugins: a user's modules that register regularisers and benchmarks, loaded by every dhclib process.

A plugin is an importable module whose import registers its parts (:func:`dhclib.registry.register_regulariser`,
:func:`~dhclib.registry.register_benchmark`). It is named in any of three ways:

- ``--plugin MODULE`` on the command line (repeatable, or comma-separated);
- the environment variable ``DHC_PLUGINS=mod1,mod2``: a notebook (papermill's kernel inherits the environment), a
  script, every worker process started from it;
- an entry point of the group ``dhclib.plugins`` in an installed package's metadata (``[project.entry-points.
  "dhclib.plugins"] toy = "toyplugin"``); an entry point naming a callable (``"toyplugin:register"``) has it called.

``import dhclib`` loads those of the environment and the entry points (:func:`load_environment`); a failure there is
kept, not raised, so that the command line can report it as one line, and is named again by the registry's
"unknown benchmark" errors. The command line loads its ``--plugin`` modules with :func:`load_plugins`, which raises,
and every engine's unit of work loads the plugins of the driver that submitted it (:func:`carrying`) before it runs,
so a worker on another machine (Dask, Slurm) knows the driver's methods and benchmarks too.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
from importlib import metadata
from typing import Any, Callable, Iterable

from dhclib.errors import ConfigError

__all__ = ["ENV", "GROUP", "load_plugins", "load_environment", "loaded", "failure", "carrying", "call_with_plugins",
           "module_names"]

ENV = "DHC_PLUGINS"
GROUP = "dhclib.plugins"

# A dotted module name, as ``import`` takes it.
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

_loaded: list[str] = []  # the modules named by --plugin or DHC_PLUGINS that this process imported, in order
_entry_points_loaded = False
_failure: ConfigError | None = None  # what load_environment() could not load (None: everything loaded)


def module_names(spec: str | Iterable[str] | None, source: str) -> tuple[str, ...]:
    """``"a,b"`` or ``["a", "b,c"]`` -> ``("a", "b", "c")``; a name that is no module name is a ConfigError naming
    ``source`` (``--plugin``, ``DHC_PLUGINS``)."""
    if spec is None:
        return ()
    parts = [spec] if isinstance(spec, str) else list(spec)
    names = [n.strip() for part in parts for n in str(part).split(",") if n.strip()]
    for n in names:
        if not _MODULE.fullmatch(n):
            raise ConfigError(f"{source}: {n!r} is not a module name; accepted: dotted Python module names, "
                              "comma-separated (e.g. toyplugin,mylab.regularisers)")
    return tuple(dict.fromkeys(names))


def _import(name: str, source: str) -> None:
    if name in _loaded:
        return
    try:
        importlib.import_module(name)
    except Exception as exc:  # any error of the plugin's own import too: one line naming it, not a traceback
        raise ConfigError(f"plugin {name!r} (named by {source}) cannot be imported: {_one_line(exc)}") from None
    _loaded.append(name)


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load_entry_points() -> None:
    """Load every entry point of the group ``dhclib.plugins`` once per process; one that names a callable is called."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True  # before loading: a plugin that imports dhclib must not load them again
    for ep in metadata.entry_points(group=GROUP):
        try:
            obj = ep.load()
            if ep.attr and callable(obj):
                obj()
        except Exception as exc:
            _entry_points_loaded = False  # so that the next call reports it again
            raise ConfigError(f"plugin entry point {ep.name} = {ep.value!r} (group {GROUP}) cannot be loaded: "
                              f"{_one_line(exc)}") from None


def load_plugins(modules: str | Iterable[str] | None = (), source: str = "--plugin") -> tuple[str, ...]:
    """Import ``modules`` (named by ``source``), then those of ``DHC_PLUGINS``, then the entry points of the group
    ``dhclib.plugins``; each once per process. Returns the modules named so far (:func:`loaded`).
    A plugin that cannot be imported raises :class:`~dhclib.errors.ConfigError`, one line naming it and why."""
    global _failure
    for name in module_names(modules, source):
        _import(name, source)
    for name in module_names(os.environ.get(ENV), ENV):
        _import(name, ENV)
    _load_entry_points()
    _failure = None
    return loaded()


def load_environment() -> None:
    """What ``import dhclib`` does: :func:`load_plugins` for ``DHC_PLUGINS`` and the entry points, keeping a
    failure for :func:`failure` instead of raising it (an import that fails cannot be reported as one line)."""
    global _failure
    try:
        load_plugins(())
    except ConfigError as exc:
        _failure = exc


def loaded() -> tuple[str, ...]:
    """The plugin modules this process has imported by name (--plugin, DHC_PLUGINS), in order."""
    return tuple(_loaded)


def failure() -> ConfigError | None:
    """The error of the plugins ``import dhclib`` could not load, or None."""
    return _failure


def call_with_plugins(modules: tuple[str, ...], fn: Callable, *args: Any) -> Any:
    """Load ``modules`` (the driver's plugins), then return ``fn(*args)``: a unit of work on a worker."""
    load_plugins(modules, "the driver that submitted this work")
    return fn(*args)


def carrying(fn: Callable) -> Callable:
    """``fn`` as a picklable callable that first loads this process's plugins wherever it runs: a worker of another
    machine, whose environment may lack ``DHC_PLUGINS``, registers the same parts before it runs a config."""
    return functools.partial(call_with_plugins, loaded(), fn)
