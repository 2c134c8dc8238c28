"""A fifth task kind from a pip-installed package, without editing mmbench.

``tests/fixtures/kind_plugin`` is a package adding the kind ``matching`` (image-text matching:
accuracy and a lower-is-better Brier score), a dataset of that kind and two models. It is
installed (editable, --no-deps) into this venv and used through the CLI as a user would:
``eval``, ``leaderboard``, ``compare`` with gates, and the conformance kit. Uninstalled in teardown.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "kind_plugin"


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def _mmbench(*args):
    return _run("-m", "mmbench.cli", *args)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("kind_plugin") / "pkg"
    shutil.copytree(FIXTURE, root)
    r = _run("-m", "pip", "install", "--no-deps", "--no-build-isolation", "--disable-pip-version-check", "-q",
             "-e", str(root))
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield root
    finally:
        _run("-m", "pip", "uninstall", "-y", "-q", "mmbench-kit-matching")


def test_a_plugin_adds_a_task_kind_and_runs_eval_leaderboard_compare_and_the_kit(installed, tmp_path):
    out = tmp_path / "runs"
    r = _mmbench("list", "plugins", "--json")
    assert r.returncode == 0, r.stderr
    models = {m["name"]: m for m in json.loads(r.stdout)["models"]}
    assert models["colour-matcher"]["task"] == "matching"

    r = _mmbench("eval", "-p", "colour-matcher", "-p", "colour-matcher-inverted", "-d", "matching-demo",
                 "--bootstrap", "100", "--no-progress", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    recs = {json.loads(p.read_text())["plugin"]["name"]: json.loads(p.read_text()) for p in out.glob("*.json")}
    good, bad = recs["colour-matcher"], recs["colour-matcher-inverted"]
    assert good["task"] == "matching" and good["status"] == "ok"
    assert good["dataset"]["n_samples"] == 400 and good["sample_ids"] == {"pair": good["sample_ids"]["pair"]}
    assert good["per_sample_units"] == {"correct": "pair", "sq_err": "pair"}
    assert set(good["ci"]) == {"match_acc", "brier"}
    # a model that reads the colour words beats its inverse on both metrics
    assert good["metrics"]["match_acc"] > 60 > bad["metrics"]["match_acc"]
    assert good["metrics"]["brier"] < bad["metrics"]["brier"]

    # a typo in the kind's own task option is a usage error naming the option, before any run
    r = _mmbench("eval", "-p", "colour-matcher", "-d", "matching-demo", "-T", "treshold=0.3", "--out", str(tmp_path))
    assert r.returncode == 2 and "Did you mean 'threshold'" in r.stdout + r.stderr

    # leaderboard: the kind's headline columns, sorted by its main metric (brier, lower is better)
    r = _mmbench("leaderboard", str(out), "--format", "json")
    assert r.returncode == 0, r.stderr
    (table,) = json.loads(r.stdout)
    assert table["task"] == "matching" and table["columns"] == ["match_acc", "brier"]
    assert [row["plugin"] for row in table["rows"]] == ["colour-matcher", "colour-matcher-inverted"]
    assert table["metric_info"]["brier"] == {"higher_is_better": False, "unit": "fraction"}

    # compare the two models on the same pairs: the Brier gate reads the kind's direction
    base, new = tmp_path / "base", tmp_path / "new"
    base.mkdir()
    new.mkdir()
    for name, dest in (("colour-matcher", base), ("colour-matcher-inverted", new)):
        src = next(p for p in out.glob("*.json") if json.loads(p.read_text())["plugin"]["name"] == name)
        shutil.copy(src, dest / src.name)
    r = _mmbench("compare", str(base), str(new), "--pair-by", "samples", "--gate", "brier drop<=0.01",
                 "--gate", "match_acc no-sig-drop", "--format", "json", "--bootstrap", "200")
    assert r.returncode == 1, r.stdout + r.stderr
    res = json.loads(r.stdout)
    checks = {c["rule"]: c["passed"] for c in res["checks"]}
    assert checks == {"brier drop<=0.01": False, "match_acc no-sig-drop p<0.05": False}
    rows = {m["metric"]: m for m in res["runs"][0]["metrics"]}
    assert rows["brier"]["higher_is_better"] is False and rows["brier"]["p_value"] < 0.05
    assert res["runs"][0]["n_shared"] == 400
    # the same run against itself passes
    r = _mmbench("compare", str(base), str(base), "--gate", "brier drop<=0.01", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr

    # the conformance kit, with the kind's own checks, in a fresh interpreter (entry points load at start-up)
    code = ("from mmbench.testing import check_plugin\n"
            "rep = check_plugin('colour-matcher', dataset='matching-demo', limit=12)\n"
            "print(rep.summary())\n")
    r = _run("-c", code)
    assert r.returncode == 0, r.stdout + r.stderr
    for check in ("methods", "inputs-only", "outputs", "batch-invariant", "evaluate", "run", "seeded"):
        assert f"[ok] {check}" in r.stdout, r.stdout
