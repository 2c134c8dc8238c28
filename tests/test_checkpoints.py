"""mmbench.checkpoints: restricted loading of torch checkpoints (zip, legacy, allow-list) and the option helpers.

The official VSE-family layout (``official_checkpoint``, CUDA-tagged parity files, ``write_unsafe_checkpoint``)
is tested in plugins/mmbench-vse/tests/test_official_checkpoints.py.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from mmbench.checkpoints import load_checkpoint, parse_bool, resolve_device
from mmbench.errors import DataError, PluginError, UnsafeFileError


def test_numpy_scalars_are_allowed(tmp_path):
    for legacy in (False, True):
        p = tmp_path / f"np{legacy}.pth"
        torch.save({"best_rsum": np.float64(512.5), "opt": argparse.Namespace(a=1), "t": torch.ones(2)}, p,
                   _use_new_zipfile_serialization=not legacy)
        ck = load_checkpoint(p)
        assert ck["best_rsum"] == 512.5 and ck["opt"].a == 1


class _RunsCommand:
    """Unpickling this runs a shell command: what the restricted loader must refuse."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def test_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    for legacy in (False, True):
        p = tmp_path / f"evil{legacy}.pth"
        torch.save({"opt": _RunsCommand(f"touch '{marker}'"), "t": torch.ones(2)}, p,
                   _use_new_zipfile_serialization=not legacy)
        with pytest.raises(UnsafeFileError) as err:
            load_checkpoint(p)
        assert "system" in str(err.value) and str(p) in str(err.value)
    assert not marker.exists()


def test_opt_in_loads_trusted_custom_objects(tmp_path):
    p = tmp_path / "custom.pth"
    torch.save({"opt": argparse.ArgumentParser}, p)  # a class outside the allow-list, harmless
    with pytest.raises(UnsafeFileError, match="ArgumentParser"):
        load_checkpoint(p)
    assert load_checkpoint(p, allow_unsafe_pickle=True)["opt"] is argparse.ArgumentParser


def test_read_errors_name_the_file(tmp_path):
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
