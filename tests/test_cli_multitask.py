"""``minitl multitask`` end to end on a tiny image folder and a tiny backbone: the report compares
main+aux with main alone, run.json logs the conflict per step, --resume continues, bad groups fail
in one line."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

import minitl  # noqa: E402
from minitl.cli import main  # noqa: E402
from minitl.cli.multitask import parse_groups  # noqa: E402
from minitl.train import TinyNet  # noqa: E402

COLOURS = ["red", "orange", "green", "blue"]  # aux: warm (red, orange) vs cold (green, blue)
GROUPS = "warm=red,orange;cold=green,blue"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_multitask")
    rng = np.random.default_rng(0)
    tint = {"red": (170, 0, 0), "orange": (170, 90, 0), "green": (0, 170, 0), "blue": (0, 0, 170)}
    for split, n in (("train", 8), ("test", 4)):
        for colour in COLOURS:
            os.makedirs(root / "data" / split / colour)
            for i in range(n):
                image = rng.integers(0, 80, (10, 10, 3)).astype(np.uint8) + np.array(tint[colour], np.uint8)
                Image.fromarray(image).save(root / "data" / split / colour / f"{i}.png")
    minitl.manual_seed(3)
    backbone = TinyNet(8, width=16)
    arrays = dict(backbone.state_dict())
    arrays["__minitl_metadata__"] = np.array([json.dumps({"arch": "tiny", "input_size": 8,
                                                          "preprocessing": backbone.preprocessing})])
    np.savez(root / "tiny.npz", **arrays)
    return root


def _args(ws, out, *more):
    return [str(a) for a in ("multitask", "--weights", ws / "tiny.npz", "--data", ws / "data", "--cache-dir",
                             ws / "cache", "--aux-groups", GROUPS, "--hidden", "16", "--epochs", "3", "--lr", "0.05",
                             "--batch-size", "8", "--out", out, *more)]


def test_multitask_report_json_and_resume(capsys, workspace):
    out = workspace / "run"
    assert main(_args(workspace, out, "--json", "--conflict", "representation,parameters")) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["run"] for row in report["rows"]] == ["multitask (fixed, λ=1)", "single"]
    assert report["groups"] == {"warm": ["red", "orange"], "cold": ["green", "blue"]}
    run = json.loads((out / "multitask" / "run.json").read_text())
    assert len(run["steps"]) == 3 * 4 and all(-1 <= s["parameters"]["cos"]["main|aux"] <= 1 for s in run["steps"])
    single = json.loads((out / "single" / "run.json").read_text())
    assert single["tasks"] == ["main"] and single["accuracy"] == report["rows"][1]["main_accuracy"]
    # the same --out again is refused without --resume / --overwrite, in one line
    assert main(_args(workspace, out, "--quiet")) == 2
    assert "--overwrite" in capsys.readouterr().err
    # --resume with finished checkpoints trains nothing more and reports the same numbers
    assert main(_args(workspace, out, "--json", "--conflict", "representation,parameters", "--resume")) == 0
    again = json.loads(capsys.readouterr().out)
    assert [r["main_accuracy"] for r in again["rows"]] == [r["main_accuracy"] for r in report["rows"]]


def test_multitask_text_output_and_uncertainty(capsys, workspace):
    assert main(_args(workspace, workspace / "run_u", "--weighting", "uncertainty", "--no-single")) == 0
    out = capsys.readouterr().out
    assert "multitask (uncertainty)" in out and "conflict.png" in out


@pytest.mark.parametrize("groups, message", [
    ("warm=red,orange", "at least two groups"),
    ("warm=red;cold=green,blue", "leave class"),
    ("warm=red,orange;cold=green,purple", "not a class"),
    ("warm=red,orange;cold=red,green,blue", "two auxiliary groups"),
    ("warm", "NAME=CLASS"),
])
def test_bad_groups_fail_in_one_line(capsys, workspace, groups, message):
    args = _args(workspace, workspace / "bad", "--quiet")
    args[args.index("--aux-groups") + 1] = groups
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_parse_groups():
    assert parse_groups(" a = x, y ; b=z ;") == {"a": ["x", "y"], "b": ["z"]}
