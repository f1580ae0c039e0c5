"""CIFAR binary reader, on records laid out by hand: <label> <1024 R> <1024 G> <1024 B>."""
import numpy as np
import pytest

from minitl.data.cifar import CIFARError, load_cifar10, load_cifar100, parse_cifar_records


def _record(labels, r, g, b) -> bytes:
    return bytes(labels) + bytes([r]) * 1024 + bytes([g]) * 1024 + bytes([b]) * 1024


def test_planes_become_hwc_pixels():
    # one record whose red plane counts 0..255 row-major, green constant 7, blue constant 9
    red = bytes(i % 256 for i in range(1024))
    raw = bytes([3]) + red + bytes([7]) * 1024 + bytes([9]) * 1024
    images, labels = parse_cifar_records(raw, 1)
    assert images.shape == (1, 32, 32, 3) and labels[0, 0] == 3
    assert images[0, 0, 5].tolist() == [5, 7, 9]
    assert images[0, 1, 0, 0] == 32 % 256  # row 1 starts at index 32


def test_cifar10_folder(tmp_path):
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}.bin").write_bytes(_record([i], 10, 20, 30) + _record([0], 1, 2, 3))
    (tmp_path / "test_batch.bin").write_bytes(_record([9], 0, 0, 255))
    train, test = load_cifar10(tmp_path, "train"), load_cifar10(tmp_path, "test")
    assert len(train) == 10 and train.labels.tolist() == [1, 0, 2, 0, 3, 0, 4, 0, 5, 0]
    assert test.images[0, 4, 4].tolist() == [0, 0, 255] and test.classes[9] == "truck"


def test_cifar100_fine_and_coarse(tmp_path):
    (tmp_path / "train.bin").write_bytes(_record([4, 77], 1, 1, 1))
    (tmp_path / "test.bin").write_bytes(_record([19, 99], 2, 2, 2))
    assert load_cifar100(tmp_path, "train").labels.tolist() == [77]
    assert load_cifar100(tmp_path, "test", label="coarse").labels.tolist() == [19]


def test_truncated_file_is_reported(tmp_path):
    with pytest.raises(CIFARError, match="not a whole number of 3073-byte"):
        parse_cifar_records(_record([1], 0, 0, 0)[:-5], 1, "x.bin")


def test_label_out_of_range(tmp_path):
    with pytest.raises(CIFARError, match="out of range"):
        parse_cifar_records(_record([12], 0, 0, 0), 1, "x.bin", num_labels=10)


def test_pickled_python_version_is_refused(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CIFARError, match="never unpickle"):
        load_cifar10(tmp_path)
