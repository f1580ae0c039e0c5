"""Hostile and broken weight files, one test per defect of issue 10: each is refused with minitl's own
error (one line, naming the file), within bounded time and memory, reading nothing outside the file.

The files are built byte by byte (fuzz_craft.py), so each attack is exactly the one described.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minitl.transfer import CorruptFileError, UnsafeFileError, WeightsError, read_file
from minitl.transfer import limits
from minitl.transfer import npz as npz_format
from minitl.transfer import pytorch as pth
from minitl.transfer import safetensors as st_format
from minitl.transfer import torch_pickle
from minitl.transfer.errors import SizeLimitError

import fuzz_craft as craft

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _one_line_error(error, path):
    text = str(error)
    assert "\n" not in text and str(path) in text and len(text) < 1000, text
    return text


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


FOUR = np.arange(4, dtype=np.float32).tobytes()  # a 16-byte storage


# ------------------------------------------------------------------ 1. out-of-bounds read, legacy .pth
def test_legacy_view_with_negative_offset_reads_nothing_outside_its_storage(tmp_path):
    main = craft.state_pickle([("w", "0", 4, 0, (1024,), (1,), ("0v", -4096, 1024))])
    path = _write(tmp_path, "oob.pth", craft.pth_legacy(main, {"0": FOUR}))
    with pytest.raises(CorruptFileError, match="storage view") as caught:
        pth.read(path)
    _one_line_error(caught.value, path)


def test_legacy_view_past_the_end_of_its_storage_is_refused(tmp_path):
    main = craft.state_pickle([("w", "0", 4, 0, (4,), (1,), ("0v", 2, 4))])
    with pytest.raises(CorruptFileError, match="runs past its storage"):
        pth.read(_write(tmp_path, "past.pth", craft.pth_legacy(main, {"0": FOUR})))
    main = craft.state_pickle([("w", "0", 4, 0, (4,), (1,), ("0v", 0, 2))])  # inside the storage, outside the view
    with pytest.raises(CorruptFileError, match="runs past its storage"):
        pth.read(_write(tmp_path, "view.pth", craft.pth_legacy(main, {"0": FOUR})))
    main = craft.state_pickle([("w", "0", 4, 0, (2,), (1,), ("0v", 1, 2))])  # a good view reads its slice
    state, _ = pth.read(_write(tmp_path, "good.pth", craft.pth_legacy(main, {"0": FOUR})))
    assert np.array_equal(state["w"], np.array([1, 2], np.float32))


# ------------------------------------------------------------------ 3. denial of service from tiny files
@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_stride_zero_view_cannot_repeat_a_storage(tmp_path, container):
    tensors = [("w", "0", 4, 0, (4, 1000), (1, 0))]  # 16 bytes asking for 16 KB
    data = craft.state_pickle(tensors)
    blob = craft.pth_zip(data, {"0": FOUR}) if container == "zip" else craft.pth_legacy(data, {"0": FOUR})
    with pytest.raises(CorruptFileError, match="repeats its items"):
        pth.read(_write(tmp_path, "expand.pth", blob))


def _billion_laughs(levels: int = 40) -> bytes:
    """A list of 10 references to a list of 10 references ... (10**levels leaves, ~50 bytes per level)."""
    out = b"]" + b"q\x00"  # EMPTY_LIST, BINPUT 0
    for i in range(1, levels + 1):
        out += b"(" + (b"h" + bytes([i - 1])) * 10 + b"l" + b"q" + bytes([i])  # MARK, BINGET x10, LIST, BINPUT
    return out


def test_billion_laughs_persistent_id_ends_quickly(tmp_path):
    """str(pid) of 10**40 nested references never ends; the refusal must not build it (run in a subprocess)."""
    pid = craft.p_tuple(craft.p_str("storage"), _billion_laughs()) + b"Q"
    data = craft.PROTO + craft.p_ordered_dict([(craft.p_str("w"), pid)], metadata=False) + craft.STOP
    path = _write(tmp_path, "laughs.pth", craft.pth_zip(data, {}))
    code = textwrap.dedent(f"""
        from minitl.transfer import pytorch, UnsafeFileError
        try:
            pytorch.read({str(path)!r})
        except UnsafeFileError as error:
            print("refused:", error)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused:" in done.stdout and "unexpected persistent id <a tuple>" in done.stdout


