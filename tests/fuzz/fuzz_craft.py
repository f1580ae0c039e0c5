"""Byte-level builders for weight files, valid and hostile, without torch/keras (committed, deterministic).

Used by the hostile-file regression tests and the fuzz generator.  Pickles are assembled
opcode by opcode (protocol 2), so a test can put any offset, stride, persistent id or BUILD
exactly where an attacker would.
"""
from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
import zlib

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
PROTO = b"\x80\x02"
STOP = b"."


# ---------------------------------------------------------------- pickle opcodes
def p_str(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def p_int(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])
    raw = pickle.encode_long(n)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def p_tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def p_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def p_call(func: bytes, *args: bytes) -> bytes:
    return func + p_tuple(*args) + b"R"


def p_dict(pairs) -> bytes:
    return b"}(" + b"".join(k + v for k, v in pairs) + b"u"


def p_ordered_dict(pairs, metadata: bool = True) -> bytes:
    """collections.OrderedDict(pairs) as torch pickles a state_dict: REDUCE, then BUILD of its ``_metadata``."""
    out = p_call(p_global("collections", "OrderedDict")) + b"(" + b"".join(k + v for k, v in pairs) + b"u"
    if metadata:
        out += p_dict([(p_str("_metadata"), p_dict([(p_str(""), p_dict([(p_str("version"), p_int(1))]))]))]) + b"b"
    return out


def p_storage(key: str, numel: int, view: tuple | None = None, storage_type: str = "FloatStorage") -> bytes:
    """BINPERSID ("storage", torch.FloatStorage, key, "cpu", numel[, (view_key, offset, size)])."""
    items = [p_str("storage"), p_global("torch", storage_type), p_str(key), p_str("cpu"), p_int(numel)]
    if view is not None:
        items.append(p_tuple(p_str(view[0]), p_int(view[1]), p_int(view[2])))
    return p_tuple(*items) + b"Q"


def p_tensor(storage: bytes, offset: int, size, stride) -> bytes:
    return p_call(p_global("torch._utils", "_rebuild_tensor_v2"), storage, p_int(offset),
                  p_tuple(*map(p_int, size)), p_tuple(*map(p_int, stride)), b"\x89",
                  p_call(p_global("collections", "OrderedDict")))


def state_pickle(tensors) -> bytes:
    """tensors: [(name, storage_key, numel, offset, size, stride[, view])] -> a state_dict pickle."""
    pairs = []
    for name, key, numel, offset, size, stride, *view in tensors:
        pairs.append((p_str(name), p_tensor(p_storage(key, numel, view[0] if view else None), offset, size, stride)))
    return PROTO + p_ordered_dict(pairs) + STOP


def contiguous(state: dict):
    """[(name, key, numel, 0, shape, strides)] and {key: float32 bytes} for a dict of float32 arrays."""
    tensors, storages = [], {}
    for i, (name, array) in enumerate(state.items()):
        array = np.ascontiguousarray(array, dtype=np.float32)
        strides = tuple(s // 4 for s in array.strides)
        tensors.append((name, str(i), array.size, 0, array.shape, strides))
        storages[str(i)] = array.tobytes()
    return tensors, storages


# ---------------------------------------------------------------- .pth containers
def pth_zip(data_pkl: bytes, storages: dict) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
    return out.getvalue()


def pth_legacy(main_pickle: bytes, storages: dict, counts: dict | None = None) -> bytes:
    """magic, protocol, sys_info, the main pickle, the key list, then each storage as [i64 count][bytes]."""
    out = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                         "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        out.write(pickle.dumps(header, protocol=2))
    out.write(main_pickle)
    out.write(pickle.dumps(list(storages), protocol=2))
    for key, raw in storages.items():
        count = (counts or {}).get(key, len(raw) // 4)
        out.write(struct.pack("<q", count) + raw)
    return out.getvalue()


# ---------------------------------------------------------------- .safetensors
def safetensors_bytes(header, payload: bytes) -> bytes:
    text = header.encode() if isinstance(header, str) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


def safetensors_of(state: dict) -> bytes:
    header, payload = {}, b""
    for name, array in state.items():
        raw = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [len(payload), len(payload) + len(raw)]}
        payload += raw
    return safetensors_bytes(header, payload)


# ---------------------------------------------------------------- .npz
def npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array, allow_pickle=False)
    return out.getvalue()


def npy_header(shape, descr="<f4") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return out.getvalue()


def npz_of(members: dict, compress: bool = False) -> bytes:
    """members: {name.npy: raw bytes}, stored (or deflated)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    return out.getvalue()


def deflate_bomb_npz(uncompressed: int, declared: int | None = None) -> bytes:
    """An .npz whose one member inflates to ``uncompressed`` bytes of zeros (header declares ``declared``)."""
    header = npy_header(((uncompressed - 128) // 4,))
    body_len = uncompressed - len(header)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(header)]
    left = body_len
    while left > 0:
        parts.append(compressor.compress(chunk[: min(left, len(chunk))]))
        left -= min(left, len(chunk))
    parts.append(compressor.flush())
    stream = b"".join(parts)
    crc = 0
    crc = zlib.crc32(header, crc)
    left = body_len
    while left > 0:
        crc = zlib.crc32(chunk[: min(left, len(chunk))], crc)
        left -= min(left, len(chunk))
    size = uncompressed if declared is None else declared
    name = b"w.npy"
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(stream), size & 0xFFFFFFFF,
                        len(name), 0) + name
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(stream),
                          size & 0xFFFFFFFF, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    return local + stream + central + end
