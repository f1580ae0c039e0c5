"""Errors raised while reading or mapping weight files, and the guard every reader runs inside.

All of them subclass :class:`WeightsError`, itself a ``ValueError``, so a caller (or the
command line) catches one type and prints one clear line — never a traceback from deep
inside NumPy, zipfile, h5py, protobuf or pickle:

    WeightsError                      anything that makes a weight file unusable
      CorruptFileError                truncated, damaged, or not the format its name says
      UnsafeFileError                 asks for something a weight file must never do
        SizeLimitError                asks for more memory than the file can back (see limits.py)
      ArchitectureMismatchError       the weights belong to another architecture

:func:`reading` wraps a reader: whatever escapes it (``struct.error``, ``IndexError``,
``RecursionError``, ``MemoryError``, an ``OSError`` from h5py, a protobuf ``DecodeError``)
becomes one of the above, with the file's name first and a single line of text.
"""
from __future__ import annotations

import contextlib
import os


class WeightsError(ValueError):
    """A weight file that cannot be used: corrupt, unsafe, of an unknown format, or not matching the model."""


class CorruptFileError(WeightsError):
    """The file is truncated, damaged, or not the format its name says."""


class UnsafeFileError(WeightsError):
    """The file asks for something a weight file must never do (run code, unpickle objects, read other files)."""


class SizeLimitError(UnsafeFileError):
    """The file asks for more memory than its own bytes can back (or than ``MINITL_MAX_LOAD_BYTES`` allows)."""


class ArchitectureMismatchError(WeightsError):
    """The weights belong to another architecture than the one asked for."""


MAX_MESSAGE = 400
OUT_OF_MEMORY = (
    "it asks for more than the machine has or than minitl allows for a file of its size "
    "(set MINITL_MAX_LOAD_BYTES to raise the limit for a file you trust)"
)


def one_line(text, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (newlines and tabs become spaces), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def brief(value, limit: int = 60) -> str:
    """A short description of a value read from a file: its text for str/bytes/numbers, else its type.

    Never calls ``str()`` on a container — a pickle can make a list whose repr is exponentially long.
    """
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else "<a huge integer>"
        return one_line(text, limit)
    return f"<a {type(value).__name__}>"


def _with_path(path: str, message: str) -> str:
    message = one_line(message)
    return message if message.startswith(path) else one_line(f"{path}: {message}", MAX_MESSAGE + len(path))


@contextlib.contextmanager
def reading(path, kind: str):
    """Run a reader of ``kind`` files on ``path``; every failure leaves as a one-line :class:`WeightsError`.

    ``FileNotFoundError`` (the file is not there) passes unchanged; ``KeyboardInterrupt`` too.
    """
    path = os.fspath(path)
    try:
        yield
    except ArchitectureMismatchError:
        raise
    except WeightsError as error:
        raise type(error)(_with_path(path, str(error))) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except MemoryError:
        raise SizeLimitError(f"{path}: reading this {kind} file ran out of memory; {OUT_OF_MEMORY}") from None
    except RecursionError:
        raise CorruptFileError(f"{path}: {kind} file nested too deeply to be a weight file") from None
    except Exception as error:  # noqa: BLE001 - any other failure inside a parser means a damaged file
        if "memory allocation failed" in str(error):  # how libhdf5 reports a failed malloc
            raise SizeLimitError(
                _with_path(path, f"reading this {kind} file ran out of memory ({error}); {OUT_OF_MEMORY}")
            ) from None
        raise CorruptFileError(
            _with_path(path, f"truncated or corrupted {kind} file ({type(error).__name__}: {error})")
        ) from None