def test_billion_laughs_as_a_dictionary_key_is_refused_without_hashing_it(tmp_path):
    """A key of 10**40 nested tuple references: hashing it (dict insertion) would never end."""
    tuples = _billion_laughs().replace(b"l", b"t").replace(b"]", b")")  # LIST -> TUPLE, EMPTY_LIST -> EMPTY_TUPLE
    tensor = craft.p_tensor(craft.p_storage("0", 4), 0, (4,), (1,))
    data = craft.PROTO + craft.p_ordered_dict([(tuples, tensor)], metadata=False) + craft.STOP
    with pytest.raises(CorruptFileError, match="not a name or a number"):
        pth.read(_write(tmp_path, "key.pth", craft.pth_zip(data, {"0": FOUR})))


def test_pickle_operation_count_and_depth_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_pickle, "MAX_PICKLE_OPS", 500)
    long_list = b"](" + craft.p_int(1) * 1000 + b"e"  # EMPTY_LIST MARK 1000 ints APPENDS
    data = craft.PROTO + craft.p_dict([(craft.p_str("x"), long_list)]) + craft.STOP
    with pytest.raises(UnsafeFileError, match="longer than 500 operations"):
        pth.read(_write(tmp_path, "long.pth", craft.pth_zip(data, {})))
    deep = craft.PROTO + b"(" * 200 + craft.STOP
    with pytest.raises(UnsafeFileError, match="nested deeper than 64"):
        pth.read(_write(tmp_path, "deep.pth", craft.pth_zip(deep, {})))


def test_legacy_storage_count_is_checked_before_reading(tmp_path):
    main = craft.state_pickle([("w", "0", 4, 0, (4,), (1,))])
    blob = craft.pth_legacy(main, {"0": FOUR}, counts={"0": 10 ** 12})  # 4 TB claimed by a 400-byte file
    path = _write(tmp_path, "count.pth", blob)
    with pytest.raises(CorruptFileError, match="claims 1,000,000,000,000 items") as caught:
        pth.read(path)
    _one_line_error(caught.value, path)


def test_pickle_frame_claiming_gigabytes_is_not_allocated(tmp_path):
    frame = b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"}."  # PROTO 4, FRAME of 1 TiB
    with pytest.raises(CorruptFileError):
        pth.read(_write(tmp_path, "frame.pth", craft.pth_legacy(frame, {})))


def test_npz_header_claiming_a_trillion_elements_is_refused_before_allocating(tmp_path):
    members = {"w.npy": craft.npy_header((10 ** 12,)) + FOUR}
    path = _write(tmp_path, "huge.npz", craft.npz_of(members))
    with pytest.raises(CorruptFileError, match="declares shape") as caught:
        npz_format.read(path)
    _one_line_error(caught.value, path)


def test_npz_deflate_bomb_is_refused(tmp_path, monkeypatch):
    lying = _write(tmp_path, "lie.npz", craft.deflate_bomb_npz(1 << 20, declared=(1 << 32) - 1))
    with pytest.raises(SizeLimitError, match="MINITL_MAX_LOAD_BYTES"):
        npz_format.read(lying)
    monkeypatch.setenv(limits.ENV_VAR, "1M")  # a user's own limit; an 8 MiB inflation goes past it
    bomb = _write(tmp_path, "bomb.npz", craft.deflate_bomb_npz(8 << 20))
    assert bomb.stat().st_size < 20_000
    with pytest.raises(SizeLimitError, match="1,048,576 bytes in all"):
        npz_format.read(bomb)
    monkeypatch.setenv(limits.ENV_VAR, "16M")  # raised: the same file loads
    state, _ = npz_format.read(bomb)
    assert state["w"].nbytes == (8 << 20) - 128 and not state["w"].any()


