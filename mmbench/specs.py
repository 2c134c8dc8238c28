"""Specs: what a plugin hands to mmbench through its hooks.

Hooks return specs, never instances: a spec is cheap to build, names a factory by a
``"module:attribute"`` string (or a callable), and the factory is only imported and
called when a run needs it. Listing plugins therefore imports no model code and
reads no data.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from mmbench.errors import PluginError
from mmbench.options import Option, OptionSet, parse_options

#: Input forms a sample may offer for its image side.
#: - ``image_file``: a path to an image file on disk,
#: - ``image``: a decoded image (PIL) in memory (every image_file sample offers it too),
#: - ``regions``: precomputed region features, (num_regions, dim) float32.
#: - ``text_only``: no image at all (classification in explicit text-only mode).
#: - ``proposals``: region features with their pixel boxes and the image size (grounding by ranking proposals).
#: Forms beyond the first three belong to a task kind (``TaskKind.extra_forms``); the registry checks them.
INPUT_FORMS = ("image_file", "image", "regions", "text_only", "proposals")


@dataclass(frozen=True)
class PublishedNumber:
    """A number a paper or model card reports, for paper-parity deltas."""

    dataset: str
    metric: str  # e.g. "i2t.R@1", "CIDEr"
    value: float
    protocol: str | None = None
    split: str | None = None
    tolerance: float = 0.5
    source: str = ""
    #: which of the plugin's models the number is for, when it offers several under one name (e.g. MDETR's
    #: backbones): compared only with runs whose model's ``published_variant`` attribute equals it
    variant: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model a plugin offers.

    ``factory`` builds the model: ``factory(**options) -> model object`` where options
    come from ``--option key=value``. ``options`` declares them: a tuple of
    :class:`mmbench.options.Option` (typed: values are checked before any run starts and reach the
    factory converted) or the legacy dict name -> help (strings; the factory converts them).
    """

    name: str
    task: str
    factory: str | Callable[..., Any]
    accepts: tuple[str, ...] = ("image",)
    description: str = ""
    version: str = "0"
    options: OptionSet | tuple[Option, ...] | dict[str, str] = field(default_factory=dict)
    published: tuple[PublishedNumber, ...] = ()
    plugin: str = ""  # filled in by the plugin manager: the distribution / module providing it

    def __post_init__(self):
        # the task kind is checked by the registry, against the installed kinds (``mmbench_task_kinds``)
        if not isinstance(self.task, str) or not self.task:
            raise PluginError(f"model {self.name!r}: task must be a task kind's name, got {self.task!r}")
        bad = [f for f in self.accepts if f not in INPUT_FORMS]
        if bad:
            raise PluginError(f"model {self.name!r}: unknown input form(s) {bad}; known: {', '.join(INPUT_FORMS)}")
        object.__setattr__(self, "options", OptionSet.of(self.options, what=f"model {self.name!r}"))

    def parse_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The given ``--option`` values, typed by their declared Options (UsageError naming a bad value).
        Undeclared keys and a legacy spec's options pass as given: the factory converts them."""
        out = dict(options)
        if self.options.typed:
            for k, v in options.items():
                opt = self.options.option(k)
                if opt is not None:
                    out[k] = opt.parse(v, where=f"option {k!r} of plugin {self.name!r}")
        return out

    def build(self, **options: Any) -> Any:
        return resolve(self.factory, what=f"model {self.name!r}")(**options)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset adapter a plugin offers.

    ``factory(task=..., split=..., data_root=..., **options) -> TaskData`` of that task
    kind (see ``mmbench.tasks``). ``forms`` lists the input forms its samples offer.

    ``options`` declares the ``--dataset-option`` keys: a tuple of :class:`mmbench.options.Option`
    (typed: :meth:`load` checks keys and values and hands the factory every declared option, typed,
    its default when not given), or the legacy dict name -> help (values reach the factory as given).
    Either way ``spec.options`` then reads as name -> help, with the Options in ``spec.options.declared``.
    """

    name: str
    tasks: tuple[str, ...]
    factory: str | Callable[..., Any]
    splits: tuple[str, ...] = ("test",)
    default_split: str = "test"
    forms: tuple[str, ...] = ("image_file", "image")
    description: str = ""
    needs_data_root: bool = True
    layout: str = ""  # the expected on-disk layout and where the official files come from
    protocols: tuple[str, ...] = ()
    options: OptionSet | tuple[Option, ...] | dict[str, str] = field(default_factory=OptionSet)
    variants: dict[str, str] = field(default_factory=dict)  # input form -> dataset name offering it
    #: options that name one split's file or folder (e.g. ``annotations``): given without a split
    #: suffix they would make every split read the same file, which a model with fit() must not do
    split_files: tuple[str, ...] = ()
    plugin: str = ""

    def __post_init__(self):
        # the task kinds are checked by the registry, against the installed kinds
        if isinstance(self.tasks, str) or not self.tasks:
            raise PluginError(f"dataset {self.name!r}: tasks must be a tuple of task kind names, got {self.tasks!r}")
        object.__setattr__(self, "options", OptionSet.of(self.options, what=f"dataset {self.name!r}"))

    def parse_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Typed values of ``options`` (every declared one, defaults filled in); UsageError naming a bad
        key or value. A legacy (untyped) spec's options are returned as given."""
        if not self.options.typed:
            return dict(options)
        return parse_options(options, self.options.declared, f"dataset {self.name!r}", "--dataset-option / -D",
                             noun="dataset option", defaults=True)

    def load(self, task: str, split: str, data_root: Any = None, **options: Any) -> Any:
        """Check the task, split and options against the spec, then call the factory with typed options."""
        from mmbench.errors import UnknownNameError

        if task not in self.tasks:
            raise UnknownNameError(f"task of dataset {self.name!r}", str(task), list(self.tasks))
        if split not in self.splits:
            raise UnknownNameError(f"split of dataset {self.name!r}", str(split), list(self.splits))
        typed = self.parse_options(options)
        return resolve(self.factory, what=f"dataset {self.name!r}")(
            task=task, split=split, data_root=data_root, **typed)


def resolve(ref: str | Callable[..., Any], *, what: str) -> Callable[..., Any]:
    """Turn ``"package.module:attr"`` into the object, importing lazily."""
    if callable(ref):
        return ref
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except Exception as exc:  # an import failure in a plugin must not be a crash
        raise PluginError(f"{what}: cannot import factory {ref!r}: {type(exc).__name__}: {exc}") from exc
    return obj
