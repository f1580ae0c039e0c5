"""minitl's seedable random generator: weight initialisation, dropout masks, shuffling.

``minitl.manual_seed(s)`` makes runs repeatable.  Random numbers are drawn on the host
(NumPy's PCG64) and moved to the device of the array that needs them.
"""
from __future__ import annotations

import numpy

from . import backend

_generator = numpy.random.default_rng(0)
_seed = 0
_device_generators: dict = {}  # array module name -> its generator, drawing on the device


def manual_seed(seed: int) -> numpy.random.Generator:
    """Seed the host generator and (lazily) every device generator."""
    global _generator, _seed
    _generator = numpy.random.default_rng(seed)
    _seed = seed
    _device_generators.clear()
    return _generator


def generator() -> numpy.random.Generator:
    return _generator


def get_state() -> dict:
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    _generator.bit_generator.state = state


def device_generator(xp):
    """The generator of a device array module (``xp.random.default_rng``), seeded by ``manual_seed``.

    Device numbers are drawn on the device (no host->device copy); they repeat for a seed but
    differ from the host generator's.
    """
    name = getattr(xp, "__name__", str(id(xp)))
    if name not in _device_generators:
        _device_generators[name] = xp.random.default_rng(_seed)
    return _device_generators[name]


def uniform_like(array):
    """U[0, 1) samples with ``array``'s shape, on its device."""
    xp = backend.get_array_module(array)
    if xp is numpy:
        return _generator.random(array.shape, dtype=numpy.float32)
    return device_generator(xp).random(array.shape, dtype=numpy.float32)
