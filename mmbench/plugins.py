"""The plugin manager: third-party entry points and built-in modules, through one set of hooks.

Built-in datasets and baseline models are registered exactly as a third-party plugin
is (datasette's DEFAULT_PLUGINS idea), so the extension path is exercised by the
product itself. A plugin that fails to import is recorded with its name, package and
error, and every other plugin keeps working.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
from dataclasses import dataclass, replace
from functools import lru_cache

import pluggy

from mmbench import hookspecs
from mmbench.errors import PluginError, UnknownNameError
from mmbench.specs import DatasetSpec, ModelSpec

ENTRY_POINT_GROUP = "mmbench"

#: mmbench's own hook implementations, registered like any plugin.
DEFAULT_PLUGINS = (
    "mmbench.datasets.builtin",
    "mmbench.baselines.builtin",
)


@dataclass(frozen=True)
class PluginInfo:
    name: str  # entry-point name or module name
    package: str  # distribution name ("mmbench" for built-ins)
    version: str
    module: str
    ok: bool
    error: str = ""


class Registry:
    """All plugins, their model and dataset specs, and the failures met while loading them."""

    def __init__(self, *, entry_points: bool = True, extra_modules: tuple = ()):
        self.pm = pluggy.PluginManager("mmbench")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        from mmbench import __version__

        for mod_name in DEFAULT_PLUGINS:
            mod = importlib.import_module(mod_name)
            self.pm.register(mod, name=mod_name)
            self.plugins.append(PluginInfo(mod_name, "mmbench", __version__, mod_name, True))
        for mod in extra_modules:
            name = getattr(mod, "__name__", repr(mod))
            self.pm.register(mod, name=name)
            self.plugins.append(PluginInfo(name, "(in-process)", "", name, True))
        if entry_points:
            self._load_entry_points()
        self._models: dict[str, ModelSpec] | None = None
        self._datasets: dict[str, DatasetSpec] | None = None
        self.spec_errors: list[str] = []

    def _load_entry_points(self) -> None:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            package = dist.name if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            try:
                mod = ep.load()
                if self.pm.is_registered(mod):
                    continue
                self.pm.register(mod, name=ep.name)
            except Exception as exc:  # one broken plugin must not take the rest down
                self.plugins.append(PluginInfo(ep.name, package, version, ep.value, False,
                                               f"{type(exc).__name__}: {exc}"))
                continue
            self.plugins.append(PluginInfo(ep.name, package, version, ep.value, True))

    def _plugin_label(self, impl) -> str:
        name = self.pm.get_name(impl.plugin) or "?"
        for info in self.plugins:
            if info.name == name:
                return f"{info.package}" if info.package not in ("mmbench",) else "mmbench (built-in)"
        return name

    def _collect(self, hook_name: str, cls):
        out: dict = {}
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            label = self._plugin_label(impl)
            try:
                specs = impl.function() or []
            except Exception as exc:
                self.spec_errors.append(f"{label}: {hook_name}() raised {type(exc).__name__}: {exc}")
                continue
            for spec in specs:
                if not isinstance(spec, cls):
                    self.spec_errors.append(f"{label}: {hook_name}() returned {type(spec).__name__}, "
                                            f"expected {cls.__name__}")
                    continue
                if spec.name in out:
                    self.spec_errors.append(f"{label}: {cls.__name__} {spec.name!r} already provided by "
                                            f"{out[spec.name].plugin}; keeping the first")
                    continue
                out[spec.name] = replace(spec, plugin=spec.plugin or label)
        return out

    @property
    def models(self) -> dict[str, ModelSpec]:
        if self._models is None:
            self._models = self._collect("mmbench_models", ModelSpec)
        return self._models

    @property
    def datasets(self) -> dict[str, DatasetSpec]:
        if self._datasets is None:
            self._datasets = self._collect("mmbench_datasets", DatasetSpec)
        return self._datasets

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            self._raise_unknown("plugin", name, list(self.models))
        return self.models[name]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            self._raise_unknown("dataset", name, list(self.datasets))
        return self.datasets[name]

    def _raise_unknown(self, kind: str, name: str, known: list[str]):
        err = UnknownNameError(kind, name, known)
        broken = self.failures()
        if broken:
            note = "; ".join(f"{p.name} ({p.package}): {p.error}" for p in broken)
            err.args = (f"{err.args[0]} Note: some plugins failed to load and may have provided it: {note}",)
        raise err

    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins if not p.ok]


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (entry points read once)."""
    return Registry()