def test_size_limit_variable_must_be_a_size(monkeypatch):
    monkeypatch.setenv(limits.ENV_VAR, "lots")
    with pytest.raises(SizeLimitError, match="not a size"):
        limits.max_load_bytes(10)
    monkeypatch.setenv(limits.ENV_VAR, "2G")
    assert limits.max_load_bytes(10) == 2 << 30
    monkeypatch.delenv(limits.ENV_VAR)
    assert limits.max_load_bytes(10) == limits.FLOOR and limits.max_load_bytes(1 << 30) == 8 << 30


# ------------------------------------------------------------------ 9. BUILD may not mutate the allowed functions
def test_build_cannot_change_the_rebuild_functions(tmp_path):
    defaults = torch_pickle._rebuild_parameter.__defaults__
    attack = (craft.p_global("torch._utils", "_rebuild_parameter")
              + craft.p_tuple(b"N", craft.p_dict([(craft.p_str("__defaults__"), craft.p_tuple(craft.p_int(7)))]))
              + b"b0")  # BUILD (setattr on the function), POP
    data = craft.PROTO + attack + craft.state_pickle([("w", "0", 4, 0, (4,), (1,))])[2:]
    with pytest.raises(UnsafeFileError, match="refused to set the state of <a function>"):
        pth.read(_write(tmp_path, "build.pth", craft.pth_zip(data, {"0": FOUR})))
    assert torch_pickle._rebuild_parameter.__defaults__ == defaults


def test_build_cannot_rewrite_a_checked_tensor_view(tmp_path):
    tensor = craft.p_tensor(craft.p_storage("0", 4), 0, (4,), (1,))
    tensor += craft.p_dict([(craft.p_str("offset"), craft.p_int(10 ** 6))]) + b"b"  # BUILD on the StoredTensor
    data = craft.PROTO + craft.p_ordered_dict([(craft.p_str("w"), tensor)]) + craft.STOP
    with pytest.raises(UnsafeFileError, match="refused to set the state of <a StoredTensor>"):
        pth.read(_write(tmp_path, "retarget.pth", craft.pth_zip(data, {"0": FOUR})))


def test_state_dict_metadata_build_still_loads(tmp_path):
    """torch pickles a state_dict's _metadata with BUILD on the OrderedDict: that one is allowed."""
    tensors, storages = craft.contiguous({"a": np.ones((2, 3)), "b": np.arange(4.0)})
    state, _ = pth.read(_write(tmp_path, "ok.pth", craft.pth_zip(craft.state_pickle(tensors), storages)))
    assert np.array_equal(state["b"], np.arange(4, dtype=np.float32)) and state["a"].shape == (2, 3)


# ------------------------------------------------------------------ 5. safetensors: the format's own rules
F4 = {"dtype": "F32", "shape": [4]}


@pytest.mark.parametrize("header, payload, message", [
    ({"a": {**F4, "data_offsets": [0, 16]}, "b": {**F4, "data_offsets": [8, 24]}}, b"\0" * 24, "overlaps"),
    ({"a": {**F4, "data_offsets": [0, 16]}, "b": {**F4, "data_offsets": [20, 36]}}, b"\0" * 36, "hole of 4 bytes"),
    ({"a": {**F4, "data_offsets": [0, 16]}}, b"\0" * 20, "trailing bytes"),
    ({"a": {**F4, "data_offsets": [4, 20]}}, b"\0" * 20, "hole of 4 bytes"),
    ({"a": {"dtype": "F32", "shape": [2.0, 2], "data_offsets": [0, 16]}}, b"\0" * 16, "non-negative integers"),
    ({"a": {"dtype": "F32", "shape": [True, 4], "data_offsets": [0, 16]}}, b"\0" * 16, "non-negative integers"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0.0, 16]}}, b"\0" * 16, "two integers"),
    ({"a": {"dtype": "F32", "shape": [2 ** 32, 2 ** 32, 2 ** 32], "data_offsets": [0, 0]}}, b"", "do not fit"),
    ({"a": {**F4, "data_offsets": [0, 16], "extra": 1}}, b"\0" * 16, "exactly the keys"),
    ({"a": {**F4, "data_offsets": [0, 16]}, "__metadata__": {"k": 1}}, b"\0" * 16, "JSON object of strings"),
])
def test_safetensors_layout_rules(tmp_path, header, payload, message):
    path = _write(tmp_path, "bad.safetensors", craft.safetensors_bytes(header, payload))
    with pytest.raises(CorruptFileError, match=message) as caught:
        st_format.read(path)
    _one_line_error(caught.value, path)


