"""Errors raised while reading or mapping weight files.

All of them subclass :class:`WeightsError`, itself a ``ValueError``, so a caller (or the
command line) catches one type and prints one clear line — never a traceback from deep
inside NumPy, zipfile or pickle.
"""
from __future__ import annotations


class WeightsError(ValueError):
    """A weight file that cannot be used: corrupt, unsafe, of an unknown format, or not matching the model."""


class CorruptFileError(WeightsError):
    """The file is truncated, damaged, or not the format its name says."""


class UnsafeFileError(WeightsError):
    """The file asks for something a weight file must never do (run code, unpickle objects)."""


class ArchitectureMismatchError(WeightsError):
    """The weights belong to another architecture than the one asked for."""
