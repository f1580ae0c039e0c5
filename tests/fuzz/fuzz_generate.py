"""The fuzz corpus, generated from a seed: per format a valid small file, its mutants, and hostile cases.

    cases(fmt, workdir, count, seed) -> the valid file's path, and [(label, kind, bytes or builder)]

Formats: npz, safetensors, pth_zip, pth_legacy, h5, onnx, checkpoint, feature_cache.  Mutants:
byte flips, truncations, insertions, zeroed header ranges — on the raw file, and (for zip-based
formats) on one member re-zipped with a valid CRC, so the parser behind the checksum is reached
too.  Hostile cases: the attacks of issue 10, one or more per format.  Everything is a pure
function of (format, seed, index): a failing case is reproduced by its label.
"""
from __future__ import annotations

import io
import json
import os
import random
import struct
import zipfile

import numpy as np

import fuzz_craft as craft

FORMATS = ["npz", "safetensors", "pth_zip", "pth_legacy", "h5", "onnx", "checkpoint", "feature_cache"]
ZIPPED = {"npz", "pth_zip", "checkpoint"}  # a zip CRC guards the content: a raw mutation may not load changed values
WEIGHTS = {"npz", "safetensors", "pth_zip", "pth_legacy", "h5", "onnx"}  # reached through `minitl weights inspect`
SUFFIX = {"npz": ".npz", "safetensors": ".safetensors", "pth_zip": ".pth", "pth_legacy": ".pth", "h5": ".h5",
          "onnx": ".onnx", "checkpoint": ".npz", "feature_cache": ".npy"}


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"conv.weight": rng.standard_normal((4, 3, 2, 2)).astype(np.float32),
            "conv.bias": rng.standard_normal(4).astype(np.float32),
            "fc.weight": rng.standard_normal((2, 4)).astype(np.float32),
            "fc.bias": rng.standard_normal(2).astype(np.float32)}


# ---------------------------------------------------------------- valid files
def valid_bytes(fmt: str, workdir: str) -> bytes:
    """The valid file of ``fmt`` (deterministic)."""
    arrays = _arrays()
    if fmt == "npz":
        members = {f"{k}.npy": craft.npy_bytes(v) for k, v in arrays.items()}
        members["__minitl_metadata__.npy"] = craft.npy_bytes(np.array([json.dumps({"note": "fuzz"})]))
        return craft.npz_of(members)
    if fmt == "safetensors":
        return craft.safetensors_of(arrays)
    if fmt in ("pth_zip", "pth_legacy"):
        tensors, storages = craft.contiguous(arrays)
        data = craft.state_pickle(tensors)
        return craft.pth_zip(data, storages) if fmt == "pth_zip" else craft.pth_legacy(data, storages)
    if fmt == "h5":
        return _h5_bytes(workdir)
    if fmt == "onnx":
        return _onnx_bytes()
    if fmt == "checkpoint":
        from minitl.train.checkpoint import save_checkpoint

        path = os.path.join(workdir, "valid-checkpoint.npz")
        save_checkpoint(path, {"epoch": 3, "model": arrays, "history": [{"loss": 0.5}], "rng": {"seed": 1}},
                        keep_previous=False)
        with open(path, "rb") as handle:
            return handle.read()
    if fmt == "feature_cache":
        return craft.npy_bytes(np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32))
    raise ValueError(fmt)


def feature_cache_labels() -> bytes:
    return craft.npy_bytes(np.arange(6, dtype=np.int64) % 3)


def _h5_bytes(workdir):
    import h5py

    rng = np.random.default_rng(2)
    path = os.path.join(workdir, "valid.h5")
    with h5py.File(path, "w", track_order=False) as handle:
        handle.attrs["layer_names"] = [b"conv1_conv", b"predictions"]
        for layer, weights in (("conv1_conv", {"kernel": (2, 2, 3, 4), "bias": (4,)}),
                               ("predictions", {"kernel": (4, 2), "bias": (2,)})):
            group = handle.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/{w}:0".encode() for w in weights]
            inner = group.create_group(layer)
            for name, shape in weights.items():
                inner.create_dataset(f"{name}:0", data=rng.standard_normal(shape).astype(np.float32), track_times=False)
    with open(path, "rb") as handle:
        return handle.read()


