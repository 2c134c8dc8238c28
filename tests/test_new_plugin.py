"""`mmbench new-plugin` writes a package whose model passes the conformance kit, for every task kind.

(The pip-installed path — entry point discovery, `mmbench eval` — is in test_third_party_plugin.py.)
"""

from __future__ import annotations

import importlib
import json
import sys
import tomllib

import pytest
from typer.testing import CliRunner

from mmbench.cli import app
from mmbench.commands.new_plugin import names_for, scaffold
from mmbench.plugins import Registry
from mmbench.tasks import BUILTIN_KINDS as TASKS
from mmbench.testing import check_plugin


def _import_fresh(root, module):
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(f"{module}.plugin")
    finally:
        sys.path.remove(str(root))


@pytest.mark.parametrize("task", TASKS)
def test_scaffold_passes_the_kit_on_demo(tmp_path, task):
    name = f"scaf-{task[:4]}"
    files = scaffold(name, task, tmp_path / "pkg")
    dist, module = names_for(name)
    rel = sorted(str(f.relative_to(tmp_path / "pkg")) for f in files)
    assert rel == sorted(["pyproject.toml", "README.md", f"{module}/__init__.py", f"{module}/plugin.py",
                          f"{module}/colours.py", f"{module}/model.py", f"tests/test_{module}.py"])
    meta = tomllib.loads((tmp_path / "pkg" / "pyproject.toml").read_text())
    assert meta["project"]["name"] == dist == f"mmbench-{name}"
    assert meta["project"]["entry-points"]["mmbench"] == {name: f"{module}.plugin"}
    text = "".join(f.read_text() for f in files)
    assert "{{" not in text
    plugin_mod = _import_fresh(tmp_path / "pkg", module)
    sys.path.insert(0, str(tmp_path / "pkg"))
    try:
        reg = Registry(entry_points=False, extra_modules=(plugin_mod,))
        spec = reg.model(name)
        assert (spec.task, spec.accepts, spec.factory) == (task, ("image",), f"{module}.model:build")
        rep = check_plugin(name, registry=reg, limit=12)
        assert rep.ok and {"spec", "build", "outputs", "deterministic", "batch-invariant", "empty-batch",
                           "wrong-input-form"} <= set(rep.passed), rep.summary()
        assert ("fit" in rep.passed) == (task == "classification")
    finally:
        sys.path.remove(str(tmp_path / "pkg"))


def test_scaffolded_retrieval_model_is_better_than_chance_on_demo(tmp_path):
    """The trivial model is meant to be replaced, but it must compute something real."""
    from mmbench.runner import EvalConfig, run_eval

    scaffold("scaf-rank", "retrieval", tmp_path / "pkg")
    plugin_mod = _import_fresh(tmp_path / "pkg", "mmbench_scaf_rank")
    sys.path.insert(0, str(tmp_path / "pkg"))
    try:
        reg = Registry(entry_points=False, extra_modules=(plugin_mod,))
        rec = run_eval("scaf-rank", "demo", EvalConfig(bootstrap=0, show_progress=False), registry=reg)
    finally:
        sys.path.remove(str(tmp_path / "pkg"))
    # chance on 200 images / 1000 captions: i2t R@10 ~ 4.9 % (5 captions among 1000), t2i R@10 = 5 %
    assert rec.metrics["t2i.R@10"] > 15 and rec.metrics["i2t.R@10"] > 12, rec.metrics


def test_bad_names_tasks_and_existing_folders_are_refused(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["new-plugin", "My Model", "--task", "retrieval", "--dir", str(tmp_path / "a")])
    assert r.exit_code == 2 and "plugin name 'My Model' is not valid" in r.output
    r = runner.invoke(app, ["new-plugin", "ok-name", "--task", "vqa", "--dir", str(tmp_path / "b")])
    assert r.exit_code == 2 and "--task 'vqa' is not one of retrieval, captioning, grounding, classification" in r.output
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.txt").write_text("x")
    r = runner.invoke(app, ["new-plugin", "ok-name", "--task", "retrieval", "--dir", str(tmp_path / "c")])
    assert r.exit_code == 2 and "already exists and is not an empty folder" in r.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["keep.txt"]


def test_cli_json_lists_the_files(tmp_path):
    r = CliRunner().invoke(app, ["new-plugin", "mmbench-x2", "--task", "grounding", "--dir", str(tmp_path / "x"),
                                 "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["name"] == "mmbench-x2" and len(out["files"]) == 7
    assert names_for("mmbench-x2") == ("mmbench-x2", "mmbench_x2")
    assert (tmp_path / "x" / "mmbench_x2" / "model.py").is_file()
