"""Checkpoints: nested structures round-trip without pickle; writes are atomic."""
import numpy as np
import pytest

from minitl.train import checkpoint as ck


def test_round_trip_nested_structure(tmp_path):
    rng_state = np.random.default_rng(5).bit_generator.state  # 128-bit integers inside
    tree = {"model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)},
            "optimizer": {"state": {0: {"momentum_buffer": np.ones(3)}, 3: {}},
                          "param_groups": [{"lr": 0.1, "params": [0, 3], "nesterov": True}]},
            "rng": rng_state, "shape": (2, 3), "none": None, "history": [{"loss": 0.5}]}
    path = ck.save_checkpoint(tmp_path / "c.npz", tree)
    back = ck.load_checkpoint(path)
    np.testing.assert_array_equal(back["model"]["w"], tree["model"]["w"])
    assert back["optimizer"]["state"][0]["momentum_buffer"].tolist() == [1, 1, 1]
    assert set(back["optimizer"]["state"]) == {0, 3}
    assert back["rng"] == rng_state and back["shape"] == (2, 3) and back["none"] is None
    with np.load(path, allow_pickle=False) as archive:  # readable without pickle
        assert "__tree__" in archive.files


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "c.npz"
    ck.save_checkpoint(path, {"epoch": 1})

    def broken(handle):
        handle.write(b"partial")
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        ck.atomic_write(path, broken)
    assert ck.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left behind


def test_bad_files(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(ck.CheckpointError, match="not a readable minitl checkpoint"):
        ck.load_checkpoint(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError):
        ck.load_checkpoint(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="cannot store a object"):
        ck.save_checkpoint(tmp_path / "y.npz", {"x": object()})
