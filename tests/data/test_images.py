"""ImageFolder and load_image on tiny synthetic PNG folders."""
import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from minitl.data import open_data  # noqa: E402
from minitl.data.images import ImageFolder, load_image  # noqa: E402


def _write(path, value, size=(4, 5), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[0], size[1], 3) if mode == "RGB" else size
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(path)


def test_classes_from_sorted_folder_names(tmp_path):
    _write(tmp_path / "dog" / "a.png", 10)
    _write(tmp_path / "cat" / "b.png", 20)
    _write(tmp_path / "cat" / "c.png", 30)
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and len(ds) == 3
    assert ds.targets.tolist() == [0, 0, 1]
    image, label = ds[2]
    assert label == 1 and image.shape == (4, 5, 3) and image.dtype == np.uint8 and (image == 10).all()


def test_grayscale_png_decodes_to_rgb(tmp_path):
    _write(tmp_path / "x" / "g.png", 99, mode="L")
    assert load_image(tmp_path / "x" / "g.png").shape == (4, 5, 3)
    assert load_image(tmp_path / "x" / "g.png", mode="L").shape == (4, 5)


def test_empty_class_folder_is_an_error(tmp_path):
    _write(tmp_path / "a" / "1.png", 1)
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="class folder 'b' has no image files"):
        ImageFolder(tmp_path)


def test_unknown_class_folder_in_test_split(tmp_path):
    _write(tmp_path / "train" / "a" / "1.png", 1)
    _write(tmp_path / "train" / "b" / "1.png", 1)
    _write(tmp_path / "test" / "a" / "1.png", 1)
    _write(tmp_path / "test" / "zebra" / "1.png", 1)
    with pytest.raises(ValueError, match=r"unknown class folder\(s\) \['zebra'\]"):
        open_data(tmp_path)


def test_no_class_folders(tmp_path):
    _write(tmp_path / "loose.png", 1)
    (tmp_path / "x").mkdir()
    (tmp_path / "x").rmdir()
    with pytest.raises(ValueError, match="no class folders"):
        ImageFolder(tmp_path)


def test_undecodable_file_names_the_file(tmp_path):
    _write(tmp_path / "a" / "good.png", 1)
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png at all")
    ds = ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="cannot decode image file .*broken.png"):
        ds[0]


def test_train_test_folders_share_classes(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                _write(tmp_path / split / cls / f"{i}.png", i)
    splits = open_data(tmp_path)
    assert splits.classes == ["a", "b"] and len(splits.train) == 6 and len(splits.test) == 4


def test_fingerprint_changes_when_a_file_changes(tmp_path):
    _write(tmp_path / "a" / "1.png", 1)
    first = ImageFolder(tmp_path).fingerprint()
    assert ImageFolder(tmp_path).fingerprint() == first
    _write(tmp_path / "a" / "2.png", 1)
    assert ImageFolder(tmp_path).fingerprint() != first
