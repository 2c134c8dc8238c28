"""mmbench_vse.checkpoints: the official model_best.pth.tar layout (zip, legacy, CUDA tags) and the unsafe test aid."""

from __future__ import annotations

import argparse

import pytest
import torch

from mmbench.checkpoints import load_checkpoint
from mmbench.errors import DataError, UnsafeFileError
from mmbench_vse.checkpoints import official_checkpoint, write_unsafe_checkpoint


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


def test_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    for legacy in (False, True):
        p = write_unsafe_checkpoint(tmp_path / f"evil{legacy}.pth", marker, legacy=legacy)
        with pytest.raises(UnsafeFileError) as err:
            load_checkpoint(p)
        assert "system" in str(err.value) and str(p) in str(err.value)
        with pytest.raises(UnsafeFileError, match="system"):
            official_checkpoint(p, n_modules=2)
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
        official_checkpoint(tmp_path / "junk.pth", n_modules=2)
    with pytest.raises(DataError, match="not found"):
        official_checkpoint(tmp_path / "absent.pth", n_modules=2)
