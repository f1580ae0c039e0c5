"""minitl's seedable random generators: weight initialisation, dropout masks, shuffling.

``minitl.manual_seed(s)`` makes runs repeatable.  Host arrays draw from NumPy's PCG64; each
device array module (CuPy) has its own generator, seeded with the same ``s`` and drawing on the
device (no host->device copy), so device numbers repeat for a seed but differ from the host's.

``get_state()`` captures all of them — the host generator's state, the seed, and each device
generator's state (its device memory, copied to the host) — and ``set_state()`` restores them,
so a run resumed from a checkpoint draws the same numbers (dropout masks, say) bit for bit on
every backend.
"""
from __future__ import annotations

import numpy

from . import backend

_generator = numpy.random.default_rng(0)
_seed = 0
_device_generators: dict = {}  # array module name -> its generator, drawing on the device
_pending_device_states: dict = {}  # array module name -> a restored state for a generator not made yet


def manual_seed(seed: int) -> numpy.random.Generator:
    """Seed the host generator and (lazily) every device generator."""
    global _generator, _seed
    _generator = numpy.random.default_rng(seed)
    _seed = seed
    _device_generators.clear()
    _pending_device_states.clear()
    return _generator


def generator() -> numpy.random.Generator:
    return _generator


def _device_state_array(device_rng):
    """The device memory that holds a CuPy ``Generator``'s whole state (``bit_generator._state``:
    cuRAND's per-thread states, as bytes); CuPy has no public accessor for it."""
    return device_rng.bit_generator._state


def get_state() -> dict:
    """``{"host": PCG64 state, "seed": s, "devices": {module name: state bytes (host array)}}``."""
    devices = dict(_pending_device_states)
    for name, device_rng in _device_generators.items():
        devices[name] = backend.to_numpy(_device_state_array(device_rng)).copy()
    return {"host": _generator.bit_generator.state, "seed": _seed, "devices": devices}


def set_state(state: dict) -> None:
    """Restore what :func:`get_state` returned (a bare PCG64 state, as older checkpoints hold,
    restores the host generator alone)."""
    global _seed
    if "host" not in state:
        _generator.bit_generator.state = state
        return
    _generator.bit_generator.state = state["host"]
    _seed = state["seed"]
    _device_generators.clear()  # re-made from the seed and then given their saved state when next used
    _pending_device_states.clear()
    _pending_device_states.update({name: numpy.asarray(saved) for name, saved in state["devices"].items()})


def device_generator(xp):
    """The generator of a device array module (``xp.random.default_rng``), seeded by ``manual_seed``
    (or given the state :func:`set_state` restored)."""
    name = getattr(xp, "__name__", str(id(xp)))
    if name not in _device_generators:
        device_rng = xp.random.default_rng(_seed)
        saved = _pending_device_states.pop(name, None)
        if saved is not None:
            target = _device_state_array(device_rng)
            if target.shape != saved.shape or target.dtype != saved.dtype:
                raise ValueError(
                    f"random state for {name}: the saved device generator state has shape {saved.shape} "
                    f"{saved.dtype}, this device's has {target.shape} {target.dtype} (another GPU model?)")
            target[...] = xp.asarray(saved)
        _device_generators[name] = device_rng
    return _device_generators[name]


def uniform_like(array):
    """U[0, 1) samples with ``array``'s shape, on its device."""
    xp = backend.get_array_module(array)
    if xp is numpy:
        return _generator.random(array.shape, dtype=numpy.float32)
    return device_generator(xp).random(array.shape, dtype=numpy.float32)
