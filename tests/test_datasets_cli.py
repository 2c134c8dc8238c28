"""`mmbench datasets check` and `mmbench datasets layout`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbench.cli import app

pytestmark = pytest.mark.filterwarnings("ignore::mmbench.datasets.common.DatasetSizeWarning")

_spec = importlib.util.spec_from_file_location("dataset_builders",
                                               Path(__file__).parent / "fixtures" / "dataset_builders.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)


def test_layout_every_builtin_dataset():
    from mmbench.plugins import get_registry

    for name, spec in get_registry().datasets.items():
        res = CliRunner().invoke(app, ["datasets", "layout", name, "--json"])
        assert res.exit_code == 0, res.output
        info = json.loads(res.output)
        assert info["name"] == name and info["layout"]
    res = CliRunner().invoke(app, ["datasets", "layout", "refcoco"])
    assert "refs(unc).p" in res.output and "lichengunc/refer" in res.output
    res = CliRunner().invoke(app, ["datasets", "layout", "refcocoo"])
    assert res.exit_code == 2 and "Did you mean 'refcoco'" in res.output


def test_check_json_and_exit_codes(tmp_path):
    B.coco_captions(tmp_path)
    res = CliRunner().invoke(app, ["datasets", "check", "coco_captions", "--data-root", str(tmp_path), "--json",
                                   "--split", "val", "--dataset-option", "captions=all"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    (r,) = rep["splits"]
    assert r["counts"] == {"images": 4, "texts": 22} and r["missing_images"] == 0 and r["protocol"] == "all-captions"
    (tmp_path / "val2017" / "000000000001.jpg").unlink()
    res = CliRunner().invoke(app, ["datasets", "check", "coco_captions", "--data-root", str(tmp_path), "--json"])
    rep = json.loads(res.output)
    assert res.exit_code == 1 and not rep["ok"]
    val = next(r for r in rep["splits"] if r["split"] == "val")
    train = next(r for r in rep["splits"] if r["split"] == "train")
    assert val["missing_images"] == 1 and val["missing_first"][0].endswith("000000000001.jpg")
    assert "no captions annotation file" in train["error"]
    res = CliRunner().invoke(app, ["datasets", "check", "coco_captions"])
    assert res.exit_code == 2 and "needs --data-root" in res.output


def test_check_text_output(tmp_path):
    B.refer(tmp_path)
    res = CliRunner().invoke(app, ["datasets", "check", "refcoco", "--data-root", str(tmp_path), "--split", "testA"])
    assert res.exit_code == 0, res.output
    assert "2 samples" in res.output and "5657" in res.output
