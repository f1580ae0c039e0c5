"""Preprocessing and augmentation, each on a synthetic image whose correct output is known."""
import json
import math

import numpy as np
import pytest

from minitl.data.transforms import (
    Compose, ImagePipeline, Preprocessing, RandomCrop, RandomHorizontalFlip, RandomShear, RandomZoom,
    augmentation, crop_with_padding, resize, shear, to_rgb, zoom,
)


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- resize
def _bilinear_reference(image, out_h, out_w):
    """Plain loops: half-pixel centres, clamped, 4-neighbour weights."""
    in_h, in_w = image.shape
    out = np.zeros((out_h, out_w))
    for y in range(out_h):
        sy = min(max((y + 0.5) * in_h / out_h - 0.5, 0), in_h - 1)
        y0 = int(math.floor(sy)); y1 = min(y0 + 1, in_h - 1); dy = sy - y0
        for x in range(out_w):
            sx = min(max((x + 0.5) * in_w / out_w - 0.5, 0), in_w - 1)
            x0 = int(math.floor(sx)); x1 = min(x0 + 1, in_w - 1); dx = sx - x0
            out[y, x] = ((1 - dy) * (1 - dx) * image[y0, x0] + (1 - dy) * dx * image[y0, x1]
                         + dy * (1 - dx) * image[y1, x0] + dy * dx * image[y1, x1])
    return out


@pytest.mark.parametrize("shape, size", [((5, 7), (12, 9)), ((28, 28), (96, 96)), ((9, 6), (4, 5))])
def test_resize_matches_loop_reference(shape, size):
    image = np.random.default_rng(1).uniform(0, 255, shape).astype(np.float32)
    np.testing.assert_allclose(resize(image, size, antialias=False), _bilinear_reference(image, *size), atol=1e-3)


def test_resize_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    image = np.random.default_rng(2).uniform(0, 1, (2, 28, 28)).astype(np.float32).transpose(1, 2, 0)
    ref = torch.nn.functional.interpolate(torch.from_numpy(image.transpose(2, 0, 1)[None].copy()), size=(96, 96),
                                          mode="bilinear", align_corners=False)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(resize(image, 96), ref, atol=1e-5)


def test_resize_antialias_averages_blocks_when_shrinking():
    stripes = np.tile([0.0, 100.0], (8, 4))  # 8x8 alternating columns
    assert np.allclose(resize(stripes, 4), 50.0)  # not 0 or 100: the stripes average out
    assert np.allclose(resize(np.full((10, 10, 3), 7.0), 3), 7.0)


def test_to_rgb():
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    rgb = to_rgb(gray)
    assert rgb.shape == (2, 3, 3) and (rgb[..., 0] == gray).all() and (rgb[..., 2] == gray).all()
    assert to_rgb(np.zeros((2, 2, 4))).shape == (2, 2, 3)
    with pytest.raises(ValueError, match="cannot make 3 channels out of 2"):
        to_rgb(np.zeros((2, 2, 2)))


# ----------------------------------------------------------------------------- metadata-driven preprocessing
def test_caffe_preprocessing_bgr_means_0_255():
    spec = Preprocessing.from_metadata({"input_size": [4, 4], "channel_order": "BGR", "mean": [104, 117, 123]})
    assert spec.pixel_range == 255.0
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 200  # pure-ish red
    out = ImagePipeline(spec)(image)
    assert out.shape == (3, 4, 4) and out.dtype == np.float32
    # BGR: channel 0 is blue (0 - 104), channel 2 is red (200 - 123)
    assert np.allclose(out[0], -104) and np.allclose(out[1], -117) and np.allclose(out[2], 77)


def test_torchvision_preprocessing_rgb_mean_std():
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    spec = Preprocessing.from_metadata({"input_size": 2, "mean": mean, "std": std})
    assert spec.pixel_range == 1.0 and spec.channel_order == "RGB"
    gray = np.full((2, 2), 51, np.uint8)  # 51/255 = 0.2 in every channel
    out = ImagePipeline(spec)(gray)
    for c in range(3):
        assert np.allclose(out[c], (0.2 - mean[c]) / std[c], atol=1e-6)


def test_one_description_round_trips_and_keys_the_cache_by_what_changes_pixels():
    spec = Preprocessing((4, 6), channel_order="bgr", pixel_range=255, mean=[104, 117, 123], source="a Caffe net")
    assert spec.channel_order == "BGR" and spec.input_size == (4, 6) and spec.mean == (104.0, 117.0, 123.0)
    assert Preprocessing.from_metadata(spec.to_dict()) == spec
    assert Preprocessing.from_metadata({"preprocessing": json.dumps(spec.to_dict())}) == spec
    assert Preprocessing(8).to_dict()["input_size"] == 8  # a square as one int, as weights files write it
    renamed = Preprocessing((4, 6), channel_order="BGR", pixel_range=255, mean=[104, 117, 123], source="other")
    assert renamed.key() == spec.key() and renamed != spec
    assert spec.key() == {"input_size": [4, 6], "channel_order": "BGR", "pixel_range": 255.0,
                          "mean": [104.0, 117.0, 123.0], "std": None}
    image = np.random.default_rng(3).integers(0, 256, (4, 6, 3)).astype(np.uint8)
    np.testing.assert_array_equal(ImagePipeline(spec)(image), spec.normalize(image)[0])
    with pytest.raises(ValueError, match="mean must have 1 or 3 values"):
        Preprocessing(mean=(1.0, 2.0))
    with pytest.raises(ValueError, match="channel_order must be"):
        Preprocessing(channel_order="GBR")


