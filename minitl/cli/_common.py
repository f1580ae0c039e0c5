"""Helpers shared by the sub-commands (arguments several commands take)."""
from __future__ import annotations

import argparse

from .. import backend

DEVICES = ("cpu", "cuda")


def add_device_argument(parser: argparse.ArgumentParser, default: str = "cpu") -> None:
    """``--device cpu|cuda``: where the command computes (cuda runs on CuPy, see ``minitl info``)."""
    parser.add_argument(
        "--device", choices=DEVICES, default=default,
        help=f"where to compute: cpu (NumPy) or cuda (CuPy on an NVIDIA GPU); default {default}",
    )


def resolve_device(args) -> str:
    """Check the chosen device is usable (one clear error if not) and make it the default for new tensors."""
    device = getattr(args, "device", "cpu") or "cpu"
    backend.use(device)
    return device


# (destination, flag, test, what it must be): checked before any data or weights load
AT_LEAST_1 = (lambda v: v >= 1, "at least 1")
AT_LEAST_0 = (lambda v: v >= 0, "0 or more")
POSITIVE = (lambda v: 0 < v < float("inf"), "a positive number")
FRACTION = (lambda v: 0 < v < 1, "between 0 and 1 (exclusive)")
MOMENTUM = (lambda v: 0 <= v < 1, "in [0, 1)")


def check_arguments(args, rules) -> None:
    """One clear error naming the flag for the first argument out of its range (None: not given, skipped).

    rules: [(destination, flag, (test, requirement))]."""
    for dest, flag, (test, requirement) in rules:
        value = getattr(args, dest, None)
        if value is None or isinstance(value, bool):
            continue
        if not test(value):
            raise ValueError(f"{flag} must be {requirement}, got {value:g}" if isinstance(value, float)
                             else f"{flag} must be {requirement}, got {value}")
