"""The plugin conformance kit: check a model plugin against mmbench's contract on tiny data.

Plugin authors call it from their own test suite, the way pytest plugins use ``pytester``::

    from mmbench.testing import check_plugin

    def test_my_plugin_conforms():
        check_plugin("my-model")                   # raises AssertionError on a violation

``check_plugin`` looks the model up in the installed plugins, loads the first ``limit``
samples of a dataset split (the built-in ``demo`` by default), builds the model, runs
``fit`` when the model has one, and then runs :func:`check_model`. Checks, per task kind:

- ``spec``: name, task, input forms, version and options of the ``ModelSpec`` make sense;
- ``fits-dataset``: the dataset offers the model's task and one of its input forms;
- ``build``: the factory returns a model; ``fit``: ``fit(train, val)`` runs when present;
- ``methods``: the task protocol's methods exist (``encode_images``/``encode_texts``
  [+ ``score``], ``generate``, ``predict`` + box attributes, ``predict_proba``);
- ``outputs``: types, shapes, finite numbers, right batch dimension, strings for captions,
  (K, 4) boxes that are possible in the declared ``box_format``/``box_normalized``;
- ``deterministic``: two calls on the same batch give identical outputs;
- ``batch-invariant``: one batch of N and N batches of 1 agree (to ``atol``/``rtol``);
- ``empty-batch``: an empty batch raises or gives an empty result, never garbage;
- ``wrong-input-form``: an input in a form the model does not accept raises;
- ``evaluate``: the task kind's evaluate loop runs on the model (not for captioning,
  whose metrics need Java);
- ``run`` (``check_plugin``): the real host path — ``mmbench.runner.score_model``, the end of
  ``mmbench eval`` — scores the model into a run record on the limited data;
- ``seeded`` (``check_plugin``): two models built (and fitted) with one seed agree.

The per-kind checks (``methods`` to ``wrong-input-form``) come from the task kind
(``TaskKind.conformance`` in ``mmbench/tasks/<kind>.py``), so a third party's kind brings its own.
Every failure names the check and the plugin. Nothing here downloads or needs a GPU.
"""

from __future__ import annotations

from typing import Any

from mmbench.tasks.checks import CheckResult, ConformanceReport, Kit, _Checker, _Fatal, _same, _Skip

__all__ = ["CheckResult", "ConformanceReport", "check_model", "check_plugin", "json_content", "limit_data"]