def _onnx_bytes():
    """A minimal ResNet: stem conv, one basic block (2 convs + residual Add), Gemm head."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)

    def init(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [init("W0", (4, 3, 3, 3)), init("W1", (4, 4, 3, 3)), init("W2", (4, 4, 3, 3)),
             init("Wfc", (2, 4)), init("Bfc", (2,))]
    pads = dict(pads=[1, 1, 1, 1], strides=[1, 1], kernel_shape=[3, 3])
    nodes = [helper.make_node("Conv", ["X", "W0"], ["c0"], **pads), helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("Conv", ["r0", "W1"], ["c1"], **pads), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "W2"], ["c2"], **pads), helper.make_node("Add", ["r0", "c2"], ["s"]),
             helper.make_node("Relu", ["s"], ["r2"]), helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Gemm", ["f", "Wfc", "Bfc"], ["Y"], transB=1)]
    graph = helper.make_graph(nodes, "mini", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])], initializer=inits)
    return helper.make_model(graph, producer_name="fuzz").SerializeToString()


# ---------------------------------------------------------------- mutants
def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random mutation: (description, mutated bytes)."""
    data = bytearray(data)
    kind = rng.choice(["flip", "flip", "truncate", "insert", "zero"])
    header = min(len(data), 1024)
    if kind == "flip":
        spots = []
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(header) if rng.random() < 0.6 else rng.randrange(len(data))
            data[at] ^= rng.randrange(1, 256)
            spots.append(at)
        return f"flip@{spots}", bytes(data)
    if kind == "truncate":
        at = rng.randrange(len(data))
        return f"truncate@{at}", bytes(data[:at])
    if kind == "insert":
        at = rng.randrange(len(data) + 1)
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        return f"insert@{at}+{len(blob)}", bytes(data[:at] + blob + data[at:])
    at = rng.randrange(header)
    n = rng.randint(1, 32)
    data[at : at + n] = bytes(len(data[at : at + n]))
    return f"zero@{at}+{n}", bytes(data)


