"""The CLI as a user meets it: help, listings, eval, errors without tracebacks, leaderboards."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mmbench.plugins as plugins_mod
from mmbench.cli import app
from mmbench.plugins import Registry

spec = importlib.util.spec_from_file_location("toy_plugin_cli", Path(__file__).with_name("toy_plugin.py"))
toy_plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy_plugin)

runner = CliRunner()


@pytest.fixture
def toy_registry(monkeypatch):
    reg = Registry(entry_points=False, extra_modules=(toy_plugin,))
    monkeypatch.setattr(plugins_mod, "get_registry", lambda: reg)
    return reg


def test_help_lists_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("eval", "list", "leaderboard", "doctor"):
        assert cmd in res.output
    res = runner.invoke(app, ["eval", "--help"])
    assert res.exit_code == 0 and "mmbench eval --plugin" in res.output


def test_list_plugins_json(toy_registry):
    res = runner.invoke(app, ["list", "plugins", "--json"])
    assert res.exit_code == 0, res.output
    names = {m["name"]: m for m in json.loads(res.output)["models"]}
    assert names["oracle"]["task"] == "retrieval" and names["oracle"]["accepts"] == ["regions"]
    res = runner.invoke(app, ["list", "datasets", "--json"])
    assert {d["name"] for d in json.loads(res.output)["datasets"]} >= {"toy", "demo"}


def test_unknown_plugin_is_one_paragraph_exit_2(toy_registry):
    res = runner.invoke(app, ["eval", "--plugin", "orcale", "--dataset", "toy"])
    assert res.exit_code == 2
    assert "Did you mean 'oracle'" in res.output and "Traceback" not in res.output


def test_eval_writes_records_and_multirun_survives_failure(toy_registry, tmp_path):
    res = runner.invoke(app, ["eval", "-p", "raising", "-p", "oracle", "-d", "toy", "--out", str(tmp_path),
                              "--bootstrap", "0", "--json"])
    assert res.exit_code == 1  # one run failed
    out = json.loads(res.stdout)
    assert [r["status"] for r in out] == ["failed", "ok"]
    assert out[1]["metrics"]["rsum"] == 600.0
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_bad_option_syntax(toy_registry):
    res = runner.invoke(app, ["eval", "-p", "oracle", "-d", "toy", "--option", "novalue"])
    assert res.exit_code == 2 and "is not key=value" in res.output


def test_leaderboard_formats(toy_registry, tmp_path):
    runner.invoke(app, ["eval", "-p", "oracle", "-p", "constant", "-d", "toy", "--out", str(tmp_path),
                        "--bootstrap", "0"])
    md = runner.invoke(app, ["leaderboard", str(tmp_path), "--format", "markdown"])
    assert md.exit_code == 0
    lines = [l for l in md.output.splitlines() if l.startswith("| ")]
    assert lines[0].startswith("| plugin | i2t.R@1") and lines[1].startswith("| oracle | 100.00")
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["leaderboard", str(tmp_path), "-f", "csv"]).output)))
    assert {"oracle", "constant"} == {r["plugin"] for r in rows}
    assert [r["value"] for r in rows if r["plugin"] == "oracle" and r["metric"] == "rsum"] == ["600.0"]
    js = json.loads(runner.invoke(app, ["leaderboard", str(tmp_path), "--json"]).output)
    assert js[0]["rows"][0]["plugin"] == "oracle"
    bad = runner.invoke(app, ["leaderboard", str(tmp_path / "nope.json")])
    assert bad.exit_code == 2 and "record file not found" in bad.output


def test_doctor_json(toy_registry):
    res = runner.invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0
    checks = {c["check"]: c for c in json.loads(res.output)["checks"]}
    assert "java" in checks and "gpu" in checks and checks["plugin toy_plugin_cli"]["ok"]
