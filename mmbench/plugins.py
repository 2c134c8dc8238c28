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
    "mmbench.tasks.builtin",
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
            self.plugins.append(PluginInfo(name, name, "", name, True))  # in-process: the module is the package
        if entry_points:
            self._load_entry_points()
        self.spec_errors: list[str] = []
        try:  # a misspelled hook name (``mmbench_model``) is an error, not a silently ignored function
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"a plugin implements an unknown hook: {exc}") from None
        self._kinds: dict | None = None
        self._models: dict[str, ModelSpec] | None = None
        self._datasets: dict[str, DatasetSpec] | None = None

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
        """{name: spec} of every spec the hook returns; a name two plugins offer is kept out of it
        (see :meth:`_resolve`: such a name must be chosen as ``package:name``)."""
        out: dict = {}
        every: list = []
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():  # registration order: built-ins first
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
                spec = replace(spec, plugin=spec.plugin or label)
                if self._known_tasks(spec):
                    every.append(spec)
        by_name: dict[str, list] = {}
        for spec in every:
            by_name.setdefault(spec.name, []).append(spec)
        ambiguous = {}
        for name, specs in by_name.items():
            if len(specs) == 1:
                out[name] = specs[0]
            else:
                ambiguous[name] = specs
                self.spec_errors.append(f"{cls.__name__} {name!r} is offered by several plugins "
                                        f"({', '.join(s.plugin for s in specs)}); choose one as package:{name}")
        return out, every, ambiguous

    @property
    def task_kinds(self) -> dict:
        """Task kinds by name (``mmbench_task_kinds``): mmbench's four first, then the plugins'."""
        if self._kinds is None:
            from mmbench.tasks.base import TaskKind

            kinds: dict = {}
            for impl in self.pm.hook.mmbench_task_kinds.get_hookimpls():  # registration order: built-ins first
                label = self._plugin_label(impl)
                try:
                    got = impl.function() or []
                except Exception as exc:
                    self.spec_errors.append(f"{label}: mmbench_task_kinds() raised {type(exc).__name__}: {exc}")
                    continue
                for k in got:
                    if not isinstance(k, TaskKind) or not getattr(k, "name", ""):
                        self.spec_errors.append(f"{label}: mmbench_task_kinds() returned {type(k).__name__}, "
                                                f"expected a named mmbench.tasks.base.TaskKind instance")
                    elif k.name in kinds:
                        self.spec_errors.append(f"{label}: task kind {k.name!r} is already registered; ignored")
                    else:
                        kinds[k.name] = k
            self._kinds = kinds
        return self._kinds

    def _known_tasks(self, spec) -> bool:
        """A spec naming a task kind nobody installed is reported (``spec_errors``) and left out."""
        tasks = (spec.task,) if isinstance(spec, ModelSpec) else tuple(spec.tasks)
        bad = [t for t in tasks if t not in self.task_kinds]
        if bad:
            what = "model" if isinstance(spec, ModelSpec) else "dataset"
            self.spec_errors.append(f"{spec.plugin}: {what} {spec.name!r} names unknown task kind(s) "
                                    f"{', '.join(map(repr, bad))}; installed kinds: {', '.join(self.task_kinds)}")
            return False
        forms = spec.accepts if isinstance(spec, ModelSpec) else spec.forms
        extra = {f for t in tasks for f in self.task_kinds[t].extra_forms}
        odd = [f for f in forms if f not in ("image_file", "image", "regions") and f not in extra]
        if odd:
            what = "model" if isinstance(spec, ModelSpec) else "dataset"
            self.spec_errors.append(f"{spec.plugin}: {what} {spec.name!r}: input form(s) {odd} are not offered by "
                                    f"task kind(s) {', '.join(tasks)}")
            return False
        return True

    def _ensure(self):
        if self._models is None:
            self._models, self._all_models, self._ambiguous_models = self._collect("mmbench_models", ModelSpec)
        if self._datasets is None:
            self._datasets, self._all_datasets, self._ambiguous_datasets = self._collect("mmbench_datasets",
                                                                                         DatasetSpec)

    @property
    def models(self) -> dict[str, ModelSpec]:
        """Models by name (names offered by two plugins are left out: see :meth:`model`)."""
        self._ensure()
        return self._models

    @property
    def datasets(self) -> dict[str, DatasetSpec]:
        self._ensure()
        return self._datasets

    @property
    def all_models(self) -> list[ModelSpec]:
        """Every model spec, including those whose name two plugins offer."""
        self._ensure()
        return list(self._all_models)

    @property
    def all_datasets(self) -> list[DatasetSpec]:
        self._ensure()
        return list(self._all_datasets)

    def _resolve(self, kind: str, name: str, by_name: dict, every: list, ambiguous: dict):
        if name in by_name:
            return by_name[name]
        if name in ambiguous:
            from mmbench.errors import UsageError

            specs = ambiguous[name]
            raise UsageError(f"{kind} name {name!r} is offered by {len(specs)} installed packages: "
                             f"{', '.join(s.plugin for s in specs)}. Choose one as "
                             f"{' or '.join(repr(f'{s.plugin}:{name}') for s in specs)}.")
        pkg, sep, short = name.rpartition(":")
        if sep and pkg:
            hits = [s for s in every if s.name == short and s.plugin == pkg]
            if len(hits) == 1:
                return hits[0]
        self._raise_unknown(kind, name, list(by_name) + [f"{s.plugin}:{n}" for n, ss in ambiguous.items()
                                                          for s in ss])

    def model(self, name: str) -> ModelSpec:
        """The model spec named ``name``, or ``package:name`` when two plugins offer that name."""
        self._ensure()
        return self._resolve("plugin", name, self._models, self._all_models, self._ambiguous_models)

    def dataset(self, name: str) -> DatasetSpec:
        self._ensure()
        return self._resolve("dataset", name, self._datasets, self._all_datasets, self._ambiguous_datasets)

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