def test_safetensors_duplicate_keys_and_deep_json(tmp_path):
    dup = '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    with pytest.raises(CorruptFileError, match="key 'a' twice"):
        st_format.read(_write(tmp_path, "dup.safetensors", craft.safetensors_bytes(dup, b"\0" * 4)))
    deep = "{" + '"a":' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(CorruptFileError):
        st_format.read(_write(tmp_path, "deep.safetensors", craft.safetensors_bytes(deep, b"")))


def test_safetensors_bytes_inserted_between_tensors_are_refused_not_read_shifted(tmp_path):
    good = craft.safetensors_of({"a": np.arange(4.0), "b": np.arange(4.0) + 10})
    header_len = 8 + struct.unpack("<Q", good[:8])[0]
    shifted = good[: header_len + 16] + b"\x7f" * 3 + good[header_len + 16:]
    with pytest.raises(CorruptFileError, match="trailing bytes"):
        st_format.read(_write(tmp_path, "ins.safetensors", shifted))


def test_safetensors_agrees_with_the_reference_package(tmp_path):
    """Where the `safetensors` package is installed, it accepts exactly the files this reader accepts."""
    reference = pytest.importorskip("safetensors.numpy")
    cases = {
        "good": craft.safetensors_of({"a": np.arange(4.0), "b": np.ones((2, 2))}),
        "overlap": craft.safetensors_bytes({"a": {**F4, "data_offsets": [0, 16]}, "b": {**F4, "data_offsets": [8, 24]}}, b"\0" * 24),
        "hole": craft.safetensors_bytes({"a": {**F4, "data_offsets": [4, 20]}}, b"\0" * 20),
        "trailing": craft.safetensors_bytes({"a": {**F4, "data_offsets": [0, 16]}}, b"\0" * 20),
        "negative": craft.safetensors_bytes({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, b"\0" * 16),
    }
    for name, blob in cases.items():
        path = _write(tmp_path, f"{name}.safetensors", blob)
        try:
            reference.load_file(str(path))
            theirs = True
        except Exception:  # noqa: BLE001 - the package raises several types
            theirs = False
        try:
            st_format.read(path)
            ours = True
        except CorruptFileError:
            ours = False
        assert ours == theirs, name


# ------------------------------------------------------------------ 2. .h5 must not read other files
h5py = None


@pytest.fixture
def h5(tmp_path):
    global h5py
    h5py = pytest.importorskip("h5py")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 4)  # 128 bytes: 32 float32 'weights'
    return secret


def _keras_file(path, make_weight):
    """A legacy Keras .h5 with one layer 'fc' whose weight 'fc/kernel:0' is made by make_weight(group, name)."""
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [b"fc"]
        group = handle.create_group("fc")
        group.attrs["weight_names"] = [b"fc/kernel:0"]
        make_weight(group.create_group("fc"), "kernel:0")
    return path


def test_h5_plain_file_loads(tmp_path, h5):
    path = _keras_file(tmp_path / "ok.h5", lambda g, n: g.create_dataset(n, data=np.ones((2, 3), np.float32)))
    state, _, rows, _ = read_file(path)
    assert [r.source for r in rows] == ["fc/kernel"] and np.array_equal(state[rows[0].target].T, np.ones((2, 3)))


@pytest.mark.parametrize("attack, message", [
    ("external_storage", "external files"),
    ("external_link", "external link"),
    ("virtual", "virtual dataset"),
    ("soft_link", "SoftLink"),
])
def test_h5_never_reads_another_file(tmp_path, h5, attack, message):
    secret = h5

    def make(group, name):
        if attack == "external_storage":
            group.create_dataset(name, shape=(32,), dtype="<f4", external=[(str(secret), 0, 128)])
        elif attack == "external_link":
            other = tmp_path / "other.h5"
            with h5py.File(other, "w") as handle:
                handle.create_dataset("k", data=np.frombuffer(secret.read_bytes(), "<f4"))
            group[name] = h5py.ExternalLink(str(other), "/k")
        elif attack == "virtual":
            layout = h5py.VirtualLayout(shape=(32,), dtype="<f4")
            other = tmp_path / "src.h5"
            with h5py.File(other, "w") as handle:
                handle.create_dataset("k", data=np.frombuffer(secret.read_bytes(), "<f4"))
            layout[:] = h5py.VirtualSource(str(other), "k", shape=(32,))
            group.create_virtual_dataset(name, layout)
        else:
            group.file.create_dataset("elsewhere", data=np.ones(3, np.float32))
            group[name] = h5py.SoftLink("/elsewhere")

    path = _keras_file(tmp_path / f"{attack}.h5", make)
    with pytest.raises(UnsafeFileError, match=message) as caught:
        read_file(path)
    _one_line_error(caught.value, path)


