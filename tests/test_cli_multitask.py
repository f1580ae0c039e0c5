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
                                                          "preprocessing": backbone.preprocessing.to_dict()})])
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


def _image(workspace):
    return workspace / "data" / "test" / "red" / "0.png"


def test_each_run_saves_its_main_task_classifier_for_predict(capsys, workspace):
    from minitl.train.backbones import load_classifier
    from minitl.train.checkpoint import load_checkpoint

    out = workspace / "run_model"
    assert main(_args(workspace, out, "--json")) == 0
    report = json.loads(capsys.readouterr().out)
    for row, name in zip(report["rows"], ("multitask", "single")):
        path = out / name / "model.npz"
        assert report["models"][name] == str(path)
        model, classes, _, meta = load_classifier(path)
        assert classes == sorted(COLOURS) and meta["mode"] == "multitask-features"
        assert meta["test_accuracy"] == row["main_accuracy"]
        weights = load_checkpoint(out / name / "checkpoint.npz")["model"]  # the trained trunk and main head
        np.testing.assert_array_equal(model.head.fc1.weight.numpy(), weights["shared.fc1.weight"])
        np.testing.assert_array_equal(model.head.fc2.weight.numpy(), weights["heads.main.weight"])
    assert main(["predict", str(out / "multitask" / "model.npz"), str(_image(workspace)), "--json"]) == 0
    assert "red" in capsys.readouterr().out


def test_resume_falls_back_to_the_previous_checkpoint(capsys, workspace):
    out = workspace / "run_prev"
    assert main(_args(workspace, out, "--json", "--no-single")) == 0
    first = json.loads(capsys.readouterr().out)
    newest = out / "multitask" / "checkpoint.npz"
    newest.write_bytes(newest.read_bytes()[:100])  # a truncated copy: the zip is unreadable
    assert main(_args(workspace, out, "--json", "--no-single", "--resume")) == 0
    captured = capsys.readouterr()
    assert "falling back to the previous checkpoint" in captured.err
    again = json.loads(captured.out)  # the last epoch trained again from epoch 2's checkpoint: the same run
    assert again["rows"][0]["main_accuracy"] == first["rows"][0]["main_accuracy"]
    assert json.loads((out / "multitask" / "run.json").read_text())["history"][-1]["epoch"] == 3


def test_finetune_mode_trains_the_last_stage_at_its_own_rate(capsys, workspace):
    from minitl.train.backbones import load_classifier

    out = workspace / "run_ft"
    assert main(_args(workspace, out, "--json", "--mode", "finetune", "--unfreeze", "1", "--backbone-lr", "0.05",
                      "--conflict", "parameters")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "finetune"
    pretrained = dict(np.load(workspace / "tiny.npz", allow_pickle=False))
    for name in ("multitask", "single"):
        model, _, _, meta = load_classifier(out / name / "model.npz")
        assert meta["mode"] == "multitask-finetune"
        state = {k: v.numpy() if hasattr(v, "numpy") else v for k, v in model.state_dict().items()}
        for key in ("stem.1.weight", "layer1.0.weight"):  # below the cut: the pretrained weights
            np.testing.assert_array_equal(state[f"backbone.{key}"], pretrained[key])
        assert not np.array_equal(state["backbone.layer2.0.weight"], pretrained["layer2.0.weight"])
    run = json.loads((out / "multitask" / "run.json").read_text())
    assert run["trained_stages"] == ["layer2"] and run["config"]["backbone_lr"] == 0.05
    # the conflict is measured on every shared parameter: the unfrozen stage and the Dense layer
    assert all(-1 <= s["parameters"]["cos"]["main|aux"] <= 1 for s in run["steps"])
    assert main(_args(workspace, workspace / "run_ft0", "--quiet", "--mode", "finetune", "--unfreeze", "0")) == 2
    assert "--unfreeze" in capsys.readouterr().err
