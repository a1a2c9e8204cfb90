"""A small named registry, one instance per extension point (formats, pipelines, sinks…).

Entries register themselves with a decorator in the module that defines them. A registry
fills itself on first lookup, lazily (importing a package never imports every entry's
dependencies), from two places that work the same way:

* the project's own modules: every module of the package that owns the extension point
  (``package=``), and the plug-in module named ``folder=`` (``formats``, ``pipelines`` …,
  a module or a package of modules) of every **modality folder** ``sensing/<modality>/``,
  so that a new modality is one new folder and nothing else
  (:func:`modality_folder_modules`), and
* third-party plug-ins: the Python **entry points** of the registry's group (``group=``,
  e.g. ``ambisense.pipelines``). An entry point names a module, which is imported so that
  its decorators run, or an object, which is registered under the entry point's name.

============================  ==========================================================
entry-point group             what a plug-in adds
============================  ==========================================================
``ambisense.formats``         a capture reader (``sensing.formats.FORMATS``)
``ambisense.pipelines``       a detector pipeline (``agent.pipelines.PIPELINES``)
``ambisense.sources``         a live source type (``sensing.sources.SOURCES``)
``ambisense.sinks``           an event sink (``agent.sinks.SINKS``)
``ambisense.simulators``      a simulator (``sensing.simulate.SIMULATORS``)
``ambisense.commands``        a CLI subcommand (``agent.commands.COMMANDS``)
``ambisense.plotters``        a modality's default plot (``sensing.plot.PLOTTERS``)
``ambisense.benches``         an ``ambisense bench`` section (``agent.bench.BENCHES``)
============================  ==========================================================

A plug-in that fails to import is reported (logged once, and listed in
:attr:`Registry.broken` for ``ambisense info``), never fatal.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("ambisense.plugins")

#: Entry-point group prefix of every extension point.
GROUP_PREFIX = "ambisense."


def import_package_modules(package: str, skip: tuple[str, ...] = ("base",)) -> dict[str, str]:
    """Import every module of ``package`` (not those in ``skip`` or starting with ``_``).

    Returns
    -------
    dict
        Module → reason, for the modules that could not be imported (a missing optional
        dependency): they are left out, not fatal.
    """
    pkg = importlib.import_module(package)
    broken: dict[str, str] = {}
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in skip and not mod.name.startswith("_"):
            try:
                importlib.import_module(f"{package}.{mod.name}")
            except ImportError as exc:
                broken[f"{package}.{mod.name}"] = f"{type(exc).__name__}: {exc}"
                log.warning("%s not loaded: %s", f"{package}.{mod.name}", exc)
    return broken


def modality_folder_modules(module: str) -> list[str]:
    """Dotted names of the ``module`` plug-in modules of the modality folders.

    A modality folder is a subpackage ``sensing/<modality>/``; its plug-in module for an
    extension point is ``sensing/<modality>/<module>.py``, or a package
    ``sensing/<modality>/<module>/`` whose every module is returned too. Found from the
    file system, without importing anything.

    Parameters
    ----------
    module : str
        ``"formats"``, ``"sources"``, ``"pipelines"``, ``"simulators"``, ``"plotters"``,
        ``"commands"`` or ``"evaluations"``.
    """
    import sensing

    out: list[str] = []
    for base in sensing.__path__:
        for folder in pkgutil.iter_modules([base]):
            if not folder.ispkg or folder.name.startswith("_"):
                continue
            where = os.path.join(base, folder.name)
            for sub in pkgutil.iter_modules([where]):
                if sub.name != module:
                    continue
                dotted = f"sensing.{folder.name}.{module}"
                out.append(dotted)
                if sub.ispkg:
                    out.extend(f"{dotted}.{m.name}"
                               for m in pkgutil.iter_modules([os.path.join(where, module)])
                               if not m.name.startswith("_"))
    return sorted(out)


class Registry(Generic[T]):
    """Name → entry mapping filled by a decorator in the module that defines the entry.

    Parameters
    ----------
    kind : str
        What the entries are ("format", "pipeline", …); used in error messages.
    loader : callable, optional
        Called once, on first lookup, to import the modules that fill the registry.
    package : str, optional
        Import every module of this package on first lookup (the project's own entries).
    group : str, optional
        Entry-point group of third-party plug-ins (``"ambisense.pipelines"``).
    folder : str, optional
        Name of this extension point's plug-in module in each modality folder
        ``sensing/<modality>/`` (``"pipelines"``: ``sensing/acoustic/pipelines.py``).
    """

    def __init__(self, kind: str, loader: Callable[[], None] | None = None, *,
                 package: str | None = None, group: str | None = None,
                 folder: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T] = {}
        self._origin: dict[str, str] = {}
        self._loader = loader
        self._package = package
        self._folder = folder
        self._loaded = False
        #: Plug-ins that could not be loaded: entry-point name → reason.
        self.broken: dict[str, str] = {}

    def set_loader(self, loader: Callable[[], None]) -> None:
        """Set the function that imports the entries' modules on first lookup."""
        self._loader = loader

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        loader, self._loader = self._loader, None
        if loader is not None:
            loader()
        if self._package is not None:
            self.broken.update(import_package_modules(self._package))
        if self._folder is not None:
            self._load_folders()
        if self.group is not None:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            if ep.name in self._entries:
                continue
            try:
                before = set(self._entries)
                obj = ep.load()
                if not (set(self._entries) - before) and not isinstance(
                        obj, type(importlib)):  # an object, not a module that registered
                    self.register(ep.name)(obj)
                for name in set(self._entries) - before:
                    self._origin[name] = f"plug-in {ep.value}"
            except Exception as exc:  # a broken plug-in must not break the program
                self.broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
                log.warning("%s plug-in %r (%s) not loaded: %s: %s", self.kind, ep.name,
                            ep.value, type(exc).__name__, exc)

    def _load_folders(self) -> None:
        for dotted in modality_folder_modules(self._folder or ""):
            try:
                importlib.import_module(dotted)
            except ImportError as exc:  # a missing optional dependency: left out
                self.broken[dotted] = f"{type(exc).__name__}: {exc}"
                log.warning("%s not loaded: %s", dotted, exc)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (names are unique)."""

        def deco(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return deco

    def _load_one(self, name: str) -> None:
        """Import just ``package.name`` when that module exists (by convention a module
        named like its entry), so that one lookup does not import every entry."""
        if self._package is None or self._loader is not None or not name.isidentifier():
            return
        from importlib.util import find_spec

        try:
            spec = find_spec(f"{self._package}.{name}")
        except (ImportError, ValueError):
            return
        if spec is not None:
            importlib.import_module(f"{self._package}.{name}")

    def get(self, name: str) -> T:
        """Return the entry called ``name``; the error lists the known names."""
        if name in self._entries:
            return self._entries[name]
        if not self._loaded:
            self._load_one(name)
            if name in self._entries:
                return self._entries[name]
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def origin(self, name: str) -> str:
        """``"built-in"`` (the project's own, modality folders included) or ``"plug-in
        <entry point>"``."""
        self._load()
        return self._origin.get(name, "built-in")

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __len__(self) -> int:
        self._load()
        return len(self._entries)
