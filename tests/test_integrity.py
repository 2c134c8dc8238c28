"""Issue 10: models never see targets, splits cannot leak, usage mistakes are exit 2 without a record,
the seed reaches the plugin, duplicate model names are refused, failed runs keep their traceback."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import mmbench.plugins as plugins_mod
from mmbench.cli import app
from mmbench.errors import MMBenchError, UsageError
from mmbench.hookspecs import hookimpl
from mmbench.plugins import Registry
from mmbench.runner import EvalConfig, run_eval, run_many
from mmbench.specs import DatasetSpec, ModelSpec
from mmbench.tasks import (ClassificationData, ClassificationSample, DatasetMeta, GroundingData, GroundingSample,
                           ImageItem, TargetAccessError)
from mmbench.testing import check_plugin

ROOT = Path(__file__).resolve().parents[1]
cli = CliRunner()


def cfg(**kw):
    kw.setdefault("bootstrap", 0)
    kw.setdefault("show_progress", False)
    return EvalConfig(**kw)


# --------------------------------------------------------------------------- in-process plugin

def _image(i: int, split: str) -> ImageItem:
    rng = np.random.default_rng([i, ["train", "val", "test"].index(split)])
    return ImageItem(id=f"{split}-{i}", regions=rng.random((3, 4), dtype=np.float32), size=(100, 80))


def _grounding(split: str, shared: bool = False) -> GroundingData:
    sp = "test" if shared else split
    meta = DatasetMeta(name="leaky", split=split, task="grounding", protocol="p", fingerprint="g" * 16)
    return GroundingData([GroundingSample(f"{sp}-g{i}", _image(i, sp), "the thing",
                                          np.array([[10 + i, 10, 50, 40]], dtype=float)) for i in range(6)], meta)


def _classification(split: str, shared: bool = False) -> ClassificationData:
    sp = "test" if shared else split
    meta = DatasetMeta(name="leaky", split=split, task="classification", protocol="p", fingerprint="c" * 16)
    return ClassificationData([ClassificationSample(f"{sp}-c{i}", f"text {sp} {i}", None, i % 2) for i in range(8)],
                              ["neg", "pos"], meta)


def leaky_load(task, split, data_root=None, shared="false", file=None):
    """``shared=true``: every split is the test split (the leak issue 10 reproduced)."""
    both = shared == "true"
    return _grounding(split, both) if task == "grounding" else _classification(split, both)


class BoxPeeker:
    """Touches the image first (as the kit's old checks allowed), then returns the target boxes."""

    def predict(self, inputs):
        return [np.vstack([s.image.regions[:1, :0].reshape(0, 4), s.boxes]) for s in inputs]


class LabelPeeker:
    def predict_proba(self, inputs):
        return np.eye(2)[[s.label for s in inputs]]


class SeededClassifier:
    """Random weights from the seed it is given; fit() records the seed it got."""

    def __init__(self, seed):
        self.seed = int(seed)
        self.w = np.random.default_rng(self.seed).random(2)
        self.fit_seed = None

    def fit(self, train, val=None, seed=None):
        self.fit_seed = seed
        self.details = {"factory_seed": self.seed, "fit_seed": seed}

    def predict_proba(self, inputs):
        return np.tile(self.w / self.w.sum(), (len(inputs), 1))


class UnseededClassifier:
    """Ignores the seed: draws fresh randomness at every build."""

    def __init__(self):
        import secrets

        self.w = np.array([1.0, 1.0 + secrets.randbelow(1000) / 100])

    def predict_proba(self, inputs):
        return np.tile(self.w / self.w.sum(), (len(inputs), 1))


class Honest:
    def predict_proba(self, inputs):
        return np.tile([0.4, 0.6], (len(inputs), 1))

    def fit(self, train, val=None):
        self.n_train = len(train.samples)


def make_module(name: str, models, datasets=()):
    mod = types.ModuleType(name)
    mod.mmbench_models = hookimpl(lambda: list(models))
    if datasets:
        mod.mmbench_datasets = hookimpl(lambda: list(datasets))
    return mod


LEAKY = DatasetSpec(name="leaky", tasks=("grounding", "classification"), factory=leaky_load,
                    splits=("train", "val", "test"), forms=("regions", "text_only"), needs_data_root=False,
                    options={"shared": "every split is the test split", "file": "a per-split file"},
                    split_files=("file",))
MODELS = [
    ModelSpec(name="box-peeker", task="grounding", factory=BoxPeeker, accepts=("regions",)),
    ModelSpec(name="label-peeker", task="classification", factory=LabelPeeker, accepts=("text_only",)),
    ModelSpec(name="seeded", task="classification", factory=SeededClassifier, accepts=("text_only",),
              options={"seed": "weights seed"}),
    ModelSpec(name="unseeded", task="classification", factory=UnseededClassifier, accepts=("text_only",)),
    ModelSpec(name="honest", task="classification", factory=Honest, accepts=("text_only",)),
]


@pytest.fixture
def reg():
    return Registry(entry_points=False, extra_modules=(make_module("leaky_plugin", MODELS, [LEAKY]),))


@pytest.fixture
def cli_reg(monkeypatch, reg):
    monkeypatch.setattr(plugins_mod, "get_registry", lambda: reg)
    return reg


# --------------------------------------------------------------------------- 2. targets never reach the model

def test_a_model_reading_target_boxes_fails_instead_of_scoring_100(reg):
    (rec,) = run_many(["box-peeker"], ["leaky"], cfg(), registry=reg)
    assert rec.status == "failed" and "Acc@0.5" not in rec.metrics
    assert "read the target field 'boxes' of a GroundingInput" in rec.error and "inputs only" in rec.error


def test_a_model_reading_labels_fails_instead_of_scoring_100(reg):
    (rec,) = run_many(["label-peeker"], ["leaky"], cfg(), registry=reg)
    assert rec.status == "failed" and "target field 'label'" in rec.error


def test_inputs_carry_no_targets():
    s = _grounding("test").samples[0]
    view = s.input_view()
    assert (view.id, view.image, view.expression) == (s.id, s.image, s.expression)
    with pytest.raises(TargetAccessError, match="'boxes'"):
        view.boxes  # noqa: B018
    assert not hasattr(view, "__dict__") and getattr(view, "boxes", None) is None
    c = _classification("test").samples[0].input_view()
    with pytest.raises(TargetAccessError, match="'label'"):
        c.label  # noqa: B018


def test_the_kit_fails_a_plugin_that_reads_targets(reg):
    for name in ("box-peeker", "label-peeker"):
        rep = check_plugin(name, dataset="leaky", registry=reg, raise_on_failure=False)
        assert [f.name for f in rep.failures] == ["inputs-only"], rep.summary()
        assert "reads the ground truth" in rep.failures[0].detail
    assert check_plugin("honest", dataset="leaky", registry=reg, raise_on_failure=False).ok


# --------------------------------------------------------------------------- 3. no train/test leakage

def test_fitting_on_data_that_overlaps_the_evaluated_split_is_refused(reg):
    (rec,) = run_many(["honest"], ["leaky"], cfg(dataset_options={"shared": "true"}), registry=reg)
    assert rec.status == "failed"
    assert "would be fitted on data it is scored on: 8 of 8 evaluated 'test' items" in rec.error
    assert "--allow-overlap" in rec.error


def test_allowed_overlap_is_recorded_and_changes_the_fingerprint(reg):
    honest = run_eval("honest", "leaky", cfg(), registry=reg)
    leak = run_eval("honest", "leaky", cfg(dataset_options={"shared": "true"}, allow_overlap=True), registry=reg)
    assert leak.status == "ok" and leak.dataset["overlap_allowed"] is True
    assert leak.dataset["fit_data"]["train"]["overlap_with_evaluated"] == 8
    assert any("overlap allowed by --allow-overlap" in n for n in leak.dataset["notes"])
    assert honest.dataset["fit_data"]["train"]["overlap_with_evaluated"] == 0 and "overlap_allowed" not in honest.dataset
    # same evaluated data, but the run read other training data and other options
    assert leak.dataset["data_fingerprint"] == honest.dataset["data_fingerprint"]
    assert leak.dataset["fingerprint"] != honest.dataset["fingerprint"]
    assert leak.config["allow_overlap"] is True


def test_fingerprint_covers_dataset_options(reg):
    a = run_eval("seeded", "leaky", cfg(), registry=reg)
    b = run_eval("seeded", "leaky", cfg(dataset_options={"file.test": "x.json"}), registry=reg)
    assert a.dataset["data_fingerprint"] == b.dataset["data_fingerprint"]
    assert a.dataset["fingerprint"] != b.dataset["fingerprint"] and b.dataset["options"] == {"file": "x.json"}


def test_a_file_option_for_every_split_is_refused_for_models_with_fit(reg):
    (rec,) = run_many(["honest"], ["leaky"], cfg(dataset_options={"file": "val.json"}), registry=reg)
    assert rec.status == "failed" and "applies to every split" in rec.error and "file.train=" in rec.error
    ok = run_eval("honest", "leaky", cfg(dataset_options={"file.train": "t.json", "file.test": "e.json"}),
                  registry=reg)
    assert ok.status == "ok" and ok.dataset["options"] == {"file": "e.json"}


def test_per_split_options_reach_only_their_split():
    from mmbench.runner import options_for_split

    opts = {"annotations": "all.json", "annotations.val": "v.json", "images.train": "tr"}
    assert options_for_split(LEAKY, opts, "val") == {"annotations": "v.json"}
    assert options_for_split(LEAKY, opts, "train") == {"annotations": "all.json", "images": "tr"}
    assert options_for_split(LEAKY, opts, "test") == {"annotations": "all.json"}


def test_real_coco_leak_from_the_issue_is_refused(tmp_path):
    root = ROOT.parent / "shared" / "data" / "coco_mini"
    if not root.is_dir():
        pytest.skip("../shared/data/coco_mini not present")
    args = ["eval", "-p", "nn-caption", "-p", "cca", "-d", "coco_captions", "--data-root", str(root),
            "--split", "val", "--bootstrap", "0", "--no-progress", "--out", str(tmp_path), "--json"]
    res = cli.invoke(app, args + ["-D", "annotations=annotations/captions_val2017.json", "-D", "images=val2017"])
    assert res.exit_code == 1
    recs = json.loads(res.stdout)
    assert [r["status"] for r in recs] == ["failed", "failed"]
    assert all("applies to every split" in r["error"] for r in recs)
    res = cli.invoke(app, args + ["-D", "annotations.train=annotations/captions_val2017.json",
                                  "-D", "images.train=val2017"])
    recs = json.loads(res.stdout)
    assert all(r["status"] == "failed" and "79 of 79 evaluated 'val' items" in r["error"] for r in recs)
    honest = json.loads(cli.invoke(app, args).stdout)
    assert all(r["status"] == "ok" for r in honest)
    assert honest[1]["metrics"]["rsum"] < 200 and honest[0]["metrics"]["Bleu_1"] < 0.9


# --------------------------------------------------------------------------- 4. what a user is told

@pytest.mark.parametrize("extra, needle", [
    (["-d", "leaky", "--split", "tset"], "Unknown split 'tset' of dataset 'leaky'. Did you mean 'test'?"),
    (["-d", "leaky", "-o", "sed=1"], "plugin 'seeded' has no option 'sed' (did you mean 'seed'?)"),
    (["-d", "leaky", "-D", "shard=true"], "dataset 'leaky' has no option 'shard' (did you mean 'shared'?)"),
    (["-d", "leaky", "-D", "file.tset=x"], "Unknown split 'tset' of dataset 'leaky'"),
    (["-d", "leaky", "-T", "tie=optimistic"], "unknown task option 'tie' for task classification"),
    (["-d", "leaky", "-p", "cca"], "Plugin 'cca' does retrieval, but dataset 'leaky' offers"),  # task mismatch
])
def test_usage_mistakes_exit_2_and_write_no_record(cli_reg, tmp_path, extra, needle):
    res = cli.invoke(app, ["eval", "-p", "seeded", *extra, "--out", str(tmp_path), "--bootstrap", "0"])
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.split()) and "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == []


