"""minitl's seedable random generator: weight initialisation, dropout masks, shuffling.

``minitl.manual_seed(s)`` makes runs repeatable.  Random numbers are drawn on the host
(NumPy's PCG64) and moved to the device of the array that needs them.
"""
from __future__ import annotations

import numpy

from . import backend

_generator = numpy.random.default_rng(0)


def manual_seed(seed: int) -> numpy.random.Generator:
    global _generator
    _generator = numpy.random.default_rng(seed)
    return _generator


def generator() -> numpy.random.Generator:
    return _generator


def get_state() -> dict:
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    _generator.bit_generator.state = state


def uniform_like(array):
    """U[0, 1) samples with ``array``'s shape, on its device."""
    xp = backend.get_array_module(array)
    host = _generator.random(array.shape, dtype=numpy.float32)
    return host if xp is numpy else xp.asarray(host)
