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
