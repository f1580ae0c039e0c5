"""The pure-NumPy .safetensors reader against files written by the safetensors package itself."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from minitl.transfer import CorruptFileError, WeightsError
from minitl.transfer import safetensors as st_format

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def _write(path, tensors, metadata=None):
    safetensors_numpy.save_file(tensors, str(path), metadata=metadata)


def test_reads_what_the_reference_writer_wrote(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {
        "conv1.weight": rng.standard_normal((8, 3, 7, 7)).astype(np.float32),
        "fc.bias": rng.standard_normal(10).astype(np.float64),
        "half": rng.standard_normal((2, 3)).astype(np.float16),
        "index": np.arange(5, dtype=np.int64),
        "flag": np.array([True, False]),
        "scalar": np.array(2.5, dtype=np.float32),
    }
    path = tmp_path / "w.safetensors"
    _write(path, tensors, {"arch": "resnet18"})
    state, metadata = st_format.read(path)
    assert metadata == {"arch": "resnet18"}
    assert set(state) == set(tensors)
    for name, value in tensors.items():
        assert state[name].dtype == value.dtype and state[name].shape == value.shape
        assert np.array_equal(state[name], value)


def test_bfloat16_widened_to_float32(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    value = torch.randn(3, 4).to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    save_file({"w": value}, str(path))
    state, _ = st_format.read(path)
    assert state["w"].dtype == np.float32
    assert np.array_equal(state["w"], value.float().numpy())


def test_truncated(tmp_path):
    path = tmp_path / "w.safetensors"
    _write(path, {"w": np.ones((64, 64), np.float32)})
    data = path.read_bytes()
    for cut in (4, 20, len(data) - 100):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(CorruptFileError):
            st_format.read(bad)


def _raw(header: dict, payload: bytes) -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + payload


@pytest.mark.parametrize("header, payload, message", [
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}}, b"\0" * 16, "do not fit"),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 4]}}, b"\0" * 16, "do not fit"),
    ({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, b"\0" * 16, "non-negative integers"),
    ({"w": {"dtype": "F32", "shape": [4]}}, b"\0" * 16, "bad header entry"),
    ({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4, "does not read"),
])
def test_damaged_header(tmp_path, header, payload, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_raw(header, payload))
    with pytest.raises(WeightsError, match=message):
        st_format.read(path)


def test_header_length_lies_and_invalid_json(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(CorruptFileError, match="header claims"):
        st_format.read(path)
    path.write_bytes(struct.pack("<Q", 5) + b"{abc}")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        st_format.read(path)
