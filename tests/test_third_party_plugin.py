"""The third-party path for real: pip-install plugin packages, then use them through the CLI.

Installs (editable, --no-deps --no-build-isolation, into this test venv) and uninstalls in teardown:
- the minimal package printed in docs/plugins.md (parsed from its `# file:` code blocks),
- a package whose hook module raises on import,
- a package written by `mmbench new-plugin`.
No entry point is monkeypatched: discovery goes through importlib.metadata like for any user.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmbench.commands.new_plugin import scaffold

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "plugins.md"

BROKEN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "mmbench-kit-broken"
version = "0.0.1"

[project.entry-points.mmbench]
kit-broken = "mmbench_kit_broken.plugin"

[tool.setuptools]
packages = ["mmbench_kit_broken"]
"""


def doc_files(text: str) -> dict[str, str]:
    """The `# file: NAME` code blocks of docs/plugins.md -> {NAME: content}."""
    out = {}
    for block in re.findall(r"```(?:toml|python)\n(.*?)```", text, flags=re.S):
        first, _, rest = block.partition("\n")
        m = re.match(r"# file: (\S+)$", first)
        if m:
            out[m.group(1)] = rest
    return out


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "-q"],
                          capture_output=True, text=True, timeout=300)


def _mmbench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmbench.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("third_party")
    hello = root / "hello"
    files = doc_files(DOC.read_text(encoding="utf-8"))
    assert set(files) == {"pyproject.toml", "hello_mmbench/plugin.py", "hello_mmbench/model.py"}, files.keys()
    for rel, text in files.items():
        (hello / rel).parent.mkdir(parents=True, exist_ok=True)
        (hello / rel).write_text(text)
    (hello / "hello_mmbench" / "__init__.py").write_text("")
    broken = root / "broken"
    (broken / "mmbench_kit_broken").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "mmbench_kit_broken" / "__init__.py").write_text("")
    (broken / "mmbench_kit_broken" / "plugin.py").write_text(
        "import mmbench_kit_missing_dependency  # noqa: F401  (not installed on purpose)\n")
    scaf = root / "scaf"
    scaffold("kit-scaf", "grounding", scaf)
    dists = ["hello-mmbench", "mmbench-kit-broken", "mmbench-kit-scaf"]
    r = _pip("install", "--no-deps", "--no-build-isolation", "-e", str(hello), "-e", str(broken), "-e", str(scaf))
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield {"root": root, "hello": hello, "scaf": scaf}
    finally:
        _pip("uninstall", "-y", *dists)


def test_discovery_and_failed_plugin_in_list_json(installed):
    r = _mmbench("list", "plugins", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    models = {m["name"]: m for m in out["models"]}
    assert models["hello-model"]["package"] == "hello-mmbench"
    assert models["hello-model"]["task"] == "retrieval" and models["hello-model"]["accepts"] == ["image"]
    assert models["hello-model"]["options"] == {"batch_size": "images per call (default 32)"}
    assert models["kit-scaf"]["package"] == "mmbench-kit-scaf" and models["kit-scaf"]["task"] == "grounding"
    failed = [f for f in out["failed_plugins"] if f["name"] == "kit-broken"]
    assert len(failed) == 1
    assert failed[0]["package"] == "mmbench-kit-broken" and failed[0]["module"] == "mmbench_kit_broken.plugin"
    assert "ModuleNotFoundError" in failed[0]["error"] and "mmbench_kit_missing_dependency" in failed[0]["error"]
    r = _mmbench("list", "plugins")  # the table also names the broken plugin, on stderr
    assert r.returncode == 0 and "hello-model" in r.stdout
    assert "kit-broken" in r.stderr and "mmbench-kit-broken" in r.stderr


def test_eval_through_the_cli(installed, tmp_path):
    r = _mmbench("eval", "-p", "hello-model", "-d", "demo", "--option", "batch_size=7", "--bootstrap", "0",
                 "--out", str(tmp_path), "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    (rec,) = json.loads(r.stdout)
    assert rec["status"] == "ok" and rec["task"] == "retrieval"
    assert rec["plugin"]["package"] == "hello-mmbench" and rec["plugin"]["version"] == "0.1.0"
    assert rec["plugin"]["options"] == {"batch_size": "7"} and rec["config"]["batch_size"] == 7
    assert rec["dataset"]["name"] == "demo" and rec["dataset"]["split"] == "test"
    m = rec["metrics"]
    assert {"i2t.R@1", "i2t.R@10", "t2i.R@5", "rsum"} <= set(m) and 0 <= m["t2i.R@10"] <= 100
    assert rec["details"]["n_images"] == 200 and rec["details"]["n_texts"] == 1000
    assert Path(rec["path"]).is_file()
    before = sorted(tmp_path.iterdir())
    r = _mmbench("eval", "-p", "hello-model", "-d", "demo", "--option", "colour=red", "--bootstrap", "0",
                 "--out", str(tmp_path), "--no-progress")
    # a usage mistake: exit 2, the plugin's declared options listed, no failed record written
    assert r.returncode == 2, r.stderr
    assert "plugin 'hello-model' has no option 'colour'" in r.stderr and "batch_size: images per call" in r.stderr
    assert sorted(tmp_path.iterdir()) == before


def test_scaffold_evaluates_and_its_own_tests_pass(installed, tmp_path):
    r = _mmbench("eval", "-p", "kit-scaf", "-d", "demo", "--bootstrap", "0", "--out", str(tmp_path), "--json",
                 "--no-progress")
    assert r.returncode == 0, r.stderr
    (rec,) = json.loads(r.stdout)
    assert rec["status"] == "ok" and rec["details"]["box_format"] == "xyxy" and rec["details"]["invalid_boxes"] == 0
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                       cwd=installed["scaf"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr


def test_kit_on_the_installed_doc_plugin(installed):
    # a fresh interpreter: editable installs hook into sys.meta_path at interpreter start-up
    code = ("from mmbench.testing import check_plugin\n"
            "rep = check_plugin('hello-model', options={'batch_size': '4'}, limit=8)\n"
            "print(rep.summary())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "conformance of plugin 'hello-model' (retrieval): OK" in r.stdout
    for check in ("spec", "build", "batch-invariant", "wrong-input-form", "evaluate"):
        assert f"[ok] {check}" in r.stdout, r.stdout
