"""Argument shapes shared by every layer: ``pair`` turns ``k`` or ``(kh, kw)`` into ``(kh, kw)``.

Convolution and pooling (kernel, stride, padding, dilation), image transforms (sizes) and the
ONNX reader (attributes) all accept an int or a pair; this is the one place that reads them.
Knows nothing of minitl.
"""
from __future__ import annotations

import numbers


def pair(value, name: str = "value", minimum: int | None = None) -> tuple[int, int]:
    """``k`` -> ``(k, k)``; ``(a, b)`` -> ``(a, b)``, as Python ints.  ValueError naming ``name`` for
    anything else (a float with a fraction, three numbers, a string) or a value below ``minimum``."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(isinstance(v, numbers.Real) and int(v) == v
                                  for v in items):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    result = (int(items[0]), int(items[1]))
    if minimum is not None and min(result) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return result
