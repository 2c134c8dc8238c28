"""mmbench.checkpoints: restricted loading of official checkpoints (zip, legacy, CUDA tags, allow-list)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from mmbench.checkpoints import load_checkpoint, official_checkpoint, parse_bool, resolve_device
from mmbench.errors import DataError, PluginError, UnsafeFileError
from mmbench.vse import write_unsafe_checkpoint


@pytest.mark.shared
@pytest.mark.parametrize("name,n", [("sgraf_sgr", 3), ("sgraf_saf", 3), ("scan_t2i", 2), ("scan_i2t", 2),
                                    ("vsepp", 2)])
def test_zip_and_legacy_cuda_tagged_files_give_identical_tensors(parity_dir, name, n):
    opt_a, sd_a, ck_a = official_checkpoint(parity_dir / name / "model_best.pth.tar", n_modules=n)
    opt_b, sd_b, ck_b = official_checkpoint(parity_dir / name / "model_best_legacy_cudatag.pth.tar", n_modules=n)
    assert opt_a == opt_b and opt_a["vocab_size"] == 50 and opt_a["img_dim"] == 64
    assert sorted(ck_a) == ["Eiters", "best_rsum", "epoch", "model", "opt"]
    for a, b in zip(sd_a, sd_b):
        assert list(a) == list(b)
        for k in a:
            assert b[k].device.type == "cpu" and torch.equal(a[k], b[k])


def test_numpy_scalars_are_allowed(tmp_path):
    for legacy in (False, True):
        p = tmp_path / f"np{legacy}.pth"
        torch.save({"best_rsum": np.float64(512.5), "opt": argparse.Namespace(a=1), "t": torch.ones(2)}, p,
                   _use_new_zipfile_serialization=not legacy)
        ck = load_checkpoint(p)
        assert ck["best_rsum"] == 512.5 and ck["opt"].a == 1


def test_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    for legacy in (False, True):
        p = write_unsafe_checkpoint(tmp_path / f"evil{legacy}.pth", marker, legacy=legacy)
        with pytest.raises(UnsafeFileError) as err:
            load_checkpoint(p)
        assert "system" in str(err.value) and str(p) in str(err.value)
    assert not marker.exists()


def test_crafted_unsafe_checkpoint_really_runs_code_when_fully_unpickled(tmp_path):
    # the test aid is only meaningful if its payload is live: torch's unrestricted loader runs it
    marker = tmp_path / "ran"
    p = write_unsafe_checkpoint(tmp_path / "m.pth", marker, n_modules=3, field="best_rsum")
    assert not marker.exists()
    ck = torch.load(p, weights_only=False)  # our own file, made just above
    assert marker.exists() and ck["opt"] == {} and len(ck["model"]) == 3 and sorted(ck) == [
        "Eiters", "best_rsum", "epoch", "model", "opt"]
    with pytest.raises(ValueError, match="field"):
        write_unsafe_checkpoint(tmp_path / "x.pth", marker, field="weights")


def test_opt_in_loads_trusted_custom_objects(tmp_path):
    p = tmp_path / "custom.pth"
    torch.save({"opt": argparse.ArgumentParser}, p)  # a class outside the allow-list, harmless
    with pytest.raises(UnsafeFileError, match="ArgumentParser"):
        load_checkpoint(p)
    assert load_checkpoint(p, allow_unsafe_pickle=True)["opt"] is argparse.ArgumentParser


def test_layout_errors_name_file_and_field(tmp_path):
    p = tmp_path / "m.pth"
    torch.save({"model": [{}], "opt": argparse.Namespace()}, p)
    with pytest.raises(DataError, match=r"m.pth.*'model'.*a list of 3 state_dicts"):
        official_checkpoint(p, n_modules=3)
    torch.save([1, 2], p)
    with pytest.raises(DataError, match="top level"):
        official_checkpoint(p, n_modules=2)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.pth"):
        load_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "absent.pth")


def test_option_helpers():
    assert parse_bool("True", option="x") is True and parse_bool("0", option="x") is False
    with pytest.raises(PluginError, match="allow_unsafe_pickle"):
        parse_bool("maybe", option="allow_unsafe_pickle")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(None) in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(PluginError, match="CUDA is not available"):
            resolve_device("cuda")