def test_task_option_values_are_validated(cli_reg, tmp_path):
    from mmbench.runner import preflight

    g = ModelSpec(name="g", task="grounding", factory=BoxPeeker, accepts=("regions",))
    for bad in ("0", "-1", "1.5", "nan", "x"):
        with pytest.raises(UsageError, match="task option 'threshold'"):
            preflight(g, LEAKY, cfg(task_options={"threshold": bad}), cli_reg)
    assert preflight(g, LEAKY, cfg(task_options={"threshold": "1"}), cli_reg) == {"threshold": 1.0}


def test_wrong_data_root_is_a_usage_error(tmp_path):
    res = cli.invoke(app, ["eval", "-p", "cca", "-d", "coco_captions", "--data-root", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2 and "is not a folder" in res.output and not (tmp_path / "runs").exists()


def test_debug_shows_the_plugin_traceback_and_the_record_keeps_it(cli_reg, tmp_path):
    res = cli.invoke(app, ["--debug", "eval", "-p", "box-peeker", "-d", "leaky", "--out", str(tmp_path),
                           "--bootstrap", "0", "--no-progress"])
    assert res.exit_code == 1
    assert "Traceback (most recent call last)" in res.output and "in predict" in res.output
    (path,) = tmp_path.glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["status"] == "failed" and "in predict" in rec["details"]["traceback"]
    quiet = cli.invoke(app, ["eval", "-p", "box-peeker", "-d", "leaky", "--out", str(tmp_path), "--bootstrap", "0",
                             "--no-progress"])
    assert quiet.exit_code == 1 and "Traceback" not in quiet.output


def test_seed_reaches_the_factory_and_fit_unless_the_option_overrides(reg):
    a = run_eval("seeded", "leaky", cfg(seed=7), registry=reg)
    assert a.details["model"] == {"factory_seed": 7, "fit_seed": 7}
    b = run_eval("seeded", "leaky", cfg(seed=7, options={"seed": "3"}), registry=reg)
    assert b.details["model"]["factory_seed"] == 3 and b.details["model"]["fit_seed"] == 7


def test_the_kit_fails_a_plugin_that_ignores_the_seed(reg):
    rep = check_plugin("unseeded", dataset="leaky", registry=reg, raise_on_failure=False)
    assert [f.name for f in rep.failures] == ["seeded"], rep.summary()
    assert check_plugin("seeded", dataset="leaky", registry=reg, raise_on_failure=False).ok


def test_two_plugins_offering_one_model_name_must_be_chosen_by_package(tmp_path):
    one = make_module("pkg_one", [ModelSpec(name="twin", task="classification", factory=Honest,
                                            accepts=("text_only",))], [LEAKY])
    two = make_module("pkg_two", [ModelSpec(name="twin", task="classification", factory=SeededClassifier,
                                            accepts=("text_only",), options={"seed": "s"})])
    reg = Registry(entry_points=False, extra_modules=(one, two))
    with pytest.raises(UsageError, match=r"'twin' is offered by 2 installed packages: .*pkg_one.*pkg_two"):
        reg.model("twin")
    assert "twin" not in reg.models and len([m for m in reg.all_models if m.name == "twin"]) == 2
    pkg = reg.all_models[-1].plugin
    rec = run_eval(f"{pkg}:twin", "leaky", cfg(), registry=reg)
    assert rec.status == "ok" and rec.plugin["name"] == "twin" and rec.details["model"]["factory_seed"] == 0


# --------------------------------------------------------------------------- 1. a fresh machine

def test_hf_adapter_without_pyarrow_names_the_extra(monkeypatch, tmp_path):
    import builtins

    from mmbench.datasets import hf

    real = builtins.__import__

    def no_pyarrow(name, *a, **k):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("No module named 'pyarrow'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(MMBenchError, match=r"pip install 'mmbench\[hf\]'"):
        hf._pa()


def test_readme_install_brings_every_builtin_adapters_dependencies():
    req = (ROOT / "requirements.txt").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    extras = re.search(r"-e \.\[([^\]]*)\]", req).group(1).split(",")
    assert "hf" in extras and re.search(r'^hf = \["pyarrow', pyproject, re.M)


def _third_party_versions() -> dict[str, str]:
    out = {}
    for dist in md.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name and not name.startswith("mmbench") and name not in ("hello-mmbench",) \
                and re.fullmatch(r"\d+\.\d+\.\d+", dist.version or ""):
            out[dist.version] = name
    return out


def test_no_test_pins_an_exact_third_party_version():
    """A test that compares against a third party's exact version (a literal X.Y.Z equal to an installed
    package's version, or ``__version__ ==``) breaks on the next release: compare content instead."""
    versions = _third_party_versions()
    files = sorted(ROOT.glob("tests/**/*.py")) + sorted(ROOT.glob("plugins/*/tests/**/*.py"))
    assert len(files) > 20
    bad = []
    for f in files:
        if f.resolve() == Path(__file__).resolve():
            continue
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in versions:
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno}: {node.value!r} ({versions[node.value]})")
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Attribute) and side.attr == "__version__":
                        bad.append(f"{f.relative_to(ROOT)}:{node.lineno}: compares __version__")
    assert not bad, "tests pin third-party versions:\n" + "\n".join(bad)


def test_shipped_demo_configs_are_not_compared_byte_for_byte():
    """Files a library writes carry its version stamp (transformers_version): a test comparing such a
    file's bytes with a shipped copy fails on the next release. Such tests compare parsed content."""
    bad = []
    for f in sorted(ROOT.glob("plugins/*/tests/**/*.py")) + sorted(ROOT.glob("tests/**/*.py")):
        text = f.read_text(encoding="utf-8")
        for m in re.finditer(r"read_bytes\(\) == \(?[^\n]*(DEMO|SHIPPED|shipped)[^\n]*read_bytes\(\)", text):
            bad.append(f"{f.relative_to(ROOT)}: {m.group(0)[:80]}")
    assert not bad, bad