def json_content(path) -> Any:
    """A JSON file's content without the writing library's version stamps (``transformers_version``
    and any other ``*_version`` key, at any depth): compare shipped configs with freshly written ones
    through this, never byte for byte, so the next release of the writer does not fail the test."""
    import json
    from pathlib import Path

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if not k.endswith("_version")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return strip(json.loads(Path(path).read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- entry points

def limit_data(data: Any, limit: int) -> Any:
    """The first ``limit`` units of a task data object (its kind's ``limit``; retrieval keeps their captions)."""
    from mmbench.tasks import task_kinds

    if limit is None or limit <= 0:
        return data
    for kind in task_kinds().values():
        if isinstance(data, kind.data_type) and kind.data_type is not object:
            return kind.limit(data, limit)
    raise TypeError(f"unknown task data type {type(data).__name__}")


def check_model(model: Any, task: str, data: Any, *, name: str = "", accepts: tuple[str, ...] | None = None,
                train: Any = None, val: Any = None, batch: int = 8, atol: float = 1e-5, rtol: float = 1e-4,
                evaluate: bool = True, raise_on_failure: bool = True,
                report: ConformanceReport | None = None) -> ConformanceReport:
    """Check one model object against the ``task`` kind's protocol on ``data`` (a task data object).

    ``accepts``: the input forms the model declares (default: ``model.accepts`` or
    ``("image",)``); ``train``/``val``: when given and the model has ``fit``, it is
    fitted first; ``batch``: how many items the checks use; ``atol``/``rtol``: how
    close batch-of-N and batch-of-1 outputs must be. Raises AssertionError naming the
    failed check(s) unless ``raise_on_failure`` is False; returns the report.
    """
    from mmbench.tasks import task_kinds

    name = name or type(model).__name__
    accepts = tuple(accepts or getattr(model, "accepts", None) or ("image",))
    report = report or ConformanceReport(plugin=name, task=task)
    c = _Checker(report)
    try:
        with c.check("task", fatal=True):
            kinds = task_kinds()
            assert task in kinds, f"task {task!r} is not one of the installed task kinds {', '.join(kinds)}"
            kind = kinds[task]
            assert isinstance(data, kind.data_type), \
                f"data is {type(data).__name__}, expected {kind.data_type.__name__} for task {task}"
        if hasattr(model, "fit"):
            with c.check("fit", fatal=True):
                if train is None:
                    raise _Skip("the model has fit() but no train data was given")
                assert callable(model.fit), "fit is not callable"
                model.fit(train, val)
        kind.conformance(Kit(c, name=name, accepts=accepts, atol=atol, rtol=rtol, batch=batch, evaluate=evaluate),
                         model, data)
    except _Fatal:
        pass
    if raise_on_failure:
        report.raise_for_failures()
    return report


def _check_spec(spec, registry) -> None:
    from mmbench.specs import INPUT_FORMS

    kinds = registry.task_kinds
    assert isinstance(spec.name, str) and spec.name.strip() == spec.name and spec.name, \
        f"spec name {spec.name!r} must be a non-empty string without surrounding spaces"
    assert not any(ch.isspace() for ch in spec.name), f"spec name {spec.name!r} contains whitespace"
    assert spec.task in kinds, f"spec task {spec.task!r} is not one of the installed task kinds {', '.join(kinds)}"
    assert isinstance(spec.accepts, tuple) and spec.accepts, "spec accepts must be a non-empty tuple of input forms"
    bad = [f for f in spec.accepts if f not in INPUT_FORMS]
    assert not bad, f"spec accepts unknown input form(s) {bad}; known: {', '.join(INPUT_FORMS)}"
    odd = [f for f in spec.accepts if f not in ("image_file", "image", "regions") + kinds[spec.task].extra_forms]
    assert not odd, f"input form(s) {odd} are not offered by task kind {spec.task!r}"
    assert isinstance(spec.version, str) and spec.version, f"spec version {spec.version!r} must be a non-empty string"
    assert isinstance(spec.options, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in spec.options.items()), \
        "spec options must map option name -> help text (both str)"
    assert isinstance(spec.factory, str) or callable(spec.factory), "spec factory must be 'module:attr' or callable"
    if isinstance(spec.factory, str):
        assert ":" in spec.factory, f"spec factory {spec.factory!r} must be 'package.module:attribute'"


def check_plugin(name: str, *, options: dict[str, str] | None = None, dataset: str = "demo", split: str = "test",
                 limit: int = 24, registry: Any = None, dataset_options: dict[str, str] | None = None,
                 data_root: str | None = None, batch: int = 8, atol: float = 1e-5, rtol: float = 1e-4,
                 raise_on_failure: bool = True, seed: int = 0, task_options: dict | None = None) -> ConformanceReport:
    """Check installed model plugin ``name`` against the contract on ``limit`` samples of a dataset split.

    The model is loaded, built and fitted by the host's own functions (``mmbench.runner``: the
    usage checks of ``preflight``, data loading with ``EvalConfig.limit``, ``build_model``,
    ``fit_model``), checked by its task kind's conformance checks, and scored into a run record by
    ``mmbench.runner.score_model``, the path ``mmbench eval`` ends in. ``options`` are the model's
    ``--option`` values (strings, as on the command line). The ``seeded`` check builds a second
    model with the same seed and requires the same outputs.
    Raises AssertionError naming the plugin and the failed check(s); returns the report.
    """
    from mmbench import runner
    from mmbench.plugins import get_registry

    reg = registry or get_registry()
    report = ConformanceReport(plugin=name, task="?")
    c = _Checker(report)
    cfg = runner.EvalConfig(split=split, data_root=data_root, options=dict(options or {}),
                            dataset_options=dict(dataset_options or {}), seed=seed, bootstrap=0, show_progress=False,
                            task_options=dict(task_options or {}), limit=limit)
    try:
        with c.check("registered", fatal=True):
            from mmbench.errors import MMBenchError

            try:
                spec = reg.model(name)
            except MMBenchError as exc:
                broken = "; ".join(f"{p.name} ({p.package}): {p.error}" for p in reg.failures())
                raise AssertionError(f"no model plugin named {name!r} can be chosen: {exc}"
                                     + (f"; plugins that failed to load: {broken}" if broken else "")) from None
        report.task = spec.task
        with c.check("spec", fatal=True):
            _check_spec(spec, reg)
        with c.check("fits-dataset", fatal=True):
            dspec = reg.dataset(dataset)
            runner.check_fit(spec, dspec, reg)
            assert split in dspec.splits, f"dataset {dataset!r} has no split {split!r} (splits: {dspec.splits})"
        with c.check("usage", fatal=True):
            parsed = runner.preflight(spec, dspec, cfg, reg)
        kind = reg.task_kinds[spec.task]

        def load(sp):
            return runner._load_data(dspec, spec.task, sp, cfg, reg)

        with c.check("load-data", fatal=True):
            data = load(split)
        with c.check("build", fatal=True):
            model = runner.build_model(spec, cfg.options, seed)
            assert model is not None, "the factory returned None"
        train = val = None
        if hasattr(model, "fit"):
            with c.check("load-train-data", fatal=True):
                assert "train" in dspec.splits, f"the model has fit() but dataset {dataset!r} has no train split"
                train = load("train")
                val = load("val") if "val" in dspec.splits and split != "val" else None
            with c.check("fit", fatal=True):
                runner.fit_model(name, model, train, val, seed)
        check_model(model, spec.task, data, name=name, accepts=spec.accepts, train=None, val=None, batch=batch,
                    atol=atol, rtol=rtol, raise_on_failure=False, report=report)
        if report.ok:
            with c.check("run"):
                rec = runner.score_model(spec, dspec, model, data, cfg, parsed, registry=reg)
                assert rec.status == "ok" and rec.metrics, "the run record has no metrics"
                import math

                bad = {k: v for k, v in rec.metrics.items() if not (isinstance(v, (int, float)) and math.isfinite(v))}
                assert not bad, f"the run produced non-finite metrics {bad}"
                assert rec.dataset.get("n_samples") == kind.n_samples(data), "the record's n_samples is wrong"
        if report.ok:
            with c.check("seeded"):
                # the same seed must give the same model: build (and fit) a second one and compare
                again = runner.build_model(spec, cfg.options, seed)
                if hasattr(again, "fit"):
                    runner.fit_model(name, again, train, val, seed)
                for what, a, b in zip(*kind.probe(model, again, data, batch)):
                    if isinstance(a, str) or isinstance(b, str):
                        assert a == b, f"{what}: two models built with seed {seed} differ: {a!r} vs {b!r}"
                    else:
                        _same(a, b, f"{what}: two models built (and fitted) with seed {seed}", atol, rtol)
    except _Fatal:
        pass
    if raise_on_failure:
        report.raise_for_failures()
    return report