def mutate_member(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Mutate one member of a zip and re-zip it (stored, fresh CRC): the parser behind the checksum."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    index = rng.randrange(len(members))
    label, mutated = mutate(members[index][1], rng)
    members[index] = (members[index][0], mutated)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, raw in members:
            archive.writestr(name, raw)
    return f"member {members[index][0]}: {label}", out.getvalue()


def mutants(fmt: str, valid: bytes, count: int, seed: int):
    """``count`` mutants of ``valid``: (label, bytes, rezipped)."""
    out = []
    for i in range(count):
        rng = random.Random(f"{fmt}/{seed}/{i}")
        if fmt in ZIPPED and rng.random() < 0.5:
            label, data = mutate_member(valid, rng)
            out.append((f"#{i} {label}", data, True))
        else:
            label, data = mutate(valid, rng)
            out.append((f"#{i} {label}", data, False))
    return out


# ---------------------------------------------------------------- hostile cases
FOUR = np.arange(4, dtype=np.float32).tobytes()


def _laughs(levels=40):
    out = b"]q\x00"
    for i in range(1, levels + 1):
        out += b"(" + (b"h" + bytes([i - 1])) * 10 + b"lq" + bytes([i])
    return out


def hostile(fmt: str, workdir: str):
    """[(label, bytes)]: hand-written attacks (each must end in minitl's error, or a cache miss)."""
    if fmt in ("pth_zip", "pth_legacy"):
        wrap = (lambda data, storages: craft.pth_zip(data, storages)) if fmt == "pth_zip" else craft.pth_legacy
        pid = craft.p_tuple(craft.p_str("storage"), _laughs()) + b"Q"
        build = (craft.p_global("torch._utils", "_rebuild_parameter")
                 + craft.p_tuple(b"N", craft.p_dict([(craft.p_str("__defaults__"), craft.p_tuple(craft.p_int(7)))]))
                 + b"b0")
        cases = [
            ("stride-0 view", wrap(craft.state_pickle([("w", "0", 4, 0, (4, 1000), (1, 0))]), {"0": FOUR})),
            ("laughs pid", wrap(craft.PROTO + craft.p_ordered_dict([(craft.p_str("w"), pid)], False) + craft.STOP, {})),
            ("laughs key", wrap(craft.PROTO + craft.p_ordered_dict(
                [(_laughs().replace(b"l", b"t").replace(b"]", b")"), craft.p_int(1))], False) + craft.STOP, {})),
            ("BUILD on a function", wrap(craft.PROTO + build + craft.state_pickle([("w", "0", 4, 0, (4,), (1,))])[2:],
                                         {"0": FOUR})),
            ("deep marks", wrap(craft.PROTO + b"(" * 500 + craft.STOP, {})),
            ("os.system", wrap(craft.PROTO + craft.p_call(craft.p_global("os", "system"), craft.p_str("true"))
                               + craft.STOP, {})),
        ]
        if fmt == "pth_legacy":
            cases += [
                ("negative view offset", craft.pth_legacy(
                    craft.state_pickle([("w", "0", 4, 0, (1024,), (1,), ("0v", -4096, 1024))]), {"0": FOUR})),
                ("count 1e12", craft.pth_legacy(craft.state_pickle([("w", "0", 4, 0, (4,), (1,))]), {"0": FOUR},
                                                {"0": 10 ** 12})),
                ("frame 1 TiB", craft.pth_legacy(b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"}.", {})),
            ]
        return cases
    if fmt == "npz":
        return [("1e12 elements", craft.npz_of({"w.npy": craft.npy_header((10 ** 12,)) + FOUR})),
                ("declared 4 GiB", craft.deflate_bomb_npz(1 << 20, declared=(1 << 32) - 1)),
                ("object array", craft.npz_of({"w.npy": craft.npy_header((1,), "|O") + b"\x80\x02N."})),
                ("negative shape", craft.npz_of({"w.npy": craft.npy_header((-1,)) + FOUR}))]
    if fmt == "safetensors":
        f4 = {"dtype": "F32", "shape": [4]}
        return [("overlap", craft.safetensors_bytes({"a": {**f4, "data_offsets": [0, 16]},
                                                     "b": {**f4, "data_offsets": [8, 24]}}, b"\0" * 24)),
                ("duplicate key", craft.safetensors_bytes(
                    '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                    '"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4)),
                ("deep json", craft.safetensors_bytes('{"a":' + "[" * 100_000 + "]" * 100_000 + "}", b"")),
                ("overflowing shape", craft.safetensors_bytes(
                    {"a": {"dtype": "F32", "shape": [2 ** 32] * 3, "data_offsets": [0, 0]}}, b"")),
                ("header 2^63", struct.pack("<Q", 1 << 63) + b"{}")]
    if fmt == "h5":
        return _h5_hostile(workdir)
    if fmt == "onnx":
        return _onnx_hostile(workdir)
    if fmt == "checkpoint":
        tree = json.dumps({"format": "minitl-checkpoint-1", "w": {"__array__": 5}})
        deep = "[" * 100_000 + "]" * 100_000
        return [("1e12 elements", craft.npz_of({"__tree__.npy": craft.npy_bytes(np.array([tree])),
                                                "a0.npy": craft.npy_header((10 ** 12,)) + FOUR})),
                ("array index out of range", craft.npz_of({"__tree__.npy": craft.npy_bytes(np.array([tree]))})),
                ("deep json", craft.npz_of({"__tree__.npy": craft.npy_bytes(np.array([deep]))}))]
    if fmt == "feature_cache":
        return [("1e12 rows", craft.npy_header((10 ** 12, 5)) + FOUR),
                ("object array", craft.npy_header((1,), "|O") + b"\x80\x02N.")]
    raise ValueError(fmt)


def _h5_hostile(workdir):
    import h5py

    secret = os.path.join(workdir, "secret.txt")
    with open(secret, "wb") as handle:
        handle.write(b"root:x:0:0:root:/root:/bin/bash\n" * 4)
    other = os.path.join(workdir, "other.h5")
    with h5py.File(other, "w") as handle:
        handle.create_dataset("k", data=np.frombuffer(open(secret, "rb").read(), "<f4"))

    def keras(make):
        path = os.path.join(workdir, "hostile.h5")
        with h5py.File(path, "w") as handle:
            handle.attrs["layer_names"] = [b"predictions"]
            group = handle.create_group("predictions")
            group.attrs["weight_names"] = [b"predictions/kernel:0"]
            make(group.create_group("predictions"), "kernel:0")
        with open(path, "rb") as handle:
            return handle.read()

    def virtual(group, name):
        layout = h5py.VirtualLayout(shape=(32,), dtype="<f4")
        layout[:] = h5py.VirtualSource(other, "k", shape=(32,))
        group.create_virtual_dataset(name, layout)

    def soft(group, name):
        group.file.create_dataset("elsewhere", data=np.ones(3, np.float32))
        group[name] = h5py.SoftLink("/elsewhere")

    return [
        ("external storage", keras(lambda g, n: g.create_dataset(n, shape=(32,), dtype="<f4", external=[(secret, 0, 128)]))),
        ("external link", keras(lambda g, n: g.__setitem__(n, h5py.ExternalLink(other, "/k")))),
        ("virtual dataset", keras(virtual)),
        ("soft link", keras(soft)),
        ("string dataset", keras(lambda g, n: g.create_dataset(n, data=[b"abc", b"de"]))),
        ("1e12 elements", keras(lambda g, n: g.create_dataset(n, shape=(10 ** 6, 10 ** 6), dtype="f4"))),
    ]


def _onnx_hostile(workdir):
    from onnx import TensorProto, helper

    with open(os.path.join(workdir, "secret.bin"), "wb") as handle:
        handle.write(b"s" * 128)

    def model(tensor):
        node = helper.make_node("Add", ["X", tensor.name], ["Y"])
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [32])],
                                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [32])], initializer=[tensor])
        return helper.make_model(graph).SerializeToString()

    cases = []
    for location in ("secret.bin", "../../../../etc/passwd"):
        tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[32])
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "128")):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        cases.append((f"external data {location}", model(tensor)))
    cases.append(("1e12 elements", model(TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[10 ** 6, 10 ** 6]))))
    cases.append(("short raw data", model(TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 4], raw_data=b"\0" * 12))))
    cases.append(("string tensor", model(TensorProto(name="W", data_type=TensorProto.STRING, dims=[1], string_data=[b"x"]))))
    return cases