def test_input_size_override_and_resize():
    spec = Preprocessing.from_metadata({"input_size": [224, 224]}, input_size=96)
    assert spec.input_size == (96, 96)
    assert ImagePipeline(spec)(np.zeros((28, 28), np.uint8)).shape == (3, 96, 96)


# ----------------------------------------------------------------------------- augmentation
def test_horizontal_flip_known_output_and_probability():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(image, rng()), image[:, ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(image, rng()), image)
    g = rng(5)
    flipped = sum(RandomHorizontalFlip(0.5)(image, g)[0, 0] == 3 for _ in range(400))
    assert 150 < flipped < 250


def test_shear_turns_a_vertical_line_into_the_diagonal():
    image = np.zeros((5, 5), np.float32)
    image[:, 2] = 1.0  # vertical line through the centre column
    out = shear(image, math.atan(1.0), mode="constant")  # tan θ = 1: row y shifts by (y - 2)
    np.testing.assert_allclose(out, np.eye(5), atol=1e-6)
    horizontal = np.zeros((5, 5), np.float32)
    horizontal[2] = 1.0  # the centre row does not move
    np.testing.assert_allclose(shear(horizontal, 0.3, mode="constant")[2], 1.0, atol=1e-6)


def test_zoom_out_subsamples_and_zoom_in_interpolates():
    image = np.arange(25, dtype=np.float32).reshape(5, 5)
    small = zoom(image, 0.5, mode="constant")  # out(p) = in(2p - 2)
    np.testing.assert_allclose(small[1:4, 1:4], image[0:5:2, 0:5:2], atol=1e-5)
    assert small[0, 0] == 0 and small[4, 4] == 0
    big_in = np.arange(81, dtype=np.float32).reshape(9, 9)
    big = zoom(big_in, 2.0)  # out(p) = in(4 + (p - 4)/2)
    np.testing.assert_allclose(big[0:9:2, 0:9:2], big_in[2:7, 2:7], atol=1e-4)
    np.testing.assert_allclose(big[1, 0], (big_in[2, 2] + big_in[3, 2]) / 2, atol=1e-4)


def test_random_crop_with_padding_is_a_shift():
    image = np.arange(1, 17, dtype=np.float32).reshape(4, 4)
    out = crop_with_padding(image, 0, 0, (4, 4), padding=2)
    expected = np.zeros((4, 4), np.float32)
    expected[2:, 2:] = image[:2, :2]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(crop_with_padding(image, 2, 2, (4, 4), 2), image)  # centre crop: identity
    for seed in range(20):  # every random crop is the image shifted by at most the padding
        crop = RandomCrop(padding=1)(image, rng(seed))
        shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                  if np.array_equal(crop, crop_with_padding(image, 1 + dy, 1 + dx, (4, 4), 1))]
        assert shifts


@pytest.mark.parametrize("make", [lambda: RandomShear(0.2), lambda: RandomZoom(0.2), lambda: RandomCrop(3),
                                  lambda: augmentation(crop_padding=2)])
def test_augmentation_is_deterministic_under_a_seed(make):
    image = np.random.default_rng(3).uniform(0, 255, (16, 16, 3)).astype(np.float32)
    a, b = make()(image, rng(7)), make()(image, rng(7))
    np.testing.assert_array_equal(a, b)
    others = [make()(image, rng(s)) for s in range(8, 12)]
    assert any(not np.array_equal(a, o) for o in others)
    assert a.shape == image.shape


def test_random_shear_draws_angles_in_range():
    image = np.zeros((5, 5), np.float32)
    image[:, 2] = 1
    g = rng(0)
    for _ in range(20):
        out = RandomShear(0.2, mode="constant")(image, g)
        # |tan θ| <= tan 0.2 ≈ 0.203: the line moves by at most 0.41 px at the top/bottom rows
        centre_of_mass = (out[0] * np.arange(5)).sum() / out[0].sum()
        assert abs(centre_of_mass - 2) <= math.tan(0.2) * 2 + 1e-6


def test_compose_passes_rng_along():
    image = np.arange(4, dtype=np.float32).reshape(2, 2)
    out = Compose([RandomHorizontalFlip(1.0), lambda im, g: im * 2])(image, rng())
    np.testing.assert_array_equal(out, image[:, ::-1] * 2)