def test_h5_non_numeric_and_huge_datasets_are_refused(tmp_path, h5):
    text = _keras_file(tmp_path / "text.h5", lambda g, n: g.create_dataset(n, data=[b"abc", b"de"]))
    with pytest.raises(WeightsError, match="not a numeric weight array"):
        read_file(text)
    huge = _keras_file(tmp_path / "huge.h5", lambda g, n: g.create_dataset(n, shape=(10 ** 6, 10 ** 6), dtype="f4"))
    assert huge.stat().st_size < 10_000
    with pytest.raises(CorruptFileError, match="claims 4,000,000,000,000 bytes"):
        read_file(huge)
    chunked = _keras_file(tmp_path / "chunked.h5", lambda g, n: g.create_dataset(
        n, shape=(10 ** 6, 10 ** 6), dtype="f4", chunks=(100, 100), compression="gzip"))
    with pytest.raises(SizeLimitError):
        read_file(chunked)


# ------------------------------------------------------------------ 9. ONNX external data is unsafe, not corrupt
def _onnx_with_external(tmp_path, location):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[32])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "128")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("Add", ["X", "W"], ["Y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [32])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [32])], initializer=[tensor])
    path = tmp_path / "ext.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return path


@pytest.mark.parametrize("location", ["secret.bin", "../../../../etc/passwd"])
def test_onnx_external_data_is_refused_as_unsafe(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(b"s" * 128)
    path = _onnx_with_external(tmp_path, location)
    with pytest.raises(UnsafeFileError, match="external file") as caught:
        read_file(path)
    _one_line_error(caught.value, path)


def test_onnx_value_errors_become_corrupt_file_errors(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 4], raw_data=b"\0" * 12)  # 16 floats promised
    node = helper.make_node("Add", ["X", "W"], ["Y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])], initializer=[tensor])
    path = tmp_path / "short.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(CorruptFileError) as caught:
        read_file(path)
    _one_line_error(caught.value, path)
    assert onnx  # imported for the helper


# ------------------------------------------------------------------ 4. the CLI: one line, non-zero, no traceback
def test_cli_prints_one_line_for_each_hostile_file(tmp_path, capsys):
    from minitl.cli import main

    files = {
        "oob.pth": craft.pth_legacy(craft.state_pickle([("w", "0", 4, 0, (1024,), (1,), ("0v", -4096, 1024))]), {"0": FOUR}),
        "count.pth": craft.pth_legacy(craft.state_pickle([("w", "0", 4, 0, (4,), (1,))]), {"0": FOUR}, {"0": 10 ** 12}),
        "huge.npz": craft.npz_of({"w.npy": craft.npy_header((10 ** 12,)) + FOUR}),
        "lie.npz": craft.deflate_bomb_npz(1 << 20, declared=(1 << 32) - 1),
        "deep.safetensors": craft.safetensors_bytes("{\"a\":" + "[" * 50_000 + "]" * 50_000 + "}", b""),
    }
    for name, blob in files.items():
        path = _write(tmp_path, name, blob)
        for command in (["weights", "inspect", str(path)], ["weights", "convert", str(path), "-o", str(tmp_path / "o.npz")]):
            assert main(command) == 2, name
            captured = capsys.readouterr()
            assert captured.err.count("\n") == 1 and captured.err.startswith("minitl weights: error: ") and str(path) in captured.err, captured.err
            assert "Traceback" not in captured.err + captured.out
