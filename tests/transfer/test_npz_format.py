"""minitl's .npz reader/writer: round trip with JSON metadata, and every way a file can be bad."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from minitl.transfer import CorruptFileError, UnsafeFileError, WeightsError, npz


def _state():
    rng = np.random.default_rng(0)
    return {"conv1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "bn1.running_var": rng.random(4).astype(np.float32) + 0.5,
            "counter": np.array(3, dtype=np.int64)}


def test_round_trip_with_metadata_loads_without_pickle(tmp_path):
    path = tmp_path / "w.npz"
    meta = {"arch": "resnet18", "preprocessing": {"input_size": 224, "channel_order": "BGR", "mean": [104, 117, 123]},
            "class_names": ["sfw", "nsfw"]}
    npz.write(path, _state(), meta)
    state, metadata = npz.read(path)
    assert metadata == meta
    for name, value in _state().items():
        assert state[name].dtype == value.dtype and np.array_equal(state[name], value)
    # the independent check: plain NumPy with allow_pickle=False reads every entry, metadata included
    with np.load(path, allow_pickle=False) as raw:
        assert json.loads(str(raw[npz.METADATA_KEY][0])) == meta
        assert raw[npz.METADATA_KEY].dtype.kind == "U"


def test_write_is_atomic_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "w.npz"
    npz.write(path, _state())
    with pytest.raises(WeightsError, match="only numeric"):
        npz.write(path, {"bad": np.array(["text"])})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
    assert set(npz.read(path)[0]) == set(_state())  # the earlier file is intact


def test_object_array_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, weight=np.ones(3, np.float32), evil=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(UnsafeFileError, match="pickled"):
        npz.read(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "w.npz"
    npz.write(path, _state())
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(CorruptFileError, match="truncated or corrupted|not a readable"):
            npz.read(bad)


def test_corrupted_bytes_inside_an_entry(tmp_path):
    path = tmp_path / "w.npz"
    npz.write(path, _state())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("conv1.weight.npy")
    start = info.header_offset + 30 + len(info.filename) + 200
    data[start:start + 8] = b"\xff" * 8
    bad = tmp_path / "crc.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError):
        npz.read(bad)


def test_not_a_zip_and_single_npy(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello, not an archive")
    with pytest.raises(CorruptFileError, match="no zip signature"):
        npz.read(text)
    single = tmp_path / "one.npy"
    np.save(single, np.ones(3))
    with pytest.raises(CorruptFileError):
        npz.read(single)


def test_bad_metadata_entry(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{"w": np.ones(2), npz.METADATA_KEY: np.array(["{not json"])})
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        npz.read(path)


def test_string_entry_is_not_a_weight(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, w=np.ones(2), label=np.array(["cat"]))
    with pytest.raises(WeightsError, match="not a numeric weight"):
        npz.read(path)
