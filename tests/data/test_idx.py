"""IDX reader: against bytes laid out by hand (struct), and the real Fashion-MNIST files."""
import gzip
import os
import struct

import numpy as np
import pytest

from minitl.data import fashion_mnist
from minitl.data.idx import IDXError, read_idx, write_idx


def _idx_bytes(code, dims, payload: bytes) -> bytes:
    # the format from the spec: 0x00 0x00 <type> <ndim>, big-endian uint32 dims, data
    return struct.pack(">BBBB", 0, 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload


@pytest.mark.parametrize("compress", [False, True])
def test_reads_uint8_images_raw_and_gzip(tmp_path, compress):
    values = list(range(2 * 3 * 4))
    raw = _idx_bytes(0x08, (2, 3, 4), bytes(values))
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    array = read_idx(path)
    assert array.shape == (2, 3, 4) and array.dtype == np.uint8
    assert array[1, 2, 3] == 23 and array[0, 1, 0] == 4  # row-major


def test_reads_big_endian_int32_and_float32(tmp_path):
    path = tmp_path / "i.idx"
    path.write_bytes(_idx_bytes(0x0C, (3,), struct.pack(">3i", -1, 256, 70000)))
    assert read_idx(path).tolist() == [-1, 256, 70000]
    path.write_bytes(_idx_bytes(0x0D, (2,), struct.pack(">2f", 1.5, -2.25)))
    out = read_idx(path)
    assert out.dtype == np.float32 and out.tolist() == [1.5, -2.25]


def test_write_then_read_round_trip(tmp_path):
    array = np.arange(60, dtype=np.int16).reshape(3, 4, 5) - 30
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("data, message", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
    (_idx_bytes(0x07, (1,), b"\x00"), "unknown IDX type code 0x07"),
    (_idx_bytes(0x08, (2, 2), b"\x00\x00\x00"), "truncated"),
    (_idx_bytes(0x08, (2,), b"\x00\x00\x00"), "trailing"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated header"),
    (b"\x00\x00", "too short"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
])
def test_corrupt_files_raise_clear_errors(tmp_path, data, message):
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(IDXError, match=message):
        read_idx(path)


def test_truncated_gzip_is_reported(tmp_path):
    blob = gzip.compress(_idx_bytes(0x08, (100,), bytes(100)))
    path = tmp_path / "bad.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(IDXError, match="gzip"):
        read_idx(path)


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.load_fashion_mnist("train", data_dir=tmp_path)


REAL = fashion_mnist.SYSTEM_DIR


@pytest.mark.skipif(not fashion_mnist.has_idx_files(REAL), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_headers_shapes_and_samples():
    # header read independently of the reader: magic 0x00000803 / 0x00000801 and the sizes
    with gzip.open(os.path.join(REAL, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        assert struct.unpack(">4I", f.read(16)) == (0x803, 10000, 28, 28)
    with gzip.open(os.path.join(REAL, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        header = struct.unpack(">2I", f.read(8))
        first_labels = list(f.read(5))
    assert header == (0x801, 10000)
    test = fashion_mnist.load_fashion_mnist("test")
    assert test.images.shape == (10000, 28, 28) and test.images.dtype == np.uint8
    assert test.labels[:5].tolist() == first_labels == [9, 2, 1, 1, 6]  # ankle boot, pullover, trouser, ...
    assert test.classes[9] == "Ankle boot"
    assert np.bincount(test.labels).tolist() == [1000] * 10
    # a few pixels of the first test image, read straight from the decompressed stream
    with gzip.open(os.path.join(REAL, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        f.read(16)
        first = np.frombuffer(f.read(784), dtype=np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(test.images[0], first)
    assert first.max() > 200 and first[0, 0] == 0
    train = fashion_mnist.load_fashion_mnist("train")
    assert train.images.shape == (60000, 28, 28) and len(train.labels) == 60000
    assert np.bincount(train.labels).tolist() == [6000] * 10
